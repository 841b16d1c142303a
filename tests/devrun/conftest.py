"""The launcher's test bed: a git origin served over HTTP with small stub runners committed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_homelab.sim.gitserver import GitHttpServer
from tests.gitenv import git, hermetic_git
from tests.samples import deploy_text, environment

STUBS = {
    "ok.sh": """#!/usr/bin/env bash
set -eu
while [ $# -gt 0 ]; do case "$1" in --result-dir) dir=$2; shift 2;; *) shift;; esac; done
echo "stub runner: args ok"
printf '{"ok": true, "status": "succeeded", "runId": "x"}\\n' >"$dir/result.json"
""",
    "args.sh": """#!/usr/bin/env bash
set -eu
dir=""; for a in "$@"; do printf '%s\\n' "$a"; done >"$PWD/args.txt"
while [ $# -gt 0 ]; do case "$1" in --result-dir) dir=$2; shift 2;; *) shift;; esac; done
mv "$PWD/args.txt" "$dir/args.txt"
printf '{"ok": true, "status": "succeeded"}\\n' >"$dir/result.json"
""",
    "dies.sh": "#!/usr/bin/env bash\necho 'about to fail'\nexit 5\n",
    "slow.sh": "#!/usr/bin/env bash\necho started\nexec sleep 60\n",
}


@dataclass
class Origin:
    server: GitHttpServer
    url: str
    sha: str
    home: Path


@pytest.fixture
def origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Origin]:
    hermetic_git(monkeypatch, tmp_path / "home")
    root = tmp_path / "git"
    root.mkdir()
    git(root, "init", "-q", "--bare", "app.git")
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "master")
    (work / "scripts" / "ci").mkdir(parents=True)
    for name, body in STUBS.items():
        (work / "scripts" / "ci" / name).write_text(body)
    (work / "deploy.json").write_text(deploy_text(dev=environment()))
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "runner stubs")
    git(work, "push", "-q", str(root / "app.git"), "master")
    home = tmp_path / "d601-home"
    home.mkdir()
    with GitHttpServer(root) as server:
        yield Origin(server, server.repo_url("app.git"), git(work, "rev-parse", "HEAD"), home)
