"""Typed outcomes of a landing check.

Every failure a user can meet is one of these exceptions. Each carries the name written to JUnit
(the ``type`` attribute and the ``outcome`` property), whether JUnit shows it as ``<failure>`` or
``<error>``, and the CLI exit code. Messages say what was expected, what was seen and what to do.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing adds ~5 ms to `homelab --help` (P4)

if TYPE_CHECKING:  # typing itself is not imported at run time: `homelab --help` imports this
    from typing import ClassVar, Literal

    JUnitKind = Literal["failure", "error"]

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_STILL_RUNNING = 4  # `ci status` only: the pipeline has not finished
EXIT_DEADLINE = 124  # as timeout(1)


class HomelabError(Exception):
    """Base of every outcome that is not success. ``outcome`` is the class name."""

    outcome: ClassVar[str] = "HomelabError"
    junit: ClassVar[JUnitKind] = "error"
    exit_code: ClassVar[int] = EXIT_BAD_INPUT

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.outcome = cls.__name__

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message}\n  next: {self.hint}" if self.hint else self.message


# -- errors: the check could not be carried out ------------------------------------------------


class BadInput(HomelabError):
    """A flag, setting, file or argument is invalid."""


class AuthError(HomelabError):
    """A credential is missing, wrong, or lacks access."""


class InfraError(HomelabError):
    """Infrastructure the check needs is unreachable or answered nonsense."""


# -- failures: the check ran and the landing is not good ---------------------------------------


class CheckFailed(HomelabError):
    """The thing checked is red: a failed pipeline, a crash-looping pod, a failed e2e run."""

    junit = "failure"
    exit_code = EXIT_FAILED


class Superseded(HomelabError):
    """What we waited for was replaced by a change that does not contain ours."""

    junit = "failure"
    exit_code = EXIT_FAILED


class PrerequisiteFailed(HomelabError):
    """An earlier phase failed, so this check did not wait."""

    junit = "failure"
    exit_code = EXIT_FAILED


class DeadlineExceeded(HomelabError):
    """Still not done when the deadline passed."""

    junit = "failure"
    exit_code = EXIT_DEADLINE


class Blocked(DeadlineExceeded):
    """Still waiting for a human approval when the deadline passed."""


class NotFound(HomelabError):
    """What should exist never appeared (no pipeline for the commit, no such Deployment)."""

    junit = "failure"
    exit_code = EXIT_NOT_FOUND


OUTCOME_TYPES: dict[str, type[HomelabError]] = {
    cls.outcome: cls
    for cls in (
        HomelabError,
        BadInput,
        AuthError,
        InfraError,
        CheckFailed,
        Superseded,
        PrerequisiteFailed,
        DeadlineExceeded,
        Blocked,
        NotFound,
    )
}

# The one precedence the CLI uses to fold many outcomes into one exit code.
_EXIT_PRECEDENCE = (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_DEADLINE, EXIT_NOT_FOUND, EXIT_SUCCESS)


# Outcomes that count as a pass. "tolerated" and "skipped-by-tekton" are the dev e2e run's TaskRun
# testcases: a failure Tekton ignored (the pipeline task's onError: continue) and a task Tekton
# skipped (status.skippedTasks, e.g. a `when` expression). Neither changes the verdict or the exit
# code; our own checks are never skipped (a skipped check is a failure, see docs/junit.md).
TOLERATED, SKIPPED_BY_TEKTON = "tolerated", "skipped-by-tekton"
SUCCESS_OUTCOMES = frozenset({"success", "dispatched", TOLERATED, SKIPPED_BY_TEKTON})


def fold_exit_codes(codes: list[int]) -> int:
    """Fold exit codes by the contract: 2 > 1 > 124 > 3 > 0."""
    for code in _EXIT_PRECEDENCE:
        if code in codes:
            return code
    return EXIT_SUCCESS if not codes else EXIT_BAD_INPUT
