"""The simulator behaves as the API server does (issue 17): strategic merge, JSON merge and
JSON patch, server-side apply, 422 validation, apps/v1 defaulting, list paging, resourceVersion
errors, unsupported field selectors, Table output and wall-bounded timestamps. Each fact cites
its source (kubernetes/apiserver, apimachinery and api at v0.33.13 unless said otherwise)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.lists import decode_continue, encode_continue, human_age
from pytest_homelab.sim.kube.objects import deployment, statefulset

IMAGE = "registry.example.test/homelab/web"
DEPLOYS = "/apis/apps/v1/namespaces/apps/deployments"
PODS = "/api/v1/namespaces/apps/pods"
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


@pytest.fixture
def k8s() -> Iterator[KubeSim]:
    with KubeSim(speed=4.0, timing=Timing(observe=0.1)) as sim:
        sim.create_namespace("apps")
        yield sim


def patch(sim: KubeSim, path: str, body: Any, headers: dict[str, str], **params: str) -> Any:
    return httpx.patch(sim.url + path, json=body, headers=headers, params=params, timeout=10)


def containers(obj: Any) -> dict[str, Any]:
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


def test_strategic_merge_merges_lists_by_their_patch_merge_key(k8s: KubeSim) -> None:
    # core/v1 types.go@v0.33.13: containers by name (3918), env by name (2823), ports by
    # containerPort (2806), volumeMounts by mountPath (2859), volumes by name (3891).
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", extra=[("proxy", "envoy:1.30")]))
    before = containers(k8s.get("deployments", "apps", "web"))
    body = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "proxy"}, {"name": "web"}],
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                            "ports": [{"containerPort": 9999, "name": "extra"}],
                        }
                    ],
                }
            }
        }
    }
    r = patch(k8s, f"{DEPLOYS}/web", body, SMP)
    assert r.status_code == 200, r.text
    after = containers(r.json())
    assert list(after) == ["proxy", "web"]  # $setElementOrder
    web = after["web"]
    assert web["image"] == f"{IMAGE}:aaaaaaa1"  # untouched fields survive
    assert web["volumeMounts"] == before["web"]["volumeMounts"]
    env = {e["name"]: e.get("value") for e in web["env"]}
    assert env["LOG_LEVEL"] == "debug" and "POD_NAME" in env
    assert [p["containerPort"] for p in web["ports"]] == [8080, 9999]
    assert after["proxy"] == before["proxy"]


def test_strategic_merge_directives(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", extra=[("proxy", "envoy:1.30")]))
    deleted = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}}},
        SMP,
    ).json()
    assert list(containers(deleted)) == ["web"]
    replaced = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"metadata": {"labels": {"$patch": "replace", "app": "web"}}},
        SMP,
    ).json()
    assert replaced["metadata"]["labels"] == {"app": "web"}
    # Deployment.spec.strategy is retainKeys (apps/v1 types.go:394-395): Recreate drops the
    # rollingUpdate block instead of failing validation.
    recreate = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        SMP,
    ).json()
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    env_only = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["--x"]}]}}}},
        SMP,
    ).json()
    assert containers(env_only)["web"]["image"] == f"{IMAGE}:aaaaaaa1"


def test_merge_patch_and_json_patch(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1"))
    # A JSON merge patch replaces lists whole: the real server does the same.
    merged = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x:1"}]}}}},
        MERGE,
    ).json()
    assert containers(merged)["web"] == {
        "name": "web",
        "image": "x:1",
        "imagePullPolicy": "IfNotPresent",  # defaulted again
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": merged["spec"]["replicas"]},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/copied"},
        {
            "op": "add",
            "path": "/spec/template/spec/containers/-",
            "value": {"name": "b", "image": "b:1"},
        },
    ]
    r = patch(k8s, f"{DEPLOYS}/web", ops, JSONPATCH)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"]["copied"] == "web"
    assert list(containers(r.json())) == ["web", "b"]
    failed = patch(
        k8s, f"{DEPLOYS}/web", [{"op": "test", "path": "/spec/replicas", "value": 99}], JSONPATCH
    )
    assert failed.status_code == 422 and failed.json()["kind"] == "Status"


def test_custom_resources_take_no_strategic_merge_patch(k8s: KubeSim) -> None:
    r = patch(k8s, "/apis/tekton.dev/v1/namespaces/apps/pipelineruns/x", {"spec": {}}, SMP)
    assert r.status_code == 415 and "application/merge-patch+json" in r.json()["message"]


def test_validation_is_422_with_the_field(k8s: KubeSim) -> None:
    body = deployment("web", "apps", f"{IMAGE}:aaaaaaa1")
    del body["spec"]["template"]["spec"]["containers"][0]["image"]
    r = httpx.post(k8s.url + DEPLOYS, json=body, timeout=10)
    assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    assert "spec.template.spec.containers[0].image: Required value" in r.json()["message"]
    cause = r.json()["details"]["causes"][0]
    assert cause == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.template.spec.containers[0].image",
    }
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1"))
    # An env-only patch never loses the image (the bug a JSON-merge "strategic" patch had);
    # and a patch that does remove it is refused, not stored.
    gone = patch(
        k8s,
        f"{DEPLOYS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": None}]}}}},
        SMP,
    )
    assert gone.status_code == 422
    assert containers(k8s.get("deployments", "apps", "web"))["web"]["image"].endswith("aaaaaaa1")
    mismatch = deployment("other", "apps", f"{IMAGE}:aaaaaaa1")
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "nope"}}
    r = httpx.post(k8s.url + DEPLOYS, json=mismatch, timeout=10)
    assert r.status_code == 422 and "`selector` does not match template `labels`" in r.text


def minimal(kind: str, name: str, **spec: Any) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{IMAGE}:1"}]},
            },
            **spec,
        },
    }


def test_apps_v1_defaults(k8s: KubeSim) -> None:
    # kubernetes pkg/apis/apps/v1/defaults.go SetDefaults_Deployment/StatefulSet/DaemonSet.
    d = httpx.post(k8s.url + DEPLOYS, json=minimal("Deployment", "d"), timeout=10).json()
    assert d["spec"]["replicas"] == 1 and d["spec"]["revisionHistoryLimit"] == 10
    assert d["spec"]["progressDeadlineSeconds"] == 600
    assert d["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod = d["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    sts_path = "/apis/apps/v1/namespaces/apps/statefulsets"
    for strategy in ({}, {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {}}}):
        name = f"s{len(strategy)}"
        s = httpx.post(k8s.url + sts_path, json=minimal("StatefulSet", name, **strategy)).json()
        assert s["spec"]["updateStrategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": 0},
        }
        assert s["spec"]["podManagementPolicy"] == "OrderedReady"
    on_delete = minimal("StatefulSet", "od", updateStrategy={"type": "OnDelete"})
    s = httpx.post(k8s.url + sts_path, json=on_delete).json()
    assert s["spec"]["updateStrategy"] == {"type": "OnDelete"}
    ds_path = "/apis/apps/v1/namespaces/apps/daemonsets"
    ds = httpx.post(k8s.url + ds_path, json=minimal("DaemonSet", "ds")).json()
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    latest = minimal("Deployment", "l")
    latest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx"
    made = httpx.post(k8s.url + DEPLOYS, json=latest).json()
    assert containers(made)["l"]["imagePullPolicy"] == "Always"


def test_server_side_apply_creates_with_managed_fields(k8s: KubeSim) -> None:
    body = minimal("Deployment", "ssa")
    missing_manager = patch(k8s, f"{DEPLOYS}/ssa", body, APPLY)
    assert missing_manager.status_code == 422 and "fieldManager" in missing_manager.text
    created = patch(k8s, f"{DEPLOYS}/ssa", body, APPLY, fieldManager="ci")
    assert created.status_code == 201, created.text
    fields = created.json()["metadata"]["managedFields"]
    assert [(f["manager"], f["operation"], f["fieldsType"]) for f in fields] == [
        ("ci", "Apply", "FieldsV1")
    ]
    assert 'k:{"name":"ssa"}' in str(fields[0]["fieldsV1"])
    changed = copy.deepcopy(body)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:2"
    updated = patch(k8s, f"{DEPLOYS}/ssa", changed, APPLY, fieldManager="ci").json()
    assert containers(updated)["ssa"]["image"] == f"{IMAGE}:2"
    assert len(updated["metadata"]["managedFields"]) == 1
    assert updated["metadata"]["generation"] == 2
    # Fields the manager applied before and no longer applies are removed; the rest stay.
    with_env = copy.deepcopy(changed)
    with_env["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    with_env["spec"]["template"]["metadata"]["annotations"] = {"note": "x"}
    patch(k8s, f"{DEPLOYS}/ssa", with_env, APPLY, fieldManager="ci")
    dropped = copy.deepcopy(changed)
    dropped["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    final = patch(k8s, f"{DEPLOYS}/ssa", dropped, APPLY, fieldManager="ci").json()
    assert containers(final)["ssa"]["env"] == [{"name": "A", "value": "1"}]
    assert "annotations" not in final["spec"]["template"]["metadata"]
    assert containers(final)["ssa"]["image"] == f"{IMAGE}:2"
    assert final["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted, never applied


def list_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["metadata"]["name"] for item in response.json()["items"]]


def test_limit_and_continue_page_through_a_list(k8s: KubeSim) -> None:
    for n in range(5):
        k8s.apply(deployment(f"web-{n}", "apps", f"{IMAGE}:aaaaaaa1"))
    names: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    pages = 0
    while True:
        page = httpx.get(k8s.url + DEPLOYS, params=params, timeout=10)
        names += list_names(page)
        pages += 1
        meta = page.json()["metadata"]
        if not meta.get("continue"):
            break
        assert meta["remainingItemCount"] == 5 - len(names)
        params = {"limit": "2", "continue": meta["continue"]}
    assert names == [f"web-{n}" for n in range(5)] and pages == 3
    bad = httpx.get(k8s.url + DEPLOYS, params={"continue": "!!!"}, timeout=10)
    assert bad.status_code == 400 and "invalid continue token" in bad.json()["message"]
    with_rv = httpx.get(
        k8s.url + DEPLOYS,
        params={"continue": encode_continue(1001, "apps/x\x00"), "resourceVersion": "5"},
    )
    assert with_rv.status_code == 400
    assert "not allowed when using continue" in with_rv.json()["message"]
    assert decode_continue(encode_continue(7, "a/b\x00")) == (7, "a/b\x00")


def test_resource_version_semantics_and_errors(k8s: KubeSim) -> None:
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1"))
    listed = httpx.get(k8s.url + DEPLOYS, timeout=10).json()
    rv = int(listed["metadata"]["resourceVersion"])
    garbage = httpx.get(k8s.url + DEPLOYS, params={"resourceVersion": "abc"})
    assert garbage.status_code == 400 and "invalid resource version" in garbage.text
    future = httpx.get(k8s.url + DEPLOYS, params={"resourceVersion": str(rv + 10_000)})
    assert future.status_code == 504 and future.json()["reason"] == "Timeout"
    assert future.json()["message"].startswith(f"Too large resource version: {rv + 10_000}")
    assert future.json()["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    forbidden = httpx.get(k8s.url + DEPLOYS, params={"resourceVersionMatch": "Exact"})
    assert forbidden.status_code == 422
    assert "resourceVersionMatch is forbidden unless resourceVersion is provided" in forbidden.text
    zero = httpx.get(
        k8s.url + DEPLOYS, params={"resourceVersionMatch": "Exact", "resourceVersion": "0"}
    )
    assert zero.status_code == 422 and 'forbidden for resourceVersion \\"0\\"' in zero.text
    odd = httpx.get(
        k8s.url + DEPLOYS, params={"resourceVersionMatch": "Odd", "resourceVersion": "1"}
    )
    assert odd.status_code == 422 and "Unsupported value" in odd.text
    # Exact: the list as it was at that version, served from the watch history.
    k8s.apply(deployment("later", "apps", f"{IMAGE}:aaaaaaa1"))
    then = httpx.get(
        k8s.url + DEPLOYS, params={"resourceVersionMatch": "Exact", "resourceVersion": str(rv)}
    )
    assert list_names(then) == ["web"] and then.json()["metadata"]["resourceVersion"] == str(rv)
    assert "later" in list_names(httpx.get(k8s.url + DEPLOYS, params={"resourceVersion": str(rv)}))
    k8s.store.compact()
    old = httpx.get(
        k8s.url + DEPLOYS, params={"resourceVersionMatch": "Exact", "resourceVersion": str(rv)}
    )
    assert old.status_code == 410 and old.json()["reason"] == "Expired"
    assert old.json()["message"] == f"too old resource version: {rv}"


def test_unsupported_field_selectors_are_400(k8s: KubeSim) -> None:
    ok = httpx.get(k8s.url + PODS, params={"fieldSelector": "status.phase=Running"})
    assert ok.status_code == 200
    ok = httpx.get(k8s.url + DEPLOYS, params={"fieldSelector": "metadata.name=web"})
    assert ok.status_code == 200
    bad = httpx.get(k8s.url + DEPLOYS, params={"fieldSelector": "spec.paused=true"})
    assert bad.status_code == 400 and bad.json()["message"] == (
        '"spec.paused" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    bad_pod = httpx.get(k8s.url + PODS, params={"fieldSelector": "spec.containers=x"})
    assert bad_pod.status_code == 400
    assert bad_pod.json()["message"] == "field label not supported: spec.containers"
    watch = httpx.get(
        k8s.url + PODS, params={"watch": "true", "fieldSelector": "metadata.labels=x"}
    )
    assert watch.status_code == 400


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_table_output_has_the_real_columns(k8s: KubeSim) -> None:
    # kubernetes pkg/printers/internalversion/printers.go column definitions.
    k8s.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    k8s.wait_until(
        lambda: k8s.get("deployments", "apps", "web").get("status", {}).get("readyReplicas") == 2
    )
    t = httpx.get(k8s.url + DEPLOYS, headers={"Accept": TABLE}).json()
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    cells = t["rows"][0]["cells"]
    assert cells[:4] == ["web", "2/2", 2, 2] and cells[6] == f"{IMAGE}:aaaaaaa1"
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    pods = httpx.get(k8s.url + PODS, headers={"Accept": TABLE}).json()
    assert [c["name"] for c in pods["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert {r["cells"][2] for r in pods["rows"]} == {"Running"}
    one = httpx.get(f"{k8s.url}{DEPLOYS}/web", headers={"Accept": TABLE}).json()
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    runs = httpx.get(
        k8s.url + "/apis/tekton.dev/v1/namespaces/apps/pipelineruns", headers={"Accept": TABLE}
    ).json()
    assert [c["name"] for c in runs["columnDefinitions"]] == [
        "Name",
        "Succeeded",
        "Reason",
        "StartTime",
        "CompletionTime",
    ]


def test_timestamps_never_run_ahead_of_the_wall_clock() -> None:
    with KubeSim(speed=1000.0) as fast:
        fast.create_namespace("apps")
        fast.advance(3600)
        made = fast.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1"))
        created = made["metadata"]["creationTimestamp"]
        assert human_age(created) != "<invalid>"
        assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1)) >= created


def test_statefulset_defaults_send_kubectl_down_the_partition_branch(k8s: KubeSim) -> None:
    made = k8s.apply(statefulset("db", "apps", f"{IMAGE}:aaaaaaa1"))
    assert made["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": 0}
