"""Seeded fault injection for the simulators: which request gets which failure, reproducibly.

The plan only decides; each simulator carries the faults out in its own protocol. Kinds the
Woodpecker simulator knows: ``empty200``, ``5xx``, ``429``, ``reset``, ``stall``, ``truncated``
and ``stream_drop``.
"""

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
    ``exempt`` lists path prefixes that never fail (health checks, say). Every decision draws
    from the plan's own ``random.Random(seed)``, so the same sequence of requests meets the same
    faults. :meth:`inject` scripts one-shot faults that win over the random draw.
    """

    seed: int = 1
    rate: float = 0.3
    kinds: tuple[str, ...] = WOODPECKER_FAULTS
    stall_seconds: float = 5.0
    retry_after: int = 1
    exempt: tuple[str, ...] = ("/healthz", "/version")
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        init=False, repr=False, compare=False, default_factory=threading.Lock
    )
    _scripted: list[tuple[str, str, int]] = field(
        init=False, repr=False, compare=False, default_factory=list
    )

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if self.stall_seconds < 0 or self.retry_after < 0:
            raise ValueError("stall_seconds and retry_after cannot be negative")
        self._rng = random.Random(self.seed)

    def inject(self, kind: str, count: int = 1, path_prefix: str = "/") -> None:
        """Make the next ``count`` matching requests fail with ``kind``, before any random draw.

        A request matches when its path starts with ``path_prefix`` and the route can carry
        ``kind`` (a ``stream_drop`` waits for a stream). Scripted faults are used in order.
        """
        if not kind:
            raise ValueError("kind must be a fault name")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._scripted.append((kind, path_prefix, count))

    def decide(self, path: str, allowed: Iterable[str] | None = None) -> str | None:
        """The fault for this request, or None. ``allowed`` limits kinds to those the route fits.

        Every random decision takes exactly two draws, whatever the route allows, so a request
        does not shift the faults later requests get.
        """
        if path.startswith(self.exempt):
            return None
        fits = set(allowed) if allowed is not None else None
        with self._lock:
            for n, (kind, prefix, count) in enumerate(self._scripted):
                if path.startswith(prefix) and (fits is None or kind in fits):
                    if count <= 1:
                        del self._scripted[n]
                    else:
                        self._scripted[n] = (kind, prefix, count - 1)
                    return kind
            kinds = [k for k in self.kinds if fits is None or k in fits]
            if not kinds or self.rate == 0:
                return None
            roll, pick = self._rng.random(), self._rng.random()
        return kinds[int(pick * len(kinds))] if roll < self.rate else None

    def draw(self, low: int, high: int) -> int:
        """A seeded integer in [low, high], for fault parameters (how many events before a drop)."""
        with self._lock:
            return self._rng.randint(low, high)

    @property
    def scripted(self) -> list[tuple[str, str, int]]:
        """Scripted faults not used yet: (kind, path prefix, remaining count)."""
        with self._lock:
            return list(self._scripted)


def no_faults() -> FaultPlan:
    """A plan that never fails a request on its own (scripted faults still work)."""
    return FaultPlan(rate=0.0, kinds=())
