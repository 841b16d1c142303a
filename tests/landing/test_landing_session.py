"""The whole landing as one pytest session: the ci phase, then the rollout phase, against both
simulators, with the JUnit read back the way the CLI does."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from pytest_homelab.report.junit import exit_code, read_junit
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import deployment
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim
from tests.gitenv import git, hermetic_git
from tests.samples import deploy_text, environment, service
from tests.waiting import poll

CHECKS = Path(__file__).parents[2] / "checks"
TOKEN = "wp-landing-token-7c1e"
REGISTRY = "registry.example.test/homelab"


@dataclass
class Homelab:
    repo: Path
    sha: str
    ci: WoodpeckerSim
    k8s: KubeSim
    ca_bundle: Path
    kubeconfig: Path

    def run(self, junit: Path, *args: str) -> subprocess.CompletedProcess[str]:
        flags = [
            "--woodpecker-server",
            self.ci.base_url,
            "--woodpecker-dial",
            f"127.0.0.2:{self.ci.port}",
            "--ca-bundle",
            str(self.ca_bundle),
            "--homelab-kubeconfig",
            str(self.kubeconfig),
        ]
        env = {**os.environ, "WOODPECKER_TOKEN": TOKEN}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(CHECKS),
                "--commit",
                "HEAD",
                *flags,
                f"--junitxml={junit}",
                *args,
            ],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def homelab(
    tmp_path: Path, ca: trustme.CA, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Homelab]:
    hermetic_git(monkeypatch, tmp_path / "home")
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    workloads = (("web", "apps"), ("api", "apps"), ("gw", "edge"))
    services = [service(n, ns, f"{REGISTRY}/{n}") for n, ns in workloads]
    (repo / "deploy.json").write_text(deploy_text(dev=environment(services)))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "landing")
    git(repo, "remote", "add", "origin", "https://git.example.test/homelab/app.git")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("ci.example.test").configure_cert(server)
    ci = WoodpeckerSim(
        host="127.0.0.2",
        ssl_context=server,
        public_host="ci.example.test",
        token=TOKEN,
        ping_interval=1.0,
    )
    k8s = KubeSim(speed=4.0, timing=Timing(observe=0.1, terminate=0.2))
    with ci, k8s:
        ci.add_repo("homelab/app", private=True)
        for name, ns in (("web", "apps"), ("api", "apps"), ("gw", "edge")):
            if ("namespaces", "", ns) not in k8s.store.objects:
                k8s.create_namespace(ns)
            k8s.apply(deployment(name, ns, f"{REGISTRY}/{name}:0000000a"))
        yield Homelab(
            repo,
            git(repo, "rev-parse", "HEAD"),
            ci,
            k8s,
            ca_bundle,
            k8s.kubeconfig(tmp_path / "kubeconfig"),
        )


def test_green_landing_ci_then_rollout(homelab: Homelab, tmp_path: Path) -> None:
    number = homelab.ci.add_pipeline(
        "homelab/app", commit=homelab.sha, steps=[StepSpec("build", 0.3), StepSpec("test", 0.3)]
    )

    def deploy_after_ci() -> None:  # GitOps applies the image once CI has pushed it
        green = poll(
            lambda: homelab.ci.pipeline_json("homelab/app", number)["status"] == "success",
            timeout=60,
        )
        if green:  # else nothing lands, and the rollout checks fail the test
            for name, ns in (("web", "apps"), ("api", "apps"), ("gw", "edge")):
                homelab.k8s.set_image(ns, name, f"{REGISTRY}/{name}:{homelab.sha[:8]}")

    gitops = threading.Thread(target=deploy_after_ci, name="gitops")
    gitops.start()
    junit = tmp_path / "landing.xml"
    try:
        done = homelab.run(junit, "-v")
    finally:
        gitops.join(timeout=70)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = read_junit(junit)
    assert [(r.phase, r.outcome) for r in records] == [
        ("ci", "success"),
        ("rollout", "success"),
        ("rollout", "success"),
        ("rollout", "success"),
    ]
    assert exit_code(records) == 0
    assert TOKEN not in junit.read_text() and TOKEN not in done.stdout + done.stderr
    assert "ci: #1 success" in done.stderr and "rollout: apps/web rolled out" in done.stderr


def test_red_ci_fails_the_rollout_checks_at_once(homelab: Homelab, tmp_path: Path) -> None:
    homelab.ci.add_pipeline(
        "homelab/app", commit=homelab.sha, steps=[StepSpec("test", 0.2, exit_code=1, log=["boom"])]
    )
    junit = tmp_path / "landing.xml"
    started = time.monotonic()
    done = homelab.run(junit, "--rollout-timeout", "10m")
    assert done.returncode == 1
    assert time.monotonic() - started < 30  # no rollout waiting at all
    records = read_junit(junit)
    assert [(r.phase, r.outcome) for r in records] == [
        ("ci", "CheckFailed"),
        ("rollout", "PrerequisiteFailed"),
        ("rollout", "PrerequisiteFailed"),
        ("rollout", "PrerequisiteFailed"),
    ]
    assert "but test_pipeline_green failed" in records[1].message
    assert exit_code(records) == 1
    assert homelab.k8s.watches_opened == 0  # the cluster was never asked


def test_e2e_is_only_run_when_asked(homelab: Homelab, tmp_path: Path) -> None:
    homelab.ci.add_pipeline("homelab/app", commit=homelab.sha, steps=[StepSpec("t", 0.1)])
    junit = tmp_path / "landing.xml"
    done = homelab.run(junit, "-m", "ci", "--collect-only", "-q")
    assert "test_ci.py::test_pipeline_green" in done.stdout
    assert "e2e" not in done.stdout


def test_several_environments_and_none_chosen_is_a_usage_error(
    homelab: Homelab, tmp_path: Path
) -> None:
    doc = json.loads((homelab.repo / "deploy.json").read_text())
    doc["environments"]["prod"] = {"services": []}
    (homelab.repo / "deploy.json").write_text(json.dumps(doc))
    done = homelab.run(tmp_path / "j.xml")
    assert done.returncode == 4  # pytest's usage error
    assert "several environments (dev, prod)" in done.stderr and "--homelab-env" in done.stderr
    assert "Traceback" not in done.stderr
    assert homelab.ci.requests == [] and homelab.k8s.watches_opened == 0
