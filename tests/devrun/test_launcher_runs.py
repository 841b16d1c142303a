"""The launcher for real: `bash -s` with a temporary HOME, git over HTTP (`git http-backend`)
fetched through a real forward proxy (tinyproxy), and small stub runners committed in the repo.
The full runner against Tekton is tested in tests/e2e."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from pytest_homelab.e2e.launcher import LaunchParams, launcher_text, make_run_id
from tests.devrun.conftest import Origin
from tests.runs import wait_run_result
from tests.waiting import wait_until


def launch(
    origin: Origin,
    script: str,
    proxy_url: str,
    *,
    env_file: str | None = None,
    run_id: str | None = None,
) -> tuple[subprocess.CompletedProcess[str], LaunchParams]:
    params = LaunchParams(
        repo=origin.url,
        commit=origin.sha,
        script_path=f"scripts/ci/{script}",
        run_id=run_id or make_run_id(origin.sha),
        environment="dev",
        timeout_ms=60_000,
        work_root=str(origin.home / "work"),
        result_root="$HOME/.unidesk/runs",
    )
    settings = origin.home / ".unidesk" / "ci.env"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(env_file if env_file is not None else f"HOMELAB_E2E_PROXY={proxy_url}\n")
    done = subprocess.run(
        ["bash", "-s"],
        input=launcher_text(params),
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(origin.home), "PATH": os.environ["PATH"]},
    )
    return done, params


def result_dir(origin: Origin, params: LaunchParams) -> Path:
    return origin.home / ".unidesk" / "runs" / params.run_id


def work_dir(origin: Origin, params: LaunchParams) -> Path:
    """The run's work directory: ``mktemp -d`` made it as ``<root>/<runId>.XXXXXX``."""
    (found,) = (origin.home / "work").glob(f"{params.run_id}.*")
    return found


def wait_result(origin: Origin, params: LaunchParams, seconds: float = 20) -> dict[str, Any]:
    return wait_run_result(result_dir(origin, params), seconds)


def test_the_launcher_returns_at_once_and_the_runner_runs_detached(
    origin: Origin, proxy: Any
) -> None:
    started = time.monotonic()
    done, params = launch(origin, "ok.sh", proxy.url)
    assert done.returncode == 0, done.stderr
    assert f"homelab-launcher: started {params.run_id}" in done.stdout
    assert time.monotonic() - started < 5
    assert wait_result(origin, params)["ok"] is True
    log = (result_dir(origin, params) / "launcher.log").read_text()
    assert f"fetching through {proxy.url}" in log and "runner exited with 0" in log
    assert "stub runner: args ok" in (result_dir(origin, params) / "runner.log").read_text()
    assert proxy.requests(), "the fetch went through the proxy"
    assert origin.server.fetches  # and reached the git server
    work = work_dir(origin, params)
    assert not (work / "repo" / "scripts").exists()  # bare fetch
    assert work.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in work.iterdir()) == ["deploy.json", "repo"]  # no runner file


def test_the_runner_gets_exactly_the_seed_flags(origin: Origin, proxy: Any) -> None:
    done, params = launch(origin, "args.sh", proxy.url)
    assert done.returncode == 0
    wait_result(origin, params)
    args = (result_dir(origin, params) / "args.txt").read_text().splitlines()
    work = work_dir(origin, params)
    assert args == [
        "--run-id",
        params.run_id,
        "--repo-url",
        origin.url,
        "--desired-ref",
        "master",
        "--manifest-commit",
        origin.sha,
        "--manifest-file",
        f"{work}/deploy.json",
        "--environment",
        "dev",
        "--result-dir",
        str(result_dir(origin, params)),
        "--timeout-ms",
        "60000",
    ]
    assert json.loads((work / "deploy.json").read_text())["schemaVersion"] == 2


def test_proxy_down_fails_visibly_and_never_falls_back(origin: Origin) -> None:
    done, params = launch(origin, "ok.sh", "http://127.0.0.1:9")  # nothing listens there
    assert done.returncode == 0
    result = wait_result(origin, params)
    assert (result["ok"], result["status"]) == (False, "fetch-failed")
    assert "fetch" in (result_dir(origin, params) / "launcher.log").read_text()
    assert origin.server.fetches == []  # no direct fetch behind the proxy's back


def test_runner_missing_at_the_commit(origin: Origin, proxy: Any) -> None:
    _, params = launch(origin, "nope.sh", proxy.url)
    result = wait_result(origin, params)
    assert (result["ok"], result["status"]) == (False, "no-runner")


def test_runner_dying_without_a_result_is_reported(origin: Origin, proxy: Any) -> None:
    _, params = launch(origin, "dies.sh", proxy.url)
    result = wait_result(origin, params)
    assert (result["ok"], result["status"]) == (False, "runner-died")
    assert "exited with 5" in result["message"]


def test_runner_killed_is_reported_not_unknown_forever(origin: Origin, proxy: Any) -> None:
    _, params = launch(origin, "slow.sh", proxy.url)
    pid_file = result_dir(origin, params) / "runner.pid"
    pid = wait_until(
        lambda: pid_file.read_text().strip() if pid_file.exists() else "",
        what="the runner's pid file",
        timeout=20,
    )
    os.kill(int(pid), signal.SIGKILL)
    result = wait_result(origin, params)
    assert (result["ok"], result["status"]) == (False, "runner-died")


def test_the_same_run_id_is_refused(origin: Origin, proxy: Any) -> None:
    run_id = make_run_id(origin.sha)
    _, params = launch(origin, "ok.sh", proxy.url, run_id=run_id)
    wait_result(origin, params)
    again, _ = launch(origin, "ok.sh", proxy.url, run_id=run_id)
    assert again.returncode == 73 and "already exists" in again.stderr


def test_a_broken_settings_file_fails_visibly(origin: Origin) -> None:
    _, params = launch(origin, "ok.sh", "", env_file="this is ( not shell\n")
    result = wait_result(origin, params)
    assert (result["ok"], result["status"]) == (False, "env-file")
