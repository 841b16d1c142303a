"""Finding the repo and resolving commits against real repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.outcomes import BadInput


def test_discover_from_a_subdirectory_and_a_file(repo: GitRepo) -> None:
    sub = repo.root / "a" / "b"
    sub.mkdir(parents=True)
    assert GitRepo.discover(sub).root == repo.root
    assert GitRepo.discover(str(repo.root / "deploy.json")).root == repo.root
    assert GitRepo.discover(repo.root).root == repo.root


def test_outside_a_repo(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(BadInput) as info:
        GitRepo.discover(outside)
    assert f"not inside a git repository (cwd={outside})" in str(info.value)
    assert "--repo OWNER/NAME" in str(info.value)


def test_inside_the_git_dir(repo: GitRepo) -> None:
    with pytest.raises(BadInput, match="not inside a git work tree"):
        GitRepo.discover(repo.root / ".git")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        GitRepo.discover(tmp_path / "nope")


def test_git_not_installed(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BadInput, match="git is not installed") as info:
        GitRepo.discover(repo.root)
    assert info.value.hint and "install git" in info.value.hint
    with pytest.raises(BadInput, match="git is not installed"):
        repo.resolve_commit("HEAD")


def test_git_dir_in_the_environment_is_ignored(
    repo: GitRepo, git: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = git.init(tmp_path / "other")
    other_head = git.commit(other, "elsewhere")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert repo.resolve_commit("HEAD") != other_head
    assert GitRepo.discover(repo.root).root == repo.root


def test_resolve_commit_forms(repo: GitRepo, git: Any) -> None:
    first = git(repo.root, "rev-parse", "HEAD")
    assert len(first) == 40
    for ref in ("HEAD", "main", "refs/heads/main", "v1", "v1-notes", first, first[:7], first[:4]):
        assert repo.resolve_commit(ref) == first, ref
    assert repo.resolve_commit(first.upper()) == first
    assert repo.resolve_commit(first[:10].upper()) == first
    second = git.commit(repo.root, "two")
    assert repo.resolve_commit("HEAD~1") == first
    assert repo.resolve_commit("HEAD^") == first
    assert repo.resolve_commit("HEAD") == second
    assert repo.resolve_commit("v1-notes^{}") == first
    git(repo.root, "switch", "-q", "-c", "feature")
    third = git.commit(repo.root, "three")
    assert repo.resolve_commit("feature") == third and repo.resolve_commit("main") == second
    git(repo.root, "switch", "-q", "--detach", first)
    assert repo.resolve_commit("HEAD") == first


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "-x",
        "--all",
        "--output=/tmp/x",
        "a b",
        " HEAD",
        "HEAD ",
        "HE\nAD",
        "main\x00",
        "\t",
        "H\x7f",
    ],
)
def test_resolve_commit_refuses_odd_refs(repo: GitRepo, ref: str) -> None:
    with pytest.raises(BadInput) as info:
        repo.resolve_commit(ref)
    assert "commit" in str(info.value)


@pytest.mark.parametrize("ref", ["nope", "v9", "HEAD~5", "feature/x", "abc", "deadbeef", "0" * 40])
def test_unknown_refs_are_named(repo: GitRepo, ref: str) -> None:
    with pytest.raises(BadInput) as info:
        repo.resolve_commit(ref)
    assert f"unknown commit {ref!r}" in str(info.value)
    assert "git fetch" in str(info.value)


def test_ambiguous_short_sha(
    repo: GitRepo, colliding_commits: Callable[[Path], tuple[str, str]]
) -> None:
    first, second = colliding_commits(repo.root)
    prefix = first[:4]
    with pytest.raises(BadInput) as info:
        repo.resolve_commit(prefix)
    text = str(info.value)
    assert f"short sha {prefix} is ambiguous" in text and "more characters" in text
    assert first[:12] in text and second[:12] in text
    with pytest.raises(BadInput, match="is ambiguous"):
        repo.resolve_commit(prefix.upper())
    common = len(next(a for a in [first[: i + 1] for i in range(40)] if not second.startswith(a)))
    assert repo.resolve_commit(first[:common]) == first
    assert repo.resolve_commit(second[:common]) == second
    assert repo.resolve_commit(first) == first


def test_a_blob_sharing_the_prefix_does_not_make_it_ambiguous(
    repo: GitRepo, git: Any, blob_sharing_prefix_with: Callable[[Path, str], str]
) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    blob = blob_sharing_prefix_with(repo.root, head)
    assert blob[:4] == head[:4] and blob != head
    assert repo.resolve_commit(head[:4]) == head  # git's commit-ish rule picks the commit


def test_objects_that_are_not_commits(repo: GitRepo, git: Any) -> None:
    blob = git(repo.root, "rev-parse", "HEAD:deploy.json")
    with pytest.raises(BadInput, match=f"{blob[:10]} names a blob .*, not a commit"):
        repo.resolve_commit(blob[:10])
    with pytest.raises(BadInput, match="names a blob"):
        repo.resolve_commit(blob)
    with pytest.raises(BadInput, match=r"'HEAD:deploy\.json' names a blob"):
        repo.resolve_commit("HEAD:deploy.json")
    with pytest.raises(BadInput, match=r"'HEAD\^\{tree\}' names a tree"):
        repo.resolve_commit("HEAD^{tree}")


def test_empty_repository(git: Any, tmp_path: Path) -> None:
    empty = GitRepo.discover(git.init(tmp_path / "empty"))
    with pytest.raises(BadInput, match="has no commits yet"):
        empty.resolve_commit("HEAD")
    with pytest.raises(BadInput, match="unknown commit 'main'"):
        empty.resolve_commit("main")


def test_commit_time_is_the_committer_time(repo: GitRepo, git: Any) -> None:
    first = git(repo.root, "rev-parse", "HEAD")
    stamp = int(git(repo.root, "show", "-s", "--format=%ct", "HEAD"))
    assert repo.commit_time(first) == stamp == git.clock
    later = git.commit(repo.root, "two")
    assert repo.commit_time(later) == stamp + 60
    assert repo.commit_time("v1-notes") == stamp  # an annotated tag: its commit's time
    git(repo.root, "config", "log.showSignature", "true")  # must not break the parsing
    assert repo.commit_time("HEAD") == stamp + 60
    with pytest.raises(BadInput, match="unknown commit"):
        repo.commit_time("f" * 40)
