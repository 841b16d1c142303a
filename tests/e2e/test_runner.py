"""scripts/ci/dev-e2e.sh for real: bash, python3 and real kubectl against the simulated cluster
with Tekton. What it writes, what it refuses, and that it never touches a service namespace."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.tekton import pipeline
from tests.samples import REGISTRY, ci_block, deploy_doc, environment, service

RUNNER = Path(__file__).parents[2] / "scripts" / "ci" / "dev-e2e.sh"
SHA = "0123456789abcdef0123456789abcdef01234567"
PIN = "fedcba9876543210fedcba9876543210fedcba98"
WEB, API = f"{REGISTRY}/homelab/web", f"{REGISTRY}/homelab/api"
MANIFEST = deploy_doc(
    dev=environment(
        [service("web", "apps-dev", WEB), service("api", "apps-dev", API, commit=PIN)],
        ci=ci_block(timeout_ms=60000),
    ),
    prod=environment([service("web", "apps", WEB)]),
)


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    dir: Path

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "result.json").read_text())
        return data

    def log(self) -> str:
        return self.done.stdout + self.done.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeSim]:
    with KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1)) as sim:
        for ns in ("unidesk-ci", "apps-dev", "apps"):
            sim.create_namespace(ns)
        sim.apply(
            pipeline(
                "unidesk-dev-namespace-e2e",
                "unidesk-ci",
                tasks=["setup", "smoke", "teardown"],
                run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            )
        )
        yield sim


def run_runner(
    sim: KubeSim,
    tmp_path: Path,
    *extra: str,
    timeout_ms: int = 60000,
    env: dict[str, str] | None = None,
    run_id: str = "e2e-01234567-1",
) -> Run:
    manifest = tmp_path / "deploy.json"
    manifest.write_text(json.dumps(MANIFEST))
    result_dir = tmp_path / "result"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "KUBECONFIG": str(sim.kubeconfig(tmp_path / "kubeconfig")),
        "KUBECACHEDIR": str(tmp_path / "kubecache"),
        "HOMELAB_E2E_POLL": "0.2",
    }
    if os.environ.get("HOMELAB_KUBECTL"):
        base["KUBECTL"] = os.environ["HOMELAB_KUBECTL"]
    done = subprocess.run(
        [
            "bash",
            str(RUNNER),
            "--run-id",
            run_id,
            "--repo-url",
            "https://git.example.test/x",
            "--desired-ref",
            "master",
            "--manifest-commit",
            SHA,
            "--manifest-file",
            str(manifest),
            "--environment",
            "dev",
            "--result-dir",
            str(result_dir),
            "--timeout-ms",
            str(timeout_ms),
            *extra,
        ],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(done, result_dir)


def service_namespace_writes(sim: KubeSim) -> list[str]:
    return [
        f"{w.actor} {w.verb} {w.resource}/{w.name}"
        for ns in ("apps-dev", "apps")
        for w in sim.store.writes(ns)
        if w.actor != "test"
    ]


def test_a_passing_run(cluster: KubeSim, tmp_path: Path) -> None:
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 0, run.log()
    result = run.result()
    assert result["ok"] is True and result["status"] == "succeeded"
    assert result["runId"] == "e2e-01234567-1" and result["manifestCommit"] == SHA
    assert result["temporaryNamespace"] == "unidesk-e2e-e2e-01234567-1"
    pr = result["pipelineRun"]
    assert (
        pr.startswith("e2e-01234567-1-") and (run.dir / "pipelinerun.txt").read_text().strip() == pr
    )
    created = cluster.get("pipelineruns", "unidesk-ci", pr)
    params = {p["name"]: p["value"] for p in created["spec"]["params"]}
    assert params["temporaryNamespace"] == "unidesk-e2e-e2e-01234567-1"
    assert json.loads(params["serviceCommits"]) == [
        {"name": "web", "commit": SHA},
        {"name": "api", "commit": PIN},
    ]
    cases = list(ET.parse(run.dir / "junit.xml").getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["setup", "smoke", "teardown"]
    assert all(c.find("failure") is None for c in cases)
    assert {p.name for p in (run.dir / "logs").iterdir()} == {
        "setup-run.log",
        "smoke-run.log",
        "teardown-run.log",
    }
    assert "task smoke ok" in (run.dir / "logs" / "smoke-run.log").read_text()
    assert json.loads((run.dir / "pipelinerun.json").read_text())["metadata"]["name"] == pr
    cluster.wait_until(
        lambda: cluster.store.find("namespaces", "", "unidesk-e2e-e2e-01234567-1") is None
    )  # cleaned up
    assert service_namespace_writes(cluster) == []


def test_a_failing_task_puts_its_log_in_the_junit(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.tekton.behave(
        "smoke", exit_code=1, logs=[f"check {n}" for n in range(80)] + ["FAIL: login page 502"]
    )
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 1
    result = run.result()
    assert (result["ok"], result["status"]) == (False, "failed")
    assert result["message"].startswith("Failed")
    cases = {c.get("name"): c for c in ET.parse(run.dir / "junit.xml").getroot().iter("testcase")}
    failure = cases["smoke"].find("failure")
    assert failure is not None and (failure.text or "").splitlines()[-1] == "FAIL: login page 502"
    assert len((failure.text or "").splitlines()) == 50
    assert cases["setup"].find("failure") is None
    assert service_namespace_writes(cluster) == []


def test_a_pipeline_timeout(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.tekton.behave("smoke", duration=1e9)
    run = run_runner(cluster, tmp_path, timeout_ms=2000)
    assert run.done.returncode == 1
    assert (run.result()["ok"], run.result()["status"]) == (False, "timeout")


def test_keep_namespace(cluster: KubeSim, tmp_path: Path) -> None:
    run = run_runner(cluster, tmp_path, "--keep-namespace")
    assert run.done.returncode == 0, run.log()
    assert cluster.store.find("namespaces", "", "unidesk-e2e-e2e-01234567-1") is not None
    assert "keeping namespace" in run.log()


def test_a_service_namespace_as_ci_namespace_is_refused(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.apply(pipeline("unidesk-dev-namespace-e2e", "apps-dev", tasks=["smoke"]))
    before = len(cluster.store.writes("apps-dev"))
    run = run_runner(cluster, tmp_path, env={"HOMELAB_E2E_CI_NAMESPACE": "apps-dev"})
    assert run.done.returncode == 1
    assert (run.result()["ok"], run.result()["status"]) == (False, "refused")
    assert "apps-dev is a service namespace" in run.result()["message"]
    assert len(cluster.store.writes("apps-dev")) == before  # not one write there


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({"HOMELAB_E2E_NS_PREFIX": "apps"}, "refused"),  # a prefix that would hit a service ns
        ({"HOMELAB_E2E_PROTECTED": "unidesk unidesk-e2e-dev"}, "refused"),
        ({"HOMELAB_E2E_PIPELINE": "nope"}, "tekton-unavailable"),
        ({"KUBECONFIG": "/nonexistent/kubeconfig"}, "cluster-unreachable"),
    ],
)
def test_refusals_and_unavailability_fail_visibly(
    cluster: KubeSim, tmp_path: Path, env: dict[str, str], status: str
) -> None:
    run = run_runner(cluster, tmp_path, env=env, run_id="dev")  # prefix apps + dev = apps-dev
    assert run.done.returncode == 1
    assert (run.result()["ok"], run.result()["status"]) == (False, status)
    assert run.result()["message"] in run.log()
    assert service_namespace_writes(cluster) == []


def test_unknown_flags_are_refused(cluster: KubeSim, tmp_path: Path) -> None:
    run = run_runner(cluster, tmp_path, "--inline-shell", "rm -rf /")
    assert run.done.returncode == 64 and "unknown argument: --inline-shell" in run.log()
    assert not (run.dir / "result.json").exists()


@pytest.mark.parametrize(
    ("env", "namespace"),
    [
        ({"HOMELAB_E2E_CI_NAMESPACE": "unidesk-dev"}, "unidesk-dev"),  # the review's: a default
        ({"HOMELAB_E2E_CI_NAMESPACE": "unidesk"}, "unidesk"),
        ({"HOMELAB_E2E_CI_NAMESPACE": "kube-system"}, "kube-system"),
        ({"HOMELAB_E2E_CI_NAMESPACE": "default"}, "default"),
        ({"HOMELAB_E2E_CI_NAMESPACE": "ci-x", "HOMELAB_E2E_PROTECTED": "ci-x"}, "ci-x"),
    ],
)
def test_a_protected_namespace_as_ci_namespace_is_refused_before_any_write(
    cluster: KubeSim, tmp_path: Path, env: dict[str, str], namespace: str
) -> None:
    """Issue 19, finding 9: docs/dev-e2e.md says so; the runner compared the CI namespace with
    the service namespaces only, and created its PipelineRun in ``unidesk-dev``."""
    before = len(cluster.store.writes(namespace))
    run = run_runner(cluster, tmp_path, env=env)
    assert run.done.returncode == 1
    assert (run.result()["ok"], run.result()["status"]) == (False, "refused")
    assert f"CI namespace {namespace} is protected" in run.result()["message"]
    assert len(cluster.store.writes(namespace)) == before  # not one write there
    assert service_namespace_writes(cluster) == []
    assert cluster.store.find("namespaces", "", "unidesk-e2e-e2e-01234567-1") is None
