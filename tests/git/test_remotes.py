"""Which remote names the repo: preferred, else forgejo, else origin, else the only one."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_homelab.core.gitrepo import GitRepo, parse_repo_slug
from pytest_homelab.core.outcomes import BadInput


def add_remotes(repo: GitRepo, git: Any, names: list[str]) -> None:
    for name in names:
        git(repo.root, "remote", "add", name, f"https://git.example.test/o/{name}.git")


@pytest.mark.parametrize(
    ("names", "preferred", "expected"),
    [
        (["upstream"], None, "upstream"),  # the only remote
        (["origin"], None, "origin"),
        (["upstream", "origin"], None, "origin"),
        (["origin", "upstream"], None, "origin"),
        (["forgejo"], None, "forgejo"),
        (["origin", "forgejo"], None, "forgejo"),  # the Go CLI's order: forgejo before origin
        (["forgejo", "origin", "mirror"], None, "forgejo"),
        (["a", "b"], "b", "b"),
        (["origin", "forgejo"], "origin", "origin"),  # an explicit choice beats the order
        (["only"], "only", "only"),
    ],
)
def test_pick_remote(
    repo: GitRepo, git: Any, names: list[str], preferred: str | None, expected: str
) -> None:
    add_remotes(repo, git, names)
    assert sorted(repo.remotes()) == sorted(names)
    assert repo.pick_remote(preferred) == expected


@pytest.mark.parametrize(
    ("names", "preferred", "fragments"),
    [
        ([], None, ["has no git remote", "--repo OWNER/NAME"]),
        (["a", "b"], None, ["several git remotes", "forgejo or origin: a, b", "--remote"]),
        (["a", "b"], "nope", ["no git remote named 'nope'", "(remotes: a, b)", "--remote"]),
        ([], "origin", ["no git remote named 'origin'", "(remotes: none)"]),
    ],
)
def test_pick_remote_errors(
    repo: GitRepo, git: Any, names: list[str], preferred: str | None, fragments: list[str]
) -> None:
    add_remotes(repo, git, names)
    with pytest.raises(BadInput) as info:
        repo.pick_remote(preferred)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_remote_url(repo: GitRepo, git: Any) -> None:
    git(repo.root, "remote", "add", "origin", "https://user:tok@git.example.test/o/r.git")
    assert repo.remote_url("origin") == "https://user:tok@git.example.test/o/r.git"
    with pytest.raises(BadInput, match=r"no git remote named 'nope' .*\(remotes: origin\)"):
        repo.remote_url("nope")


def test_remote_url_applies_instead_of(repo: GitRepo, git: Any) -> None:
    git(repo.root, "config", "url.ssh://git@git.example.test:2222/.insteadOf", "lab:")
    git(repo.root, "remote", "add", "forgejo", "lab:homelab/app.git")
    url = repo.remote_url(repo.pick_remote())
    assert url == "ssh://git@git.example.test:2222/homelab/app.git"
    assert parse_repo_slug(url) == "homelab/app"


def test_a_remote_named_like_an_option(repo: GitRepo, git: Any) -> None:
    git(repo.root, "remote", "add", "--", "-dash", "https://git.example.test/o/dash.git")
    assert repo.pick_remote() == "-dash"
    assert repo.remote_url("-dash") == "https://git.example.test/o/dash.git"
