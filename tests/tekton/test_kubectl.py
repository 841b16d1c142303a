"""Real kubectl (every version the machine image ships) against the simulated Tekton, with its
default validation: ``kubectl create`` reads /openapi (v2 as well for 1.27) and, finding the
``fieldValidation`` parameter, leaves validation to the server (``?fieldValidation=Strict``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.tekton import succeeded

if TYPE_CHECKING:
    from tests.kubectl import Kubectl
    from tests.tekton.conftest import Api

RUN = """\
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: ship-run-
spec:
  pipelineRef:
    name: ship
  timeouts:
    pipeline: 30m
"""
ACTORS = {
    "client",
    "test",
    "tekton-pipelines-controller",
    "kubelet",
    "garbage-collector",
    "namespace-controller",
}


def test_create_get_logs_and_cancel(
    sim: KubeSim, api: Api, kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "pr.yaml"
    manifest.write_text(RUN)
    created = kubectl("create", "-f", str(manifest), "-o", "jsonpath={.metadata.name}")
    assert created.returncode == 0, created.stderr
    name = created.stdout
    assert name.startswith("ship-run-") and len(name) == len("ship-run-") + 5
    posts = [p for m, p, _, _ in sim.requests if m == "POST" and "/pipelineruns" in p]
    assert posts and "fieldValidation=Strict" in posts[-1]  # server-side validation chosen
    assert any(p.startswith("/openapi/v3") for _, p, _, _ in sim.requests)

    bad = tmp_path / "bad.yaml"
    bad.write_text(RUN + "  surprise: true\n")
    refused = kubectl("create", "-f", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error from server (BadRequest): error when creating")
    assert 'strict decoding error: unknown field "spec.surprise"' in refused.stderr

    api.wait(name)
    got = kubectl("get", "pipelinerun", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    pr = json.loads(got.stdout)
    assert pr == api.pr(name)
    assert (succeeded(pr) or {}).get("reason") == "Succeeded"
    listed = kubectl("get", "taskruns", "-l", f"tekton.dev/pipelineRun={name}", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    taskruns = {
        tr["metadata"]["labels"]["tekton.dev/pipelineTask"]: tr
        for tr in json.loads(listed.stdout)["items"]
    }
    assert set(taskruns) == {"build", "lint", "test", "deploy"}
    assert {c["name"] for c in pr["status"]["childReferences"]} == {
        tr["metadata"]["name"] for tr in taskruns.values()
    }
    pod = taskruns["test"]["status"]["podName"]
    logs = kubectl("logs", pod, "-c", "step-run")
    assert logs.returncode == 0 and logs.stdout == "task test ok\n", logs.stderr

    sim.tekton.behave("build", duration=1e9)
    second = kubectl("create", "-f", str(manifest), "-o", "jsonpath={.metadata.name}").stdout
    api.wait(second, done=False)
    patched = kubectl(
        "patch", "pipelinerun", second, "--type", "merge", "-p", '{"spec":{"status":"Cancelled"}}'
    )
    assert patched.returncode == 0, patched.stderr
    assert f"pipelinerun.tekton.dev/{second} patched" in patched.stdout
    cond = succeeded(api.wait(second))
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "Cancelled")
    short = kubectl("get", "pr", second, "-o", "jsonpath={.spec.status}")
    assert short.stdout == "Cancelled", short.stderr

    writes = sim.store.writes("ci")
    assert {w.actor for w in writes} <= ACTORS
    by_client = {(w.verb, w.resource, w.name) for w in writes if w.actor == "client"}
    assert {("create", "pipelineruns", name), ("update", "pipelineruns", second)} <= by_client
    assert all(w.actor == "tekton-pipelines-controller" for w in writes if w.resource == "taskruns")


def test_namespaces_come_and_go(sim: KubeSim, api: Api, kubectl: Kubectl, tmp_path: Path) -> None:
    made = kubectl("create", "namespace", "team")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "namespace/team created"
    manifest = tmp_path / "pr.yaml"
    manifest.write_text(RUN.replace("name: ship", "name: missing"))
    created = kubectl("create", "-n", "team", "-f", str(manifest), "-o", "name")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("pipelinerun.tekton.dev/ship-run-")
    gone = kubectl("delete", "namespace", "team", "--timeout=20s")
    assert gone.returncode == 0, gone.stderr
    assert 'namespace "team" deleted' in gone.stdout
    assert api.get("/api/v1/namespaces/team").status_code == 404
    writes = sim.store.writes("team") + [w for w in sim.store.writes("") if w.name == "team"]
    assert {w.actor for w in writes} <= ACTORS
    assert ("client", "create", "namespaces") in {(w.actor, w.verb, w.resource) for w in writes}
    assert ("namespace-controller", "delete", "pipelineruns") in {
        (w.actor, w.verb, w.resource) for w in writes
    }


def test_wait_returns_for_a_finished_run_whose_spec_was_patched(
    sim: KubeSim, api: Api, kubectl: Kubectl, tmp_path: Path
) -> None:
    """kubectl wait gates on observedGeneration only when the object has one (kubernetes/kubectl
    pkg/cmd/wait/wait.go@kubernetes-1.27.0:549-550,580-587; wait.go@kubernetes-1.30.0:582-583,
    613-620; condition.go@kubernetes-1.33.0:73-74,190-197), and Tekton never writes it
    (tektoncd/pipeline pkg/client/injection/reconciler/pipeline/v1/pipelinerun/reconciler.go
    @v1.15.0:245-300 has no PostProcessReconcile). A spec patch after the run finished bumps the
    generation; the wait must still return at once."""
    manifest = tmp_path / "pr.yaml"
    manifest.write_text(RUN)
    name = kubectl("create", "-f", str(manifest), "-o", "jsonpath={.metadata.name}").stdout
    api.wait(name)
    patched = kubectl(
        "patch", "pipelinerun", name, "--type", "merge", "-p", '{"spec":{"status":"Cancelled"}}'
    )
    assert patched.returncode == 0, patched.stderr
    pr = api.pr(name)
    assert pr["metadata"]["generation"] == 2 and "observedGeneration" not in pr["status"]
    assert (succeeded(pr) or {}).get("reason") == "Succeeded"  # a finished run stays finished
    waited = kubectl(
        "wait", "--for=condition=Succeeded", f"pipelinerun/{name}", "--timeout=20s", timeout=40
    )
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip() == f"pipelinerun.tekton.dev/{name} condition met"
    for tr in api.taskruns(name).values():
        assert "observedGeneration" not in tr["status"]
