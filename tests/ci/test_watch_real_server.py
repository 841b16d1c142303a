"""The watch against behaviours of the real Woodpecker server (issue 16), on a fake clock.

The same behaviours against the simulator, through the real client, are in
``test_woodpecker_conformance.py``.
"""

from __future__ import annotations

import pytest

from pytest_homelab.ci.models import PipelineError
from pytest_homelab.core.clock import FakeClock
from pytest_homelab.core.outcomes import CheckFailed, DeadlineExceeded, NotFound
from tests.ci.test_watch import SHA, FakeClient, FakeStream, pipe, watch


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- branch ----------------------------------------------------------------------------------------


def test_a_green_pipeline_of_another_branch_never_decides(clock: FakeClock) -> None:
    # The same sha pushed to two branches gets one push pipeline each (one hook call per push:
    # woodpecker-ci/woodpecker server/api/hook.go@v3.17.0:227).
    client = FakeClient(clock).at(0, pipe(6, "success", branch="feature"))
    client.at(20, pipe(7, "running", branch="main")).at(40, pipe(7, "failure", branch="main"))
    lines: list[str] = []
    result = watch(client, clock, branch="main", poll_interval=5, lines=lines).run()
    assert isinstance(result.outcome, CheckFailed)
    assert result.pipeline is not None and result.pipeline.number == 7
    assert [p.number for p in result.ignored] == [6]
    assert any("#6 of aaaaaaaa runs on branch feature, not main: ignored" in x for x in lines)
    assert ("ignored_pipelines", "#6 on feature (success)") in result.properties()


def test_not_found_names_the_pipelines_seen_on_other_branches(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(6, "success", branch="feature"))
    result = watch(client, clock, branch="main", appear_grace=30, poll_interval=5).run()
    assert isinstance(result.outcome, NotFound)
    assert "on branch main" in result.outcome.message
    assert "seen and ignored, on other branches: #6 on feature (success)" in result.outcome.message


def test_any_branch_accepts_every_branch(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(6, "success", branch="feature"))
    assert watch(client, clock, branch="*").run().green


def test_stream_hint_of_another_branch_is_noted_not_followed(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running", branch="main"))
    client.at(100, pipe(5, "success", branch="main"))
    stream = FakeStream(proven=True)
    clock.call_at(clock.now + 10, lambda: stream.push(pipe(6, "success", branch="feature")))
    result = watch(client, clock, branch="main", stream=stream, stream_recheck=100).run()
    assert result.green and result.waited == pytest.approx(100)
    assert client.calls == ["list", "list"]  # the other branch's terminal event did not re-list
    assert [p.number for p in result.ignored] == [6]


# -- silent stream and the final look -----------------------------------------------------------


def test_a_connected_but_silent_stream_is_not_trusted(clock: FakeClock) -> None:
    # The stream carries only repos with a permission row (server/api/stream.go@v3.17.0:81-85,
    # server/store/datastore/repo.go@v3.17.0:145-161): connected, and never a word of this repo.
    client = FakeClient(clock).at(0, pipe(5, "running")).at(3.5, pipe(5, "success"))
    stream = FakeStream()  # connected, nothing delivered
    result = watch(client, clock, stream=stream, poll_interval=3, stream_recheck=3, timeout=6).run()
    assert result.green
    assert result.waited <= 3.5 + 3 + 2


def test_polls_at_the_poll_interval_until_the_stream_proves_itself(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(500, pipe(5, "success"))
    stream = FakeStream()
    clock.call_at(clock.now + 20, lambda: stream.push(pipe(5, "running")))
    watch(client, clock, stream=stream, poll_interval=5, stream_recheck=300).run()
    # 0, 5, 10, 15, 20 (the proving event arrives at 20), then every 300 s: 320, and the end.
    assert client.calls.count("list") == 7


def test_no_deadline_verdict_without_a_final_look(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(3.5, pipe(5, "success"))
    stream = FakeStream(proven=True)  # trusted, but it missed the terminal event
    result = watch(client, clock, stream=stream, stream_recheck=300, timeout=6).run()
    assert result.green
    assert result.waited == pytest.approx(6)
    assert client.calls == ["list", "list"]


def test_the_final_look_still_running_is_a_deadline_verdict(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running"))
    result = watch(client, clock, poll_interval=5, timeout=12).run()
    assert isinstance(result.outcome, DeadlineExceeded)
    assert "still running" in result.outcome.message


# -- vanished pipelines --------------------------------------------------------------------------


def test_a_pipeline_deleted_by_the_server_is_reported_promptly(clock: FakeClock) -> None:
    # Stored as created, deleted when no config matches or every workflow is filtered out
    # (server/pipeline/create.go@v3.17.0:64-69,80-86,124-131); the stream never says so.
    client = FakeClient(clock).at(0, pipe(5, "created")).delete(8, 5)
    stream = FakeStream(proven=True)
    result = watch(client, clock, stream=stream, stream_recheck=300).run()
    assert isinstance(result.outcome, NotFound)
    assert result.outcome.message.startswith(
        "pipeline #5 of aaaaaaaa was deleted by the server (no matching config, or all "
        "workflows filtered)"
    )
    assert result.waited <= 30


def test_another_pipeline_of_the_commit_takes_the_deleted_ones_place(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(4, "running")).at(0, pipe(5, "created"))
    client.delete(6, 5).at(20, pipe(4, "success"))
    lines: list[str] = []
    result = watch(client, clock, poll_interval=5, lines=lines).run()
    assert result.green and result.pipeline is not None and result.pipeline.number == 4
    assert any("#5 was deleted by the server; #4 of aaaaaaaa takes its place" in x for x in lines)


def test_a_pipeline_beyond_the_pages_is_not_taken_for_deleted(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(30, pipe(5, "success"))
    real = client.find_pipeline

    def short_pages(*args: object, **kw: object) -> object:
        found = real(*args, **kw)  # type: ignore[arg-type]
        return None if clock.now - client.t0 >= 10 else found  # pushed off the searched pages

    client.find_pipeline = short_pages  # type: ignore[assignment,method-assign]
    assert watch(client, clock, poll_interval=5).run().green


# -- reasons -------------------------------------------------------------------------------------


def test_config_errors_are_the_reason_of_a_red_verdict(clock: FakeClock) -> None:
    # create.go@v3.17.0:116-118 -> pipeline_status.go@v3.17.0:65-71: status error, errors[] set,
    # no workflows.
    errors = (
        PipelineError("linter", "steps.test.image: required"),
        PipelineError("deprecation", "use 'when' instead", is_warning=True),
    )
    client = FakeClient(clock).at(0, pipe(5, "error", errors=errors))
    result = watch(client, clock).run()
    assert isinstance(result.outcome, CheckFailed)
    first_line = result.outcome.message.splitlines()[0]
    assert "ended error: [linter] steps.test.image: required" in first_line
    assert "deprecation" not in first_line  # a warning is not the reason when an error is there
    assert ("errors", "[linter] steps.test.image: required") in result.properties()


def test_a_workflow_error_is_a_reason(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "failure", workflow_errors=(("build", "OOM"),)))
    result = watch(client, clock).run()
    assert isinstance(result.outcome, CheckFailed)
    assert "workflow build: OOM" in result.outcome.message
    assert SHA[:8] in result.outcome.message


def test_a_pipeline_found_by_the_appear_grace_last_look_is_watched_on(clock: FakeClock) -> None:
    # appears between the last poll and the end of the appear grace, runs on, then succeeds
    client = FakeClient(clock).at(29, pipe(5, "running")).at(100, pipe(5, "success"))
    result = watch(client, clock, appear_grace=30, poll_interval=10).run()
    assert result.green and result.waited == pytest.approx(100)


def test_nothing_at_the_appear_grace_last_look_is_not_found(clock: FakeClock) -> None:
    client = FakeClient(clock)
    result = watch(client, clock, appear_grace=30, poll_interval=10).run()
    assert isinstance(result.outcome, NotFound)
    assert client.calls.count("list") == 4  # 0, 10, 20 and 30: that one is the last look
