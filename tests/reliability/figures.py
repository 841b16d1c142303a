"""Figures of the reliability suite: what each R-test ran, injected and measured.

Every R-test fills one :class:`Figure`; the conftest prints them at the end of the session and
writes them as JSON (``HOMELAB_FIGURES`` names the file, else ``reliability-figures.json`` in
pytest's base temp directory). docs/reliability.md records the figures of a soak run.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """The tallies of one R-test. Thread-safe: concurrent runs add to it."""

    name: str
    mode: str = "ci"
    runs: int = 0
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    overruns: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def run(
        self,
        *,
        outcome: str,
        wall: float | None = None,
        overrun: float | None = None,
        wrong: str | None = None,
        traceback: str | None = None,
        faults: Counter[str] | None = None,
        requests: int = 0,
    ) -> None:
        """Record one run: its outcome, wall time, overrun beyond its deadline and faults."""
        with self._lock:
            self.runs += 1
            self.outcomes[outcome] += 1
            if wall is not None:
                self.walls.append(wall)
            if overrun is not None:
                self.overruns.append(overrun)
            if wrong is not None:
                self.wrong.append(wrong)
            if traceback is not None:
                self.tracebacks.append(traceback)
            if faults:
                self.faults.update(faults)
            self.requests += requests

    def note(self, key: str, value: Any) -> None:
        with self._lock:
            self.extra[key] = value

    def summary(self) -> dict[str, Any]:
        with self._lock:
            faulty = sum(self.faults.values())
            return {
                "name": self.name,
                "mode": self.mode,
                "runs": self.runs,
                "outcomes": dict(sorted(self.outcomes.items())),
                "requests": self.requests,
                "faults_injected": faulty,
                "faults_by_kind": dict(sorted(self.faults.items())),
                "fault_rate": round(faulty / self.requests, 3) if self.requests else None,
                "wrong_verdicts": len(self.wrong),
                "tracebacks": len(self.tracebacks),
                "max_overrun_s": round(max(self.overruns), 3) if self.overruns else None,
                "wall_p50_s": round(percentile(self.walls, 0.5), 3),
                "wall_p95_s": round(percentile(self.walls, 0.95), 3),
                "wall_max_s": round(max(self.walls), 3) if self.walls else None,
                "first_wrong": self.wrong[:5],
                "first_tracebacks": self.tracebacks[:3],
                **self.extra,
            }


# Under pytest-xdist the figures live in the worker that ran the reliability tests (they share
# one, tests/conftest.py groups them); it hands them to the controller under this key.
WORKER_OUTPUT = "homelab_reliability_figures"

_FIGURES: dict[str, Figure] = {}
_LOCK = threading.Lock()


def figure(name: str, mode: str) -> Figure:
    """The session's figure called ``name`` (created on first use)."""
    with _LOCK:
        found = _FIGURES.get(name)
        if found is None:
            found = _FIGURES[name] = Figure(name, mode)
        return found


def all_figures() -> list[Figure]:
    with _LOCK:
        return list(_FIGURES.values())


def render(figures: list[Figure]) -> list[str]:
    """Human-readable lines, one block per figure."""
    lines: list[str] = []
    for fig in figures:
        s = fig.summary()
        lines.append(f"{s['name']} [{s['mode']}]: {s['runs']} runs, outcomes {s['outcomes']}")
        if s["requests"]:
            lines.append(
                f"  requests {s['requests']}, faults injected {s['faults_injected']} "
                f"(rate {s['fault_rate']}): {s['faults_by_kind']}"
            )
        timing = ""
        if s["max_overrun_s"] is not None:
            timing += f", max overrun beyond the deadline {s['max_overrun_s']} s"
        if s["wall_max_s"] is not None:
            timing += f", wall p50 {s['wall_p50_s']} s, p95 {s['wall_p95_s']} s"
            timing += f", max {s['wall_max_s']} s"
        lines.append(
            f"  wrong verdicts {s['wrong_verdicts']}, tracebacks {s['tracebacks']}{timing}"
        )
        extra = {k: v for k, v in s.items() if k not in _SHOWN}
        for key, value in extra.items():
            lines.append(f"  {key}: {value}")
    return lines


_SHOWN = {
    "name",
    "mode",
    "runs",
    "outcomes",
    "requests",
    "faults_injected",
    "faults_by_kind",
    "fault_rate",
    "wrong_verdicts",
    "tracebacks",
    "max_overrun_s",
    "wall_p50_s",
    "wall_p95_s",
    "wall_max_s",
    "first_wrong",
    "first_tracebacks",
}


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "figures": [f.summary() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
