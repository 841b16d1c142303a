"""One landing session: the overall deadline, each phase's budget, and what has failed so far."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline
from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.outcomes import BadInput, PrerequisiteFailed
from pytest_homelab.core.settings import Settings, find_repo_root

PHASES = ("ci", "rollout", "smoke", "e2e")


def stderr_progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class Landing:
    """Shared by every check of a session; phases run in :data:`PHASES` order."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        progress: Callable[[str], None] = stderr_progress,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.progress = progress
        self.deadline = Deadline.after(settings.landing_budget, clock)
        self._failed: dict[str, str] = {}
        self._failed_keys: dict[str, set[str]] = {}
        self._phases: dict[str, Deadline] = {}

    def phase_deadline(self, phase: str) -> Deadline:
        """The phase's own budget from its first use, never past the overall landing deadline."""
        if phase not in self._phases:
            budgets = {"ci": self.settings.ci_timeout, "rollout": self.settings.rollout_timeout}
            self._phases[phase] = self.deadline.sub(budgets.get(phase))
        return self._phases[phase]

    def record_failure(self, phase: str, check: str, key: str | None = None) -> None:
        """``check`` of ``phase`` failed; ``key`` is what it checked (a service's name)."""
        self._failed.setdefault(phase, check)
        if key is not None:
            self._failed_keys.setdefault(phase, set()).add(key)

    def prerequisite_failure(self, phase: str, key: str | None = None) -> PrerequisiteFailed | None:
        """The reason ``phase`` must not wait, if an earlier phase failed. A smoke check of one
        service (``key``) needs only that service's rollout, not every service's."""
        if phase not in PHASES:
            return None
        for earlier in PHASES[: PHASES.index(phase)]:
            check = self._failed.get(earlier)
            if check is not None and phase == "smoke" and earlier == "rollout" and key:
                if key not in self._failed_keys.get(earlier, ()):
                    continue
                check = f"the rollout of {key}"
            if check is not None:
                return PrerequisiteFailed(
                    f"not checked: the {phase} phase needs the {earlier} phase to pass, "
                    f"but {check} failed",
                    hint=f"fix {check} first; its failure is the root cause",
                )
        return None


_HEX = re.compile(r"[0-9a-fA-F]{7,40}")


@dataclass(frozen=True)
class Commit:
    """The commit under test: its sha, and the local repo when there is one."""

    sha: str
    git: GitRepo | None
    time: int | None = None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        return self.git.is_ancestor(ancestor, descendant) if self.git is not None else None


def commit_under_test(settings: Settings, *, foreign_ok: bool = True) -> Commit:
    """``--commit`` as a full sha via git; a sha git does not know (another repo's, or outside any
    repo) is taken as given when ``foreign_ok``. Raises BadInput with what to do."""
    ref = settings.commit
    git = GitRepo.discover(settings.repo_root) if find_repo_root(settings.repo_root) else None
    if git is not None:
        try:
            sha = git.resolve_commit(ref)
        except BadInput:
            if not foreign_ok or not _HEX.fullmatch(ref):
                raise
            return Commit(ref.lower(), git)
        return Commit(sha, git, git.commit_time(sha))
    if not _HEX.fullmatch(ref):
        raise BadInput(
            f"commit {ref!r} cannot be resolved outside a git repository",
            hint="give the commit as a sha (7 to 40 hex characters)",
        )
    return Commit(ref.lower(), None)
