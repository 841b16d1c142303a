"""A repository's own checks: run with the shipped ones only where the user trusts the
repository; ordered by phase, gated, recorded and shown like the shipped checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import CheckRecord, read_junit
from pytest_homelab.sim.kube import KubeSim
from pytest_homelab.sim.kube.objects import deployment
from tests.gitenv import git, hermetic_git

OWN_CHECK = """
import pytest

pytestmark = pytest.mark.{phase}


def test_own(homelab_commit, homelab_services, homelab_deadline, homelab_record):
    homelab_record([("seen_commit", homelab_commit), ("services", str(len(homelab_services)))])
    assert homelab_deadline.remaining() > 0
    assert {verdict}, "the own check says no"
"""


class Repo:
    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home

    def trust(self) -> None:
        config = self.home / ".config" / "homelab" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'trusted_repos = ["{self.root}"]\n')

    def run(self, kube: KubeSim, *extra: str) -> tuple[int, dict[str, CheckRecord]]:
        junit = self.root / "landing.xml"
        kubeconfig = kube.kubeconfig(self.root / "kubeconfig")
        code = main(
            ["deploy", "wait", "--kubeconfig", str(kubeconfig), "--junitxml", str(junit), *extra]
        )
        return code, {f"{r.phase}:{r.name}": r for r in read_junit(junit)}


@pytest.fixture
def kube() -> Iterator[KubeSim]:
    with KubeSim(speed=8.0) as sim:
        sim.create_namespace("apps")
        yield sim


def make_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, phase: str = "smoke", verdict: str = "True"
) -> tuple[Repo, str]:
    home = tmp_path / "home"
    hermetic_git(monkeypatch, home)
    root = tmp_path / "app"
    (root / "checks").mkdir(parents=True)
    (root / "checks" / "test_own.py").write_text(OWN_CHECK.format(phase=phase, verdict=verdict))
    service = {"name": "api", "namespace": "apps", "image": "registry.example.test/app/api"}
    doc = {"schemaVersion": 2, "environments": {"dev": {"services": [service]}}}
    (root / "deploy.json").write_text(json.dumps(doc))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "app")
    monkeypatch.chdir(root)
    return Repo(root, home), git(root, "rev-parse", "HEAD")


def test_an_untrusted_repository_runs_only_the_shipped_checks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kube: KubeSim,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, sha = make_repo(tmp_path, monkeypatch)
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code, checks = repo.run(kube)
    assert code == 0 and "rollout:test_rolled_out[api]" in checks
    assert not [k for k in checks if k.endswith("test_own")]
    err = capsys.readouterr().err
    assert "checks was not run: the repository is not trusted" in err
    assert "trusted_repos" in err and "config.toml" in err


def test_a_trusted_repository_adds_its_checks_in_phase_order(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kube: KubeSim,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, sha = make_repo(tmp_path, monkeypatch)
    repo.trust()
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code, checks = repo.run(kube)
    assert code == 0, capsys.readouterr()
    assert list(checks) == ["rollout:test_rolled_out[api]", "smoke:test_own"]
    own = checks["smoke:test_own"]
    assert own.outcome == "success" and own.prop("seen_commit") == sha
    assert own.prop("services") == "1"
    assert "PASS  smoke    test_own" in capsys.readouterr().out


def test_an_own_check_that_fails_fails_the_landing_and_is_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kube: KubeSim,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, sha = make_repo(tmp_path, monkeypatch, verdict="False")
    repo.trust()
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code, checks = repo.run(kube)
    assert code == 1 and checks["smoke:test_own"].kind == "failure"
    assert "the own check says no" in capsys.readouterr().out


def test_an_own_check_is_not_run_when_an_earlier_phase_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube: KubeSim
) -> None:
    repo, _ = make_repo(tmp_path, monkeypatch)
    repo.trust()
    kube.apply(deployment("api", "apps", "registry.example.test/app/api:not-this-commit"))
    code, checks = repo.run(kube, "--timeout", "2s")
    assert code == 1
    assert checks["rollout:test_rolled_out[api]"].outcome == "DeadlineExceeded"
    assert checks["smoke:test_own"].outcome == "PrerequisiteFailed"


def test_replace_runs_only_the_repository_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube: KubeSim
) -> None:
    repo, sha = make_repo(tmp_path, monkeypatch, phase="rollout")
    repo.trust()
    with (repo.root / "pyproject.toml").open("w") as f:
        f.write('[tool.homelab]\nown_checks = "replace"\n')
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code, checks = repo.run(kube)
    assert code == 0 and list(checks) == ["rollout:test_own"]


def test_the_repository_cannot_trust_itself(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kube: KubeSim,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Trust lives in the user's config only: a branch naming itself trusted is refused."""
    repo, sha = make_repo(tmp_path, monkeypatch)
    (repo.root / "pyproject.toml").write_text(f'[tool.homelab]\ntrusted_repos = ["{repo.root}"]\n')
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code = main(["deploy", "wait", "--kubeconfig", str(kube.kubeconfig(repo.root / "kc"))])
    assert code == 2
    assert "trusted_repos" in capsys.readouterr().err


KUBE_CHECK = """
import pytest
from kubernetes import client

pytestmark = pytest.mark.smoke


def test_own(homelab_kube, homelab_rollouts, homelab_record):
    # The documented fixture is the official ApiClient (docs/own-checks.md), whole, although
    # the rollout watch runs on a lighter client of its own.
    assert isinstance(homelab_kube, client.ApiClient)
    pods = client.CoreV1Api(homelab_kube).list_namespaced_pod("apps")
    homelab_record([("pods", str(len(pods.items))), ("watched", ",".join(homelab_rollouts))])
    assert homelab_rollouts["api"].landed
"""


def test_an_own_check_gets_the_official_kubernetes_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube: KubeSim
) -> None:
    repo, sha = make_repo(tmp_path, monkeypatch)
    (repo.root / "checks" / "test_own.py").write_text(KUBE_CHECK)
    repo.trust()
    kube.apply(deployment("api", "apps", f"registry.example.test/app/api:{sha[:12]}"))
    code, checks = repo.run(kube)
    own = checks["smoke:test_own"]
    assert code == 0, own.message
    assert own.prop("watched") == "api"
    assert int(own.prop("pods") or 0) >= 1
