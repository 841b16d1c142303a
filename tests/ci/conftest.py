"""A real git repo with a remote, and the Woodpecker simulator over real TLS on 127.0.0.2."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from pytest_homelab.sim.woodpecker import WoodpeckerSim
from tests.gitenv import git, hermetic_git

HOSTNAME = "ci.example.test"
TOKEN = "wp-token-3f9c2d1e"
SLUG = "homelab/app"


@dataclass
class Lab:
    repo: Path
    sha: str
    sim: WoodpeckerSim
    ca_bundle: Path
    env: dict[str, str]

    def flags(self) -> list[str]:
        """The CLI/pytest flags that point at the simulator through the 'internal LB'."""
        return [
            "--woodpecker-server",
            self.sim.base_url,
            "--woodpecker-dial",
            f"127.0.0.2:{self.sim.port}",
            "--ca-bundle",
            str(self.ca_bundle),
        ]


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return hermetic_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> tuple[Path, str]:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("app\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", f"https://git.example.test/{SLUG}.git")
    return path, git(path, "rev-parse", "HEAD")


@pytest.fixture
def lab(
    repo: tuple[Path, str],
    ca: trustme.CA,
    ca_bundle: Path,
    git_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Lab]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(context)
    sim = WoodpeckerSim(
        host="127.0.0.2",
        port=0,
        ssl_context=context,
        public_host=HOSTNAME,
        token=TOKEN,
        ping_interval=1.0,
    )
    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    monkeypatch.chdir(repo[0])
    with sim:
        sim.add_repo(SLUG, private=True, default_branch="main")
        yield Lab(repo[0], repo[1], sim, ca_bundle, git_env)
