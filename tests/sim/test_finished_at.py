"""``WoodpeckerSim.finished_at``: when a pipeline's script ends, in scenario time."""

from __future__ import annotations

import pytest

from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

SHA = "a" * 40


def test_finished_at_follows_the_script() -> None:
    sim = WoodpeckerSim(speed=1.0)  # never started: only the scenario clock moves
    try:
        sim.add_repo("o/r")
        t0 = sim.clock.now()
        steps = [StepSpec("a", 2.0), StepSpec("b", 3.0)]
        plain = sim.add_pipeline("o/r", commit=SHA, steps=steps, appear_after=1.0, pending_for=0.5)
        end = sim.finished_at("o/r", plain)
        assert end is not None and end == pytest.approx(t0 + 6.5, abs=0.05)
        failing = [StepSpec("a", 2.0, exit_code=1), StepSpec("b", 3.0)]
        red = sim.add_pipeline("o/r", commit=SHA, steps=failing)
        red_end = sim.finished_at("o/r", red)
        assert red_end is not None and red_end == pytest.approx(t0 + 2.0, abs=0.05)
        gated = sim.add_pipeline("o/r", commit=SHA, steps=steps, blocked=True)
        assert sim.finished_at("o/r", gated) is None
        sim.advance(1.0)
        sim.approve("o/r", gated)
        approved = sim.finished_at("o/r", gated)
        assert approved is not None and approved == pytest.approx(t0 + 1.0 + 5.0, abs=0.05)
        with pytest.raises(KeyError):
            sim.finished_at("o/r", 99)
    finally:
        sim.stop()
