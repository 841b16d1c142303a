"""Ancestry, files at a commit, fetching, and a remote's default branch, with real repos."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.outcomes import BadInput, InfraError, NotFound

# -- ancestry ------------------------------------------------------------------------------------


def test_linear_ancestry(repo: GitRepo, git: Any) -> None:
    a = git(repo.root, "rev-parse", "HEAD")
    b = git.commit(repo.root, "two")
    c = git.commit(repo.root, "three")
    assert repo.is_ancestor(a, c) is True
    assert repo.is_ancestor(b, c) is True
    assert repo.is_ancestor(c, a) is False
    assert repo.is_ancestor(c, c) is True  # a commit descends from itself
    assert repo.is_ancestor(a[:8], "main") is True  # any revision works


def test_diverged_and_merged(repo: GitRepo, git: Any) -> None:
    base = git(repo.root, "rev-parse", "HEAD")
    git(repo.root, "switch", "-q", "-c", "side")
    side = git.commit(repo.root, "side", {"side.txt": "s"})
    git(repo.root, "switch", "-q", "main")
    main = git.commit(repo.root, "main", {"main.txt": "m"})
    assert repo.is_ancestor(side, main) is False and repo.is_ancestor(main, side) is False
    git(repo.root, "merge", "-q", "--no-edit", "side")
    merge = git(repo.root, "rev-parse", "HEAD")
    assert repo.is_ancestor(side, merge) is True and repo.is_ancestor(base, merge) is True


@pytest.mark.parametrize(
    "missing", ["f" * 40, "0123456789abcdef0123456789abcdef01234567", "nonsense", "-x", "", "a b"]
)
def test_a_commit_not_present_gives_none(repo: GitRepo, git: Any, missing: str) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    assert repo.is_ancestor(missing, head) is None
    assert repo.is_ancestor(head, missing) is None


def test_a_tree_or_blob_is_not_a_commit(repo: GitRepo, git: Any) -> None:
    blob = git(repo.root, "rev-parse", "HEAD:deploy.json")
    assert repo.is_ancestor(blob, "HEAD") is None


def test_shallow_clone_cannot_say_no(git: Any, tmp_path: Path, work: Path, bare: Path) -> None:
    old = git(work, "rev-parse", "HEAD")
    git(work, "branch", "old")
    git.commit(work, "two")
    new = git.commit(work, "three")
    git(work, "push", "-q", "origin", "main", "old")
    shallow = tmp_path / "shallow"
    git(
        tmp_path,
        "clone",
        "-q",
        "--depth",
        "1",
        "--no-single-branch",
        f"file://{bare}",
        str(shallow),
    )
    repo = GitRepo.discover(shallow)
    assert repo.resolve_commit(old) == old and repo.resolve_commit(new) == new
    assert repo.is_ancestor(old, new) is None  # the history between them is cut
    assert repo.is_ancestor(new, new) is True


# -- files at a commit ---------------------------------------------------------------------------


def test_show_file_reads_the_commit_not_the_working_tree(repo: GitRepo, git: Any) -> None:
    first = git(repo.root, "rev-parse", "HEAD")
    second = git.commit(repo.root, "two", {"deploy.json": "v2\n"})
    (repo.root / "deploy.json").write_text("dirty\n")
    assert repo.show_file(first, "deploy.json") == b"v1\n"
    assert repo.show_file(second, "deploy.json") == b"v2\n"
    assert repo.show_file("HEAD", "deploy.json") == b"v2\n"
    git(repo.root, "add", "deploy.json")  # staged is not committed either
    assert repo.show_file("HEAD", "deploy.json") == b"v2\n"
    (repo.root / "deploy.json").unlink()
    assert repo.show_file("v1", "deploy.json") == b"v1\n"


def test_show_file_path_forms(repo: GitRepo, git: Any) -> None:
    git.commit(
        repo.root,
        "more",
        {"dir with space/a b.json": "sp", "-dash.json": "d", "bin.dat": bytes(range(256))},
    )
    assert repo.show_file("HEAD", "conf/app.yaml") == b"a: 1\n"
    assert repo.show_file("HEAD", "./conf/app.yaml") == b"a: 1\n"
    assert repo.show_file("HEAD", Path("conf") / "app.yaml") == b"a: 1\n"
    assert repo.show_file("HEAD", repo.root / "conf" / "app.yaml") == b"a: 1\n"  # absolute, inside
    assert repo.show_file("HEAD", "dir with space/a b.json") == b"sp"
    assert repo.show_file("HEAD", "-dash.json") == b"d"
    assert repo.show_file("HEAD", "bin.dat") == bytes(range(256))


def test_show_file_missing_is_not_found(repo: GitRepo, git: Any) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    (repo.root / "new.json").write_text("{}")  # only in the working tree
    with pytest.raises(NotFound) as info:
        repo.show_file(head, "new.json")
    assert f"{head}:new.json" in str(info.value)
    with pytest.raises(NotFound, match=r"no file HEAD:missing\.json \(commit [0-9a-f]{12}\)"):
        repo.show_file("HEAD", "missing.json")


@pytest.mark.parametrize(
    ("commit", "path", "fragment"),
    [
        ("HEAD", "conf", "is a directory"),
        ("HEAD", "../outside", "does not name a file inside"),
        ("HEAD", "", "path is empty"),
        ("HEAD", "/etc/passwd", "is outside the repository"),
        ("nope", "deploy.json", "unknown commit 'nope'"),
        ("-x", "deploy.json", "starts with '-'"),
    ],
)
def test_show_file_bad_input(repo: GitRepo, commit: str, path: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        repo.show_file(commit, path)


# -- fetch ---------------------------------------------------------------------------------------


def test_fetch_brings_commits_made_elsewhere(
    git: Any, tmp_path: Path, repo: GitRepo, bare: Path
) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    landed = git.commit(other, "landed elsewhere")
    git(other, "push", "-q", "origin", "main")
    with pytest.raises(BadInput, match="unknown commit"):
        repo.resolve_commit(landed)
    repo.fetch("origin")
    assert repo.resolve_commit(landed) == landed
    assert repo.resolve_commit("origin/main") == landed
    git(other, "push", "-q", "origin", "main:refs/heads/release")
    repo.fetch("origin", "+refs/heads/release:refs/remotes/origin/release")
    assert repo.resolve_commit("origin/release") == landed


def test_fetch_errors(repo: GitRepo, git: Any, bare: Path) -> None:
    with pytest.raises(BadInput, match="couldn't find remote ref"):
        repo.fetch("origin", "refs/heads/nope")
    with pytest.raises(BadInput, match="starts with '-'"):
        repo.fetch("--upload-pack=touch /tmp/x")
    with pytest.raises(BadInput, match="starts with '-'"):
        repo.fetch("origin", "--upload-pack=x")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fetch_unreachable_never_shows_credentials(repo: GitRepo, git: Any) -> None:
    url = f"http://user:s3cr3t-pw@127.0.0.1:{closed_port()}/o/r.git"
    git(repo.root, "remote", "add", "origin", url)
    with pytest.raises(InfraError, match="git fetch origin failed") as info:
        repo.fetch("origin")
    assert "s3cr3t-pw" not in str(info.value) and "s3cr3t-pw" not in repr(info.value)


# -- default branch ------------------------------------------------------------------------------


def test_default_branch_from_the_clone(git: Any, tmp_path: Path, work: Path, bare: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    repo = GitRepo.discover(clone)
    assert repo.default_branch("origin") == "main"  # refs/remotes/origin/HEAD
    git(clone, "remote", "set-head", "origin", "--delete")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
    git(work, "push", "-q", "origin", "main:trunk")
    assert repo.default_branch("origin") == "trunk"  # asked of the remote


def test_default_branch_local_head_wins(repo: GitRepo, git: Any, bare: Path) -> None:
    repo.fetch("origin")
    git(repo.root, "remote", "set-head", "origin", "main")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/other")
    assert repo.default_branch("origin") == "main"


def test_default_branch_from_ls_remote(repo: GitRepo, bare: Path) -> None:
    # a remote added by hand and fetched has no refs/remotes/origin/HEAD
    repo.fetch("origin")
    assert repo.default_branch("origin") == "main"


def test_default_branch_fallbacks(repo: GitRepo, git: Any, tmp_path: Path, bare: Path) -> None:
    git(repo.root, "push", "-q", "origin", "main:master")
    repo.fetch("origin", "+refs/heads/master:refs/remotes/origin/master")
    git(repo.root, "update-ref", "-d", "refs/remotes/origin/main")  # the push made it
    git(repo.root, "remote", "set-url", "origin", str(tmp_path / "gone.git"))  # unreachable now
    assert repo.default_branch("origin") == "master"
    repo.run("update-ref", "refs/remotes/origin/main", "HEAD")
    assert repo.default_branch("origin") == "main"  # main before master


def test_default_branch_unknown(repo: GitRepo, git: Any, tmp_path: Path) -> None:
    git(repo.root, "remote", "add", "origin", str(tmp_path / "gone.git"))
    with pytest.raises(BadInput) as info:
        repo.default_branch("origin")
    text = str(info.value)
    assert "cannot tell the default branch of remote 'origin'" in text
    assert "set-head origin --auto" in text
    with pytest.raises(BadInput, match="starts with '-'"):
        repo.default_branch("-x")
