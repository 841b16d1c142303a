"""scripts/ci/dev-e2e.sh for real: bash, python3 and real kubectl against the simulated cluster
with Tekton. What it writes, what it refuses, and that it never touches a service namespace."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.tekton import pipeline, when
from tests.samples import REGISTRY, ci_block, deploy_doc, environment, service

RUNNER = Path(__file__).parents[2] / "scripts" / "ci" / "dev-e2e.sh"
# jenkinsci/xunit-plugin src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/
# junit-10.xsd@031e285ef3b60dee7aaf36e9096d7dcd95ffae83 (MIT), vendored verbatim
JUNIT_XSD = xmlschema.XMLSchema(Path(__file__).parents[1] / "junit" / "junit-10.xsd")
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

    def junit(self) -> dict[str, ET.Element]:
        """The runner's testcases by name, after checking the file against junit-10.xsd and
        that it tells result.json's story: the same tasks, each with the same outcome."""
        JUNIT_XSD.validate(str(self.dir / "junit.xml"))
        root = ET.parse(self.dir / "junit.xml").getroot()
        cases = {c.get("name", ""): c for c in root.iter("testcase")}

        def outcome(case: ET.Element) -> str:
            if case.find("failure") is not None:
                return "failed"
            if case.find("skipped") is not None:
                return "skipped"
            out = case.find("system-out")
            tolerated = out is not None and (out.text or "").startswith("tolerated failure")
            return "tolerated" if tolerated else "passed"

        tasks = self.result().get("tasks")
        if tasks is not None:
            assert [(t["task"], t["outcome"]) for t in tasks] == [
                (name, outcome(case)) for name, case in cases.items()
            ]
            assert root.get("failures") == str(sum(t["outcome"] == "failed" for t in tasks))
            assert root.get("skipped") == str(sum(t["outcome"] == "skipped" for t in tasks))
        return cases


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
    timeout_ms: int | str = 60000,
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
    cases = list(run.junit().values())
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
    cases = run.junit()
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
    pr = run.result()["pipelineRun"]
    failure = run.junit()["smoke"].find("failure")
    # cancelled by the PipelineRun's timeout (timeout.go@v1.15.0:42-54, taskrun.go:195-199)
    assert failure is not None and failure.get("type") == "TaskRunCancelled"
    assert "TaskRun cancelled as the PipelineRun it belongs to has timed out." in (
        failure.get("message") or ""
    )
    assert f"(kubectl get taskrun {pr}-smoke -n unidesk-ci)" in (failure.get("message") or "")


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


@pytest.mark.parametrize("timeout_ms", ["0", "999", "86400001", "0999", "1e6", "-5000", " 5000"])
def test_an_unbounded_or_odd_timeout_is_refused(
    cluster: KubeSim, tmp_path: Path, timeout_ms: str
) -> None:
    """Tekton reads timeouts.pipeline 0s as "no timeout" (tektoncd/pipeline pkg/apis/pipeline/v1/
    pipelinerun_types.go@v1.15.0:186-201 HasTimedOut); the runner refuses anything under 1 s."""
    run = run_runner(cluster, tmp_path, timeout_ms=timeout_ms)
    assert run.done.returncode == 64, run.log()
    assert "--timeout-ms must be a whole number of milliseconds from 1000 (1 s)" in run.log()
    assert f"got '{timeout_ms}'" in run.log()
    assert not (run.dir / "result.json").exists()
    assert cluster.store.select("pipelineruns", "unidesk-ci")[0] == []


def test_the_smallest_timeout_is_bounded(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.tekton.behave("setup", duration=1e9)
    run = run_runner(cluster, tmp_path, timeout_ms=1000)
    assert run.done.returncode == 1, run.log()
    pr = cluster.get("pipelineruns", "unidesk-ci", run.result()["pipelineRun"])
    assert pr["spec"]["timeouts"] == {"pipeline": "1s"}
    assert run.result()["status"] == "timeout"


def test_skipped_tasks_are_visible_and_the_run_passes(cluster: KubeSim, tmp_path: Path) -> None:
    guard = [when("$(params.runId)", "in", ["never"])]
    cluster.apply(
        pipeline(
            "unidesk-dev-namespace-e2e",
            "unidesk-ci",
            tasks=["setup", "smoke", "teardown"],
            run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            when_={"smoke": guard},
        )
    )
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 0, run.log()
    result = run.result()
    assert (result["ok"], result["status"]) == (True, "succeeded")
    why = "When Expressions evaluated to false"  # pipelinerun_types.go@v1.15.0:583-584
    assert result["skippedTasks"] == [{"name": "smoke", "reason": why}]
    assert result["toleratedFailures"] == []
    assert f"succeeded (Completed); skipped by Tekton: smoke ({why})" in result["message"]
    assert result["message"] in run.log()
    cases = run.junit()
    assert list(cases) == ["setup", "teardown", "smoke"]
    skipped = cases["smoke"].find("skipped")
    assert skipped is not None and skipped.get("message") == why
    suite = ET.parse(run.dir / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "1")
    assert [t["outcome"] for t in result["tasks"]] == ["passed", "passed", "skipped"]


def test_a_tolerated_failure_is_one_story(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.apply(
        pipeline(
            "unidesk-dev-namespace-e2e",
            "unidesk-ci",
            tasks=["setup", "smoke", "teardown"],
            run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            on_error={"smoke": "continue"},
        )
    )
    cluster.tekton.behave("smoke", exit_code=1, logs=["\x1b[31mflaky: 502\x1b[0m", "retry later"])
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 0, run.log()
    result = run.result()
    pr = result["pipelineRun"]
    assert (result["ok"], result["status"]) == (True, "succeeded")
    [tolerated] = result["toleratedFailures"]
    # pod/status.go@v1.15.0:608-612: the TaskRun fails with FailureIgnored, the run succeeds
    assert tolerated == {
        "name": "smoke",
        "taskRun": f"{pr}-smoke",
        "reason": "FailureIgnored",
        "message": '"step-run" exited with code 1: Error',
    }
    assert "tolerated failures (onError: continue): smoke (FailureIgnored)" in result["message"]
    cases = run.junit()
    assert all(c.find("failure") is None for c in cases.values())  # JUnit agrees: no failure
    out = cases["smoke"].find("system-out")
    assert out is not None and (out.text or "").startswith(
        f"tolerated failure (onError: continue): TaskRun {pr}-smoke FailureIgnored: "
    )
    assert f"kubectl get taskrun {pr}-smoke -n unidesk-ci" in (out.text or "")
    assert (out.text or "").splitlines()[-2:] == ["[31mflaky: 502[0m", "retry later"]
    suite = ET.parse(run.dir / "junit.xml").getroot()
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "0")
    assert [t["outcome"] for t in result["tasks"]] == ["passed", "tolerated", "passed"]


def test_a_failure_names_the_taskrun_and_validates(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.tekton.behave("smoke", exit_code=2, logs=["<html> & \x00 502"])
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 1
    pr = run.result()["pipelineRun"]
    cases = run.junit()
    failure = cases["smoke"].find("failure")
    assert failure is not None and failure.get("type") == "Failed"
    assert failure.get("message") == (
        f'TaskRun {pr}-smoke Failed: "step-run" exited with code 2: Error '
        f"(kubectl get taskrun {pr}-smoke -n unidesk-ci)"
    )
    assert failure.text == "<html> &  502"
    assert {c.get("classname") for c in cases.values()} == {"dev-e2e"}
    assert cases["teardown"].find("skipped") is not None  # skipped: the run was stopping
    suite = ET.parse(run.dir / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"run_id": "e2e-01234567-1", "pipeline_run": pr, "namespace": "unidesk-ci"}
    assert suite.get("hostname") and suite.get("timestamp")
    assert run.result()["tasks"][1]["outcome"] == "failed"


def test_a_cancelled_run_is_reported_cancelled(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.tekton.behave("setup", duration=1e9)

    def cancel_when_created() -> None:
        cluster.wait_until(lambda: bool(cluster.store.select("pipelineruns", "unidesk-ci")[0]), 60)
        [pr] = cluster.store.select("pipelineruns", "unidesk-ci")[0]
        name = pr["metadata"]["name"]
        cluster.wait_until(
            lambda: bool(cluster.store.find("taskruns", "unidesk-ci", f"{name}-setup"))
        )
        cluster.tekton.cancel("unidesk-ci", name, "CancelledRunFinally")

    canceller = threading.Thread(target=cancel_when_created)
    canceller.start()
    run = run_runner(cluster, tmp_path)
    canceller.join(timeout=60)
    assert run.done.returncode == 1, run.log()
    result = run.result()
    pr = result["pipelineRun"]
    # a graceful cancel ends Cancelled (pipelinerunstate.go@v1.15.0:626-630)
    assert (result["status"], result["message"]) == (
        "cancelled",
        f'Cancelled: PipelineRun "{pr}" was cancelled',
    )
    failure = run.junit()["setup"].find("failure")
    assert failure is not None and failure.get("type") == "TaskRunCancelled"
    assert (failure.get("message") or "").startswith(
        f'TaskRun {pr}-setup TaskRunCancelled: TaskRun "'
    )


def test_a_missing_parameter_is_a_failed_run(cluster: KubeSim, tmp_path: Path) -> None:
    cluster.apply(
        pipeline(
            "unidesk-dev-namespace-e2e",
            "unidesk-ci",
            tasks=["setup"],
            params=[{"name": "runId"}, {"name": "clusterToken"}],
        )
    )
    run = run_runner(cluster, tmp_path)
    assert run.done.returncode == 1, run.log()
    result = run.result()
    pr = result["pipelineRun"]
    # pipelinerun.go@v1.15.0:628-635
    assert result["status"] == "failed"
    assert result["message"] == (
        f"ParameterMissing: [User error] PipelineRun unidesk-ci/{pr} is missing some parameters "
        "required by Pipeline unidesk-ci/unidesk-dev-namespace-e2e: pipelineRun missing "
        "parameters: [clusterToken]"
    )
    assert run.junit() == {} and result["tasks"] == []
