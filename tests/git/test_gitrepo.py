"""Git facts against real repositories: commits, remotes, ancestry, files at a commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_homelab.gitrepo import GitRepo, parse_repo_flag, parse_repo_slug
from pytest_homelab.outcomes import BadInput, NotFound


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "deploy.json").write_text("v1\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "one")
    git(path, "tag", "v1")
    return GitRepo.discover(path)


def commit(repo: GitRepo, message: str) -> str:
    (repo.root / "f").write_text(message)
    git(repo.root, "add", "f")
    git(repo.root, "commit", "-q", "-m", message)
    return git(repo.root, "rev-parse", "HEAD")


def test_discover_from_a_subdirectory(repo: GitRepo) -> None:
    sub = repo.root / "a" / "b"
    sub.mkdir(parents=True)
    assert GitRepo.discover(sub).root == repo.root


def test_outside_a_repo(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(BadInput, match="not inside a git repository"):
        GitRepo.discover(outside)


def test_resolve_commit_forms(repo: GitRepo) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    assert repo.resolve_commit("HEAD") == head
    assert repo.resolve_commit("main") == head
    assert repo.resolve_commit("v1") == head  # an annotated or light tag peels to the commit
    assert repo.resolve_commit(head[:7]) == head
    assert repo.resolve_commit(head.upper()) == head
    second = commit(repo, "two")
    assert repo.resolve_commit("HEAD~1") == head and repo.resolve_commit("HEAD") == second


@pytest.mark.parametrize("ref", ["nope", "-x", "--all", "a b", "HE\nAD", "", "main\x00", "  "])
def test_resolve_commit_rejects(repo: GitRepo, ref: str) -> None:
    with pytest.raises(BadInput):
        repo.resolve_commit(ref)


def test_ambiguous_short_sha(repo: GitRepo) -> None:
    # 1000 commits with fixed dates: the same hashes every run, and (birthday bound) some pair
    # shares a 4-hex prefix.
    stream = "".join(
        f"commit refs/heads/many\ncommitter t <t@example.test> {1_700_000_000 + n} +0000\n"
        f"data {len(f'c{n}')}\nc{n}\n"
        for n in range(1000)
    )
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=repo.root,
        input=stream,
        text=True,
        check=True,
        capture_output=True,
    )
    shas = git(repo.root, "rev-list", "many").split()
    seen: dict[str, str] = {}
    prefix = next(
        sha[:4] for sha in shas if sha[:4] in seen or seen.setdefault(sha[:4], sha) is None
    )
    with pytest.raises(BadInput, match="ambiguous"):
        repo.resolve_commit(prefix)
    assert repo.resolve_commit(shas[0][:12]) == shas[0]


def test_remote_selection(repo: GitRepo) -> None:
    with pytest.raises(BadInput, match="has no git remote"):
        repo.pick_remote()
    git(repo.root, "remote", "add", "upstream", "https://h/o/up.git")
    assert repo.pick_remote() == "upstream"  # the only one
    git(repo.root, "remote", "add", "mirror", "https://h/o/m.git")
    with pytest.raises(BadInput, match="several git remotes"):
        repo.pick_remote()
    git(repo.root, "remote", "add", "origin", "https://h/o/r.git")
    assert repo.pick_remote() == "origin"
    git(repo.root, "remote", "add", "forgejo", "https://h/o/f.git")
    assert repo.pick_remote() == "forgejo"  # the Go CLI's preference
    assert repo.pick_remote("mirror") == "mirror"
    with pytest.raises(BadInput, match="no git remote named 'nope'"):
        repo.pick_remote("nope")
    assert repo.remote_url("origin") == "https://h/o/r.git"


def test_ancestry(repo: GitRepo) -> None:
    a = git(repo.root, "rev-parse", "HEAD")
    b = commit(repo, "two")
    assert repo.is_ancestor(a, b) is True
    assert repo.is_ancestor(b, a) is False
    assert repo.is_ancestor(a, "f" * 40) is None  # not present here
    assert repo.is_ancestor("nonsense", b) is None


def test_show_file_reads_the_commit_not_the_working_tree(repo: GitRepo) -> None:
    first = git(repo.root, "rev-parse", "HEAD")
    (repo.root / "deploy.json").write_text("dirty\n")
    assert repo.show_file(first, "deploy.json") == b"v1\n"
    with pytest.raises(NotFound, match=r"no file missing\.json"):
        repo.show_file(first, "missing.json")


def test_commit_time(repo: GitRepo) -> None:
    assert repo.commit_time(git(repo.root, "rev-parse", "HEAD")) > 1_600_000_000


def test_default_branch_and_fetch(repo: GitRepo, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "trunk", str(bare))
    git(repo.root, "remote", "add", "origin", str(bare))
    git(repo.root, "push", "-q", "origin", "main:trunk")
    assert repo.default_branch("origin") == "trunk"  # from ls-remote --symref
    repo.fetch("origin")
    git(repo.root, "remote", "set-head", "origin", "--auto")
    assert repo.default_branch("origin") == "trunk"  # from refs/remotes/origin/HEAD


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://github.com/pikasTech/unidesk", "pikasTech/unidesk"),
        ("https://github.com/pikasTech/unidesk.git", "pikasTech/unidesk"),
        ("https://github.com/pikasTech/unidesk/", "pikasTech/unidesk"),
        ("http://git.lan:3000/homelab/app.git", "homelab/app"),
        ("https://user:s3cret@git.lan/homelab/app.git", "homelab/app"),
        ("ssh://git@git.lan:2222/homelab/app.git", "homelab/app"),
        ("git@github.com:ViktorBarzin/infra.git", "ViktorBarzin/infra"),
        ("forgejo@git.lan:homelab/app", "homelab/app"),
        ("git.lan:homelab/app.git", "homelab/app"),
        ("https://gitlab.com/group/sub/project.git", "group/sub/project"),
        ("git://git.lan/o/r.git", "o/r"),
        ("  https://h/o/r.git  ", "o/r"),
    ],
)
def test_parse_repo_slug(url: str, slug: str) -> None:
    assert parse_repo_slug(url) == slug


@pytest.mark.parametrize(
    "url",
    [
        "",
        "nonsense",
        "https://host",
        "https://host/only",
        "file:///srv/git/o/r.git",
        "/srv/git/o/r.git",
        "https://h/o//r",
        "https://h/../r",
        "git@host:",
        "https://h/o/r x",
        "ftp://h/o/r",
    ],
)
def test_parse_repo_slug_rejects(url: str) -> None:
    with pytest.raises(BadInput):
        parse_repo_slug(url)


def test_credentials_never_appear_in_errors() -> None:
    with pytest.raises(BadInput) as info:
        parse_repo_slug("https://user:tok-123@host/only")
    assert "tok-123" not in str(info.value) and "***@host" in str(info.value)


@pytest.mark.parametrize(
    ("value", "slug"),
    [
        ("homelab/app", "homelab/app"),
        ("group/sub/app", "group/sub/app"),
        (" o/r ", "o/r"),
        ("o/r.git", "o/r"),
        ("https://git.lan/o/r.git", "o/r"),
        ("git@h:o/r.git", "o/r"),
    ],
)
def test_parse_repo_flag(value: str, slug: str) -> None:
    assert parse_repo_flag(value) == slug


@pytest.mark.parametrize("value", ["", "app", "/app", "app/", "a//b", "a b/c", "a/b c", "../x"])
def test_parse_repo_flag_rejects(value: str) -> None:
    with pytest.raises(BadInput, match="OWNER/NAME"):
        parse_repo_flag(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_urls_only_raise_bad_input(text: str) -> None:
    for parse in (parse_repo_slug, parse_repo_flag):
        try:
            slug = parse(text)
        except BadInput:
            continue
        assert "/" in slug and all(slug.split("/"))
