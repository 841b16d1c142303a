"""``homelab doctor``: every dependency a landing needs, checked once, one line each.

Checks are grouped by phase (git, deploy.json, ci, rollout, e2e). The local groups run first;
the three network groups then run side by side, each in its own thread, every check bounded by
its own short timeout and all of them by one overall deadline, so that a homelab that is
entirely down is reported within :data:`BUDGET` seconds. A check whose prerequisite did not
pass is *skipped* with the reason. Problems make the exit code 2; warnings do not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import EXIT_BAD_INPUT, EXIT_SUCCESS, HomelabError
from pytest_homelab.core.settings import Settings

BUDGET = 13.0
"""Seconds the whole run may take (the issue's bound is 15 s; the rest is start-up and output)."""
PHASES = ("ci", "rollout", "e2e")
STATUSES = ("ok", "warning", "problem", "skipped")


@dataclass(frozen=True)
class Line:
    """One check's result."""

    id: str
    phase: str
    status: str  # ok | warning | problem | skipped
    detail: str
    next: str = ""
    seconds: float = 0.0

    def render(self) -> str:
        shown = {"skipped": "skipped"}.get(self.status, self.status)
        text = f"{shown:8} {self.id:22} {self.detail}"
        if self.next:
            text += f"  next: {self.next}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "status": self.status,
            "detail": self.detail,
            "next": self.next or None,
            "seconds": round(self.seconds, 3),
        }


class Problem(Exception):
    """The check failed: ``detail`` says what was expected and seen, ``next`` what to do."""

    def __init__(self, detail: str, next: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.next = next


class Degraded(Problem):
    """Not right, but the landing copes (a silent event stream, an http:// URL)."""


class Skip(Exception):
    """The check does not apply; the message says why."""


@dataclass
class Group:
    """The checks of one phase, in order; remembers which passed for later ``needs``."""

    phase: str
    deadline: Deadline
    lines: list[Line] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def check(
        self,
        check_id: str,
        run: Callable[[float], str | tuple[str, Any]],
        *,
        needs: Iterable[str] = (),
        timeout: float = 3.0,
    ) -> Any:
        """Run ``run(timeout)``; it returns the ok detail (and a value for later checks) or
        raises Problem, Degraded or Skip. Returns the value, or None when it did not pass."""
        for need in needs:
            if need not in self.values:
                seen = next((ln for ln in self.lines if ln.id == need), None)
                why = "it was skipped" if seen is None or seen.status == "skipped" else "it failed"
                self.add(check_id, "skipped", f"because {need} did not pass ({why})")
                return None
        remaining = self.deadline.remaining()
        if remaining <= 0.2:
            self.add(
                check_id,
                "problem",
                "not checked: the doctor's time budget ran out before it",
                "the lines above say what took the time",
            )
            return None
        started = time.monotonic()
        try:
            result = run(min(timeout, remaining))
        except Skip as exc:
            self.add(check_id, "skipped", f"because {exc}", started=started)
            return None
        except Degraded as exc:
            self.add(check_id, "warning", exc.detail, exc.next, started=started)
            self.values[check_id] = None
            return None
        except Problem as exc:
            self.add(check_id, "problem", exc.detail, exc.next, started=started)
            return None
        except HomelabError as exc:
            self.add(check_id, "problem", exc.message, exc.hint or "", started=started)
            return None
        except Exception as exc:  # a surprise: named, never its text (it may hold a secret)
            self.add(
                check_id,
                "problem",
                f"the check failed unexpectedly ({type(exc).__name__})",
                "report this; the other checks still ran",
                started=started,
            )
            return None
        detail, value = result if isinstance(result, tuple) else (result, True)
        self.add(check_id, "ok", detail, started=started)
        self.values[check_id] = value
        return value

    def skip_all(self, ids: Iterable[str], why: str) -> None:
        for check_id in ids:
            self.add(check_id, "skipped", f"because {why}")

    def add(
        self,
        check_id: str,
        status: str,
        detail: str,
        next: str = "",
        *,
        started: float | None = None,
    ) -> None:
        seconds = time.monotonic() - started if started is not None else 0.0
        detail = " ".join(detail.split())  # one line each
        self.lines.append(
            Line(check_id, self.phase, status, detail, " ".join(next.split()), seconds)
        )


@dataclass
class Context:
    """What the groups share: the settings, and what the local checks found."""

    settings: Settings
    environ: Mapping[str, str]
    slug: str | None = None
    remote_url: str | None = None
    manifest: Any = None  # core.manifest.Manifest when deploy.json is valid
    environment: Any = None  # the environment the rollout checks use


def run_doctor(
    settings: Settings,
    *,
    only: str | None = None,
    as_json: bool = False,
    budget: float = BUDGET,
    out: Callable[[str], None] = print,
) -> int:
    """Run the checks, print them, return 0 when nothing needed has a problem, else 2."""
    from pytest_homelab.onboarding import doctor_ci, doctor_d601, doctor_kube, doctor_local

    deadline = Deadline.after(budget)
    ctx = Context(settings, settings.environ)
    local = [
        doctor_local.settings_group(ctx, deadline),
        doctor_local.git_group(ctx, deadline),
        doctor_local.manifest_group(ctx, deadline),
    ]
    runners: dict[str, Callable[[Context, Group], None]] = {
        "ci": doctor_ci.ci_group,
        "rollout": doctor_kube.rollout_group,
        "e2e": doctor_d601.e2e_group,
    }
    wanted = [p for p in PHASES if only in (None, p)]
    groups = {phase: Group(phase, deadline) for phase in wanted}
    threads = []
    for phase in wanted:

        def work(phase: str = phase) -> None:
            try:
                runners[phase](ctx, groups[phase])
            except Exception as exc:  # a bug between checks must not hide the others' lines
                groups[phase].add(
                    f"{phase}.doctor", "problem", f"the checks stopped: {type(exc).__name__}"
                )

        thread = threading.Thread(target=work, name=f"doctor-{phase}", daemon=True)
        thread.start()
        threads.append((phase, thread))
    late = []
    for phase, thread in threads:
        thread.join(max(0.0, deadline.remaining()) + 1.0)
        if thread.is_alive():
            late.append(phase)
    lines = [line for group in local for line in group.lines]
    for phase in wanted:
        lines += list(groups[phase].lines)  # a snapshot: a late thread may still append
        if phase in late:
            lines.append(
                Line(
                    f"{phase}.doctor",
                    phase,
                    "problem",
                    "a check did not finish within the time budget",
                    "the line above it says what was being checked",
                )
            )
    code = EXIT_BAD_INPUT if any(ln.status == "problem" for ln in lines) else EXIT_SUCCESS
    if as_json:
        counts = {s: sum(1 for ln in lines if ln.status == s) for s in STATUSES}
        out(
            json.dumps(
                {"checks": [ln.as_json() for ln in lines], "counts": counts, "exit_code": code},
                indent=2,
            )
        )
    else:
        for line in lines:
            out(line.render())
        problems = sum(1 for ln in lines if ln.status == "problem")
        warnings = sum(1 for ln in lines if ln.status == "warning")
        verdict = "ready" if code == EXIT_SUCCESS else "not ready"
        out(
            f"doctor: {verdict}: {len(lines)} checks, {problems} problem"
            f"{'s' if problems != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
        )
    return code
