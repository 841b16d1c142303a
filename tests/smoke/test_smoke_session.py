"""The smoke phase in a landing session: after the rollouts in `homelab deploy wait` (skipped
with --no-probe), and alone with `pytest checks/ -m smoke`, where nothing gates it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import read_junit
from pytest_homelab.report.session import PACKAGED_SUITE
from pytest_homelab.sim.kube import KubeSim
from pytest_homelab.sim.kube.objects import deployment
from pytest_homelab.sim.serving import Route, ServingSim
from tests.gitenv import git, hermetic_git


@pytest.fixture
def lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str, KubeSim, ServingSim]]:
    hermetic_git(monkeypatch, tmp_path / "home")
    with KubeSim(speed=8.0) as kube, ServingSim(kube) as serving:
        kube.create_namespace("apps")
        repo = tmp_path / "app"
        repo.mkdir()
        probe = {
            "url": "http://web.apps.example.test/version",
            "dial": serving.address,
            "timeoutMs": 3000,
        }
        web = {
            "name": "web",
            "namespace": "apps",
            "image": "registry.example.test/web",
            "probe": probe,
        }
        doc = {"schemaVersion": 2, "environments": {"dev": {"services": [web]}}}
        (repo / "deploy.json").write_text(json.dumps(doc))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "app")
        sha = git(repo, "rev-parse", "HEAD")
        kube.apply(deployment("web", "apps", f"registry.example.test/web:{sha[:12]}"))
        serving.route("web.apps.example.test", Route("apps", "web"))
        monkeypatch.chdir(repo)
        yield repo, sha, kube, serving


def names(junit: Path) -> dict[str, str]:
    return {f"{r.phase}:{r.name}": r.outcome for r in read_junit(junit)}


def test_deploy_wait_runs_the_probes_after_the_rollouts(
    lab: tuple[Path, str, KubeSim, ServingSim],
) -> None:
    repo, _, kube, serving = lab
    junit = repo / "w.xml"
    args = [
        "deploy",
        "wait",
        "--kubeconfig",
        str(kube.kubeconfig(repo / "kc")),
        "--junitxml",
        str(junit),
    ]
    assert main(args) == 0
    assert names(junit) == {
        "rollout:test_rolled_out[web]": "success",
        "smoke:test_serves_commit[web]": "success",
    }
    assert serving.requests

    serving.requests.clear()
    assert main([*args, "--no-probe"]) == 0
    assert names(junit) == {"rollout:test_rolled_out[web]": "success"}
    assert serving.requests == []  # --no-probe asks no probe URL


def test_smoke_alone_polls_without_a_rollout_to_gate_on(
    lab: tuple[Path, str, KubeSim, ServingSim],
) -> None:
    """`pytest checks/ -m smoke`: the probe polls within its own timeout and passes once the
    route serves the commit, whatever the rollout phase would say."""

    repo, sha, _, serving = lab
    serving.route("web.apps.example.test", Route(fixed="registry.example.test/web:0000000"))
    junit = repo / "s.xml"
    args = [
        str(PACKAGED_SUITE),
        "-m",
        "smoke",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "--commit",
        sha,
    ]
    assert pytest.main(args) == 1  # the route serves another version until its timeout
    assert names(junit) == {"smoke:test_serves_commit[web]": "CheckFailed"}
    serving.route("web.apps.example.test", Route(fixed=f"registry.example.test/web:{sha[:7]}"))
    assert pytest.main(args) == 0
    assert names(junit) == {"smoke:test_serves_commit[web]": "success"}
