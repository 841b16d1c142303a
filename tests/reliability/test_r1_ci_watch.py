"""R1: the CI watch under faults.

Seeded random watches, each against its own Woodpecker simulator (fast scenario clock) where
about 30 % of the responses are faulty: empty 200s, 5xx, 429 with Retry-After, connection resets,
stalls past the read timeout, truncated JSON and event-stream drops, while other commits'
pipelines (and a pull-request pipeline and a prefix twin of the landed commit) appear around
the watched one, and the watched pipeline may be restarted or superseded. The watch is the
product's own (``ci.open_client`` + ``ci.watch_ci``, as the ci check runs it). Every watch must
give the verdict its script implies, raise nothing but the product's outcomes, and end within
its deadline plus 2 s.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_homelab.ci.models import Repo
from pytest_homelab.ci.phase import CiTarget, open_client, watch_ci
from pytest_homelab.ci.stream import WoodpeckerEventStream
from pytest_homelab.ci.watch import CiResult
from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import HomelabError
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.settings import resolve_settings
from pytest_homelab.core.transport import make_http_client
from pytest_homelab.sim.faults import FaultPlan
from pytest_homelab.sim.woodpecker import Naming, StepSpec, WoodpeckerSim
from tests.reliability.figures import Figure, figure
from tests.reliability.leakguard import LeakGuard
from tests.waiting import wait_until

SLUG = "homelab/app"
TOKEN = "r1-wp-token-5b7d0c9e41"
SPEED = 25.0  # scenario seconds per wall second
FAULT_RATE = 0.3
REQUEST_TIMEOUT = 0.5  # seconds; a stall holds the answer for STALL, past the read timeout
STALL = 1.0
LONG_DEADLINE = 20.0  # for watches that end by themselves
OVERRUN_LIMIT = 2.0
STREAM_CLOSE_LIMIT = 2.0  # seconds close() may take (it only shuts the socket and joins)
CI_WATCHES, SOAK_WATCHES = 120, 1000
WORKERS = 12
NEVER = 1e6  # a step that does not end within any watch

KINDS = {
    "green": 24,
    "red": 14,
    "error": 5,
    "skipped": 5,
    "never": 10,
    "slow": 10,
    "blocked": 6,
    "restarted": 12,
    "superseded": 14,
}


def sha_of(seed: int, salt: str) -> str:
    return hashlib.sha1(f"r1-{seed}-{salt}".encode()).hexdigest()


@dataclass(frozen=True)
class Target(CiTarget):
    """The landing's commit, with a scripted answer to "does this commit contain ours?"."""

    descendants: frozenset[str] = frozenset()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        if ancestor == descendant:
            return True
        return descendant in self.descendants


@dataclass
class Plan:
    """One watch: what the simulator plays and what the verdict must be."""

    seed: int
    kind: str
    naming: str
    sha: str
    deadline: float = LONG_DEADLINE
    appear_grace: float = 10.0
    expected: str = "PASS"
    ours: int | None = None  # the watched pipeline's number, when it exists
    number: int | None = None  # the pipeline a PASS must name
    verified_by: int | None = None
    descendants: frozenset[str] = frozenset()
    action_after: float | None = None  # wall seconds into the watch
    action: str = ""
    action_pass: bool = True


def steps(rng: random.Random, fail: bool = False) -> list[StepSpec]:
    """One to four steps, 2-20 scenario seconds in all; with ``fail``, one of them fails."""
    count = rng.randint(1, 4)
    failing = rng.randrange(count) if fail else -1
    span = rng.uniform(2, 20)
    return [
        StepSpec(
            f"step{n}",
            duration=span / count,
            exit_code=1 if n == failing else 0,
            log=[f"step{n} line {i}" for i in range(rng.randint(1, 60))],
        )
        for n in range(count)
    ]


def script(sim: WoodpeckerSim, seed: int) -> Plan:
    """Fill ``sim`` with the seed's pipelines; the plan says what the watch must conclude."""
    rng = random.Random(seed)
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    sha = sha_of(seed, "ours")
    plan = Plan(seed, kind, sim.naming, sha)
    twin = sha[:8] + sha_of(seed, "twin")[8:]  # same short sha, another commit

    def noise(count: int, late: bool) -> None:
        for n in range(count):
            sim.add_pipeline(
                SLUG,
                commit=sha_of(seed, f"other-{late}-{n}"),
                event=rng.choice(["push", "push", "manual", "tag"]),
                steps=steps(rng, fail=rng.random() < 0.5),
                appear_after=rng.uniform(0, 40) if late else 0.0,
                final_status=rng.choice([None, None, "killed", "error"]),
            )

    noise(rng.randint(0, 3), late=False)
    if rng.random() < 0.5:  # the same commit as a pull request: never the landing's CI
        sim.add_pipeline(
            SLUG, commit=sha, event="pull_request", steps=steps(rng, fail=kind == "green")
        )
    if rng.random() < 0.4:  # another commit with the same 8-character prefix
        sim.add_pipeline(SLUG, commit=twin, steps=steps(rng, fail=kind == "green"))
    event = rng.choice(["push", "push", "push", "manual"])
    appear = rng.uniform(0, 4)
    pending = rng.uniform(0, 2)

    def ours(**kw: object) -> int:
        return sim.add_pipeline(
            SLUG,
            commit=sha,
            event=event,
            appear_after=appear,
            pending_for=pending,
            **kw,  # type: ignore[arg-type]
        )

    if kind == "green":
        plan.number = ours(steps=steps(rng))
    elif kind == "red":
        ours(steps=steps(rng, fail=True))
        plan.expected = "CheckFailed"
    elif kind == "error":
        ours(steps=steps(rng), final_status=rng.choice(["error", "killed"]))
        plan.expected = "CheckFailed"
    elif kind == "skipped":
        plan.number = ours(steps=steps(rng), final_status="skipped")
        # The server never sets skipped on a pipeline: all-skipped workflows give success
        # (woodpecker-ci/woodpecker server/pipeline/pipeline_status.go@v3.17.0:27-35,
        # server/model/workflow.go@v2.8.3:62-72).
        plan.expected = "PASS"
    elif kind == "never":
        plan.appear_grace = rng.uniform(0.8, 1.5)
        plan.expected = "NotFound"
    elif kind == "slow":
        ours(steps=[StepSpec("build", NEVER)])
        plan.deadline = rng.uniform(1.0, 2.0)
        plan.expected = "DeadlineExceeded"
    elif kind == "blocked":
        ours(steps=steps(rng), blocked=True)
        plan.deadline = rng.uniform(1.0, 2.0)
        plan.expected = "Blocked"
    elif kind == "restarted":  # restarted while still running; the rerun's result counts
        first = ours(steps=[StepSpec("build", NEVER)])
        passes = rng.random() < 0.6
        rerun = sim.add_pipeline(
            SLUG,
            commit=sha,
            event=event,
            parent=first,
            appear_after=appear + rng.uniform(3, 25),
            steps=steps(rng, fail=not passes),
        )
        plan.expected, plan.number = ("PASS", rerun) if passes else ("CheckFailed", None)
    else:  # superseded: auto-cancelled for a newer push, which may or may not contain ours
        plan.ours = ours(steps=[StepSpec("build", NEVER)])
        newer = sha_of(seed, "newer")
        plan.action, plan.action_after = newer, (appear + pending) / SPEED + rng.uniform(0.2, 0.8)
        plan.action_pass = rng.random() < 0.6
        if rng.random() < 0.5:
            plan.descendants = frozenset({newer})
            plan.expected = "PASS" if plan.action_pass else "CheckFailed"
        else:
            plan.expected = "Superseded"
    noise(rng.randint(0, 3), late=True)
    return plan


def supersede(sim: WoodpeckerSim, plan: Plan, rng: random.Random) -> None:
    """What a newer push with auto-cancel does: its pipeline appears, ours is cancelled."""
    assert plan.ours is not None
    newer = sim.add_pipeline(SLUG, commit=plan.action, steps=steps(rng, fail=not plan.action_pass))
    sim.cancel(SLUG, plan.ours, superseded_by=newer)
    if plan.descendants and plan.action_pass:
        plan.verified_by = newer


_local = threading.local()


class RecordingStream(WoodpeckerEventStream):
    """The product's event stream, unchanged, but it notes how long close() took and which
    watch (worker thread) it belongs to: a close that hangs, or leaves its reader thread
    running, is a wrong result of that watch."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.close_took = 0.0
        _local.stream = self

    def close(self) -> None:
        started = time.monotonic()
        super().close()
        self.close_took = time.monotonic() - started

    @property
    def thread(self) -> threading.Thread:
        return self._thread


@dataclass
class Watched:
    plan: Plan
    verdict: str
    wall: float
    result: CiResult | None
    texts: list[str]
    traceback: str | None
    faults: Counter[str]
    requests: int
    sim_errors: int
    stream: RecordingStream | None = None


def watch_once(seed: int, workdir: Path) -> Watched:
    """One seeded watch, start to finish (the simulator included)."""
    faults = FaultPlan(seed=seed, rate=FAULT_RATE, stall_seconds=STALL, retry_after=1)
    rng = random.Random(seed)
    naming: Naming = "v2" if rng.random() < 0.25 else "v3"
    sim = WoodpeckerSim(
        host="127.0.0.1", token=TOKEN, faults=faults, speed=SPEED, ping_interval=0.5, naming=naming
    )
    sim.add_repo(SLUG, private=True)
    plan = script(sim, seed)
    texts: list[str] = []
    result: CiResult | None = None
    failure: str | None = None
    verdict = "?"
    stop = threading.Event()
    acting: threading.Thread | None = None
    sim.start()
    try:
        settings = resolve_settings(
            {
                "woodpecker_server": sim.base_url,
                "request_timeout": f"{REQUEST_TIMEOUT}s",
                "ci_poll_interval": "0.2s",
                "ci_stream_recheck": "2s",
                "appear_grace": f"{plan.appear_grace}s",
            },
            environ={},
            cwd=workdir,
        )
        token = Secret(TOKEN)
        target = Target(SLUG, plan.sha, None, None, descendants=plan.descendants)
        if plan.action_after is not None:
            delay = plan.action_after

            def act() -> None:
                if not stop.wait(delay):
                    supersede(sim, plan, random.Random(seed + 1))

            acting = threading.Thread(target=act, name=f"r1-action-{seed}")
        _local.stream = None
        started = time.monotonic()
        if acting is not None:
            acting.start()
        client = open_client(settings, token, on_retry=texts.append)
        try:
            deadline = Deadline.after(plan.deadline)
            repo = client.lookup_repo(SLUG, deadline=deadline)
            result = watch_ci(
                settings,
                client,
                repo,
                target,
                deadline=deadline,
                token=token,
                progress=texts.append,
            )
            verdict = "PASS" if result.outcome is None else type(result.outcome).__name__
            if result.outcome is not None:
                texts.append(result.outcome.render())
        except HomelabError as exc:  # an outcome raised instead of returned: still a verdict
            verdict = type(exc).__name__
            texts.append(exc.render())
        except Exception:
            failure = traceback.format_exc()
            verdict = "traceback"
        finally:
            client.close()
        wall = time.monotonic() - started
    finally:
        stop.set()
        if acting is not None:
            acting.join(timeout=10)
        sim.stop()
    counted = Counter(r.fault for r in sim.requests if r.fault)
    stream: RecordingStream | None = getattr(_local, "stream", None)
    return Watched(
        plan,
        verdict,
        wall,
        result,
        texts,
        failure,
        counted,
        len(sim.requests),
        len(sim.errors),
        stream,
    )


def never_answered(w: Watched) -> bool:
    """The faults hit every look at the pipeline until the deadline (a seed can draw eight
    faulty answers in a row): no progress line ever named it, so DeadlineExceeded is the only
    honest verdict, whatever the script."""
    return w.verdict == "DeadlineExceeded" and not any(t.startswith("ci: #") for t in w.texts)


def stream_problem(w: Watched) -> str | None:
    """What is wrong with how the watch's event stream ended, or None: close() must return
    promptly and leave no reader thread (test_closing_the_event_stream_never_raises_in_its_thread
    shows the close on its own)."""
    stream = w.stream
    if stream is None:
        return None
    if stream.thread.is_alive():
        return "the event stream's reader thread outlived close()"
    if stream.close_took > STREAM_CLOSE_LIMIT:
        return f"closing the event stream took {stream.close_took:.2f} s"
    return None


def judge(w: Watched) -> str | None:
    """What is wrong with the watch's verdict, or None."""
    p = w.plan
    if (problem := stream_problem(w)) is not None:
        return problem
    if never_answered(w):
        return None
    if w.verdict != p.expected:
        return f"expected {p.expected}, got {w.verdict}"
    if w.verdict != "PASS" or w.result is None:
        return None
    pipeline = w.result.pipeline
    if pipeline is None or pipeline.commit != p.sha:
        return f"PASS names pipeline {pipeline} of another commit"
    if p.number is not None and pipeline.number != p.number:
        return f"PASS names #{pipeline.number}, expected #{p.number}"
    if p.descendants:
        by = w.result.verified_by
        if by is None or by.number != p.verified_by:
            return f"PASS should be verified by #{p.verified_by}, got {by}"
    return None


def record(fig: Figure, w: Watched, guard: LeakGuard) -> None:
    p = w.plan
    where = f"seed {p.seed} ({p.kind}, {p.naming})"
    problem = judge(w)
    if never_answered(w) and p.expected != "DeadlineExceeded":
        fig.extra.setdefault("deadline_before_any_answer", []).append(where)
    overrun = w.wall - p.deadline
    for text in w.texts:
        guard.record(f"R1 {where}", text)
    fig.run(
        outcome=w.verdict,
        wall=w.wall,
        overrun=overrun,
        wrong=f"{where}: {problem}" if problem else None,
        traceback=f"{where}: {w.traceback}" if w.traceback else None,
        faults=w.faults,
        requests=w.requests,
    )


def test_ci_watch_under_faults(
    soak: bool,
    mode: str,
    tmp_path: Path,
    leak_guard: LeakGuard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """≥ 1000 (soak) seeded watches, 30 % faulty answers: right verdicts, no tracebacks, on time."""
    count = SOAK_WATCHES if soak else CI_WATCHES
    fig = figure("R1 CI watch under faults", mode)
    leak_guard.watch(TOKEN)
    monkeypatch.setattr("pytest_homelab.ci.phase.WoodpeckerEventStream", RecordingStream)
    escaped: list[tuple[str, str]] = []  # (thread name, exception) of uncaught thread errors
    monkeypatch.setattr(
        threading,
        "excepthook",
        lambda args: escaped.append((getattr(args.thread, "name", "?"), repr(args.exc_value))),
    )
    kinds: Counter[str] = Counter()
    sim_errors = 0
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="r1") as pool:
        for watched in pool.map(lambda seed: watch_once(seed, tmp_path), range(count)):
            record(fig, watched, leak_guard)
            kinds[watched.plan.kind] += 1
            sim_errors += watched.sim_errors
    for name, error in escaped:
        fig.tracebacks.append(f"uncaught in thread {name}: {error}")
    fig.note("scenarios", dict(sorted(kinds.items())))
    fig.note("simulator_errors", sim_errors)
    summary = fig.summary()
    assert summary["runs"] == count
    assert fig.wrong == [], "\n".join(fig.wrong[:10])
    assert fig.tracebacks == [], "\n".join(fig.tracebacks[:3])
    assert sim_errors == 0
    assert max(fig.overruns) <= OVERRUN_LIMIT, f"a watch overran its deadline: {summary}"
    assert summary["fault_rate"] is not None and summary["fault_rate"] >= 0.2
    expected_kinds = {"empty200", "5xx", "429", "reset", "stall", "truncated", "stream_drop"}
    assert set(fig.faults) >= expected_kinds, fig.faults


@pytest.mark.parametrize("seed", [0])
def test_a_watch_is_reproducible_from_its_seed(seed: int) -> None:
    """The same seed scripts the same pipelines and the same fault plan."""
    first = WoodpeckerSim(host="127.0.0.1", token=TOKEN)
    second = WoodpeckerSim(host="127.0.0.1", token=TOKEN)
    try:
        for sim in (first, second):
            sim.add_repo(SLUG)
        a, b = script(first, seed), script(second, seed)
        assert (a.kind, a.expected, a.sha, a.number) == (b.kind, b.expected, b.sha, b.number)
        plan_a, plan_b = FaultPlan(seed=seed), FaultPlan(seed=seed)
        decided = [(plan_a.decide("/api/x"), plan_b.decide("/api/x")) for _ in range(50)]
        assert all(x == y for x, y in decided)
    finally:
        first.stop()
        second.stop()


def test_a_fault_near_the_deadline_keeps_the_blocked_verdict(tmp_path: Path) -> None:
    """Seen blocked, then a 429 (Retry-After 5 s) with seconds left: Blocked, at the deadline."""
    faults = FaultPlan(rate=0.0, kinds=(), retry_after=5)
    lines: list[str] = []
    with WoodpeckerSim(host="127.0.0.1", token=TOKEN, faults=faults, speed=SPEED) as sim:
        repo_id = sim.add_repo(SLUG).id
        sha = sha_of(-1, "blocked")
        sim.add_pipeline(SLUG, commit=sha, steps=[StepSpec("test")], blocked=True)

        def progress(line: str) -> None:
            lines.append(line)
            if "is blocked" in line:  # the next look at the list gets a 429
                sim.inject("429", path_prefix=f"/api/repos/{repo_id}/pipelines")

        settings = resolve_settings(
            {
                "woodpecker_server": sim.base_url,
                "request_timeout": "1s",
                "ci_poll_interval": "0.2s",
                "ci_stream_recheck": "0.3s",
            },
            environ={},
            cwd=tmp_path,
        )
        token = Secret(TOKEN)
        client = open_client(settings, token)
        outcome: HomelabError | None
        try:
            deadline = Deadline.after(4.0)
            repo = client.lookup_repo(SLUG, deadline=deadline)
            started = time.monotonic()
            result = watch_ci(
                settings,
                client,
                repo,
                Target(SLUG, sha, None, None),
                deadline=deadline,
                token=token,
                progress=progress,
            )
            outcome = result.outcome
        except HomelabError as exc:
            outcome = exc
        finally:
            client.close()
        waited = time.monotonic() - started
    assert any("is blocked" in line for line in lines)
    assert type(outcome).__name__ == "Blocked", outcome
    assert waited >= 3.0  # it waited for the approval until the deadline


def test_closing_the_event_stream_never_raises_in_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """close() while the reader is between connecting and its first read: it ends quietly."""
    import pytest_homelab.ci.stream as woodpecker

    escaped: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(repr(args.exc_value)))
    release = threading.Event()

    class HeldWake(threading.Event):
        """The reader's wake-up; its first set() (right after connecting) waits for close()."""

        held = False

        def set(self) -> None:
            if not self.held and threading.current_thread().name == "woodpecker-events":
                self.held = True
                release.wait(5)
            super().set()

    shutdown = woodpecker._shutdown_stream

    def shutdown_then_release(response: object) -> None:
        shutdown(response)  # type: ignore[arg-type]
        release.set()

    monkeypatch.setattr(woodpecker, "_shutdown_stream", shutdown_then_release)
    with WoodpeckerSim(host="127.0.0.1", token=TOKEN) as sim:
        repo = sim.add_repo(SLUG)
        http = make_http_client(sim.base_url)
        stream = WoodpeckerEventStream(http, Repo(repo.id, SLUG), token=Secret(TOKEN))
        wake = HeldWake()
        stream.wake = wake
        stream.start()
        wait_until(lambda: wake.held, what="the stream to connect", timeout=5, interval=0.005)
        stream.close()
        http.close()
        alive = stream._thread.is_alive()  # no public handle on the reader thread
    assert not alive
    assert escaped == []
