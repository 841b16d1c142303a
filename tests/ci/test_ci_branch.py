"""Which branch's pipeline counts (``ci_branch``), resolved from a real git clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_homelab.ci.models import Repo
from pytest_homelab.ci.phase import CiTarget, resolve_branch, resolve_target
from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.options import OPTIONS_BY_KEY
from pytest_homelab.core.settings import resolve_settings
from tests.gitenv import git, hermetic_git


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of a bare 'origin' whose HEAD is ``trunk`` (not main: nothing is guessed)."""
    hermetic_git(monkeypatch, tmp_path / "home")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "trunk", str(origin))
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "trunk")
    (seed / "README").write_text("x\n")
    git(seed, "add", "README")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", str(origin), "trunk")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    monkeypatch.chdir(work)
    return work


def branch_of(work: Path, **flags: object) -> tuple[str | None, str]:
    settings = resolve_settings(flags, environ={}, cwd=work)
    git_repo = GitRepo.discover(work)
    return resolve_branch(settings, git_repo, git(work, "rev-parse", "HEAD"))


def test_the_upstream_that_contains_the_commit(clone: Path) -> None:
    git(clone, "switch", "-q", "-c", "feature")
    (clone / "f").write_text("f\n")
    git(clone, "add", "f")
    git(clone, "commit", "-q", "-m", "feature")
    git(clone, "push", "-q", "-u", "origin", "feature")
    branch, source = branch_of(clone)
    assert branch == "feature" and "upstream of feature" in source


def test_an_upstream_with_another_remote_name_uses_the_branch_there(clone: Path) -> None:
    git(clone, "switch", "-q", "-c", "local-name")
    git(clone, "push", "-q", "origin", "HEAD:refs/heads/remote-name")
    git(clone, "branch", "-q", "--set-upstream-to", "origin/remote-name")
    assert branch_of(clone)[0] == "remote-name"


def test_unpushed_work_falls_back_to_the_remotes_default_branch(clone: Path) -> None:
    (clone / "g").write_text("g\n")
    git(clone, "add", "g")
    git(clone, "commit", "-q", "-m", "not pushed")  # trunk's upstream lacks it
    branch, source = branch_of(clone)
    assert branch == "trunk" and source == "origin/HEAD"


def test_without_origin_head_the_woodpecker_default_branch_decides(clone: Path) -> None:
    git(clone, "remote", "set-head", "origin", "--delete")
    git(clone, "switch", "-q", "--detach")
    branch, source = branch_of(clone)
    assert branch is None and "Woodpecker repo's default branch" in source
    target = CiTarget("homelab/app", "a" * 40, None, None, branch)
    assert target.branch_for(Repo(1, "homelab/app", default_branch="release")) == "release"
    assert target.branch_for(Repo(1, "homelab/app")) is None  # no default known: any


@pytest.mark.parametrize(("value", "expected"), [("main", "main"), ("*", "*")])
def test_an_explicit_value_wins(clone: Path, value: str, expected: str) -> None:
    assert branch_of(clone, ci_branch=value)[0] == expected


def test_the_environment_sets_it_and_refs_heads_is_stripped(clone: Path) -> None:
    settings = resolve_settings({}, environ={"HOMELAB_CI_BRANCH": "refs/heads/rel/1"}, cwd=clone)
    assert settings.ci_branch == "rel/1"


@pytest.mark.parametrize("bad", ["two words", "-x", "a..b", "end/", "x.lock", "a~1"])
def test_a_value_that_is_no_branch_name_is_refused(clone: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="is not a branch name"):
        OPTIONS_BY_KEY["ci_branch"].convert(bad)


def test_resolve_target_carries_the_branch(clone: Path) -> None:
    settings = resolve_settings({"woodpecker_repo": "homelab/app"}, environ={}, cwd=clone)
    target = resolve_target(settings)
    assert (target.slug, target.branch) == ("homelab/app", "trunk")
