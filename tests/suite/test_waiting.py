"""tests/waiting.py, the suite's one polling loop: bounded, and it looks a last time at the end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_homelab.core.clock import FakeClock
from tests.waiting import poll, wait_until


def counter(truthy_from: int) -> tuple[list[int], Callable[[], str | None]]:
    calls: list[int] = []

    def condition() -> str | None:
        calls.append(1)
        return f"value after {len(calls)}" if len(calls) >= truthy_from else None

    return calls, condition


def test_the_first_truthy_value_is_returned() -> None:
    clock = FakeClock()
    calls, condition = counter(3)
    got = wait_until(condition, what="x", timeout=1, interval=0.1, clock=clock)
    assert got == "value after 3" and len(calls) == 3
    assert clock.sleeps == [0.1, 0.1]


def test_a_condition_never_met_fails_naming_what_and_what_was_seen() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError) as caught:
        wait_until(
            lambda: False, what="the thing", timeout=2, clock=clock, detail=lambda: "nothing"
        )
    assert str(caught.value) == "waited 2 s for the thing, in vain; seen: nothing"
    assert sum(clock.sleeps) == pytest.approx(2)  # bounded by the timeout, not a count


def test_the_condition_is_asked_a_last_time_at_the_deadline() -> None:
    clock = FakeClock()
    start = clock.monotonic()
    asked: list[float] = []

    def at_the_end() -> bool:
        asked.append(clock.monotonic() - start)
        return clock.monotonic() - start >= 1.0

    assert poll(at_the_end, timeout=1.0, interval=0.3, clock=clock) is True
    assert asked[-1] == pytest.approx(1.0)


def test_poll_returns_none_and_a_raising_condition_stops_the_wait() -> None:
    clock = FakeClock()
    assert poll(lambda: 0, timeout=0.5, clock=clock) is None

    def dead() -> bool:
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="exited"):
        poll(dead, timeout=10, clock=clock)
