"""Scenario time for the simulators: real time times a speed factor, plus manual advances."""

from __future__ import annotations

import threading
import time


class ScenarioClock:
    """Scenario seconds since start: real time × ``speed`` plus whatever was advanced by hand."""

    def __init__(self, speed: float, *, wall_bound: bool = False) -> None:
        """``wall_bound``: timestamps (:meth:`iso`) are never later than the wall clock."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.wall_bound = wall_bound
        self._origin = time.monotonic()
        self._offset = 0.0
        self.epoch = time.time()
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return (time.monotonic() - self._origin) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def unix(self, scenario_seconds: float) -> int:
        return int(self.epoch + scenario_seconds)

    def iso(self, scenario_seconds: float) -> str:
        """RFC 3339 in UTC, as Kubernetes writes timestamps."""
        from datetime import UTC, datetime

        seconds = self.epoch + scenario_seconds
        if self.wall_bound:
            seconds = min(seconds, time.time())
        moment = datetime.fromtimestamp(seconds, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
