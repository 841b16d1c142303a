"""Ctrl-C (SIGINT) and SIGTERM at each phase of a landing: real signals to a real ``homelab``
process, sent when its progress line shows the phase running. The exit code, the verdict line
and the JUnit must all say INTERRUPTED, and nothing that did not finish passing may look passed.

pytest re-raises KeyboardInterrupt out of the running test and writes only finished tests to
the JUnit: pytest-dev/pytest src/_pytest/runner.py@9.2.0 get_reraise_exceptions,
src/_pytest/main.py@9.2.0 wrap_session (pytest_keyboard_interrupt, then pytest_sessionfinish).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_homelab.report.junit import case_properties
from tests.cli.child import Child, environ

CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


_PROPS: dict[int, dict[str, str]] = {}  # a testcase element's properties, in either shape


def junit_cases(path: Path) -> dict[str, ET.Element]:
    cases = {}
    for case, pairs in case_properties(ET.parse(path).getroot()):
        if not case.get("classname", "").startswith("dev-e2e"):
            cases[f"{case.get('name')}"] = case
            _PROPS[id(case)] = dict(pairs)
    return cases


def props(case: ET.Element) -> dict[str, str]:
    return _PROPS[id(case)]


def interrupted(case: ET.Element) -> ET.Element:
    (element,) = [e for e in case if e.tag in ("failure", "error", "skipped")]
    assert element.tag == "error" and element.get("type") == "Interrupted", ET.tostring(case)
    assert props(case)["outcome"] == "Interrupted"
    return element


def run_demo_until(
    tmp_path: Path, scenario: str, line: str, signum: int, *, json_out: bool = False
) -> tuple[int, str, str, Path]:
    junit = tmp_path / "demo.xml"
    args = ["demo", "--scenario", scenario, "--junitxml", str(junit)]
    child = Child.homelab(*args, *(["--json"] if json_out else []), cwd=tmp_path, env=environ())
    try:
        child.wait_for(line, timeout=120)
        child.signal(signum)
        code, out, err = child.finish(timeout=60)
    finally:
        child.kill()
    return code, out, err, junit


def landing_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A feature branch one commit ahead of its remote's main, deploy.json with two services;
    returns the repo and the sha work land will push."""
    from tests.gitenv import git, hermetic_git

    hermetic_git(monkeypatch, tmp_path / "home")
    repo = tmp_path / "app"
    repo.mkdir()
    manifest = {
        "schemaVersion": 2,
        "environments": {
            "dev": {
                "services": [
                    {"name": "web", "namespace": "a", "image": "r/web"},
                    {"name": "api", "namespace": "a", "image": "r/api"},
                ]
            }
        },
    }
    (repo / "deploy.json").write_text(json.dumps(manifest))
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "forge.git")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "deploy.json")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "remote", "add", "origin", str(tmp_path / "forge.git"))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "switch", "-q", "-c", "feature")
    git(repo, "commit", "-q", "--allow-empty", "-m", "change")
    return repo, git(repo, "rev-parse", "HEAD")


ROLLOUTS = ("test_rolled_out[web]", "test_rolled_out[api]", "test_rolled_out[worker]")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_during_the_ci_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    """``work land --deploy-wait`` while its pipeline runs: the ci check was running, each
    service's rollout check was not reached."""
    from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

    repo, sha = landing_repo(tmp_path, monkeypatch)
    junit = tmp_path / "land.xml"
    with WoodpeckerSim() as sim:
        sim.add_repo("homelab/app")
        sim.add_pipeline("homelab/app", commit=sha, steps=[StepSpec("test", 600.0)])
        child = Child.homelab(
            "work",
            "land",
            "--no-verify",
            "--deploy-wait",
            "--woodpecker-server",
            sim.base_url,
            "--repo",
            "homelab/app",
            "--junitxml",
            str(junit),
            cwd=repo,
            env=environ(WOODPECKER_TOKEN="sim-token"),
        )
        try:
            child.wait_for(r"^ci: #1 running", timeout=120)
            child.signal(signum)
            code, out, err = child.finish(timeout=60)
        finally:
            child.kill()
    assert code == CODES[signum], out + err
    assert f"verdict: INTERRUPTED (exit {code})" in out
    cases = junit_cases(junit)
    running = interrupted(cases["test_pipeline_green"])
    assert (running.get("message") or "").startswith("Interrupted: interrupted by")
    assert NAMES[signum] in (running.get("message") or "")
    for name in ("test_rolled_out[web]", "test_rolled_out[api]"):
        assert (interrupted(cases[name]).get("message") or "").startswith("not run:"), name
    assert "PASS" not in out


def test_during_the_rollout_phase(tmp_path: Path) -> None:
    """``deploy wait`` for two workloads whose image never lands: the first rollout check was
    running (the phase waits for all targets at once), the second was not reached."""
    from pytest_homelab.sim.kube.api import KubeSim
    from pytest_homelab.sim.kube.objects import deployment

    sha = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
    junit = tmp_path / "rollout.xml"
    with KubeSim() as sim:
        sim.create_namespace("apps")
        for name in ("web", "api"):
            sim.apply(deployment(name, "apps", f"r.example.test/{name}:old", replicas=1))
        child = Child.homelab(
            "deploy",
            "wait",
            "apps/web",
            "apps/api",
            "--sha",
            sha,
            "--kubeconfig",
            str(sim.kubeconfig(tmp_path / "kubeconfig")),
            "--timeout",
            "10m",
            "--junitxml",
            str(junit),
            cwd=tmp_path,
            env=environ(HOME=str(tmp_path)),
        )
        try:
            child.wait_for(r"^rollout: apps/", timeout=120)
            child.signal(signal.SIGTERM)
            code, out, err = child.finish(timeout=60)
        finally:
            child.kill()
    assert code == 143, out + err
    assert "verdict: INTERRUPTED (exit 143)" in out
    cases = junit_cases(junit)
    first, second = sorted(cases)  # test_rolled_out[apps/api], test_rolled_out[apps/web]
    messages = [interrupted(cases[n]).get("message", "") for n in (first, second)]
    assert sorted(m.split(":", 1)[0] for m in messages) == ["Interrupted", "not run"], messages
    assert {props(cases[n])["signal"] for n in cases} == {"SIGTERM"}


def test_during_the_e2e_phase_is_never_green(tmp_path: Path) -> None:
    """The issue's false green: ci and rollouts had passed, then Ctrl-C while waiting for the
    dev e2e run printed PASSED (exit 0) and a JUnit without the e2e check."""
    code, out, err, junit = run_demo_until(
        tmp_path, "green", r"^e2e: dispatched ", signal.SIGINT, json_out=True
    )
    assert code == 130, out + err
    document = json.loads(out)
    assert document["verdict"] == "INTERRUPTED" and document["exit_code"] == 130
    by_name = {c["name"]: c for c in document["checks"]}
    assert by_name["test_dev_e2e"]["outcome"] == "Interrupted"
    assert by_name["test_dev_e2e"]["result"] == "error"
    cases = junit_cases(junit)
    assert [props(cases[n])["outcome"] for n in ROLLOUTS] == ["success"] * 3
    message = interrupted(cases["test_dev_e2e"]).get("message", "")
    run_id = props(cases["test_dev_e2e"])["run_id"]
    assert "keeps running on D601" in message and f"next: homelab ci logs {run_id}" in message


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_pytest_keeps_its_own_exit_code(tmp_path: Path, signum: int) -> None:
    """``pytest checks/`` interrupted: pytest's own exit code (2), and its JUnit by the same
    rule: the running ci check is an Interrupted error, the rollout checks not run."""
    import sys

    from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

    sha = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
    junit = tmp_path / "landing.xml"
    (tmp_path / "deploy.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "environments": {
                    "dev": {"services": [{"name": "web", "namespace": "apps", "image": "r/web"}]}
                },
            }
        )
    )
    with WoodpeckerSim() as sim:
        sim.add_repo("homelab/app")
        sim.add_pipeline("homelab/app", commit=sha, steps=[StepSpec("test", 600.0)])
        child = Child(
            [
                sys.executable,
                "-m",
                "pytest",
                str(Path(__file__).parents[2] / "pytest_homelab" / "checks"),
                "-m",
                "ci or rollout",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                "--commit",
                sha,
                "--woodpecker-repo",
                "homelab/app",
                "--woodpecker-server",
                sim.base_url,
                "--deploy-json",
                str(tmp_path / "deploy.json"),
            ],
            cwd=tmp_path,
            env=environ(WOODPECKER_TOKEN="sim-token"),
        )
        try:
            child.wait_for(r"^ci: #1 running", timeout=60)
            child.signal(signum)
            code, out, err = child.finish(timeout=60)
        finally:
            child.kill()
    assert code == 2, out + err  # pytest.ExitCode.INTERRUPTED, as pytest documents
    cases = junit_cases(junit)
    assert interrupted(cases["test_pipeline_green"]).get("message", "").startswith("Interrupted:")
    assert interrupted(cases["test_rolled_out[web]"]).get("message", "").startswith("not run:")
    assert props(cases["test_rolled_out[web]"])["signal"] == NAMES[signum]


def test_work_land_during_its_verify_and_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted before its session: the land step is the running check, the ci check and
    each service's rollout check are not run."""
    repo, _ = landing_repo(tmp_path, monkeypatch)
    env = environ(WOODPECKER_TOKEN="t-123456")
    junit = tmp_path / "land.xml"
    child = Child.homelab(
        "work",
        "land",
        "--deploy-wait",
        "--verify-cmd",
        f"echo $$ > {tmp_path / 'verify.pid'}; echo verify-started >&2; exec sleep 300",
        "--woodpecker-server",
        "http://127.0.0.1:9",
        "--repo",
        "homelab/app",
        "--junitxml",
        str(junit),
        cwd=repo,
        env=env,
    )
    try:
        child.wait_for(r"^verify-started$", timeout=60)
        child.signal(signal.SIGINT)
        code, out, err = child.finish(timeout=60)
    finally:
        child.kill()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            pid = (tmp_path / "verify.pid").read_text().strip()
            os.kill(int(pid), signal.SIGKILL)  # the verify command, should it outlive its sh
    assert code == 130, out + err
    assert "verdict: INTERRUPTED (exit 130)" in out, err
    cases = junit_cases(junit)
    assert interrupted(cases["land"]).get("message", "").startswith("Interrupted: interrupted by")
    for name in ("test_pipeline_green", "test_rolled_out[web]", "test_rolled_out[api]"):
        assert interrupted(cases[name]).get("message", "").startswith("not run:"), name
