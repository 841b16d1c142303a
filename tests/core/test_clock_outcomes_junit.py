"""Durations, deadlines, backoff; the outcome contract; reading JUnit back."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_homelab.core.clock import Backoff, Deadline, FakeClock, format_duration, parse_duration
from pytest_homelab.core.outcomes import (
    OUTCOME_TYPES,
    AuthError,
    BadInput,
    Blocked,
    CheckFailed,
    DeadlineExceeded,
    HomelabError,
    InfraError,
    NotFound,
    PrerequisiteFailed,
    Superseded,
    fold_exit_codes,
)
from pytest_homelab.report.junit import exit_code, read_junit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("1.5m", 90),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("0", 0),
        (" 10M ", 600),
        ("2d", 172800),
        ("1h1m1s", 3661),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5", "5x", "m5", "1.2.3s", "inf", "nan", "5 m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.text(max_size=20))
def test_parse_duration_only_raises_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= 0 and math.isfinite(value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.04, "0.0s"), (12.34, "12.3s"), (75, "1m15s"), (3725, "1h02m05s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_deadline_on_a_fake_clock() -> None:
    clock = FakeClock()
    d = Deadline.after(10, clock)
    assert d.remaining() == 10 and not d.expired()
    clock.advance(4)
    assert d.sub(100).remaining() == 6  # never later than the parent
    assert d.sub(2).remaining() == 2
    clock.advance(6)
    assert d.expired() and d.remaining() == 0
    assert Deadline.after(None, clock).remaining() == math.inf


def test_fake_clock_runs_alarms_inside_waits() -> None:
    clock = FakeClock(0)
    event = threading.Event()
    clock.call_at(3, event.set)
    assert clock.wait(event, 300) is True and clock.now == 3
    event.clear()
    assert clock.wait(event, 5) is False and clock.now == 8


def test_backoff_grows_with_jitter_and_caps() -> None:
    delays = Backoff(initial=1, factor=2, maximum=5, rng=random.Random(7)).delays()
    values = [next(delays) for _ in range(8)]
    assert 0.5 <= values[0] <= 1 and 1 <= values[1] <= 2 and 2 <= values[2] <= 4
    assert all(2.5 <= v <= 5 for v in values[3:])


def test_outcome_contract() -> None:
    expected = {
        BadInput: (2, "error"),
        AuthError: (2, "error"),
        InfraError: (2, "error"),
        CheckFailed: (1, "failure"),
        Superseded: (1, "failure"),
        PrerequisiteFailed: (1, "failure"),
        DeadlineExceeded: (124, "failure"),
        Blocked: (124, "failure"),
        NotFound: (3, "failure"),
    }
    for cls, (code, kind) in expected.items():
        assert (cls.exit_code, cls.junit, cls.outcome) == (code, kind, cls.__name__)
        assert OUTCOME_TYPES[cls.__name__] is cls
    error = CheckFailed("expected green, saw failure", hint="read the log")
    assert str(error) == "expected green, saw failure\n  next: read the log"
    assert isinstance(error, HomelabError)


@pytest.mark.parametrize(
    ("codes", "folded"),
    [([0, 0], 0), ([3, 0], 3), ([124, 3], 124), ([1, 124, 3], 1), ([2, 1, 124], 2), ([], 0)],
)
def test_fold_exit_codes(codes: list[int], folded: int) -> None:
    assert fold_exit_codes(codes) == folded


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test_ci" name="test_pipeline_green" time="1.5">
  <properties><property name="phase" value="ci"/><property name="outcome" value="success"/>
  <property name="pipeline_number" value="12"/></properties></testcase>
<testcase classname="test_rollout" name="test_web" time="0.1">
  <properties><property name="phase" value="rollout"/>
  <property name="outcome" value="PrerequisiteFailed"/></properties>
  <failure type="PrerequisiteFailed"
   message="pytest_homelab.core.outcomes.PrerequisiteFailed: not run&#10;  next: fix">tb</failure>
</testcase>
<testcase classname="test_x" name="test_auth" time="0">
  <error message='failed on setup with "pytest_homelab.core.outcomes.AuthError: 401 Denied"'>tb
  </error></testcase>
<testcase classname="test_x" name="test_plain_assert" time="0">
  <failure message="AssertionError: assert 1 == 2">tb</failure></testcase>
<testcase classname="test_x" name="test_skip" time="0"><skipped message="nah"/></testcase>
</testsuite></testsuites>
"""


def test_read_junit(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    ok, prereq, auth, plain, skipped = read_junit(path)
    assert (ok.kind, ok.outcome, ok.phase, ok.exit_code) == ("passed", "success", "ci", 0)
    assert ok.prop("pipeline_number") == "12" and ok.time == 1.5
    assert (prereq.outcome, prereq.exit_code, prereq.phase) == ("PrerequisiteFailed", 1, "rollout")
    assert prereq.message == "not run\n  next: fix"
    assert (auth.kind, auth.outcome, auth.exit_code) == ("error", "error", 2)
    assert auth.message == "401 Denied"
    assert (plain.exit_code, plain.message) == (1, "assert 1 == 2")
    assert (skipped.kind, skipped.exit_code) == ("skipped", 1)  # a skip is never green
    assert exit_code([ok, prereq, auth]) == 2
    assert exit_code([ok]) == 0
    assert exit_code([]) == 2


def test_read_junit_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="did not run"):
        read_junit(tmp_path / "none.xml")
    (tmp_path / "bad.xml").write_text("<testsuite")
    with pytest.raises(BadInput, match="not valid JUnit XML"):
        read_junit(tmp_path / "bad.xml")
