"""The pure rule of a probe: does one answer reference the commit, and where."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_homelab.smoke.probe import Answer, judge_answer

SHA = "4eacfda36766d1f0b9e2c1a0a5c3b7e8d9f00112"
OLD = "9f3c2a1b00aa11bb22cc33dd44ee55ff66778899"


def answer(body: object = b"", status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, list((headers or {}).items()), raw)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"4eacfda", "body"),  # the shortest prefix the image-tag rule accepts
        (b"version: main-4eacfda36766\n", "body"),
        (b"v1.2.0+4eacfda36766", "body"),
        (SHA.encode(), "body"),
        (SHA.upper().encode(), "body"),
        ({"build": {"commit": SHA[:12], "time": "2026-12-07"}}, "body"),
        ({"versions": ["1.0", f"sha-{SHA[:8]}"]}, "body"),
        ({SHA[:10]: True}, "body"),  # a key counts: some endpoints answer {"<sha>": "ok"}
    ],
)
def test_the_commit_in_the_body(body: object, where: str) -> None:
    verdict = judge_answer(answer(body), SHA)
    assert verdict.matched and verdict.matched_in == where


def test_the_commit_in_a_header() -> None:
    verdict = judge_answer(answer(b"ok", headers={"X-Version": f"main-{SHA[:9]}"}), SHA)
    assert verdict.matched and verdict.matched_in == "X-Version"


def test_header_limits_the_search_to_that_header() -> None:
    both = answer({"commit": SHA}, headers={"X-Version": OLD[:12], "X-Other": SHA})
    limited = judge_answer(both, SHA, header="x-version")  # header names are case-insensitive
    assert not limited.matched and limited.served == OLD[:12] and limited.served_in == "X-Version"
    assert judge_answer(both, SHA).matched
    assert judge_answer(answer(b"", headers={"X-Version": SHA}), SHA, header="X-Version").matched


@pytest.mark.parametrize(
    "body",
    [
        b"4eacfd",  # six hex digits: too short to name a commit
        b"4eacfda36766x",  # glued to a letter: another word
        b"deadbeef",  # hex, but another commit
        b"4eacfda3677",  # diverges from the sha in its last digit
        {"commit": OLD},
        b"",
    ],
)
def test_other_words_do_not_match(body: object) -> None:
    assert not judge_answer(answer(body), SHA).matched


def test_another_commit_is_reported_with_where_and_an_excerpt() -> None:
    verdict = judge_answer(answer({"service": "web", "commit": OLD[:12]}), SHA)
    assert not verdict.matched
    assert (verdict.served, verdict.served_in) == (OLD[:12], "body")
    assert OLD[:12] in verdict.excerpt


@pytest.mark.parametrize("status", [199, 301, 404, 500, 503])
def test_only_2xx_counts(status: int) -> None:
    assert not judge_answer(answer(SHA.encode(), status=status), SHA).matched
    assert not judge_answer(answer(b"", status=status), SHA, expect="ok").matched


@pytest.mark.parametrize("status", [200, 204, 299])
def test_expect_ok_is_any_2xx(status: int) -> None:
    verdict = judge_answer(answer(b"", status=status), SHA, expect="ok")
    assert verdict.matched and verdict.matched_in == "status"


@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
    st.integers(min_value=7, max_value=40),
    st.text(alphabet=" -_:/=+\"',.;\n", min_size=1, max_size=3),
)
@example(prefix="x", length=7, sep="-")
def test_a_prefix_in_any_text_matches(prefix: str, length: int, sep: str) -> None:
    """Separated from its neighbours by anything but a letter or digit, a ≥ 7-digit prefix of
    the sha is found wherever it stands in a body or header."""
    text = f"{prefix}{sep}{SHA[:length]}{sep}tail"
    assert judge_answer(answer(text.encode()), SHA).matched
    assert judge_answer(answer(b"x", headers={"X-V": text}), SHA).matched


def test_a_huge_body_is_cut_not_read_whole() -> None:
    body = b"x " * 100_000 + SHA.encode()  # past the 64 KiB that are searched
    assert not judge_answer(answer(body), SHA).matched
