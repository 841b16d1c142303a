"""The SSE wake-up path against the simulator: prompt wake-ups, reconnects, clean shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pytest_homelab.ci.client import WoodpeckerClient
from pytest_homelab.ci.models import Pipeline
from pytest_homelab.ci.stream import WoodpeckerEventStream
from pytest_homelab.ci.watch import PipelineWatch
from pytest_homelab.core.clock import Backoff, Deadline
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.transport import JsonApi, make_http_client
from pytest_homelab.sim.faults import FaultPlan
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim
from tests.waiting import wait_until

SHA = "d" * 40
OURS = "e" * 40
TOKEN = "tok-events"


@pytest.fixture
def sim() -> Iterator[WoodpeckerSim]:
    with WoodpeckerSim(token=TOKEN, ping_interval=0.5) as s:
        s.add_repo("o/r")
        yield s


def stream_for(sim: WoodpeckerSim, repo_id: int = 1) -> WoodpeckerEventStream:
    client = WoodpeckerClient(JsonApi(make_http_client(sim.base_url), token=Secret(TOKEN)))
    repo = client.lookup_repo("o/r", deadline=Deadline.after(5))
    client.close()
    assert repo.id == repo_id
    return WoodpeckerEventStream(
        make_http_client(sim.base_url),
        repo,
        token=Secret(TOKEN),
        backoff=Backoff(initial=0.05, maximum=0.2),
    )


def test_the_stream_alone_wakes_the_watch(sim: WoodpeckerSim) -> None:
    stream = stream_for(sim).start()
    client = WoodpeckerClient(JsonApi(make_http_client(sim.base_url), token=Secret(TOKEN)))
    try:
        wait_until(lambda: stream.connected, what="the event stream to connect")
        sim.add_pipeline("o/r", commit=SHA, steps=[StepSpec("a", 0.3), StepSpec("b", 0.3)])
        repo = client.lookup_repo("o/r", deadline=Deadline.after(5))
        lines: list[str] = []
        started = time.monotonic()
        result = PipelineWatch(
            client,
            repo,
            SHA,
            deadline=Deadline.after(30),
            stream=stream,
            poll_interval=300,
            stream_recheck=300,
            progress=lines.append,
        ).run()
        took = time.monotonic() - started
    finally:
        stream.close()
        client.close()
    assert result.green
    assert took < 5  # the pipeline takes 0.6 s; polling alone would have waited 30-300 s
    assert any("1/2 steps" in line for line in lines)  # progress came from event snapshots
    lists = [r for r in sim.requests if r.path.endswith("/pipelines")]
    assert len(lists) <= 4  # initial look, appearance, terminal confirmation (+ a reconnect)


def test_stream_reconnects_after_drops_and_counts_generations(sim: WoodpeckerSim) -> None:
    faults = FaultPlan(rate=0)
    sim.faults = faults
    faults.inject("stream_drop", count=3, path_prefix="/api/stream")
    stream = stream_for(sim).start()
    try:
        wait_until(lambda: stream.generation >= 4, what="three reconnects after the drops")
        assert stream.connected
        sim.add_pipeline("o/r", commit=SHA, steps=[StepSpec("a", 0.1)])
        wait_until(
            lambda: any(p.commit == SHA for p in stream.drain()), what="the pipeline's event"
        )
    finally:
        stream.close()


def test_stream_ignores_other_repos(sim: WoodpeckerSim) -> None:
    sim.add_repo("o/other")
    stream = stream_for(sim).start()
    try:
        wait_until(lambda: stream.connected, what="the event stream to connect")
        sim.add_pipeline("o/other", commit=SHA, steps=[StepSpec("a", 0.05)])
        wait_until(
            lambda: sim.pipeline_json("o/other", 1)["status"] == "success",
            what="the other repo's pipeline to finish",
        )
        # Events go out in order on the one stream: once ours has finished, every event of the
        # other repo's (finished earlier) was sent before it.
        sim.add_pipeline("o/r", commit=OURS, steps=[StepSpec("a", 0.2)])
        seen: list[Pipeline] = []

        def ours_finished() -> bool:
            seen.extend(stream.drain())
            return any(p.commit == OURS and p.status == "success" for p in seen)

        wait_until(ours_finished, what="our pipeline's success on the stream", detail=lambda: seen)
        assert {p.commit for p in seen} == {OURS}  # nothing of the other repo's
    finally:
        stream.close()


def test_close_is_prompt_and_leaves_no_thread(sim: WoodpeckerSim) -> None:
    before = {t for t in threading.enumerate() if t.name == "woodpecker-events"}
    stream = stream_for(sim).start()
    wait_until(lambda: stream.connected, what="the event stream to connect")
    started = time.monotonic()
    stream.close()
    stream.http.close()
    assert time.monotonic() - started < 2
    after = {t for t in threading.enumerate() if t.name == "woodpecker-events"}
    assert after - before == set()


def test_close_while_server_is_unreachable(sim: WoodpeckerSim) -> None:
    stream = stream_for(sim)
    sim.stop()
    stream.start()
    wait_until(lambda: stream.last_error, what="the stream's first failed connect")
    assert not stream.connected
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 2
