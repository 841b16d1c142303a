"""Fault injection: every kind as a raw HTTP client meets it, and the plan's determinism."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from pytest_homelab.sim.faults import WOODPECKER_FAULTS, FaultPlan
from pytest_homelab.sim.woodpecker import WoodpeckerSim
from tests.waiting import wait_until

Call = Callable[..., httpx.Response]
SHA = "e" * 40


@pytest.fixture
def open_sim() -> Iterator[WoodpeckerSim]:
    """No auth, no random faults: only what a test injects."""
    with WoodpeckerSim(token=None, ping_interval=0.1, faults=FaultPlan(rate=0)) as s:
        s.add_repo("o/r")
        s.add_pipeline("o/r", commit=SHA)
        yield s
    assert not s.errors


def test_empty200(open_sim: WoodpeckerSim, get: Call) -> None:
    open_sim.inject("empty200", path_prefix="/api/repos")
    response = get(open_sim, "/api/repos/1/pipelines/1", token=None)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert get(open_sim, "/api/repos/1/pipelines/1", token=None).json()["number"] == 1  # one-shot
    assert [r.fault for r in open_sim.requests] == ["empty200", None]


def test_5xx_and_429(open_sim: WoodpeckerSim, get: Call) -> None:
    open_sim.inject("5xx", count=3)
    open_sim.inject("429")
    for _ in range(3):
        response = get(open_sim, "/api/repos/1", token=None)
        assert response.status_code in (500, 502, 503) and response.content == b""
    limited = get(open_sim, "/api/repos/1", token=None)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1")
    assert get(open_sim, "/api/repos/1", token=None).status_code == 200
    assert [r.fault for r in open_sim.requests] == ["5xx"] * 3 + ["429", None]


def test_faults_stop_before_the_server_acts(open_sim: WoodpeckerSim, post: Call) -> None:
    open_sim.add_pipeline("o/r", commit=SHA, blocked=True)
    open_sim.inject("5xx", path_prefix="/api/repos/1/pipelines/2/approve")
    assert post(open_sim, "/api/repos/1/pipelines/2/approve", token=None).status_code >= 500
    assert open_sim.pipeline_json("o/r", 2)["status"] == "blocked"


def test_truncated_body_is_a_complete_response_that_is_not_json(
    open_sim: WoodpeckerSim, get: Call
) -> None:
    whole = get(open_sim, "/api/repos/1", token=None).content
    open_sim.inject("truncated")
    cut = get(open_sim, "/api/repos/1", token=None)
    assert cut.status_code == 200
    assert cut.content == whole[: len(whole) // 2]
    assert int(cut.headers["content-length"]) == len(cut.content)
    assert cut.headers["connection"] == "close"
    with pytest.raises(json.JSONDecodeError):
        cut.json()
    assert open_sim.requests[-1].fault == "truncated"


def test_reset_is_a_real_rst(open_sim: WoodpeckerSim, get: Call) -> None:
    open_sim.inject("reset", count=2)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        get(open_sim, "/api/repos/1", token=None)
    with socket.create_connection((open_sim.host, open_sim.port), timeout=5) as raw:
        raw.sendall(b"GET /api/repos/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            while raw.recv(4096):
                pass
    assert [(r.status, r.fault) for r in open_sim.requests] == [(0, "reset"), (0, "reset")]


def test_stall_trips_a_read_timeout_and_ends_at_stop(leak_check: None) -> None:
    sim = WoodpeckerSim(token=None, faults=FaultPlan(rate=0, stall_seconds=30)).start()
    outcome: list[str] = []

    def stalled_get() -> None:
        try:
            httpx.get(sim.base_url + "/api/repos/1", timeout=10)
            outcome.append("answered")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    try:
        sim.add_repo("o/r")
        sim.inject("stall", count=2)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(sim.base_url + "/api/repos/1", timeout=0.3)
        waiting = threading.Thread(target=stalled_get, name="test-stalled")
        waiting.start()
        wait_until(lambda: not sim.faults.scripted, what="the second request to stall")
    finally:
        started = time.monotonic()
        sim.stop()
    waiting.join(5)
    assert time.monotonic() - started < 1.0 and not waiting.is_alive()
    assert outcome and outcome != ["answered"]


def test_healthz_and_version_never_fail(get: Call) -> None:
    with WoodpeckerSim(token=None, faults=FaultPlan(rate=1.0)) as sim:
        for _ in range(5):
            assert get(sim, "/healthz", token=None).status_code == 204
            assert get(sim, "/version", token=None).status_code == 200
        assert {r.fault for r in sim.requests} == {None}


def test_stream_drop_ends_the_stream_after_a_few_messages(open_sim: WoodpeckerSim) -> None:
    open_sim.inject("stream_drop", count=5, path_prefix="/api/stream")
    for _ in range(5):
        lines: list[str] = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("GET", open_sim.base_url + "/api/stream/events", timeout=5) as r,
        ):
            assert r.status_code == 200
            lines.extend(line for line in r.iter_lines() if line)
        assert lines[0] == ": ping" and 1 <= len(lines) <= 4  # the first ping, then 0-3 more
    assert [r.fault for r in open_sim.requests] == ["stream_drop"] * 5


@pytest.mark.parametrize(
    ("kind", "statuses"), [("5xx", {500, 502, 503}), ("429", {429}), ("empty200", {200})]
)
def test_http_faults_on_the_stream(open_sim: WoodpeckerSim, kind: str, statuses: set[int]) -> None:
    open_sim.inject(kind, path_prefix="/api/stream")
    with httpx.stream("GET", open_sim.base_url + "/api/stream/events", timeout=5) as r:
        assert r.status_code in statuses and r.read() == b""
    assert open_sim.requests[-1].fault == kind


def test_scripted_faults_wait_for_a_route_they_fit(open_sim: WoodpeckerSim, get: Call) -> None:
    open_sim.inject("stream_drop")  # JSON routes cannot carry it
    open_sim.inject("truncated", path_prefix="/api/stream")  # nor the stream this one
    assert get(open_sim, "/api/repos/1", token=None).status_code == 200
    assert [r.fault for r in open_sim.requests] == [None]
    assert [kind for kind, _, _ in open_sim.faults.scripted] == ["stream_drop", "truncated"]


# -- the plan --------------------------------------------------------------------------------


def test_plan_is_deterministic_for_a_seed() -> None:
    paths = [f"/api/repos/1/pipelines?{n}" for n in range(300)]

    def run(seed: int, allowed: tuple[str, ...] | None = None) -> list[str | None]:
        plan = FaultPlan(seed=seed, rate=0.3)
        return [plan.decide(p, allowed) for p in paths]

    first = run(42)
    assert first == run(42) and first != run(43)
    assert 60 < sum(1 for f in first if f) < 120
    assert set(first) == {None, *WOODPECKER_FAULTS}
    # Restricting kinds changes which fault, never whether: the draws stay aligned.
    narrow = run(42, ("5xx",))
    assert [f is None for f in narrow] == [f is None for f in first]
    assert FaultPlan(rate=1.0).decide("/healthz") is None


def test_same_seed_same_faults_through_the_simulator() -> None:
    def run() -> list[tuple[str | None, int]]:
        plan = FaultPlan(seed=7, rate=0.5, kinds=("empty200", "5xx", "429", "truncated", "reset"))
        with WoodpeckerSim(token=None, faults=plan) as sim:
            sim.add_repo("o/r")
            # a connection per request: a reset or truncation spoils the one it hits
            fresh = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(limits=fresh, timeout=5) as http:
                for _ in range(30):
                    with contextlib.suppress(httpx.HTTPError):
                        http.get(sim.base_url + "/api/repos/1/pipelines")
            return [(r.fault, r.status) for r in sim.requests]

    first = run()
    assert first == run()
    assert len({fault for fault, _ in first}) >= 4


def test_plan_validates() -> None:
    with pytest.raises(ValueError):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError):
        FaultPlan().inject("5xx", count=0)
