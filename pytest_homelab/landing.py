"""One landing session: the overall deadline, each phase's budget, and what has failed so far."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pytest_homelab.clock import SYSTEM_CLOCK, Clock, Deadline
from pytest_homelab.outcomes import PrerequisiteFailed
from pytest_homelab.settings import Settings

PHASES = ("ci", "rollout", "e2e")


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
        self._phases: dict[str, Deadline] = {}

    def phase_deadline(self, phase: str) -> Deadline:
        """The phase's own budget from its first use, never past the overall landing deadline."""
        if phase not in self._phases:
            budgets = {"ci": self.settings.ci_timeout, "rollout": self.settings.rollout_timeout}
            self._phases[phase] = self.deadline.sub(budgets.get(phase))
        return self._phases[phase]

    def record_failure(self, phase: str, check: str) -> None:
        self._failed.setdefault(phase, check)

    def failed_check(self, phase: str) -> str | None:
        return self._failed.get(phase)

    def prerequisite_failure(self, phase: str) -> PrerequisiteFailed | None:
        """The reason ``phase`` must not wait, if an earlier phase failed."""
        if phase not in PHASES:
            return None
        for earlier in PHASES[: PHASES.index(phase)]:
            check = self._failed.get(earlier)
            if check is not None:
                return PrerequisiteFailed(
                    f"not checked: the {phase} phase needs the {earlier} phase to pass, "
                    f"but {check} failed",
                    hint=f"fix {check} first; its failure is the root cause",
                )
        return None
