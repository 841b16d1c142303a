"""Real git repositories in tmp_path, isolated from the user's and the system's git config."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_homelab.core.gitrepo import GitRepo

EPOCH = 1_700_000_000
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class Git:
    """Runs git for test set-up; every commit gets the next fixed date, so shas are stable."""

    def __init__(self) -> None:
        self.clock = EPOCH

    def __call__(
        self, cwd: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {done.stderr.decode()}")
        return done.stdout.decode().strip()

    def commit(self, cwd: Path, message: str, files: dict[str, str | bytes] | None = None) -> str:
        """Write ``files`` (default: ``f`` = message), commit them all, return the sha."""
        for name, content in (files or {"f": message}).items():
            path = cwd / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        self(cwd, "add", "-A")
        self.clock += 60
        date = f"@{self.clock} +0000"
        dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        self(cwd, "commit", "-q", "-m", message, env=dates)
        return self(cwd, "rev-parse", "HEAD")

    def init(self, path: Path, *, bare: bool = False, branch: str = "main") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self(path, "init", "-q", *(["--bare"] if bare else []), "-b", branch)
        return path


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config, a temporary HOME, a fixed identity, no GIT_DIR & co."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / "gitconfig"
    config.write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = t\n\temail = t@example.test\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "t")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "t@example.test")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_AUTHOR_DATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False)


@pytest.fixture
def git() -> Git:
    """A git runner for set-up (a callable ``git(cwd, *args)`` with ``.commit`` and ``.init``)."""
    return Git()


@pytest.fixture
def work(git: Git, tmp_path: Path) -> Path:
    """A work tree on ``main``: one commit (deploy.json, conf/app.yaml), tags v1 and v1-notes."""
    path = git.init(tmp_path / "work")
    git.commit(path, "one", {"deploy.json": "v1\n", "conf/app.yaml": "a: 1\n"})
    git(path, "tag", "v1")
    git(path, "tag", "-a", "-m", "notes", "v1-notes")
    return path


@pytest.fixture
def repo(work: Path) -> GitRepo:
    """``GitRepo`` bound to ``work``."""
    return GitRepo.discover(work)


@pytest.fixture
def bare(git: Git, tmp_path: Path, work: Path) -> Path:
    """A bare repo (HEAD → main) holding ``work``'s main, added to ``work`` as ``origin``."""
    path = git.init(tmp_path / "remote.git", bare=True)
    git(work, "remote", "add", "origin", str(path))
    git(work, "push", "-q", "origin", "main")
    return path


def commit_object(n: int, parent: str | None = None) -> bytes:
    """The body of a commit object on the empty tree; ``n`` makes each one distinct."""
    lines = [f"tree {EMPTY_TREE}"]
    if parent:
        lines.append(f"parent {parent}")
    lines += [
        f"author t <t@example.test> {EPOCH} +0000",
        f"committer t <t@example.test> {EPOCH} +0000",
    ]
    return ("\n".join(lines) + f"\n\nobject {n}\n").encode()


def object_sha(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body).hexdigest()


@pytest.fixture
def write_object(git: Git) -> Callable[[Path, str, bytes], str]:
    """Write a loose object of ``kind`` into the repo at a path; returns its sha."""

    def write(path: Path, kind: str, body: bytes) -> str:
        return git(path, "hash-object", "-t", kind, "-w", "--stdin", stdin=body)

    return write


@pytest.fixture
def colliding_commits(
    write_object: Callable[[Path, str, bytes], str],
) -> Callable[[Path], tuple[str, str]]:
    """Write two commits whose shas share their first 4 hex digits (found by hashing, bounded)."""

    def make(path: Path) -> tuple[str, str]:
        write_object(path, "tree", b"")
        seen: dict[str, int] = {}
        for n in range(100_000):  # birthday bound: a 4-hex collision comes after ~300 tries
            prefix = object_sha("commit", commit_object(n))[:4]
            if prefix in seen:
                first = write_object(path, "commit", commit_object(seen[prefix]))
                second = write_object(path, "commit", commit_object(n))
                assert first[:4] == second[:4] and first != second
                return first, second
            seen[prefix] = n
        raise AssertionError("no 4-hex collision within the bound")

    return make


@pytest.fixture
def blob_sharing_prefix_with(
    write_object: Callable[[Path, str, bytes], str],
) -> Callable[[Path, str], str]:
    """Write a blob whose sha starts with the same 4 hex digits as ``sha`` (bounded search)."""

    def make(path: Path, sha: str) -> str:
        for n in range(3_000_000):  # expected ~65 536 tries
            body = f"blob {n}\n".encode()
            if object_sha("blob", body)[:4] == sha[:4]:
                return write_object(path, "blob", body)
        raise AssertionError("no blob with that prefix within the bound")

    return make
