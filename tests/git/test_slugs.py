"""Remote URL → Woodpecker ``owner/name``, and the user's ``--repo``: a table, then hypothesis."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pytest_homelab.core.gitrepo import mask_credentials, parse_repo_flag, parse_repo_slug
from pytest_homelab.core.outcomes import BadInput

SLUG = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+")


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://github.com/pikasTech/unidesk", "pikasTech/unidesk"),
        ("https://github.com/pikasTech/unidesk.git", "pikasTech/unidesk"),
        ("https://github.com/pikasTech/unidesk/", "pikasTech/unidesk"),
        ("https://github.com/pikasTech/unidesk.git/", "pikasTech/unidesk"),
        ("HTTPS://GitHub.com/O/R", "O/R"),
        ("http://git.lan/homelab/app", "homelab/app"),
        ("http://git.lan:3000/homelab/app.git", "homelab/app"),
        ("https://user:s3cret@git.lan/homelab/app.git", "homelab/app"),
        ("https://oauth2:glpat-xyz@gitlab.lan:8443/g/app.git", "g/app"),
        ("https://tok@git.lan/homelab/app.git", "homelab/app"),
        ("ssh://git@git.lan:2222/homelab/app.git", "homelab/app"),
        ("ssh://git.lan/homelab/app", "homelab/app"),
        ("git+ssh://git@git.lan/homelab/app.git", "homelab/app"),
        ("ssh://git@[::1]:2222/o/r.git", "o/r"),
        ("git@github.com:ViktorBarzin/infra.git", "ViktorBarzin/infra"),
        ("git@github.com:ViktorBarzin/infra", "ViktorBarzin/infra"),
        ("git@github.com:/ViktorBarzin/infra.git", "ViktorBarzin/infra"),
        ("forgejo@git.lan:homelab/app", "homelab/app"),
        ("git.lan:homelab/app.git", "homelab/app"),
        ("git@[fd00::1]:o/r.git", "o/r"),
        ("https://gitlab.com/group/sub/project.git", "group/sub/project"),
        ("git@gitlab.com:group/sub/deeper/project.git", "group/sub/deeper/project"),
        ("https://gitlab.com/group/sub/project/-/tree/main", "group/sub/project"),
        ("https://github.com/o/r/tree/main/docs", "o/r"),  # GitHub is always owner/name
        ("git://git.lan/o/r.git", "o/r"),
        ("  https://h/o/r.git \n", "o/r"),
        ("https://h/o/r.git?ref=main#frag", "o/r"),
        ("https://h/my%2Dorg/r", "my-org/r"),
        ("https://h/o.dots/r_under-score", "o.dots/r_under-score"),
        ("https://h/.github/r", ".github/r"),
    ],
)
def test_parse_repo_slug(url: str, slug: str) -> None:
    assert parse_repo_slug(url) == slug


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("nonsense", "is a local path"),
        ("/srv/git/o/r.git", "is a local path"),
        ("../r.git", "is a local path"),
        ("file:///srv/git/o/r.git", "file:// path; it names no owner"),
        ("https://host", "has no path"),
        ("https://host/", "has no path"),
        ("https://host/only", "names no owner: only 'only'"),
        ("https://host/only.git", "names no owner"),
        ("git@host:r.git", "names no owner"),
        ("git@host:", "has no path"),
        (":o/r", "has no host"),
        ("https://h/o//r", "empty path segment"),
        ("https://h/../r", "'..' is not a valid owner or repo name"),
        ("https://h/o/r x", "contains whitespace"),
        ("https://h/o/\x00r", "contains whitespace or control"),
        ("ftp://h/o/r", "scheme 'ftp'"),
        ("https:///o/r", "has no host"),
        ("https://h:99999/o/r", "is not a valid URL"),
        ("http://[::1/o/r", "is not a valid URL"),
        ("https://h/o/r%20x", "'r x' is not a valid"),
        ("https://h/o%2Fx/r", "is not a valid owner"),
        ("https://h/%ff/r", "undecodable"),
        ("https://h/~user/r", "'~user' is not a valid"),
        ("https://h/-/r", "has no path"),
    ],
)
def test_parse_repo_slug_rejects(url: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_repo_slug(url)
    assert fragment in str(info.value)
    assert "git remote URL" in str(info.value)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://user:tok-123@host/only", "tok-123"),
        ("https://tok-123@host/only", "tok-123"),
        ("https://user:tok-123@host", "tok-123"),
        ("https://user:tok@123@host/only", "tok@123"),  # an unescaped '@' in the password
        ("https://user:tok/123@host/o/r", "tok/123"),  # an unescaped '/' in the password
        ("https://tok/123@host/r", "123"),
        ("https://user:tok-123@host/o/r x", "tok-123"),
        ("ftp://user:tok-123@host/o/r", "tok-123"),
        ("https://user:tok-123@h:99999/o/r", "tok-123"),
        ("https://h/only?private_token=tok-123", "tok-123"),
        ("user:tok-123@host:only", "tok-123"),
    ],
)
def test_credentials_never_appear_in_errors(url: str, secret: str) -> None:
    for parse in (parse_repo_slug, parse_repo_flag):
        with pytest.raises(BadInput) as info:
            parse(url)
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert "***" in str(info.value)


def test_mask_credentials_in_free_text() -> None:
    text = "fatal: unable to access 'https://user:tok-123@h/o/r.git/': refused"
    assert mask_credentials(text) == "fatal: unable to access 'https://***@h/o/r.git/': refused"


@pytest.mark.parametrize(
    ("value", "slug"),
    [
        ("homelab/app", "homelab/app"),
        ("group/sub/app", "group/sub/app"),
        (" o/r ", "o/r"),
        ("o/r.git", "o/r"),
        ("O-1/r_2.x", "O-1/r_2.x"),
        ("https://git.lan/o/r.git", "o/r"),
        ("https://git.lan/o/r", "o/r"),
        ("git@h:o/r.git", "o/r"),
        ("https://gitlab.com/g/s/n/-/merge_requests/3", "g/s/n"),
    ],
)
def test_parse_repo_flag(value: str, slug: str) -> None:
    assert parse_repo_flag(value) == slug


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "--repo is empty"),
        ("   ", "--repo is empty"),
        ("app", "has no owner"),
        ("app.git", "has no owner"),
        ("/app", "empty part"),
        ("app/", "empty part"),
        ("a//b", "empty part"),
        ("a/b/", "empty part"),
        ("a b/c", "contains whitespace"),
        ("a/b c", "contains whitespace"),
        ("a/b\tc", "contains whitespace"),
        ("../x", "'..' is not a valid"),
        ("./x", "'.' is not a valid"),
        ("o/.git", "no repo name"),
        ("-o/r", "'-o' is not a valid"),
        ("o/r;rm", "'r;rm' is not a valid"),
        ("o:r", "names no owner"),  # taken as host:path (scp-like), as git does
        ("https://h/only", "names no owner"),
    ],
)
def test_parse_repo_flag_rejects(value: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_repo_flag(value)
    assert fragment in str(info.value)
    assert "OWNER/NAME" in str(info.value)  # the hint says what to give


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
@example("https://[")
@example("git@[::1:o/r")
@example("\udcff/x")
@example("https://h/%")
@example("a:")
def test_arbitrary_text_only_raises_bad_input(text: str) -> None:
    for parse in (parse_repo_slug, parse_repo_flag):
        try:
            slug = parse(text)
        except BadInput:
            continue
        assert SLUG.fullmatch(slug), slug


_part = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["https", "http", "ssh", "git", "ftp", "file", ""]),
    user=_part,
    password=st.text(alphabet="abcXYZ019-_.~/@:%?#", min_size=6, max_size=20),
    host=st.sampled_from(["git.lan", "h:2222", "[::1]", "", "h:x"]),
    path=st.lists(_part, max_size=4).map("/".join),
)
def test_urls_with_credentials(scheme: str, user: str, password: str, host: str, path: str) -> None:
    assume(password not in f"{scheme}{user}{host}{path}")
    url = (
        f"{scheme}://{user}:{password}@{host}/{path}"
        if scheme
        else f"{user}:{password}@{host}:{path}"
    )
    for parse in (parse_repo_slug, parse_repo_flag):
        try:
            slug = parse(url)
        except BadInput as exc:
            assert password not in str(exc) and password not in repr(exc)
            continue
        assert SLUG.fullmatch(slug), slug
