"""The tracker's view of the cluster: slimmed objects give the same verdicts as full ones, the
label index finds every pod a selector matches, and LIST bodies decode item by item exactly as
``json.loads`` would."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_homelab.rollout.rules import COMMIT_KEYS, ServiceWait, Target, selector_matches
from pytest_homelab.rollout.tracker import ClusterView, Interest, Touched, decode_list, slim
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset
from tests.kubectl import rolled_out
from tests.waiting import wait_until

SHA = "5c4b3a2f1e0d9e8d7c6b5a4f3e2d1c0b9a8f7e6d"
OLD = "0a1b2c3d4e5f60718293a4b5c63f9c2a1b7d4e8f"
REGISTRY = "registry.example.test/homelab"
KIND_RESOURCE = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}


@pytest.fixture
def cluster() -> Iterator[KubeSim]:
    """Workloads mid-landing: rolled out, rolling, stuck, digest-pinned, superseded."""
    with KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1)) as sim:
        sim.create_namespace("apps")
        image = f"{REGISTRY}/{{}}:main-{{}}".format
        for name in ("web", "api", "stuck", "gone-soon", "pinned", "moved"):
            sim.apply(deployment(name, "apps", image(name, OLD[:8]), replicas=2))
        sim.apply(statefulset("db", "apps", image("db", OLD[:8]), replicas=2))
        sim.apply(daemonset("agent", "apps", image("agent", OLD[:8])))
        sim.image_behavior(image("stuck", SHA[:8]), fail="CrashLoopBackOff")
        sim.image_behavior(image("api", SHA[:8]), ready=1000)  # still rolling
        everything = [(t.kind, t.object_name) for t in targets()]
        settled(sim, "every workload rolled out on the old image", rolled=everything)
        for name in ("web", "api", "stuck", "gone-soon"):
            sim.set_image("apps", name, image(name, SHA[:8]))
        sim.set_image("apps", "db", image("db", SHA[:8]), kind="StatefulSet")
        sim.set_image("apps", "agent", image("agent", SHA[:8]), kind="DaemonSet")
        sim.set_image("apps", "moved", image("moved", "9" * 8))

        def pin(obj: dict[str, Any]) -> None:
            template = obj["spec"]["template"]
            template["spec"]["containers"][0]["image"] = f"{REGISTRY}/pinned@sha256:{'e' * 64}"
            template["metadata"]["annotations"] = {
                COMMIT_KEYS[0]: SHA,
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}",
            }

        sim.patch_spec("apps", "pinned", pin)
        done = [(k, n) for k, n in everything if n not in ("api", "stuck", "gone-soon")]
        settled(
            sim,
            "the landing to settle: rolled out, crash-looping, still rolling",
            rolled=done,
            crashing=image("stuck", SHA[:8]),
            rolling=image("api", SHA[:8]),
        )
        sim.delete("deployments", "apps", "gone-soon")
        gone = f"{REGISTRY}/gone-soon:"
        wait_until(
            lambda: not any(image_of(p).startswith(gone) for p in sim.store.live("pods", "apps")),
            what="the deleted workload's pods to go",
        )
        yield sim


def image_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def settled(
    sim: KubeSim,
    what: str,
    *,
    rolled: list[tuple[str, str]],
    crashing: str | None = None,
    rolling: str | None = None,
) -> None:
    """Wait until the workloads ``rolled`` are rolled out (as kubectl judges it), a pod of image
    ``crashing`` is in CrashLoopBackOff, and a pod of image ``rolling`` exists, not ready."""

    def pods_of(image: str) -> list[dict[str, Any]]:
        return [p for p in sim.store.live("pods", "apps") if image_of(p) == image]

    def waiting_reasons(pod: dict[str, Any]) -> set[str]:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return {s.get("state", {}).get("waiting", {}).get("reason", "") for s in statuses}

    def ready(pod: dict[str, Any]) -> bool:
        conditions = pod.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def holds() -> bool:
        with sim.store.lock:
            for kind, name in rolled:
                obj = sim.store.find(KIND_RESOURCE[kind], "apps", name)
                if obj is None or not rolled_out(kind, obj):
                    return False
            if crashing and not any(
                "CrashLoopBackOff" in waiting_reasons(p) for p in pods_of(crashing)
            ):
                return False
            return not rolling or any(not ready(p) for p in pods_of(rolling))

    wait_until(holds, what=what, timeout=30)


def targets() -> list[Target]:
    names = [("web", "Deployment"), ("api", "Deployment"), ("stuck", "Deployment")]
    names += [("gone-soon", "Deployment"), ("pinned", "Deployment"), ("moved", "Deployment")]
    names += [("db", "StatefulSet"), ("agent", "DaemonSet")]
    return [Target(n, "apps", n, SHA, kind, repository=f"{REGISTRY}/{n}") for n, kind in names]


def on_old_image(workload: dict[str, Any]) -> dict[str, Any]:
    old = copy.deepcopy(workload)
    container = old["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"{REGISTRY}/{old['metadata']['name']}:main-{OLD[:8]}"
    return old


def summary(result: Any) -> Any:
    if result is None:
        return None
    outcome = result.outcome
    shown = None if outcome is None else (type(outcome).__name__, str(outcome))
    return (shown, result.images, result.generation, result.pods, result.image_ids)


def test_slim_objects_give_the_same_verdicts_as_full_ones(cluster: KubeSim) -> None:
    with cluster.store.lock:
        pods = [dict(p) for p in cluster.store.live("pods", "apps")]
        workloads = {
            t.name: cluster.store.find(KIND_RESOURCE[t.kind], "apps", t.object_name)
            for t in targets()
        }
    view = ClusterView()
    view.replace("pods", "apps", [slim("pods", p) for p in pods])
    outcomes = set()
    for t in targets():
        full = workloads[t.name]
        thin = None if full is None else slim(KIND_RESOURCE[t.kind], full)
        with view.changed:
            candidates = view.candidate_pods("apps", thin)
        for now in (1.0, 2.0, 9.0):  # the pods view's grace included
            whole, slimmed = ServiceWait(t, 0), ServiceWait(t, 0)
            expected = whole.observe(full, pods, now)
            seen = slimmed.observe(thin, candidates, now)
            assert summary(seen) == summary(expected), t.name
            assert slimmed.message == whole.message, t.name  # progress lines, deadline text
            outcomes.add(None if expected is None else type(expected.outcome).__name__)
        if full is not None and thin is not None:  # first seen on the old image, then now
            before = ServiceWait(t, 0)
            after = ServiceWait(t, 0)
            assert before.observe(on_old_image(full), pods, 0.5) is None
            assert after.observe(on_old_image(thin), candidates, 0.5) is None
            expected = before.observe(full, pods, 1.0)
            assert summary(after.observe(thin, candidates, 1.0)) == summary(expected), t.name
            outcomes.add(None if expected is None else type(expected.outcome).__name__)
    # the scenario covers every kind of verdict
    assert {None, "NoneType", "CheckFailed", "NotFound", "Superseded"} <= outcomes
    pinned = slim("deployments", workloads["pinned"] or {})
    assert pinned["spec"]["template"]["metadata"]["annotations"] == {COMMIT_KEYS[0]: SHA}
    assert len(json.dumps(slim("pods", pods[0]))) * 3 < len(json.dumps(pods[0]))


def test_candidate_pods_hold_every_pod_a_selector_matches(cluster: KubeSim) -> None:
    view = ClusterView()
    with cluster.store.lock:
        pods = [slim("pods", p) for p in cluster.store.live("pods", "apps")]
        workloads = [slim("deployments", d) for d in cluster.store.live("deployments", "apps")]
    view.replace("pods", "apps", pods[: len(pods) // 2])
    for pod in pods[len(pods) // 2 :]:
        view.apply("pods", "apps", "ADDED", pod)
    view.apply("pods", "apps", "DELETED", pods[0])
    present = pods[1:]
    for workload in workloads:
        selector = workload["spec"]["selector"]
        with view.changed:
            candidates = {p["metadata"]["name"] for p in view.candidate_pods("apps", workload)}
        matching = {
            p["metadata"]["name"]
            for p in present
            if selector_matches(selector, p["metadata"].get("labels") or {})
        }
        assert matching <= candidates
        assert pods[0]["metadata"]["name"] not in candidates


def test_touched_concerns_a_target_only_for_its_own_pods_and_workload() -> None:
    workload = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"}}}}
    news = Touched(pod_labels={("app", "web"), ("tier", "fe"), ("app", "api")})
    assert news.concerns("deployments", workload, "web")
    assert not Touched(pod_labels={("app", "web")}).concerns("deployments", workload, "web")
    assert Touched(workloads={("deployments", "web")}).concerns("deployments", workload, "web")
    assert not Touched(workloads={("deployments", "api")}).concerns("deployments", None, "web")
    assert Touched(everything=True).concerns("deployments", None, "web")
    expressions = {"spec": {"selector": {"matchExpressions": [{"key": "app"}]}}}
    assert Touched(unlabeled_pod=True).concerns("deployments", expressions, "web")


_LABELS = st.sampled_from([("app", "web"), ("app", "api"), ("tier", "fe"), ("n", "1")])
_SELECTORS: st.SearchStrategy[Any] = st.one_of(
    st.none(),  # no workload (yet)
    st.just({"spec": {}}),
    st.just({"spec": {"selector": {"matchExpressions": [{"key": "app"}]}}}),
    st.just({"spec": {"selector": "garbage"}}),
    st.just({"spec": "garbage"}),
    st.lists(_LABELS, min_size=1, max_size=3).map(
        lambda pairs: {"spec": {"selector": {"matchLabels": dict(pairs)}}}
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    workloads=st.lists(st.tuples(_SELECTORS, _SELECTORS), min_size=1, max_size=6),
    changed=st.sets(st.integers(0, 5)),
    pod_labels=st.sets(_LABELS),
    unlabeled=st.booleans(),
)
def test_the_interest_index_finds_every_target_the_news_concerns(
    workloads: list[tuple[Any, Any]], changed: set[int], pod_labels: set[Any], unlabeled: bool
) -> None:
    # Each target was looked at (and indexed) with its first workload; it has its second now,
    # which is news when the target's index is in `changed` (or the two are one object).
    ts = [Target(f"t{i}", "apps", f"w{i}", SHA) for i in range(len(workloads))]
    interest = Interest(ts)
    current = {}
    moved = set()
    for i, (t, (first, second)) in enumerate(zip(ts, workloads, strict=True)):
        interest.index(t, first)
        now = second if i in changed else first
        current[t.name] = now
        if i in changed:
            moved.add(("deployments", t.object_name))
    news = Touched(workloads=moved, pod_labels=pod_labels, unlabeled_pod=unlabeled)
    found = interest.concerned("apps", news)
    for t in ts:
        if news.concerns("deployments", current[t.name], t.object_name):
            assert t.name in found, (t.name, current[t.name], news)
    assert not interest.concerned("other", news)


LISTS = [
    {"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": []},
    {"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}], "metadata": {}},
    {"apiVersion": "v1", "items": None, "metadata": {"resourceVersion": "1", "continue": ""}},
    {"metadata": {"resourceVersion": "3"}, "items": [{"metadata": {"name": 'é\u2028"x'}}]},
    {},
]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("doc", LISTS)
def test_decode_list_matches_json_loads(doc: dict[str, Any], indent: int | None) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=indent is None)
    items, metadata = decode_list(text.encode(), lambda item: item)
    assert items == (doc.get("items") or []) and metadata == doc.get("metadata", {})


@pytest.mark.parametrize(
    "text",
    [
        '{"items":[{"a":1},]}',
        '{"items":[1 2]}',
        '{"a":1}x',
        "",
        '{"a":1,}',
        '{"items":[',
        "[1]",
        '{1:"a"}',
    ],
)
def test_decode_list_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        decode_list(text.encode(), lambda item: item)


def test_a_released_view_keeps_nothing_a_late_watch_delivers() -> None:
    # Once every target is decided the tracker releases the view; a watch thread told to stop
    # may still apply one event or finish a relist, which must not bring objects back.
    view = ClusterView()
    pod = {"metadata": {"name": "p", "labels": {"app": "web"}}}
    view.apply("pods", "apps", "ADDED", pod)
    view.release()
    view.apply("pods", "apps", "MODIFIED", pod)
    view.replace("deployments", "apps", [{"metadata": {"name": "web"}}])
    assert view.released and not view.objects and not view.pods_by_label


def test_an_event_that_changes_nothing_kept_is_no_news() -> None:
    # A rolling Deployment's status is rewritten with new timestamps and managed fields that
    # the rules never read; slimmed, the object is the one the view holds: no target is
    # concerned and the looks are not woken. A real change, or a deletion, still is news.
    view = ClusterView()
    web = {
        "metadata": {"name": "web", "managedFields": [{"time": "1"}]},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "lastUpdateTime": "1"}]},
    }
    view.apply("deployments", "apps", "ADDED", web)
    view.touched.clear()
    again = {
        "metadata": {"name": "web", "managedFields": [{"time": "2"}]},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "lastUpdateTime": "2"}]},
    }
    woken: list[bool] = []
    with view.changed:
        view.changed.notify_all = lambda: woken.append(True)  # type: ignore[method-assign]
    view.apply("deployments", "apps", "MODIFIED", again)
    assert view.touched == {} and woken == []
    view.apply("deployments", "apps", "MODIFIED", {**again, "status": {"replicas": 3}})
    assert view.touched["apps"].workloads == {("deployments", "web")} and woken == [True]
    view.touched.clear()
    pod = {"metadata": {"name": "p", "labels": {"app": "web"}}}
    view.apply("pods", "apps", "ADDED", pod)
    view.touched.clear()
    view.apply("pods", "apps", "DELETED", pod)  # the same object, gone: news
    assert view.touched["apps"].pod_labels == {("app", "web")}
    assert "p" not in view.objects[("pods", "apps")]
