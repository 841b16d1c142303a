"""The pipeline watch as a pure state machine: a scripted fake client on a fake clock."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from pytest_homelab.ci.client import newest_other_branches
from pytest_homelab.ci.models import (
    Pipeline,
    Repo,
    Step,
    classify,
    commit_matches,
    newest_candidate,
)
from pytest_homelab.ci.watch import PipelineWatch
from pytest_homelab.core.clock import Deadline, FakeClock
from pytest_homelab.core.outcomes import (
    BadInput,
    Blocked,
    CheckFailed,
    DeadlineExceeded,
    InfraError,
    NotFound,
    Superseded,
)
from pytest_homelab.core.transport import HttpNotFound

SHA = "a" * 40
OTHER = "b" * 40
CHILD = "c" * 40
REPO = Repo(id=7, full_name="homelab/app")


def pipe(
    number: int, status: str, commit: str = SHA, event: str = "push", **kw: object
) -> Pipeline:
    return Pipeline(number=number, status=status, event=event, commit=commit, **kw)  # type: ignore[arg-type]


class FakeClient:
    """Pipelines whose snapshots change at scripted clock times."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.t0 = clock.now
        self.script: list[tuple[float, Pipeline]] = []
        self.calls: list[str] = []
        self.logs: dict[int, list[str]] = {}
        self.detail_error: Exception | None = None
        self.deleted: dict[int, float] = {}

    def at(self, offset: float, pipeline: Pipeline) -> FakeClient:
        self.script.append((offset, pipeline))
        return self

    def delete(self, offset: float, number: int) -> FakeClient:
        """The server deletes pipeline ``number`` at ``offset`` (create.go's ErrFiltered)."""
        self.deleted[number] = offset
        return self

    def visible(self) -> list[Pipeline]:
        latest: dict[int, Pipeline] = {}
        for offset, p in self.script:
            if self.t0 + offset <= self.clock.now:
                latest[p.number] = p
        for number, offset in self.deleted.items():
            if self.t0 + offset <= self.clock.now:
                latest.pop(number, None)
        return sorted(latest.values(), key=lambda p: -p.number)

    def find_pipeline(
        self,
        repo: Repo,
        sha: str,
        *,
        branch: str | None = None,
        elsewhere: dict[int, Pipeline] | None = None,
        **_: object,
    ) -> Pipeline | None:
        self.calls.append("list")
        items = self.visible()
        if elsewhere is not None:
            for p in newest_other_branches(items, sha, ("push", "manual"), branch):
                elsewhere[p.number] = p
        return newest_candidate(items, sha, ("push", "manual"), branch)

    def list_pipelines(self, repo: Repo, page: int, **_: object) -> list[Pipeline]:
        self.calls.append("list-any")
        return self.visible()

    def get_pipeline(self, repo: Repo, number: int, **_: object) -> Pipeline:
        self.calls.append(f"detail {number}")
        if self.detail_error is not None:
            raise self.detail_error
        for p in self.visible():
            if p.number == number:
                return p
        raise HttpNotFound(f"no pipeline {number}")

    def step_log(self, repo: Repo, number: int, step_id: int, **_: object) -> list[str]:
        self.calls.append(f"log {step_id}")
        return self.logs.get(step_id, [])

    def pipeline_url(self, repo: Repo, number: int) -> str:
        return f"https://ci.example.test/repos/{repo.id}/pipeline/{number}"


class FakeStream:
    """``proven``: the connection has delivered an event of this repo (every push is one)."""

    def __init__(self, *, proven: bool = False) -> None:
        self.wake = threading.Event()
        self.connected = True
        self.generation = 1
        self.proven = proven
        self.queue: list[Pipeline] = []

    def push(self, p: Pipeline) -> None:
        self.queue.append(p)
        self.proven = True
        self.wake.set()

    def drain(self) -> list[Pipeline]:
        items, self.queue = self.queue, []
        return items

    def close(self) -> None:
        pass


def watch(
    client: FakeClient,
    clock: FakeClock,
    *,
    timeout: float = 1800,
    ancestry: dict[tuple[str, str], bool | None] | None = None,
    stream: FakeStream | None = None,
    lines: list[str] | None = None,
    **kw: object,
) -> PipelineWatch:
    return PipelineWatch(
        client,  # type: ignore[arg-type]
        REPO,
        SHA,
        deadline=Deadline.after(timeout, clock),
        clock=clock,
        is_ancestor=lambda a, b: (ancestry or {}).get((a, b)),
        stream=stream,
        progress=(lines.append if lines is not None else lambda _: None),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- pure rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("success", "green"),
        ("failure", "red"),
        ("error", "red"),
        ("killed", "red"),
        ("canceled", "red"),
        ("declined", "red"),
        ("skipped", "skipped"),
        ("blocked", "blocked"),
        ("created", "running"),
        ("pending", "running"),
        ("running", "running"),
        ("started", "running"),  # legacy UI value: unknown statuses keep waiting
        ("", "running"),
    ],
)
def test_classify(status: str, verdict: str) -> None:
    assert classify(status) == verdict


def test_pipeline_from_json_reads_v2_and_v3_names() -> None:
    v3 = {
        "number": 3,
        "status": "success",
        "event": "push",
        "commit": SHA.upper(),
        "created": 10,
        "started": 11,
        "finished": 20,
        "cancel_info": {"superseded_by": 9},
        "workflows": [
            {
                "children": [
                    {
                        "id": 55,
                        "pid": 2,
                        "name": "test",
                        "state": "failure",
                        "exit_code": 1,
                        "started": 12,
                        "finished": 19,
                    }
                ]
            }
        ],
    }
    v2 = {
        "number": 3,
        "status": "success",
        "event": "push",
        "commit": SHA,
        "created_at": 10,
        "started_at": 11,
        "finished_at": 20,
        "workflows": [
            {
                "children": [
                    {
                        "id": 55,
                        "pid": 2,
                        "name": "test",
                        "state": "failure",
                        "exit_code": 1,
                        "start_time": 12,
                        "end_time": 19,
                    }
                ]
            }
        ],
    }
    a, b = Pipeline.from_json(v3), Pipeline.from_json(v2)
    assert (a.created, a.started, a.finished, a.duration) == (10, 11, 20, 9)
    assert (b.created, b.started, b.finished, b.duration) == (10, 11, 20, 9)
    assert a.commit == SHA and a.superseded_by == 9 and b.superseded_by == 0
    assert a.steps == b.steps == (Step(55, 2, "test", "failure", 1, 12, 19),)


def test_pipeline_from_json_tolerates_missing_and_wrong_fields() -> None:
    p = Pipeline.from_json({"number": "x", "status": None, "workflows": [None, {"children": None}]})
    assert (p.number, p.status, p.steps) == (0, "", ())
    with pytest.raises(InfraError):
        Pipeline.from_json(["not", "an", "object"])


def test_commit_matching_full_short_and_case() -> None:
    assert commit_matches(SHA, SHA.upper())
    assert commit_matches(SHA, SHA[:7])
    assert not commit_matches(SHA, OTHER)
    assert not commit_matches(SHA[:39] + "b", SHA)


def test_newest_candidate_filters_events_and_picks_highest_number() -> None:
    pipelines = [
        pipe(1330, "running", OTHER),
        pipe(1324, "failure"),
        pipe(1329, "success"),
        pipe(1331, "success", event="pull_request"),
    ]
    chosen = newest_candidate(pipelines, SHA, ("push", "manual"))
    assert chosen is not None and chosen.number == 1329
    assert newest_candidate(pipelines, SHA, ("manual",)) is None


def test_ambiguous_short_sha_is_bad_input() -> None:
    a, b = "abcdef1" + "0" * 33, "abcdef1" + "1" * 33
    with pytest.raises(BadInput, match="2 different commits"):
        newest_candidate([pipe(1, "success", a), pipe(2, "success", b)], "abcdef1", ("push",))


# -- the watch -----------------------------------------------------------------------------------


def test_green_after_running_in_poll_mode(clock: FakeClock) -> None:
    client = (
        FakeClient(clock)
        .at(0, pipe(5, "running"))
        .at(20, pipe(5, "success", started=1, finished=21))
    )
    lines: list[str] = []
    result = watch(client, clock, lines=lines, poll_interval=5).run()
    assert result.green and result.outcome is None
    assert result.pipeline is not None and result.pipeline.number == 5
    assert result.waited == pytest.approx(20)
    assert client.calls == ["list"] * 5
    assert lines == ["ci: #5 running (0.0s)", "ci: #5 success (20.0s)"]
    props = dict(result.properties())
    assert props["pipeline_number"] == "5" and props["status"] == "success"
    assert props["pipeline_url"] == "https://ci.example.test/repos/7/pipeline/5"
    assert props["duration"] == "20s"


def test_appears_late_within_grace(clock: FakeClock) -> None:
    client = FakeClient(clock).at(42, pipe(6, "success"))
    lines: list[str] = []
    result = watch(client, clock, lines=lines, poll_interval=5, appear_grace=60).run()
    assert result.green
    assert lines[0].startswith("ci: waiting for a pipeline of aaaaaaaa in homelab/app")
    assert len([line for line in lines if "waiting" in line]) == 1


def test_never_appears_is_not_found_at_the_grace(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(9, "success", OTHER))
    result = watch(client, clock, poll_interval=5, appear_grace=120).run()
    assert isinstance(result.outcome, NotFound)
    assert result.waited == pytest.approx(120)
    assert "within 2m00s" in str(result.outcome)
    assert result.pipeline is None


def test_pull_request_pipeline_of_the_same_sha_does_not_count(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(3, "success", event="pull_request"))
    result = watch(client, clock, poll_interval=5, appear_grace=30).run()
    assert isinstance(result.outcome, NotFound)


def test_red_pipeline_reports_failing_steps_and_log_tail(clock: FakeClock) -> None:
    steps = (
        Step(100, 1, "clone", "success", 0, 1, 2),
        Step(101, 2, "test", "failure", 2, 2, 5),
        Step(102, 3, "deploy", "skipped", 0, 0, 0),
    )
    client = FakeClient(clock).at(0, pipe(8, "failure", steps=steps))
    client.logs[101] = [f"line {n}" for n in range(80)]
    result = watch(client, clock).run()
    assert isinstance(result.outcome, CheckFailed)
    assert "ended failure (failing: test)" in str(result.outcome)
    assert [s.name for s in result.failed_steps] == ["test"]
    assert result.failed_steps[0].log_tail == tuple(f"line {n}" for n in range(30, 80))
    props = dict(result.properties())
    assert props["failing_steps"] == "test"
    assert props["log_tail:test"].splitlines()[0] == "line 30"


def test_detail_endpoint_failure_never_changes_the_verdict(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(8, "failure"))
    client.detail_error = InfraError("detail endpoint empty")
    result = watch(client, clock).run()
    assert isinstance(result.outcome, CheckFailed) and result.failed_steps == ()
    client2 = FakeClient(clock).at(0, pipe(8, "success"))
    client2.detail_error = InfraError("detail endpoint empty")
    assert watch(client2, clock).run().green


def test_skipped_is_not_green(clock: FakeClock) -> None:
    result = watch(FakeClient(clock).at(0, pipe(2, "skipped")), clock).run()
    assert isinstance(result.outcome, CheckFailed) and "skipped" in str(result.outcome)


def test_blocked_until_the_deadline_is_blocked(clock: FakeClock) -> None:
    lines: list[str] = []
    client = FakeClient(clock).at(0, pipe(4, "blocked"))
    result = watch(client, clock, timeout=300, poll_interval=5, lines=lines).run()
    assert isinstance(result.outcome, Blocked)
    assert isinstance(result.outcome, DeadlineExceeded)  # exit 124
    assert result.waited == pytest.approx(300)
    assert len([line for line in lines if "waiting for approval" in line]) == 1


def test_blocked_then_approved_goes_green(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(4, "blocked")).at(30, pipe(4, "running"))
    client.at(60, pipe(4, "success"))
    assert watch(client, clock, poll_interval=5).run().green


def test_deadline_while_running(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(4, "running"))
    result = watch(client, clock, timeout=100, poll_interval=7).run()
    assert isinstance(result.outcome, DeadlineExceeded)
    assert not isinstance(result.outcome, Blocked)
    assert result.waited == pytest.approx(100)
    assert "still running after 1m40s" in str(result.outcome)


def test_restart_for_the_same_sha_is_followed(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(10, "failure")).at(0, pipe(11, "running", parent=10))
    client.at(30, pipe(11, "success", parent=10))
    result = watch(client, clock, poll_interval=5).run()
    assert result.green and result.pipeline is not None and result.pipeline.number == 11


def test_other_commits_pipelines_are_never_reported(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(20, "failure", OTHER)).at(0, pipe(19, "running"))
    client.at(10, pipe(21, "success", OTHER)).at(25, pipe(19, "success"))
    lines: list[str] = []
    result = watch(client, clock, poll_interval=5, lines=lines).run()
    assert result.green and result.pipeline is not None and result.pipeline.number == 19
    assert all("#19" in line for line in lines)


def test_superseded_by_a_descendant_is_followed(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(30, "killed", superseded_by=31))
    client.at(0, pipe(31, "running", CHILD)).at(40, pipe(31, "success", CHILD))
    lines: list[str] = []
    result = watch(client, clock, ancestry={(SHA, CHILD): True}, poll_interval=5, lines=lines).run()
    assert result.green
    assert result.verified_by is not None and result.verified_by.number == 31
    props = dict(result.properties())
    assert props["pipeline_number"] == "30" and props["verified_by_pipeline"] == "31"
    assert props["pipeline_url"].endswith("/pipeline/31")
    assert any("superseded by #31" in line and "following it" in line for line in lines)


def test_superseded_by_a_descendant_that_fails_is_red(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(30, "killed", superseded_by=31))
    client.at(0, pipe(31, "failure", CHILD))
    result = watch(client, clock, ancestry={(SHA, CHILD): True}).run()
    assert isinstance(result.outcome, CheckFailed)


def test_superseded_by_an_unrelated_commit_is_superseded(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(30, "canceled", superseded_by=31))
    client.at(0, pipe(31, "running", OTHER))
    result = watch(client, clock, ancestry={(SHA, OTHER): False}).run()
    assert isinstance(result.outcome, Superseded)
    assert "does not contain it" in str(result.outcome)


def test_superseded_with_unknown_ancestry_says_to_fetch(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(30, "killed", superseded_by=31))
    client.at(0, pipe(31, "running", OTHER))
    result = watch(client, clock).run()
    assert isinstance(result.outcome, Superseded)
    assert "git fetch" in str(result.outcome)


def test_unknown_status_keeps_waiting_and_is_reported_once(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(4, "started")).at(30, pipe(4, "success"))
    lines: list[str] = []
    assert watch(client, clock, poll_interval=5, lines=lines).run().green
    assert len([line for line in lines if "unknown status 'started'" in line]) == 1


def test_stream_wakes_the_watch_at_once_and_saves_requests(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running"))
    stream = FakeStream(proven=True)  # it has carried this repo before
    steps = (Step(1, 1, "a", "success", 0, 1, 2), Step(2, 2, "b", "running", 0, 2, 0))
    for offset in (10, 20, 30, 40):
        clock.call_at(clock.now + offset, lambda: stream.push(pipe(5, "running", steps=steps)))
    client.at(450, pipe(5, "success"))
    clock.call_at(clock.now + 450, lambda: stream.push(pipe(5, "success")))
    lines: list[str] = []
    result = watch(client, clock, stream=stream, stream_recheck=300, lines=lines).run()
    assert result.green
    assert result.waited == pytest.approx(450)  # detected at the event, not at a poll
    # initial list, one safety re-check at 300 s, one confirmation on the terminal event
    assert client.calls == ["list", "list", "list"]
    assert "ci: #5 running 1/2 steps (10.0s)" in lines


def test_stream_event_of_another_commit_is_ignored(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(100, pipe(5, "success"))
    stream = FakeStream(proven=True)
    clock.call_at(clock.now + 10, lambda: stream.push(pipe(6, "success", OTHER)))
    result = watch(client, clock, stream=stream, stream_recheck=100).run()
    assert result.green and result.waited == pytest.approx(100)
    assert client.calls == ["list", "list"]


def test_stream_reconnect_forces_a_relist(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(50, pipe(5, "success"))
    stream = FakeStream(proven=True)

    def reconnect() -> None:
        stream.generation += 1
        stream.wake.set()

    clock.call_at(clock.now + 60, reconnect)
    result = watch(client, clock, stream=stream, stream_recheck=300).run()
    assert result.green and result.waited == pytest.approx(60)


def test_disconnected_stream_falls_back_to_polling(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "running")).at(12, pipe(5, "success"))
    stream = FakeStream()
    stream.connected = False
    result = watch(client, clock, stream=stream, poll_interval=5, stream_recheck=300).run()
    assert result.green and result.waited == pytest.approx(15)


def test_progress_is_one_line_per_change(clock: FakeClock) -> None:
    client = FakeClient(clock)
    for offset, status in [
        (0, "pending"),
        (10, "pending"),
        (20, "running"),
        (30, "running"),
        (40, "success"),
    ]:
        client.at(offset, pipe(5, status))
    lines: list[str] = []
    watch(client, clock, poll_interval=5, lines=lines).run()
    assert [line.split(" (")[0] for line in lines] == [
        "ci: #5 pending",
        "ci: #5 running",
        "ci: #5 success",
    ]


def test_result_properties_never_carry_the_verdict_of_another_pipeline(clock: FakeClock) -> None:
    client = FakeClient(clock).at(0, pipe(5, "success", started=100, finished=160))
    result = watch(client, clock).run()
    props = dict(result.properties())
    assert props["commit"] == SHA and props["repo"] == "homelab/app"
    assert replace(result, outcome=None).green
