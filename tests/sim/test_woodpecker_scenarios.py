"""Scripted pipelines: appearance, progression, failure, approval, cancel, restart, overrides."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_homelab.sim.woodpecker import ActionRefused, StepSpec, WoodpeckerSim
from tests.waiting import wait_until

Call = Callable[..., httpx.Response]
SHA = "b" * 40
APP = "homelab/app"


def states(sim: WoodpeckerSim, n: int = 1) -> tuple[str, str, list[str]]:
    """(pipeline status, workflow state, step states) as the API shows them now."""
    data = sim.pipeline_json(APP, n)
    (workflow,) = data["workflows"]
    return data["status"], workflow["state"], [c["state"] for c in workflow.get("children", [])]


def test_progression_and_failure_skips_the_rest(sim: WoodpeckerSim) -> None:
    sim.add_pipeline(
        APP,
        commit=SHA,
        pending_for=5,
        steps=[StepSpec("a", 10), StepSpec("b", 10, exit_code=2), StepSpec("c", 10)],
    )
    assert states(sim) == ("pending", "pending", ["pending"] * 3)
    assert sim.pipeline_json(APP, 1)["started"] == 0
    sim.advance(6)
    assert states(sim) == ("running", "running", ["running", "pending", "pending"])
    sim.advance(10)
    assert states(sim) == ("running", "running", ["success", "running", "pending"])
    sim.advance(10)
    assert states(sim) == ("failure", "failure", ["success", "failure", "skipped"])
    data = sim.pipeline_json(APP, 1)
    assert data["finished"] - data["started"] == 20 and data["updated"] == data["finished"]


def test_speed_runs_the_scenario_faster_than_real_time() -> None:
    with WoodpeckerSim(token=None, speed=100.0) as fast:
        fast.add_repo(APP)
        started = time.monotonic()
        fast.add_pipeline(APP, commit=SHA, steps=[StepSpec("a", 10), StepSpec("b", 10)])

        def succeeded() -> dict[str, Any] | None:
            got = httpx.get(fast.base_url + "/api/repos/1/pipelines/1", timeout=5).json()
            return got if got.get("status") == "success" else None

        data = wait_until(succeeded, what="the pipeline to succeed")
        took = time.monotonic() - started
    assert data["finished"] - data["started"] == 20  # scenario seconds
    assert took < 10  # 0.2 s at speed 100; in real time it would take 20 s


def test_appear_after_hides_the_pipeline(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_pipeline(APP, commit=SHA, appear_after=30)
    assert get(sim, "/api/repos/1/pipelines").json() == []
    assert get(sim, "/api/repos/1/pipelines/1").status_code == 404
    with pytest.raises(KeyError):
        sim.pipeline_json(APP, 1)
    sim.advance(31)
    (item,) = get(sim, "/api/repos/1/pipelines").json()
    assert item["number"] == 1 and item["status"] == "success"


def test_blocked_then_approved_over_http(sim: WoodpeckerSim, post: Call) -> None:
    steps = [StepSpec("a", 1), StepSpec("b", 1)]
    sim.add_pipeline(APP, commit=SHA, blocked=True, pending_for=2, steps=steps)
    sim.advance(100)
    assert states(sim) == ("blocked", "blocked", ["blocked", "blocked"])
    approved = post(sim, "/api/repos/1/pipelines/1/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "pending"
    assert approved.json()["reviewed_by"] == sim.user and approved.json()["reviewed"] > 0
    again = post(sim, "/api/repos/1/pipelines/1/approve")
    assert (again.status_code, again.text) == (400, "cannot approve a pipeline with status pending")
    sim.advance(5)
    assert states(sim) == ("success", "success", ["success", "success"])


def test_declined(sim: WoodpeckerSim, post: Call) -> None:
    sim.add_pipeline(APP, commit=SHA, blocked=True)
    declined = post(sim, "/api/repos/1/pipelines/1/decline")
    assert declined.status_code == 200
    assert states(sim) == ("declined", "declined", ["declined"])
    data = sim.pipeline_json(APP, 1)
    assert (data["started"], data["finished"], data["reviewed_by"]) == (0, 0, sim.user)
    # Declining what is not blocked is an untyped error on the server: a bare 500.
    again = post(sim, "/api/repos/1/pipelines/1/decline")
    assert (again.status_code, again.content) == (500, b"")
    with pytest.raises(ActionRefused):
        sim.approve(APP, 1)


def test_cancel_before_start_is_canceled_and_after_is_killed(
    sim: WoodpeckerSim, post: Call
) -> None:
    sim.add_pipeline(APP, commit=SHA, pending_for=60)
    sim.add_pipeline(APP, commit=SHA, steps=[StepSpec("a", 1), StepSpec("long", 60), StepSpec("c")])
    sim.advance(2)
    assert post(sim, "/api/repos/1/pipelines/1/cancel").status_code == 204
    sim.cancel(APP, 2, superseded_by=3)
    assert states(sim, 1) == ("canceled", "skipped", ["canceled"])
    assert sim.pipeline_json(APP, 1)["cancel_info"] == {"canceled_by_user": sim.user}
    assert states(sim, 2) == ("killed", "killed", ["success", "killed", "canceled"])
    killed = sim.pipeline_json(APP, 2)
    assert killed["cancel_info"] == {"superseded_by": 3}
    long_step = killed["workflows"][0]["children"][1]
    assert (long_step["exit_code"], long_step["error"]) == (137, "Canceled")
    assert killed["finished"] == long_step["finished"]
    again = post(sim, "/api/repos/1/pipelines/2/cancel")
    assert again.status_code == 400
    assert again.text == "Cannot cancel a non-running or non-pending or non-blocked pipeline"
    sim.advance(100)
    assert states(sim, 2)[0] == "killed"  # cancel is final


def test_cancel_of_a_blocked_pipeline_kills_it(sim: WoodpeckerSim) -> None:
    sim.add_pipeline(APP, commit=SHA, blocked=True)
    sim.cancel(APP, 1)
    assert states(sim) == ("killed", "blocked", ["blocked"])  # as cancel.go leaves it


def test_restart_makes_a_child_pipeline(sim: WoodpeckerSim, post: Call) -> None:
    sim.add_pipeline(APP, commit=SHA, final_status="error", steps=[StepSpec("a", 1)])
    sim.add_pipeline(APP, commit=SHA, blocked=True)
    sim.advance(2)
    assert states(sim)[0] == "error"
    restart = post(sim, "/api/repos/1/pipelines/1")
    assert restart.status_code == 200
    new = restart.json()
    assert (new["number"], new["parent"], new["commit"], new["rerun_count"]) == (3, 1, SHA, 1)
    assert [c["name"] for c in new["workflows"][0]["children"]] == ["a"]
    assert sim.restart(APP, 3) == 4 and sim.pipeline_json(APP, 4)["rerun_count"] == 2
    blocked = post(sim, "/api/repos/1/pipelines/2")
    assert (blocked.status_code, blocked.text) == (
        400,
        "cannot restart a pipeline with status blocked",
    )
    sim.advance(2)
    assert states(sim, 3)[0] == "success"  # the override belongs to the original only


def test_final_status_can_leave_a_pipeline_hanging(sim: WoodpeckerSim) -> None:
    sim.add_pipeline(APP, commit=SHA, final_status="running", steps=[StepSpec("a", 1)])
    sim.advance(1000)
    data = sim.pipeline_json(APP, 1)
    assert (data["status"], data["finished"]) == ("running", 0)
    assert data["workflows"][0]["children"][0]["state"] == "success"


def test_latest_is_the_newest_push_on_a_branch(sim: WoodpeckerSim, get: Call) -> None:
    assert get(sim, "/api/repos/1/pipelines/latest").status_code == 404
    sim.add_pipeline(APP, commit=SHA)
    sim.add_pipeline(APP, commit=SHA, event="pull_request")
    sim.add_pipeline(APP, commit=SHA, branch="dev")
    latest = get(sim, "/api/repos/1/pipelines/latest")
    assert latest.json()["number"] == 1 and "workflows" in latest.json()
    assert get(sim, "/api/repos/1/pipelines/latest", branch="dev").json()["number"] == 3
    assert get(sim, "/api/repos/1/pipelines/latest", branch="").status_code == 404


def test_numbers_are_per_repo_and_ids_global(sim: WoodpeckerSim) -> None:
    assert [sim.add_pipeline(APP, commit=SHA) for _ in range(2)] == [1, 2]
    assert sim.add_pipeline("homelab/public", commit=SHA) == 1
    ids = {sim.pipeline_json(APP, 1)["id"], sim.pipeline_json(APP, 2)["id"]}
    assert sim.pipeline_json("homelab/public", 1)["id"] not in ids


def test_scripting_rejects_nonsense(sim: WoodpeckerSim) -> None:
    with pytest.raises(ValueError, match="event"):
        sim.add_pipeline(APP, commit=SHA, event="webhook")
    with pytest.raises(ValueError, match="status"):
        sim.add_pipeline(APP, commit=SHA, final_status="green")
    with pytest.raises(KeyError):
        sim.add_pipeline("nobody/nothing", commit=SHA)
    with pytest.raises(ValueError, match="exists"):
        sim.add_repo("HomeLab/App")
    with pytest.raises(ValueError, match="loopback only"):
        WoodpeckerSim(host="0.0.0.0")
    with pytest.raises(ValueError):
        StepSpec("x", duration=-1)


RANK = {"pending": 0, "running": 1, "success": 2, "failure": 2, "skipped": 2}


@pytest.fixture(scope="module")
def scratch() -> Iterator[WoodpeckerSim]:
    """One simulator for many generated pipelines (hypothesis wants no per-test fixtures)."""
    with WoodpeckerSim(token=None) as s:
        s.add_repo(APP)
        yield s


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(
        st.tuples(st.floats(0, 5), st.sampled_from([0, 0, 1, 2])), min_size=1, max_size=5
    ),
    pending=st.floats(0, 5),
    probes=st.lists(st.floats(0, 6), min_size=1, max_size=6),
)
def test_states_only_move_forward_and_end_by_the_exit_codes(
    scratch: WoodpeckerSim,
    script: list[tuple[float, int]],
    pending: float,
    probes: list[float],
) -> None:
    steps = [StepSpec(f"s{n}", duration, code) for n, (duration, code) in enumerate(script)]
    n = scratch.add_pipeline(APP, commit=SHA, steps=steps, pending_for=pending)
    seen: list[tuple[int, list[int]]] = []
    for probe in [*probes, 1000.0]:
        scratch.advance(probe)
        data = scratch.pipeline_json(APP, n)
        children = data["workflows"][0]["children"]
        status_rank = {"pending": 0, "running": 1}.get(data["status"], 2)
        seen.append((status_rank, [RANK[c["state"]] for c in children]))
        for child in children:
            assert child.get("finished", child.get("started", 0)) >= child.get("started", 0)
    for earlier, later in itertools.pairwise(seen):
        assert later[0] >= earlier[0]
        assert all(b >= a for a, b in zip(earlier[1], later[1], strict=True))
    states = [c["state"] for c in data["workflows"][0]["children"]]
    first_failure = next((i for i, (_, code) in enumerate(script) if code), None)
    if first_failure is None:
        assert data["status"] == "success" and set(states) == {"success"}
    else:
        assert data["status"] == "failure" and states[first_failure] == "failure"
        assert set(states[first_failure + 1 :]) <= {"skipped"}
    assert data["finished"] >= data["started"] > 0
