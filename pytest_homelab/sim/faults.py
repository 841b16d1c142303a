"""Seeded fault injection for the simulators: which request gets which failure, reproducibly."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

WOODPECKER_FAULTS = ("empty200", "5xx", "429", "reset", "stall", "truncated", "stream_drop")


@dataclass
class FaultPlan:
    """Decide per request whether to inject a fault and which one; deterministic for a seed.

    ``rate`` is the probability that a request gets a fault; ``kinds`` the faults to draw from.
    ``exempt`` lists path prefixes that never fail (health checks, say).
    """

    seed: int = 1
    rate: float = 0.3
    kinds: tuple[str, ...] = WOODPECKER_FAULTS
    stall_seconds: float = 5.0
    retry_after: int = 1
    exempt: tuple[str, ...] = ("/healthz", "/version")
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _scripted: list[tuple[str, str, int]] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._rng = random.Random(self.seed)

    def inject(self, kind: str, count: int = 1, path_prefix: str = "/") -> None:
        """Make the next ``count`` matching requests fail with ``kind``, before any random draw."""
        with self._lock:
            self._scripted.append((kind, path_prefix, count))

    def decide(self, path: str, allowed: Iterable[str] | None = None) -> str | None:
        """The fault for this request, or None. ``allowed`` limits kinds that fit the route."""
        if path.startswith(self.exempt):
            return None
        kinds = tuple(k for k in self.kinds if allowed is None or k in set(allowed))
        with self._lock:
            for n, (kind, prefix, count) in enumerate(self._scripted):
                if path.startswith(prefix) and (allowed is None or kind in set(allowed)):
                    if count <= 1:
                        del self._scripted[n]
                    else:
                        self._scripted[n] = (kind, prefix, count - 1)
                    return kind
            if not kinds or self.rate == 0:
                return None
            roll = self._rng.random()
            pick = self._rng.choice(kinds)
        return pick if roll < self.rate else None

    def draw(self, low: int, high: int) -> int:
        """A seeded integer in [low, high], for fault parameters (how many events before a drop)."""
        with self._lock:
            return self._rng.randint(low, high)


def no_faults() -> FaultPlan:
    return FaultPlan(rate=0.0, kinds=())
