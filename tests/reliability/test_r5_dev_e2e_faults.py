"""R5: dev e2e faults the e2e suite does not cover yet, on the same lab (a real sshd as D601,
tinyproxy, git over HTTP, the Kubernetes simulator with Tekton; ``lab`` of
tests/e2e/test_dev_e2e.py).

tests/e2e already shows a clear verdict for the proxy down, SSH dropped mid-run and the
PipelineRun timeout. Here: the runner killed mid-run together with its launcher (no
result.json: reported as failed with the last log lines, by the waiting CLI and by ``ci logs``,
never "unknown forever"), and the git fetch failing on D601 (an unknown commit, an unreachable
forge). Each time the simulator's audit log shows no write to any service namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.cli import main
from tests.d601 import descendants
from tests.e2e.test_dev_e2e import Lab, lab, manifest
from tests.reliability.figures import figure
from tests.reliability.leakguard import LeakGuard
from tests.waiting import wait_until

__all__ = ["lab"]  # the fixture of tests/e2e/test_dev_e2e.py

VERDICT_WITHIN = 15.0  # seconds from the kill to the CLI's verdict (poll 0.2 s)


def e2e_case(lab: Lab) -> Any:
    return next(c for name, c in lab.cases().items() if "dev_e2e" in name)


def audit(lab: Lab, mode: str) -> None:
    """No write by anyone but the test's own setup to a namespace a service uses."""
    writes = lab.service_namespace_writes()
    fig = figure("R5 dev e2e faults", mode)
    fig.note(
        "service_namespace_writes", int(fig.extra.get("service_namespace_writes", 0)) + len(writes)
    )
    assert writes == []


def kill_run(run: Path) -> list[int]:
    """SIGKILL the launcher and everything below it (the runner, its kubectl), by PID: what a
    reboot or the OOM killer does. No trap runs, so nobody writes result.json."""
    launcher = int((run / "launcher.pid").read_text())
    pids = [launcher, *descendants(launcher)]
    runner = (run / "runner.pid").read_text().strip()
    if runner.isdigit() and int(runner) not in pids:
        pids += [int(runner), *descendants(int(runner))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            return False
    return True


def test_runner_killed_mid_run_is_failed_with_its_last_lines(
    lab: Lab, capsys: pytest.CaptureFixture[str], mode: str, leak_guard: LeakGuard
) -> None:
    """Launcher and runner killed while the PipelineRun runs: the waiting CLI says failed (exit
    1) with the runner's last log lines, soon after the kill; `ci logs` says the same later."""
    fig = figure("R5 dev e2e faults", mode)
    leak_guard.watch_dir(lab.d601.home / ".unidesk")
    lab.cluster.tekton.behave("smoke", duration=1e9)
    done: dict[str, Any] = {}

    def cli() -> None:
        done["code"] = main(lab.argv("--wait-ms", "60000"))
        done["at"] = time.monotonic()

    thread = threading.Thread(target=cli, name="r5-cli")
    started = time.monotonic()
    thread.start()
    try:

        def at_pipelinerun() -> list[Path] | None:
            runs = lab.runs()
            log = runs[0] / "runner.log" if runs else None
            ok = log is not None and log.is_file() and "PipelineRun" in log.read_text()
            return runs if ok else None

        (run,) = wait_until(
            at_pipelinerun, what="the runner to get to its PipelineRun", timeout=30, interval=0.05
        )
        killed_at = time.monotonic()
        pids = kill_run(run)
        wait_until(lambda: gone(pids), what="the run's processes to end", timeout=5)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    out, err = capsys.readouterr()
    assert not (run / "result.json").exists()
    assert done["code"] == 1, out + err
    took = done["at"] - killed_at
    assert took <= VERDICT_WITHIN, f"the verdict came {took:.1f} s after the kill"
    failure = e2e_case(lab).find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    message = failure.get("message", "") + (failure.text or "")
    assert "stopped without a result" in message and "last lines" in message
    last = (run / "runner.log").read_text().splitlines()[-1]
    assert last in message  # the runner's last line is in the verdict
    code, out, _ = lab.logs(capsys, run.name)
    assert code == 1 and f"run {run.name}: died" in out and "--- runner.log" in out
    assert last in out
    audit(lab, mode)
    fig.run(outcome="CheckFailed (died)", wall=time.monotonic() - started)
    fig.note("runner_killed_verdict_after_s", round(took, 2))
    leak_guard.scan_now(lab.d601.home / ".unidesk")


def push_repo(lab: Lab, name: str) -> str:
    """Another repository on the same forge, with a commit of its own; its URL."""
    served = lab.tmp / "git"
    subprocess.run(["git", "init", "-q", "--bare", name], cwd=served, check=True)
    other = lab.tmp / f"{name}-work"
    subprocess.run(["git", "init", "-q", "-b", "master", str(other)], check=True)
    (other / "README").write_text("another project\n")
    for args in (
        ["add", "."],
        ["commit", "-qm", "other"],
        ["push", "-q", str(served / name), "master"],
    ):
        subprocess.run(["git", *args], cwd=other, check=True, capture_output=True)
    return lab.repo_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize("how", ["unknown commit", "unreachable forge"])
def test_git_fetch_failure_on_d601_is_a_clear_error(
    how: str,
    lab: Lab,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
    mode: str,
    leak_guard: LeakGuard,
) -> None:
    """The manifest commit cannot be fetched on D601: exit 2, InfraError naming fetch-failed
    with git's own words from launcher.log; nothing touched the cluster."""
    fig = figure("R5 dev e2e faults", mode)
    leak_guard.watch_dir(lab.d601.home / ".unidesk")
    if how == "unknown commit":  # ci.repo names a repository that lacks the commit
        repo = push_repo(lab, "other.git")
    else:  # nothing listens where ci.repo points; the proxy cannot connect
        repo = f"http://127.0.0.2:{closed_port}/app.git"
    lab.push(manifest(repo))
    started = time.monotonic()
    code, out, err = lab.run(capsys, "--wait-ms", "30000")
    wall = time.monotonic() - started
    assert code == 2, out + err
    error = e2e_case(lab).find("error")
    assert error is not None and error.get("type") == "InfraError"
    message = error.get("message", "") + (error.text or "")
    assert "fetch-failed" in message and "launcher: fetching through" in message
    assert "fatal:" in message or "error:" in message  # git's reason, not just a status
    (run,) = lab.runs()
    result = json.loads((run / "result.json").read_text())
    assert (result["ok"], result["status"]) == (False, "fetch-failed")
    assert not (run / "runner.log").exists()  # the runner never started
    audit(lab, mode)
    writes = [w for w in lab.cluster.store.writes("unidesk-ci") if w.actor != "test"]
    assert writes == []
    fig.run(outcome=f"InfraError (fetch-failed: {how})", wall=wall)
    leak_guard.scan_now(lab.d601.home / ".unidesk")
