"""The event stream: framing, snapshots on every state change, visibility, pings, stop()."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pytest_homelab.core.clock import Deadline
from pytest_homelab.sim.woodpecker import Naming, StepSpec, WoodpeckerSim

Conforms = Callable[[str, object], None]
TOKEN = "sim-token-123"  # the sim fixture's token
SHA = "d" * 40


def read_stream(
    sim: WoodpeckerSim,
    token: str | None,
    until: Callable[[list[dict[str, Any]]], bool],
    during: Callable[[], None] = lambda: None,
    timeout: float = 10.0,
) -> tuple[httpx.Headers, list[str]]:
    """Raw lines of the stream until ``until(events so far)`` holds and the next ping has come:
    the sim sends what it queued before it pings, so by then nothing queued with those events is
    still on its way. ``during`` runs once the stream is open; fails after ``timeout`` s."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lines: list[str] = []
    deadline = Deadline.after(timeout)
    seen = False
    with httpx.stream(
        "GET", sim.base_url + "/api/stream/events", headers=headers, timeout=5
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not lines:
                during()
            lines.append(line)
            if seen and line == ": ping":
                break
            seen = seen or until(events(lines))
            assert not deadline.expired(), f"waited {timeout} s for the events, in vain: {lines}"
        return response.headers, lines


def finished(*repos: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Until the pipelines of ``repos`` (ids) have sent their final snapshot."""

    def done(seen: list[dict[str, Any]]) -> bool:
        ended = {e["repo"]["id"] for e in seen if e["pipeline"]["status"] == "success"}
        return ended >= set(repos)

    return done


def events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


def test_framing_and_headers(sim: WoodpeckerSim, conforms: Conforms) -> None:
    def run() -> None:
        sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("a", 0.2), StepSpec("b", 0.2)])

    headers, lines = read_stream(sim, TOKEN, finished(1), run)
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-store"
    assert headers["x-accel-buffering"] == "no"
    assert headers["transfer-encoding"] == "chunked"
    assert lines[:2] == [": ping", ""]
    assert all(line in ("", ": ping") or line.startswith("data: ") for line in lines)
    seen = events(lines)
    for event in seen:
        assert set(event) == {"repo", "pipeline"}
        conforms("Repo", event["repo"])
        conforms("Pipeline", event["pipeline"])
        assert event["pipeline"]["workflows"][0]["children"]
    # one full snapshot per state change
    assert [e["pipeline"]["status"] for e in seen] == ["running", "running", "success"]
    steps = [[c["state"] for c in e["pipeline"]["workflows"][0]["children"]] for e in seen]
    assert steps == [["running", "pending"], ["success", "running"], ["success", "success"]]
    assert ": ping" in lines[2:]  # idle pings at ping_interval


def test_private_repos_only_reach_valid_tokens(sim: WoodpeckerSim) -> None:
    def run() -> None:
        sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("a", 0.05)])
        sim.add_pipeline("homelab/public", commit=SHA, steps=[StepSpec("a", 0.05)])

    for token, repos in ((TOKEN, {1, 2}), ("wrong", {2}), (None, {2})):
        _, lines = read_stream(sim, token, finished(*repos), run)
        assert {e["repo"]["id"] for e in events(lines)} == repos, token


def test_repos_added_after_connect_need_a_reconnect(sim: WoodpeckerSim) -> None:
    def run() -> None:
        sim.add_repo("homelab/late", private=True)
        sim.add_pipeline("homelab/late", commit=SHA)
        sim.add_pipeline("homelab/app", commit=SHA)

    _, lines = read_stream(sim, TOKEN, finished(1), run)
    assert {e["repo"]["full_name"] for e in events(lines)} == {"homelab/app"}


def test_access_token_query_parameter(sim: WoodpeckerSim) -> None:
    seen: list[int] = []
    with httpx.stream(
        "GET", f"{sim.base_url}/api/stream/events?access_token={TOKEN}", timeout=5
    ) as response:
        for line in response.iter_lines():
            if line == ": ping" and not seen:
                sim.add_pipeline("homelab/app", commit=SHA)
            if line.startswith("data: "):
                seen.append(json.loads(line[6:])["repo"]["id"])
                break
    assert seen == [1]


def test_stop_ends_an_open_stream_at_once_and_leaves_nothing(leak_check: None) -> None:
    sim = WoodpeckerSim(token=None, ping_interval=30).start()
    outcome: list[str] = []
    opened = threading.Event()

    def reader() -> None:
        try:
            with httpx.stream("GET", sim.base_url + "/api/stream/events", timeout=60) as r:
                for _ in r.iter_lines():
                    opened.set()
            outcome.append("ended")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=reader, name="test-reader")
    thread.start()
    assert opened.wait(5)
    started = time.monotonic()
    sim.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert outcome  # the client saw the stream end (cleanly or not), no hang


@pytest.mark.parametrize("naming", ["v2", "v3"])
def test_both_versions_stream_with_their_names(naming: Naming) -> None:
    with WoodpeckerSim(token=None, naming=naming, ping_interval=0.1) as s:
        s.add_repo("o/r", private=False)

        def run() -> None:
            s.add_pipeline("o/r", commit=SHA)

        _, lines = read_stream(s, None, lambda seen: bool(seen), run)
        pipeline = events(lines)[0]["pipeline"]
        assert ("created_at" in pipeline) == (naming == "v2")
        assert ("created" in pipeline) == (naming == "v3")
