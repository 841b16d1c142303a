"""The Kubernetes simulator's API semantics over plain HTTP: watch and resourceVersion rules,
selectors, Status bodies, writes, deletion, the audit log, controllers and faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_homelab.sim.faults import FaultPlan
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import deployment

IMAGE = "registry.example.test/homelab/web"
DEPLOYS = "/apis/apps/v1/namespaces/apps/deployments"


@pytest.fixture
def k8s() -> Iterator[KubeSim]:
    with KubeSim(speed=4.0, bookmark_interval=0.3, timing=Timing(observe=0.1)) as sim:
        sim.create_namespace("apps")
        yield sim


def get(sim: KubeSim, path: str, **params: Any) -> httpx.Response:
    return httpx.get(sim.url + path, params=params, timeout=10)


def watch(sim: KubeSim, path: str, seconds: float, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    params = {"watch": "true", **params}
    with httpx.stream("GET", sim.url + path, params=params, timeout=10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
            if time.monotonic() > deadline:
                break
    return events


def test_discovery_shapes(k8s: KubeSim) -> None:
    assert get(k8s, "/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in get(k8s, "/apis").json()["groups"]}
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    resources = {r["name"]: r for r in get(k8s, "/apis/apps/v1").json()["resources"]}
    assert resources["deployments"]["shortNames"] == ["deploy"]
    assert "deployments/status" in resources
    core = {r["name"] for r in get(k8s, "/api/v1").json()["resources"]}
    assert {"pods", "pods/log", "namespaces", "events"} <= core
    assert get(k8s, "/version").json()["minor"] == "30"
    assert get(k8s, "/apis/nope/v1").status_code == 404


def test_list_then_watch_from_its_resource_version(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    listing = get(k8s, DEPLOYS).json()
    rv = listing["metadata"]["resourceVersion"]
    assert listing["kind"] == "DeploymentList" and [
        i["metadata"]["name"] for i in listing["items"]
    ] == ["web"]
    threading.Timer(0.3, lambda: k8s.set_image("apps", "web", f"{IMAGE}:bbbbbbb2")).start()
    events = watch(k8s, DEPLOYS, 1.0, resourceVersion=rv, timeoutSeconds="1")
    assert events and all(e["type"] != "ADDED" for e in events)  # no replay of what was listed
    images = [
        e["object"]["spec"]["template"]["spec"]["containers"][0]["image"]
        for e in events
        if e["type"] == "MODIFIED"
    ]
    assert f"{IMAGE}:bbbbbbb2" in images
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_version_starts_with_synthetic_adds(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    events = watch(k8s, DEPLOYS, 0.3, timeoutSeconds="1")
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "web"


def test_bookmarks_only_when_allowed_and_timeout_ends_the_stream(k8s: KubeSim) -> None:
    rv = get(k8s, DEPLOYS).json()["metadata"]["resourceVersion"]
    started = time.monotonic()
    events = watch(
        k8s, DEPLOYS, 5.0, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="1"
    )
    assert time.monotonic() - started < 3  # ended by the server after timeoutSeconds
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and set(bookmarks[0]["object"]["metadata"]) == {"resourceVersion"}
    plain = watch(k8s, DEPLOYS, 5.0, resourceVersion=rv, timeoutSeconds="1")
    assert not [e for e in plain if e["type"] == "BOOKMARK"]


def test_too_old_resource_version_is_410_in_the_stream(k8s: KubeSim) -> None:
    old = get(k8s, DEPLOYS).json()["metadata"]["resourceVersion"]
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    k8s.store.compact()
    events = watch(k8s, DEPLOYS, 1.0, resourceVersion=old)
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert "too old resource version" in status["message"]


def test_selectors(k8s: KubeSim) -> None:
    for name in ("web", "api"):
        k8s.apply(deployment(name, "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    by_field = get(k8s, DEPLOYS, fieldSelector="metadata.name=api").json()["items"]
    assert [i["metadata"]["name"] for i in by_field] == ["api"]
    by_label = get(k8s, DEPLOYS, labelSelector="app.kubernetes.io/name in (web,x)").json()["items"]
    assert [i["metadata"]["name"] for i in by_label] == ["web"]
    negated = get(k8s, DEPLOYS, labelSelector="app.kubernetes.io/name!=web,!nope").json()["items"]
    assert [i["metadata"]["name"] for i in negated] == ["api"]
    bad = get(k8s, DEPLOYS, labelSelector="a in (b")
    assert bad.status_code == 400 and bad.json()["kind"] == "Status"


def test_status_bodies(k8s: KubeSim) -> None:
    missing = get(k8s, f"{DEPLOYS}/ghost")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "ghost" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "ghost", "group": "apps", "kind": "deployments"},
    }
    body = deployment("web", "apps", f"{IMAGE}:aaaaaaa1")
    created = httpx.post(k8s.url + DEPLOYS, json=body)
    assert created.status_code == 201 and created.json()["metadata"]["generation"] == 1
    again = httpx.post(k8s.url + DEPLOYS, json=body)
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    nameless = httpx.post(k8s.url + DEPLOYS, json={"kind": "Deployment", "metadata": {}})
    assert nameless.status_code == 422 and nameless.json()["reason"] == "Invalid"
    stale = created.json()
    stale["metadata"]["resourceVersion"] = "1"
    conflict = httpx.put(f"{k8s.url}{DEPLOYS}/web", json=stale)
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
    unknown_ns = httpx.post(k8s.url + "/apis/apps/v1/namespaces/nope/deployments", json=body)
    assert unknown_ns.status_code == 404
    weird = httpx.patch(
        f"{k8s.url}{DEPLOYS}/web", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert weird.status_code == 415


def test_patches_and_generation(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    merged = httpx.patch(
        f"{k8s.url}{DEPLOYS}/web",
        json={"spec": {"replicas": 3}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert merged["spec"]["replicas"] == 3 and merged["metadata"]["generation"] == 2
    ops = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": f"{IMAGE}:bbbbbbb2",
        }
    ]
    patched = httpx.patch(
        f"{k8s.url}{DEPLOYS}/web",
        content=json.dumps(ops).encode(),
        headers={"Content-Type": "application/json-patch+json"},
    ).json()
    assert patched["metadata"]["generation"] == 3
    labels = httpx.patch(
        f"{k8s.url}{DEPLOYS}/web",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert labels["metadata"]["generation"] == 3  # metadata is not spec
    status = httpx.patch(
        f"{k8s.url}{DEPLOYS}/web/status",
        json={"status": {"replicas": 99}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert status["status"]["replicas"] == 99 and status["metadata"]["generation"] == 3


def test_rolling_update_respects_surge_and_availability(k8s: KubeSim) -> None:
    k8s.apply(
        deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=4, max_surge=1, max_unavailable=0)
    )
    k8s.wait_until(
        lambda: (
            k8s.get("deployments", "apps", "web").get("status", {}).get("availableReplicas") == 4
        )
    )
    samples: list[tuple[int, int]] = []

    def sample(event: Any) -> None:
        if event.resource == "deployments":
            status = event.obj.get("status", {})
            samples.append((status.get("replicas", 0), status.get("availableReplicas", 0)))

    k8s.store.on_change(sample)
    k8s.set_image("apps", "web", f"{IMAGE}:bbbbbbb2")
    k8s.wait_until(
        lambda: (
            k8s.get("deployments", "apps", "web")["status"].get("updatedReplicas") == 4
            and k8s.get("deployments", "apps", "web")["status"].get("replicas") == 4
        )
    )
    assert samples and max(r for r, _ in samples) <= 5  # replicas + maxSurge
    assert min(a for _, a in samples) >= 4  # never below replicas - maxUnavailable


def test_pod_deletion_is_graceful_and_owners_are_collected(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    k8s.wait_until(lambda: len(k8s.store.live("pods", "apps")) == 2)
    pod = k8s.store.live("pods", "apps")[0]["metadata"]["name"]
    deleted = httpx.delete(f"{k8s.url}/api/v1/namespaces/apps/pods/{pod}").json()
    assert deleted["metadata"].get("deletionTimestamp")  # Terminating first
    k8s.wait_until(lambda: k8s.store.find("pods", "apps", pod) is None)
    httpx.delete(f"{k8s.url}{DEPLOYS}/web")
    k8s.wait_until(
        lambda: not k8s.store.live("replicasets", "apps") and not k8s.store.live("pods", "apps")
    )


def test_namespace_deletion_cascades(k8s: KubeSim) -> None:
    k8s.controllers.timing.terminate = 8.0  # pods take 2 s (real) to go: still Terminating below
    k8s.create_namespace("tmp")
    k8s.apply(deployment("web", "tmp", f"{IMAGE}:aaaaaaa1", replicas=1))
    k8s.wait_until(lambda: len(k8s.store.live("pods", "tmp")) == 1)
    httpx.delete(f"{k8s.url}/api/v1/namespaces/tmp")
    assert k8s.get("namespaces", "", "tmp")["status"]["phase"] == "Terminating"
    refused = httpx.post(
        k8s.url + "/apis/apps/v1/namespaces/tmp/deployments",
        json=deployment("x", "tmp", f"{IMAGE}:aaaaaaa1"),
    )
    assert refused.status_code == 403
    k8s.wait_until(lambda: k8s.store.find("namespaces", "", "tmp") is None)
    assert not k8s.store.live("deployments", "tmp")


def test_audit_log_records_every_write_and_who(k8s: KubeSim) -> None:
    httpx.post(k8s.url + DEPLOYS, json=deployment("web", "apps", f"{IMAGE}:aaaaaaa1"))
    k8s.wait_until(lambda: len(k8s.store.live("pods", "apps")) == 2)
    writes = k8s.store.writes("apps")
    assert ("client", "create", "deployments", "web") in {
        (w.actor, w.verb, w.resource, w.name) for w in writes
    }
    assert {w.actor for w in writes} >= {"client", "controller"}
    assert not k8s.store.writes("elsewhere")


def test_sendinitialevents_is_refused_so_clients_fall_back(k8s: KubeSim) -> None:
    refused = get(
        k8s, DEPLOYS, watch="true", sendInitialEvents="true", resourceVersionMatch="NotOlderThan"
    )
    assert refused.status_code == 422 and refused.json()["kind"] == "Status"


def test_pod_logs(k8s: KubeSim) -> None:
    k8s.apply(
        deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1, extra=[("proxy", "envoy:1.30")])
    )
    k8s.wait_until(lambda: len(k8s.store.live("pods", "apps")) == 1)
    pod = k8s.store.live("pods", "apps")[0]["metadata"]["name"]
    path = f"/api/v1/namespaces/apps/pods/{pod}/log"
    assert get(k8s, path).status_code == 400  # two containers: say which
    k8s.set_log("apps", pod, "web", ["one", "two", "three"])
    assert get(k8s, path, container="web").text == "one\ntwo\nthree\n"
    assert get(k8s, path, container="web", tailLines="1").text == "three\n"
    assert get(k8s, path, container="nope").status_code == 400


@pytest.mark.parametrize("kind", ["5xx", "reset", "watch_drop", "gone410"])
def test_faults(k8s: KubeSim, kind: str) -> None:
    k8s.faults = FaultPlan(rate=0)
    k8s.faults.inject(kind, path_prefix="/apis/apps")
    if kind == "5xx":
        assert get(k8s, DEPLOYS).status_code in (500, 503)
    elif kind == "reset":
        with pytest.raises(httpx.TransportError):
            get(k8s, DEPLOYS)
    elif kind == "gone410":
        assert watch(k8s, DEPLOYS, 1.0, resourceVersion="1")[0]["object"]["code"] == 410
    else:
        k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
        started = time.monotonic()
        watch(k8s, DEPLOYS, 5.0)  # ends early: the stream is dropped
        assert time.monotonic() - started < 3
    assert any(f == kind for *_, f in k8s.requests)


def test_binds_to_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        KubeSim(host="0.0.0.0")


def raw_chunks(sim: KubeSim, path: str) -> list[bytes]:
    """The data of each HTTP chunk of a GET, read off the socket (httpx hides the framing)."""
    import socket

    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: kube\r\n\r\n".encode())
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            block = conn.recv(65536)
            assert block, "the server closed the stream before its last chunk"
            received += block
    body = received.split(b"\r\n\r\n", 1)[1]
    found: list[bytes] = []
    while True:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return found
        found.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def test_events_that_wait_go_out_together_each_whole(k8s: KubeSim) -> None:
    # kube-apiserver flushes a watch only when no further event is waiting
    # (kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/watch.go
    # @034debc HandleHTTP: `if len(ch) == 0 { flusher.Flush() }`), and Go's chunked writer
    # puts what was written in between into one chunk. A client must read events across and
    # within chunks; the simulator's chunks hold whole events, at most about 64 KiB of them.
    rv = get(k8s, DEPLOYS).json()["metadata"]["resourceVersion"]
    with k8s.store.lock:  # one sync: twenty changes before the watch reads any
        for i in range(20):
            k8s.apply(deployment(f"web-{i:02d}", "apps", f"{IMAGE}:aaaaaaa1", replicas=0))
    chunks = raw_chunks(k8s, f"{DEPLOYS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    per_chunk = [[json.loads(line) for line in c.split(b"\n") if line] for c in chunks]
    events = [e for chunk in per_chunk for e in chunk]
    added_events = [e for e in events if e["type"] == "ADDED"]
    added = [e["object"]["metadata"]["name"] for e in added_events]
    assert added == [f"web-{i:02d}" for i in range(20)]
    # The twenty were pending when the watch began: they go out together (the controllers'
    # updates that follow arrive as they happen, in chunks of their own).
    # (the pending events, up to the twentieth ADDED, fill 64 KiB chunks one after another).
    pending = sum(len(json.dumps(e)) + 1 for e in events[: events.index(added_events[-1]) + 1])
    with_added = sum(any(e["type"] == "ADDED" for e in chunk) for chunk in per_chunk)
    assert with_added <= pending // (64 * 1024) + 2
    assert len(chunks) < len(events)
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    biggest = max(len(line) + 1 for chunk in chunks for line in chunk.split(b"\n") if line)
    assert all(len(chunk) < 64 * 1024 + biggest for chunk in chunks)


def test_the_store_clones_json_through_orjson_and_anything_else_by_walking() -> None:
    import datetime

    from pytest_homelab.sim.kube.store import clone

    pod = {"metadata": {"name": "p", "labels": {"app": "é"}}, "spec": {"containers": [{}]}}
    copied = clone(pod)
    assert copied == pod and copied["metadata"] is not pod["metadata"]
    when = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    odd: dict[Any, Any] = {"at": when, 1: ("a", [2]), "big": 2**70}
    walked = clone(odd)
    assert walked == odd and walked[1] == ("a", [2])  # a tuple stays a tuple when walked
    assert type(walked["at"]) is datetime.datetime  # not turned into text
    assert type(clone({"at": when})["at"]) is datetime.datetime  # nor when only it is odd
    assert walked[1][1] is not odd[1][1]


def test_a_watch_counted_as_open_gets_the_410_of_an_expiry_right_after(
    k8s: KubeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests (and the reliability runs) wait for watches_opened, then call expire_watches():
    # that watch must end with an in-stream 410 Expired however soon the expiry comes. Here it
    # comes while the response headers go out, before the watch has read or sent anything.
    from pytest_homelab.sim.kube.api import _KubeHandler as handler

    original = handler.end_headers
    expired: list[bool] = []

    def end_headers_then_expire(self: Any) -> None:
        original(self)
        if not expired and k8s.watches_opened:
            expired.append(True)
            k8s.expire_watches()

    monkeypatch.setattr(handler, "end_headers", end_headers_then_expire)
    rv = get(k8s, DEPLOYS).json()["metadata"]["resourceVersion"]
    events = watch(k8s, DEPLOYS, 5, resourceVersion=rv, timeoutSeconds=5)
    assert expired == [True]
    assert [e["type"] for e in events][-1:] == ["ERROR"]
    assert events[-1]["object"]["code"] == 410 and k8s.expired_sent == 1
