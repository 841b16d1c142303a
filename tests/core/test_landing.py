"""The landing: one overall deadline, phase budgets that start once, prerequisites in order."""

from __future__ import annotations

from pathlib import Path

from pytest_homelab.core.clock import FakeClock
from pytest_homelab.core.landing import Landing
from pytest_homelab.core.outcomes import PrerequisiteFailed
from pytest_homelab.core.settings import Settings


def test_phase_budgets_start_once_and_never_pass_the_landing_deadline() -> None:
    clock = FakeClock(0)
    landing = Landing(
        Settings(Path("."), ci_timeout=100, rollout_timeout=300, landing_timeout=250), clock=clock
    )
    ci = landing.phase_deadline("ci")
    clock.advance(30)
    assert landing.phase_deadline("ci") is ci and ci.remaining() == 70
    rollout = landing.phase_deadline("rollout")
    assert rollout.remaining() == 220  # capped by the 250 s landing deadline, 30 s in
    assert landing.phase_deadline("e2e").remaining() == 220


def test_prerequisites_follow_the_phase_order() -> None:
    landing = Landing(Settings(Path(".")), clock=FakeClock())
    assert landing.prerequisite_failure("rollout") is None
    landing.record_failure("rollout", "test_web")
    assert landing.prerequisite_failure("ci") is None
    assert landing.prerequisite_failure("rollout") is None  # its own phase is not a prerequisite
    blocked = landing.prerequisite_failure("e2e")
    assert isinstance(blocked, PrerequisiteFailed) and "test_web failed" in str(blocked)
    landing.record_failure("ci", "test_pipeline_green")
    landing.record_failure("ci", "test_other")
    again = landing.prerequisite_failure("e2e")
    assert (
        again is not None and "the ci phase" in str(again) and "test_pipeline_green" in str(again)
    )
