"""Waiting in tests: poll a condition until it holds, bounded by a monotonic deadline.

A test never sleeps a fixed time for something to happen; it waits for the thing itself, and
gives up after a bound so that a regression fails instead of hanging. This is the suite's one
polling loop: :func:`wait_until` fails the test when the bound passes, :func:`poll` returns
``None`` for callers that go on (end a process harder, try another port).

A condition may raise to stop the wait at once (the server it waits for has died).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline

T = TypeVar("T")

INTERVAL = 0.02  # seconds between looks


def poll(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = INTERVAL,
    clock: Clock = SYSTEM_CLOCK,
) -> T | None:
    """The first truthy value of ``condition()`` within ``timeout`` seconds, else ``None``.

    ``condition`` is asked at once, every ``interval`` seconds, and a last time at the deadline.
    """
    deadline = Deadline.after(timeout, clock)
    while True:
        value = condition()
        if value:
            return value
        if deadline.expired():
            return None
        clock.sleep(min(interval, deadline.remaining()))


def wait_until(
    condition: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = INTERVAL,
    clock: Clock = SYSTEM_CLOCK,
    detail: Callable[[], object] | None = None,
) -> T:
    """The first truthy value of ``condition()``; fails the test (``AssertionError`` naming
    ``what`` and, if given, ``detail()``: what was seen instead) after ``timeout`` seconds."""
    value = poll(condition, timeout=timeout, interval=interval, clock=clock)
    if not value:
        seen = f"; seen: {detail()}" if detail is not None else ""
        raise AssertionError(f"waited {timeout:g} s for {what}, in vain{seen}")
    return value
