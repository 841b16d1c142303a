"""``homelab init`` against a simulated cluster with workloads from several registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset

A = "registry.a.example.org/team"
B = "registry-b.example.org:5000/ops"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeSim, Path]]:
    with KubeSim(speed=8.0) as kube:
        for ns in ("shop", "jobs", "infra", "secret-ns"):
            kube.create_namespace(ns)
        kube.apply(deployment("web", "shop", f"{A}/web:abc", replicas=1))
        kube.apply(
            deployment(
                "api",
                "shop",
                f"{A}/api:abc",
                replicas=1,
                extra=[("envoy", "docker.io/envoyproxy/envoy:v1.30")],
            )
        )
        kube.apply(deployment("web", "jobs", f"{B}/web@sha256:{'0' * 64}", replicas=1))
        kube.apply(statefulset("queue", "jobs", f"{B}/queue:1.2", replicas=1))
        kube.apply(daemonset("agent", "infra", f"{B}/agent:7"))
        kube.apply(deployment("redis", "shop", "docker.io/library/redis:7", replicas=1))
        # capitals in the path: a registry may serve it, deploy.json's image rule refuses it
        kube.apply(deployment("legacy", "shop", f"{A}/Legacy:1", replicas=1))
        kube.apply(deployment("hidden", "secret-ns", f"{A}/hidden:1", replicas=1))
        yield kube, kube.kubeconfig(tmp_path / "kubeconfig")


def homelab(cwd: Path, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "KUBECONFIG": str(kubeconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pytest_homelab.cli import main; sys.exit(main())",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def repo(tmp_path: Path, name: str = "app") -> Path:
    path = tmp_path / name
    path.mkdir()
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    subprocess.run(
        ["git", "remote", "add", "origin", f"https://git.example.org/team/{name}.git"],
        cwd=path,
        check=True,
    )
    return path


def test_several_registries_give_a_valid_manifest(
    cluster: tuple[KubeSim, Path], tmp_path: Path
) -> None:
    kube, kubeconfig = cluster
    kube.rbac.restrict("secret-ns", [])  # listed, but its workloads are not ours to see
    where = repo(tmp_path)
    done = homelab(where, kubeconfig, "init", "--registry", A, "--registry", B, "--e2e")
    assert done.returncode == 0, done.stderr
    doc = json.loads((where / "deploy.json").read_text())
    services = {
        (s["namespace"], s.get("deployment", s["name"])): s
        for s in doc["environments"]["dev"]["services"]
    }
    assert set(services) == {
        ("shop", "web"),
        ("shop", "api"),
        ("jobs", "web"),
        ("jobs", "queue"),
        ("infra", "agent"),
    }
    assert services[("shop", "api")]["container"] == "api"  # two containers: say which
    assert "container" not in services[("shop", "web")]
    assert services[("jobs", "queue")]["kind"] == "StatefulSet"
    assert services[("infra", "agent")]["kind"] == "DaemonSet"
    assert services[("jobs", "web")]["image"] == f"{B}/web"  # digest dropped
    names = [s["name"] for s in doc["environments"]["dev"]["services"]]
    assert len(names) == len(set(names))  # the two webs got distinct names
    assert doc["environments"]["dev"]["ci"] == {
        "repo": "https://git.example.org/team/app.git",
        "scriptPath": "scripts/ci/dev-e2e.sh",
        "timeoutMs": 1800000,
    }
    assert (where / "scripts" / "ci" / "dev-e2e.sh").is_file()
    assert "skipped" in done.stderr and "secret-ns" in done.stderr
    assert "left out shop/legacy" in done.stderr
    assert "woodpecker_server" in done.stderr  # what the user still has to give
    check = homelab(where, kubeconfig, "manifest", "check")
    assert check.returncode == 0, check.stderr


def test_default_match_is_the_repo_name(cluster: tuple[KubeSim, Path], tmp_path: Path) -> None:
    _, kubeconfig = cluster
    where = repo(tmp_path, "queue")
    done = homelab(where, kubeconfig, "init", "--dry-run")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [s["image"] for s in doc["environments"]["dev"]["services"]] == [f"{B}/queue"]
    assert not (where / "deploy.json").exists()  # --dry-run writes nothing


def test_namespaces_limit_the_search(cluster: tuple[KubeSim, Path], tmp_path: Path) -> None:
    _, kubeconfig = cluster
    where = repo(tmp_path)
    done = homelab(where, kubeconfig, "init", "--registry", A, "--namespace", "shop", "--dry-run")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {s["namespace"] for s in doc["environments"]["dev"]["services"]} == {"shop"}


def test_an_existing_file_is_kept(cluster: tuple[KubeSim, Path], tmp_path: Path) -> None:
    _, kubeconfig = cluster
    where = repo(tmp_path)
    (where / "deploy.json").write_text("mine\n")
    done = homelab(where, kubeconfig, "init", "--registry", A)
    assert done.returncode == 2
    assert "kept" in done.stderr and "--force" in done.stderr
    assert (where / "deploy.json").read_text() == "mine\n"
    forced = homelab(where, kubeconfig, "init", "--registry", A, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((where / "deploy.json").read_text())["schemaVersion"] == 2


def test_nothing_matches(cluster: tuple[KubeSim, Path], tmp_path: Path) -> None:
    _, kubeconfig = cluster
    where = repo(tmp_path)
    done = homelab(where, kubeconfig, "init", "--registry", "registry.none.example.org")
    assert done.returncode == 3
    assert "--registry" in done.stderr and A in done.stderr and B in done.stderr  # prefixes seen
    assert not (where / "deploy.json").exists()


def test_namespaces_it_may_not_list(cluster: tuple[KubeSim, Path], tmp_path: Path) -> None:
    kube, kubeconfig = cluster
    kube.rbac.restrict("", [])  # nothing at the cluster scope: no listing of namespaces
    where = repo(tmp_path)
    done = homelab(where, kubeconfig, "init", "--registry", A)
    assert done.returncode == 2
    assert "--namespace" in done.stderr
    done = homelab(where, kubeconfig, "init", "--registry", A, "--namespace", "shop")
    assert done.returncode == 0, done.stderr


def test_an_unreachable_cluster(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with KubeSim() as kube:
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace(f":{kube.port}", f":{port}"))
    where = repo(tmp_path)
    done = homelab(where, kubeconfig, "init", "--registry", A)
    assert done.returncode == 2
    assert "unreachable" in done.stderr and "next:" in done.stderr
    assert not (where / "deploy.json").exists()
