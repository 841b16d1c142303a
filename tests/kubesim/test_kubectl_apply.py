"""Real kubectl 1.27, 1.30 and 1.33 applying manifests to the simulator: client-side apply
(a strategic merge patch kubectl computes from the served OpenAPI v3), server-side apply, and
the objects stay whole. No warning may be printed: kubectl prints one when it cannot compute
the patch from the OpenAPI v3 schema (kubernetes/kubectl pkg/cmd/apply/patcher.go@v0.33.9:
144-151)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pytest_homelab.sim.kube.api import KubeSim

REGISTRY = "registry.example.test/team/api"


def manifest(image: str, *, env: dict[str, str], ports: list[int], replicas: int = 2) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "apps", "labels": {"app": "api"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": image,
                            **(
                                {"env": [{"name": k, "value": v} for k, v in env.items()]}
                                if env
                                else {}
                            ),
                            "ports": [{"containerPort": p, "name": f"p{p}"} for p in ports],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/api"}],
                        },
                        {"name": "proxy", "image": "registry.example.test/envoy:1.30"},
                    ],
                    "volumes": [{"name": "cfg", "configMap": {"name": "api"}}],
                },
            },
        },
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def stored(sim: KubeSim) -> Any:
    return sim.get("deployments", "apps", "api")


def containers(sim: KubeSim) -> dict[str, Any]:
    return {c["name"]: c for c in stored(sim)["spec"]["template"]["spec"]["containers"]}


def test_client_side_apply_keeps_the_object_whole(
    sim: KubeSim, kubectl: Any, tmp_path: Path
) -> None:
    sim.create_namespace("apps")
    first = manifest(f"{REGISTRY}:aaaaaaa1", env={"A": "1", "B": "2"}, ports=[8080, 9090])
    out = kubectl("apply", "-f", str(write(tmp_path / "1.yaml", first)))
    assert out.returncode == 0 and "created" in out.stdout and out.stderr == "", out.stderr
    # An image-only change, an env-only change, a port dropped, a container removed.
    changes = [
        manifest(f"{REGISTRY}:bbbbbbb2", env={"A": "1", "B": "2"}, ports=[8080, 9090]),
        manifest(f"{REGISTRY}:bbbbbbb2", env={"A": "1", "C": "3"}, ports=[8080, 9090]),
        manifest(f"{REGISTRY}:ccccccc3", env={"A": "1", "C": "3"}, ports=[8080], replicas=3),
    ]
    for n, doc in enumerate(changes, 2):
        out = kubectl("apply", "-f", str(write(tmp_path / f"{n}.yaml", doc)))
        assert out.returncode == 0 and "configured" in out.stdout, out.stdout + out.stderr
        assert out.stderr == "", out.stderr  # no "error calculating patch" warning
        api = containers(sim)["api"]
        want = doc["spec"]["template"]["spec"]["containers"][0]
        assert api["image"] == want["image"]
        assert [(e["name"], e["value"]) for e in api["env"]] == [
            (e["name"], e["value"]) for e in want["env"]
        ]
        assert [p["containerPort"] for p in api["ports"]] == [
            p["containerPort"] for p in want["ports"]
        ]
        assert api["volumeMounts"] == [{"name": "cfg", "mountPath": "/etc/api"}]
        assert api["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"}}
        assert containers(sim)["proxy"]["image"] == "registry.example.test/envoy:1.30"
    assert stored(sim)["spec"]["replicas"] == 3
    only_api = changes[-1]
    only_api["spec"]["template"]["spec"]["containers"].pop()  # the proxy goes
    out = kubectl("apply", "-f", str(write(tmp_path / "5.yaml", only_api)))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert list(containers(sim)) == ["api"]


def test_server_side_apply_creates_and_updates(sim: KubeSim, kubectl: Any, tmp_path: Path) -> None:
    sim.create_namespace("apps")
    doc = manifest(f"{REGISTRY}:aaaaaaa1", env={"A": "1"}, ports=[8080])
    out = kubectl("apply", "--server-side", "-f", str(write(tmp_path / "1.yaml", doc)))
    assert out.returncode == 0 and "serverside-applied" in out.stdout, out.stdout + out.stderr
    assert out.stderr == ""
    created = stored(sim)
    managers = [(f["manager"], f["operation"]) for f in created["metadata"]["managedFields"]]
    assert managers == [("kubectl", "Apply")]
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    doc = manifest(f"{REGISTRY}:bbbbbbb2", env={"A": "1"}, ports=[8080])
    out = kubectl("apply", "--server-side", "-f", str(write(tmp_path / "2.yaml", doc)))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    api = containers(sim)["api"]
    assert api["image"] == f"{REGISTRY}:bbbbbbb2" and api["env"] == [{"name": "A", "value": "1"}]
    assert [p["containerPort"] for p in api["ports"]] == [8080]
    assert stored(sim)["metadata"]["generation"] == 2
    fewer = manifest(f"{REGISTRY}:bbbbbbb2", env={}, ports=[8080])  # env no longer applied
    out = kubectl("apply", "--server-side", "-f", str(write(tmp_path / "3.yaml", fewer)))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "env" not in containers(sim)["api"] and "proxy" in containers(sim)


def test_an_invalid_object_is_422_for_kubectl(sim: KubeSim, kubectl: Any, tmp_path: Path) -> None:
    sim.create_namespace("apps")
    doc = manifest(f"{REGISTRY}:aaaaaaa1", env={}, ports=[8080])
    del doc["spec"]["template"]["spec"]["containers"][1]["image"]
    out = kubectl("apply", "-f", str(write(tmp_path / "bad.yaml", doc)))
    assert out.returncode == 1
    assert "spec.template.spec.containers[1].image: Required value" in out.stderr
    assert sim.store.find("deployments", "apps", "api") is None


def test_kubectl_patch_in_every_type(sim: KubeSim, kubectl: Any, tmp_path: Path) -> None:
    sim.create_namespace("apps")
    kubectl(
        "apply", "-f", str(write(tmp_path / "1.yaml", manifest("x:1", env={"A": "1"}, ports=[80])))
    )
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "x:2"}]}}}}
    out = kubectl("patch", "deployment", "api", "-p", json.dumps(strategic))
    assert out.returncode == 0, out.stderr
    assert containers(sim)["api"]["image"] == "x:2" and containers(sim)["api"]["env"]
    assert "proxy" in containers(sim)
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    out = kubectl("patch", "deployment", "api", "--type", "json", "-p", json.dumps(ops))
    assert out.returncode == 0 and stored(sim)["spec"]["replicas"] == 4, out.stderr
    merge = {"metadata": {"labels": {"tier": "backend"}}}
    out = kubectl("patch", "deployment", "api", "--type", "merge", "-p", json.dumps(merge))
    assert out.returncode == 0 and stored(sim)["metadata"]["labels"]["tier"] == "backend"


def test_kubectl_get_prints_the_server_side_table(
    sim: KubeSim, kubectl: Any, tmp_path: Path
) -> None:
    sim.create_namespace("apps")
    sim.advance(7200)  # the scenario clock runs far ahead: timestamps must not
    kubectl("apply", "-f", str(write(tmp_path / "1.yaml", manifest("x:1", env={}, ports=[80]))))
    sim.wait_until(lambda: stored(sim).get("status", {}).get("readyReplicas") == 2)
    out = kubectl("get", "deployments", "-o", "wide")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert row.split()[:4] == ["api", "2/2", "2", "2"] and "<invalid>" not in row
    pods = kubectl("get", "pods")
    assert pods.returncode == 0 and "<invalid>" not in pods.stdout, pods.stdout
    assert pods.stdout.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    bad = kubectl("get", "pods", "--field-selector", "spec.image=x")
    assert bad.returncode == 1
    assert "field label not supported: spec.image" in bad.stderr
