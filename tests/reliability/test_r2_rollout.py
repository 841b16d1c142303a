"""R2: the rollout wait under faults.

The rollout-lies matrix of tests/rollout/test_rules.py, played live on the Kubernetes
simulator (each state held for the whole wait), plus terminal pod states, a superseding image,
a deleted workload and green controls, while the simulator drops watches, answers 410 Gone (as
an error and in-stream), 5xx and resets at random. The wait is the product's own
(``kube.connect`` + ``kube.RolloutTracker``, as the rollout check runs it). No lie may ever end
green; a terminal pod state must fail the wait within 2 s of appearing in the cluster.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import HomelabError
from pytest_homelab.rollout.rules import (
    IMAGE_PULL_REASONS,
    STUCK_REASONS,
    RolloutPolicy,
    Target,
)
from pytest_homelab.rollout.tracker import RolloutTracker, connect
from pytest_homelab.sim.faults import FaultPlan
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset
from pytest_homelab.sim.kube.store import WatchEvent
from tests.reliability.figures import Figure, figure

REGISTRY = "registry.example.test/homelab"
NS = "apps"
SPEED = 4.0
FAULT_RATE = 0.25
FAULT_KINDS = ("watch_drop", "gone410", "5xx")  # plus in-stream 410s (expire_watches)
LIE_DEADLINE = (2.0, 3.0)  # seconds: a lie is held this long, then the verdict is due
LONG_DEADLINE = 20.0
FAIL_FAST = 2.0  # a terminal state must fail the wait within this many seconds
# An image pull fails only once it kept failing this long (RolloutPolicy.image_pull_grace):
# its fail-fast budget starts after it. The simulated crash loop already reports 3 restarts.
PULL_GRACE = 1.0
OVERRUN_LIMIT = 2.0
CI_SEEDS, SOAK_SEEDS = 2, 20
WORKERS = 8
NEVER = 1e6

LIES = (
    "image never updated",
    "image never updated (StatefulSet)",
    "image never updated (DaemonSet)",
    "generation not observed",
    "new pods never available",
    "new replicas not all updated",
    "old pods pending termination",
)
TERMINAL = (*sorted(STUCK_REASONS), "ProgressDeadlineExceeded", "paused")
OTHERS = ("green", "green (StatefulSet)", "superseded", "deleted")
SCENARIOS = (*LIES, *TERMINAL, *OTHERS)


def sha_of(seed: int, salt: str) -> str:
    import hashlib

    return hashlib.sha1(f"r2-{seed}-{salt}".encode()).hexdigest()


@dataclass
class Run:
    scenario: str
    seed: int
    verdict: str
    wall: float
    deadline: float
    latency: float | None  # terminal states: from visible in the cluster to the verdict
    traceback: str | None
    faults: Counter[str]
    requests: int
    expired: int
    relists: int  # the tracker's relists after a 410 (WatchStats.relists_after_410)


def expected(scenario: str) -> str:
    if scenario in LIES:
        return "DeadlineExceeded"
    if scenario in TERMINAL:
        return "CheckFailed"
    return {"superseded": "Superseded", "deleted": "NotFound"}.get(scenario, "PASS")


def kind_of(scenario: str) -> str:
    for kind in ("StatefulSet", "DaemonSet"):
        if kind in scenario:
            return kind
    return "Deployment"


def image(name: str, sha: str) -> str:
    return f"{REGISTRY}/{name}:main-{sha[:8]}"


def is_stuck(scenario: str, event: WatchEvent) -> bool:
    """The change puts the terminal state in the cluster (what the wait has to notice)."""
    obj = event.obj
    if event.namespace != NS or event.type == "DELETED":
        return False
    if scenario == "ProgressDeadlineExceeded" and event.resource == "deployments":
        conditions = obj.get("status", {}).get("conditions") or []
        return any(c.get("reason") == "ProgressDeadlineExceeded" for c in conditions)
    if scenario == "paused" and event.resource == "deployments":
        spec = obj.get("spec", {})
        return bool(spec.get("paused")) and "main-" in str(spec.get("template"))
    if event.resource != "pods" or scenario not in STUCK_REASONS:
        return False
    statuses = obj.get("status", {}).get("containerStatuses") or []
    return any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == scenario for s in statuses
    )


def build(scenario: str, seed: int) -> tuple[KubeSim, Callable[[KubeSim], None], float]:
    """The cluster for ``scenario``, what lands during the wait, and the wait's deadline."""
    rng = random.Random(seed)
    sha = sha_of(seed, "landed")
    old = f"{REGISTRY}/web:{sha_of(seed, 'old')[:8]}"
    new = image("web", sha)
    timing = Timing(observe=0.05, terminate=0.2)
    terminating = False
    if scenario == "generation not observed":
        timing = Timing(observe=NEVER, terminate=0.2)
    if scenario == "old pods pending termination":
        timing, terminating = Timing(observe=0.05, terminate=NEVER), True
    faults = FaultPlan(seed=seed, rate=FAULT_RATE, kinds=FAULT_KINDS)
    sim = KubeSim(speed=SPEED, timing=timing, faults=faults, terminating_replicas=terminating)
    sim.create_namespace(NS)
    kind = kind_of(scenario)
    replicas = rng.randint(2, 4)
    if kind == "StatefulSet":
        sim.apply(statefulset("web", NS, old, replicas=replicas))
    elif kind == "DaemonSet":
        sim.apply(daemonset("web", NS, old))
    else:
        sim.apply(
            deployment(
                "web",
                NS,
                old,
                replicas=replicas,
                progress_deadline=1 if scenario == "ProgressDeadlineExceeded" else 600,
                paused=scenario == "paused",
                max_surge=1 if scenario == "new replicas not all updated" else "25%",
                max_unavailable=0 if scenario == "new replicas not all updated" else "25%",
            )
        )
    if scenario in STUCK_REASONS:
        sim.image_behavior(new, fail=scenario)
    if scenario in (
        "new pods never available",
        "new replicas not all updated",
        "ProgressDeadlineExceeded",
    ):
        sim.image_behavior(new, ready=NEVER)
    deadline = rng.uniform(*LIE_DEADLINE) if scenario in LIES else LONG_DEADLINE

    def land(s: KubeSim) -> None:
        if scenario.startswith("image never updated"):
            return
        s.set_image(NS, "web", new, kind=kind)
        if scenario == "superseded":
            time.sleep(rng.uniform(0.0, 0.3))
            s.set_image(NS, "web", image("web", sha_of(seed, "newer")), kind=kind)
        if scenario == "deleted":
            time.sleep(rng.uniform(0.0, 0.3))
            s.delete("deployments", NS, "web")

    if scenario in ("superseded", "deleted"):  # ours must still be rolling out when it happens
        sim.image_behavior(new, ready=NEVER)
    return sim, land, deadline


def wait_once(scenario: str, seed: int, workdir: Path) -> Run:
    """One rollout wait of ``scenario`` under the seed's faults, simulator included."""
    rng = random.Random(seed * 7919 + SCENARIOS.index(scenario))
    marks: dict[str, float] = {}
    sim, land, limit = build(scenario, seed)

    def note(event: WatchEvent) -> None:  # called by the store at each write, under its lock
        if scenario in TERMINAL and "visible" not in marks and is_stuck(scenario, event):
            marks["visible"] = time.monotonic()

    sim.store.on_change(note)
    sha = sha_of(seed, "landed")
    target = Target("web", NS, "web", sha, kind_of(scenario), None, f"{REGISTRY}/web")
    stop = threading.Event()
    failure: str | None = None
    verdict = "?"
    relists = 0
    kubeconfig = sim.kubeconfig(workdir / f"kubeconfig-{seed}-{SCENARIOS.index(scenario)}")

    def drive() -> None:
        """Land once the wait watches, and expire its watches now and then."""
        while sim.watches_opened == 0 and not stop.wait(0.01):
            pass
        if stop.wait(rng.uniform(0.1, 0.4)):
            return
        land(sim)
        next_expiry = time.monotonic() + rng.uniform(0.2, 1.0)
        while not stop.wait(0.01):
            if time.monotonic() >= next_expiry:
                sim.expire_watches()  # an in-stream 410: the watch must relist
                next_expiry = time.monotonic() + rng.uniform(0.3, 1.5)

    driver = threading.Thread(target=drive, name=f"r2-driver-{seed}")
    with sim:
        client = connect(kubeconfig=str(kubeconfig), context=None, environ={})

        # kubectl (and our default) call a rollout done while old pods still terminate; the
        # strict setting waits for them, and it is the strict wait this lie is held against.
        strict = scenario == "old pods pending termination"
        policy = RolloutPolicy(image_pull_grace=PULL_GRACE, strict_terminating=strict)
        tracker = RolloutTracker(client, [target], rng=random.Random(seed), policy=policy)
        started = time.monotonic()
        driver.start()
        try:
            results = tracker.wait(Deadline.after(limit))
            outcome = results["web"].outcome
            verdict = "PASS" if outcome is None else type(outcome).__name__
        except HomelabError as exc:
            verdict = type(exc).__name__
        except Exception:
            failure = traceback.format_exc()
            verdict = "traceback"
        finally:
            ended = time.monotonic()
            relists = tracker.view.stats.relists_after_410
            tracker.close()
            client.close()
            stop.set()
            driver.join(timeout=10)
    latency = ended - marks["visible"] if "visible" in marks else None
    faults = Counter(f for *_, f in sim.requests if f)
    return Run(
        scenario,
        seed,
        verdict,
        ended - started,
        limit,
        latency,
        failure,
        faults,
        len(sim.requests),
        sim.expired_sent,
        relists,
    )


def record(fig: Figure, run: Run, latencies: list[float]) -> None:
    want = expected(run.scenario)
    where = f"{run.scenario} seed {run.seed}"
    problem = None
    if run.verdict != want:
        problem = f"{where}: expected {want}, got {run.verdict}"
    if run.scenario in TERMINAL:
        if run.latency is None:
            if run.verdict == want:
                problem = f"{where}: failed, but the state never appeared in the cluster"
        else:
            latencies.append(run.latency)
            budget = FAIL_FAST + (PULL_GRACE if run.scenario in IMAGE_PULL_REASONS else 0.0)
            if run.latency > budget:
                problem = f"{where}: failed {run.latency:.2f} s after the state appeared"
    fig.run(
        outcome=run.verdict,
        wall=run.wall,
        overrun=run.wall - run.deadline,
        wrong=problem,
        traceback=f"{where}: {run.traceback}" if run.traceback else None,
        faults=run.faults,
        requests=run.requests,
    )


def test_rollout_under_faults(soak: bool, mode: str, tmp_path: Path) -> None:
    """Every scenario × seeds under random watch drops, 410s and 5xx: 0 false greens, terminal
    states fail within 2 s, every verdict as expected, no tracebacks."""
    seeds = range(SOAK_SEEDS if soak else CI_SEEDS)
    fig = figure("R2 rollout under faults", mode)
    jobs = [(scenario, seed) for seed in seeds for scenario in SCENARIOS]
    latencies: list[float] = []
    false_greens: list[str] = []
    in_stream = relists = 0
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="r2") as pool:
        for run in pool.map(lambda job: wait_once(job[0], job[1], tmp_path), jobs):
            record(fig, run, latencies)
            in_stream += run.expired
            relists += run.relists
            if run.scenario in LIES and run.verdict == "PASS":
                false_greens.append(f"{run.scenario} seed {run.seed}")
    fig.note("in_stream_410_sent", in_stream)
    fig.note("relists_after_410", relists)
    fig.note("scenarios", len(SCENARIOS))
    fig.note("false_greens", len(false_greens))
    fig.note("terminal_fail_latency_max_s", round(max(latencies), 3) if latencies else None)
    fig.note(
        "terminal_fail_latency_p95_s",
        round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
    )
    summary = fig.summary()
    assert summary["runs"] == len(jobs)
    assert false_greens == []
    assert fig.wrong == [], "\n".join(fig.wrong[:10])
    assert fig.tracebacks == [], "\n".join(fig.tracebacks[:3])
    assert max(fig.overruns) <= OVERRUN_LIMIT, summary
    assert set(FAULT_KINDS) <= set(fig.faults) and in_stream > 0, fig.faults
    assert relists > 0, "410s were sent, and no tracker relisted"


def test_an_image_replaced_before_the_first_look_is_superseded(tmp_path: Path) -> None:
    """Ours lands, then another commit's image replaces it, while the pods list still fails."""
    faults = FaultPlan(rate=0.0, kinds=())
    faults.inject("5xx", count=3, path_prefix=f"/api/v1/namespaces/{NS}/pods")  # ≥ 0.7 s
    sim = KubeSim(speed=SPEED, timing=Timing(observe=0.05, terminate=0.2), faults=faults)
    sim.create_namespace(NS)
    sha = sha_of(-1, "landed")
    sim.apply(deployment("web", NS, f"{REGISTRY}/web:{sha_of(-1, 'old')[:8]}"))
    sim.image_behavior(image("web", sha), ready=NEVER)
    target = Target("web", NS, "web", sha, "Deployment", None, f"{REGISTRY}/web")
    stop = threading.Event()

    def land_twice() -> None:
        while sim.watches_opened == 0 and not stop.wait(0.005):
            pass
        sim.set_image(NS, "web", image("web", sha))
        if not stop.wait(0.2):
            sim.set_image(NS, "web", image("web", sha_of(-1, "newer")))

    driver = threading.Thread(target=land_twice)
    with sim:
        client = connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc")), context=None, environ={})
        tracker = RolloutTracker(client, [target], rng=random.Random(1))
        driver.start()
        try:
            outcome = tracker.wait(Deadline.after(5.0))["web"].outcome
        finally:
            tracker.close()
            client.close()
            stop.set()
            driver.join(timeout=10)
    assert type(outcome).__name__ == "Superseded", outcome
