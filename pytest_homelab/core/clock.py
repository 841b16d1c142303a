"""Time as data: monotonic deadlines, backoff with jitter, injectable clock and sleep.

Nothing here counts loop iterations as time. Tests pass a :class:`FakeClock` and run in
microseconds; production uses :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

# How long a server that has not answered once in this run gets before a failed connection
# (refused, no such host, no route, TLS handshake) is an infrastructure error: a wrong address
# or a server that is down should not cost the whole deadline. Once it has answered, the same
# failure is a restart, ridden out within the deadline. docs/cli.md says so.
FIRST_CONTACT_SECONDS = 5.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; return whether it is set."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock:
    """A clock that only moves when slept or waited on; for tests of waiting logic.

    ``call_at`` schedules a callback at a clock time; it runs when a sleep or wait passes that
    time, so "an event arrives 3 s into a 300 s wait" is expressible without threads.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._alarms: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._alarms, (when, self._seq, callback))

    def _run_until(self, target: float, event: threading.Event | None = None) -> bool:
        while self._alarms and self._alarms[0][0] <= target:
            when, _, callback = heapq.heappop(self._alarms)
            self.now = max(self.now, when)
            callback()
            if event is not None and event.is_set():
                return True
        self.now = max(self.now, target)
        return event is not None and event.is_set()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._run_until(self.now + max(0.0, seconds))

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        return self._run_until(self.now + max(0.0, timeout), event)

    def advance(self, seconds: float) -> None:
        self._run_until(self.now + seconds)


@dataclass(frozen=True)
class Deadline:
    """A point on a monotonic clock. ``at`` may be ``math.inf`` (no deadline)."""

    clock: Clock
    at: float

    @classmethod
    def after(cls, seconds: float | None, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        if seconds is None:
            return cls(clock, math.inf)
        return cls(clock, clock.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.at

    def earliest(self, other: Deadline) -> Deadline:
        return self if self.at <= other.at else other

    def sub(self, seconds: float | None) -> Deadline:
        """A deadline ``seconds`` from now, but never later than this one."""
        return self.earliest(Deadline.after(seconds, self.clock))


@dataclass
class Backoff:
    """Exponential backoff with full jitter: delay n is uniform in [initial*factor^n/2, that]."""

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delays(self) -> Iterator[float]:
        cap = self.initial
        while True:
            yield self.rng.uniform(cap / 2, cap)
            cap = min(self.maximum, cap * self.factor)


def format_duration(seconds: float) -> str:
    """``75.2`` → ``1m15s``; sub-minute values keep one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``1.5m``, ``1h30m``, ``250ms`` to seconds. Raises ValueError.

    A bare number is seconds. ``0`` is allowed (callers decide what it means).
    """
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{text!r} is not a non-negative duration")
        return value
    total = 0.0
    i = 0
    seen = False
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"{text!r} is not a duration (like 90s, 10m, 1h30m)")
        number = s[i:j]
        k = j
        while k < len(s) and s[k].isalpha():
            k += 1
        unit = s[j:k]
        if unit not in _UNITS:
            raise ValueError(f"{text!r}: unknown unit {unit!r} (use ms, s, m, h, d)")
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"{text!r} is not a duration (like 90s, 10m, 1h30m)") from None
        seen = True
        i = k
    if not seen or not math.isfinite(total):
        raise ValueError(f"{text!r} is not a duration (like 90s, 10m, 1h30m)")
    return total
