"""Watch events decoded into the kept fields (pytest_homelab.rollout.events) give exactly what
decoding the whole event and slimming it gives (tracker.slim): on every event of a simulated
cluster rolling out, failing and crashing, and on random damage to those objects (nulls, wrong
types, missing parts), where the typed decoding steps aside for the general one."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_homelab.rollout.events import decode_kept, decode_list_kept
from pytest_homelab.rollout.tracker import decode_list, kept_events, slim
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset

RESOURCES = ("pods", "deployments", "statefulsets", "daemonsets")


def _pods(sim: KubeSim) -> list[dict[str, Any]]:
    return [e.obj for e in list(sim.store.history) if e.resource == "pods"]


def _reasons(sim: KubeSim) -> set[str]:
    return {
        str(((c.get("state") or {}).get("waiting") or {}).get("reason"))
        for pod in _pods(sim)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    }


def _ready_with(sim: KubeSim, image: str) -> bool:
    return any(
        c.get("image") == image and c.get("ready")
        for pod in _pods(sim)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _cluster_events() -> list[tuple[str, str, dict[str, Any]]]:
    """(resource, type, object) of every event of a small cluster's life."""
    with KubeSim() as sim:
        sim.create_namespace("apps")
        sim.image_behavior("r.example.test/bad:*", fail="ErrImagePull", message="not found")
        sim.image_behavior("r.example.test/crash:*", fail="CrashLoopBackOff", restarts=2)
        sim.apply(deployment("web", "apps", "r.example.test/web:1", replicas=2))
        sim.apply(statefulset("db", "apps", "r.example.test/db:1", replicas=2))
        sim.apply(daemonset("agent", "apps", "r.example.test/agent:1"))
        sim.apply(deployment("bad", "apps", "r.example.test/bad:1", replicas=1))
        sim.apply(deployment("crash", "apps", "r.example.test/crash:1", replicas=1))
        sim.wait_until(lambda: {"ErrImagePull", "CrashLoopBackOff"} <= _reasons(sim), 30)
        sim.set_image("apps", "web", "r.example.test/web:2")
        sim.wait_until(lambda: _ready_with(sim, "r.example.test/web:2"), 30)
        return [
            (e.resource, e.type, copy.deepcopy(e.obj))
            for e in list(sim.store.history)
            if e.resource in RESOURCES
        ]


@pytest.fixture(scope="module")
def cluster_events() -> list[tuple[str, str, dict[str, Any]]]:
    return _cluster_events()


def _line(kind: str, obj: Any) -> bytes:
    return orjson.dumps({"type": kind, "object": obj})


class _Response:
    """What kept_events reads: a urllib3 response's stream of chunks."""

    def __init__(self, lines: list[bytes]) -> None:
        self.body = b"\n".join(lines) + b"\n"

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for i in range(0, len(self.body), 700):  # lines split across chunks, as on the wire
            yield self.body[i : i + 700]


def test_every_event_of_a_cluster_is_kept_the_same(
    cluster_events: list[tuple[str, str, dict[str, Any]]],
) -> None:
    typed = 0
    for resource, kind, obj in cluster_events:
        expected = slim(resource, copy.deepcopy(obj))
        version = obj["metadata"].get("resourceVersion")
        decoded = decode_kept(_line(kind, obj), resource)
        if decoded is not None:
            typed += 1
            assert decoded == (kind, version, expected), (resource, kind, obj)
    assert typed == len(cluster_events)  # the fast path is the path for real objects
    kinds = {r for r, _, _ in cluster_events}
    assert kinds == set(RESOURCES)


_DAMAGE: st.SearchStrategy[Any] = st.sampled_from([None, 0, "x", [], {}, [None], [1], True])


@st.composite
def _damaged(draw: st.DrawFn, events: list[tuple[str, str, dict[str, Any]]]) -> tuple[str, Any]:
    resource, _, obj = draw(st.sampled_from(events))
    obj = copy.deepcopy(obj)
    for _ in range(draw(st.integers(1, 3))):
        # walk to a random place in the object and damage it
        node: Any = obj
        path: list[Any] = []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
            )
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(_DAMAGE))
    return resource, obj


@settings(max_examples=150, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_damaged_objects_are_kept_as_slim_keeps_them(
    cluster_events: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    resource, obj = data.draw(_damaged(cluster_events))
    line = _line("MODIFIED", obj)
    try:
        expected: Any = slim(resource, copy.deepcopy(obj) if isinstance(obj, dict) else {})
    except Exception as exc:  # slim itself fails on some damage: so must the kept path
        with pytest.raises(type(exc)):
            list(kept_events(_Response([line]), resource))
        return
    [(kind, _version, kept)] = list(kept_events(_Response([line]), resource))
    assert kind == "MODIFIED"
    assert kept == expected


def _list_body(resource: str, items: list[Any]) -> bytes:
    meta = {"resourceVersion": "4242"}
    return orjson.dumps({"kind": f"{resource}List", "metadata": meta, "items": items})


def test_every_list_of_a_cluster_is_kept_the_same(
    cluster_events: list[tuple[str, str, dict[str, Any]]],
) -> None:
    for resource in RESOURCES:
        latest = {o["metadata"]["name"]: o for r, _, o in cluster_events if r == resource}
        body = _list_body(resource, list(latest.values()))
        expected = decode_list(body, functools.partial(slim, resource))
        assert decode_list_kept(body, resource) == expected
        assert expected[1] == {"resourceVersion": "4242"} and len(expected[0]) == len(latest)


@settings(max_examples=100, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_lists_with_damaged_items_are_kept_as_slim_keeps_them(
    cluster_events: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    resource, obj = data.draw(_damaged(cluster_events))
    same = [o for r, _, o in cluster_events if r == resource][:2]
    body = _list_body(resource, [*same, obj])
    kept = decode_list_kept(body, resource)
    if kept is None:
        return  # the general path decodes it (tracker._list_once): nothing to compare
    assert kept == decode_list(body, functools.partial(slim, resource))


def test_the_typed_fields_are_the_ones_the_rules_read() -> None:
    # The msgspec types and slim() keep the same fields: those rules.py names as read.
    from pytest_homelab.rollout import events, rules

    spec = events._WorkloadSpec.__annotations__.keys() - {"template"}
    assert spec == set(rules.WORKLOAD_SPEC_READ)
    assert events._WorkloadStatus.__annotations__.keys() == set(rules.WORKLOAD_STATUS_READ)
    assert events._WorkloadCondition.__annotations__.keys() == set(rules.WORKLOAD_CONDITION_READ)
    full = {
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/x": "y"}},
        "spec": {"replicas": 2, "strategy": {"type": "Recreate"}, "minReadySeconds": 5},
        "status": {
            "replicas": 2,
            "collisionCount": 1,
            "conditions": [{"type": "Progressing", "reason": "R", "lastUpdateTime": "t"}],
        },
    }
    assert slim("deployments", full) == {
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {}},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "conditions": [{"type": "Progressing", "reason": "R"}]},
    }
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ]
        },
    }
    assert slim("pods", pod)["status"]["conditions"] == [{"type": "Ready", "status": "False"}]


def test_a_finished_statefulset_says_how_many_pods_after_slimming() -> None:
    # kubectl's message for a finished StatefulSet names status.currentReplicas
    # (kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go@v0.33.9, StatefulSet
    # "rolling update complete %d pods at revision %s"): slimming must keep it.
    from pytest_homelab.rollout.rules import rollout_state

    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 2},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "readyReplicas": 3,
            "updatedReplicas": 3,
            "currentReplicas": 3,
            "currentRevision": "db-1",
            "updateRevision": "db-1",
        },
    }
    whole = rollout_state(sts, "StatefulSet").message
    assert "complete 3 pods" in whole
    assert rollout_state(slim("statefulsets", sts), "StatefulSet").message == whole
    typed = decode_kept(_line("MODIFIED", sts), "statefulsets")
    assert typed is not None and rollout_state(typed[2], "StatefulSet").message == whole


def test_a_condition_type_of_the_wrong_type_is_kept_out_not_raised() -> None:
    pod = {"metadata": {"name": "p"}, "status": {"conditions": [{"type": ["Ready"]}]}}
    assert slim("pods", pod)["status"]["conditions"] == []
    typed = decode_kept(_line("MODIFIED", pod), "pods")
    assert typed is not None and typed[2]["status"]["conditions"] == []
