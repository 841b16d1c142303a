"""A simulated cluster with a kubeconfig, and a git repo whose deploy.json names its services."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset
from tests.gitenv import git, hermetic_git
from tests.samples import deploy_text, environment

REGISTRY = "registry.example.test/homelab"
OLD = "0000000a"


@dataclass
class Cluster:
    sim: KubeSim
    kubeconfig: Path
    repo: Path
    sha: str
    services: list[dict[str, Any]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def image(self, name: str, sha: str | None = None) -> str:
        return f"{REGISTRY}/{name}:main-{(sha or self.sha)[:8]}"

    def add(
        self,
        name: str,
        namespace: str,
        *,
        kind: str = "Deployment",
        replicas: int = 2,
        in_manifest: bool = True,
        **kw: Any,
    ) -> None:
        if ("namespaces", "", namespace) not in self.sim.store.objects:
            self.sim.create_namespace(namespace)
        old = f"{REGISTRY}/{name}:{OLD}"
        if kind == "Deployment":
            self.sim.apply(deployment(name, namespace, old, replicas=replicas, **kw))
        elif kind == "StatefulSet":
            self.sim.apply(statefulset(name, namespace, old, replicas=replicas))
        else:
            self.sim.apply(daemonset(name, namespace, old))
        if in_manifest:
            entry: dict[str, Any] = {
                "name": name,
                "namespace": namespace,
                "image": f"{REGISTRY}/{name}",
            }
            if kind != "Deployment":
                entry["kind"] = kind
            self.services.append(entry)

    def write_manifest(self, env: str = "dev") -> None:
        (self.repo / "deploy.json").write_text(deploy_text(**{env: environment(self.services)}))

    def land(
        self,
        name: str,
        namespace: str,
        *,
        after: float = 0.3,
        sha: str | None = None,
        kind: str = "Deployment",
    ) -> None:
        """What CI/GitOps does: bump the image, ``after`` seconds into the watch."""
        self.later(
            after, lambda: self.sim.set_image(namespace, name, self.image(name, sha), kind=kind)
        )

    def later(self, after: float, action: Callable[[], object]) -> None:
        """Run ``action`` once the tracker watches (its first look is done), plus ``after``."""

        def run() -> None:
            deadline = time.monotonic() + 60
            while self.sim.watches_opened == 0 and time.monotonic() < deadline:
                if self.stopped.wait(0.01):
                    return
            if not self.stopped.wait(after):
                action()

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()

    def flags(self) -> list[str]:
        """The CLI's flags."""
        return ["--kubeconfig", str(self.kubeconfig)]

    def pytest_flags(self) -> list[str]:
        """The same for a plain pytest run, where options are namespaced."""
        return ["--homelab-kubeconfig", str(self.kubeconfig)]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    hermetic_git(monkeypatch, tmp_path / "home")
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("app\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    monkeypatch.chdir(repo)
    sim = KubeSim(speed=4.0, timing=Timing(observe=0.1, terminate=0.2))
    with sim:
        c = Cluster(
            sim, sim.kubeconfig(tmp_path / "kubeconfig"), repo, git(repo, "rev-parse", "HEAD")
        )
        try:
            yield c
        finally:
            c.stopped.set()
            for thread in c.threads:
                thread.join(timeout=5)
