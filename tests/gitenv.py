"""Hermetic git for tests: a throw-away HOME and identity, and none of the user's settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

# Settings a developer's shell may carry that would steer the code under test.
FOREIGN = ("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout, stripped. Fails the test on a non-zero exit."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def hermetic_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> dict[str, str]:
    """Point HOME (and git's global config) at ``home``, set a git identity, and drop the
    HOMELAB_/WOODPECKER_/VAULT_/KUBE* variables and WP_TOKEN. Returns what it set."""
    home.mkdir(parents=True, exist_ok=True)
    values = {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / ".state"),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key.startswith(FOREIGN) or key == "WP_TOKEN":
            monkeypatch.delenv(key)
    return values


def landing_suite(root: Path, check: str) -> Path:
    """A git work tree at ``root`` with a ``checks/`` directory holding ``check`` as
    ``test_mine.py``: the suite a repository of its own lands with (the CLI finds it, and
    pytest sessions of it are landing sessions)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    checks = root / "checks"
    checks.mkdir()
    (checks / "test_mine.py").write_text(check)
    return checks
