"""Pure rules of a probe: does one HTTP answer reference the commit, and where.

The token rule is the image tags' (``core.refs.sha_token_matches``): a word of the answer that is
the full sha or a prefix of it of at least 7 hex digits. Words are split on anything but letters
and digits, so ``main-4eacfda36766``, ``"commit": "4eacfda…"`` and ``v1.2.0+4eacfda`` all count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pytest_homelab.core.refs import commit_tokens, sha_token_matches

BODY_LIMIT = 65536  # bytes of a body that are read and searched
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, as much of it as the rules read."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Verdict:
    """What one answer says: ``matched`` and where (``body`` or a header's name); otherwise the
    commit-like words it carried (``served``), where, and an excerpt to show."""

    matched: bool
    matched_in: str | None = None
    served: str | None = None
    served_in: str | None = None
    excerpt: str = ""


def _strings(value: object) -> Iterator[str]:
    """Every string value of a JSON document (keys too: ``{"4eacfda": true}`` is a version)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, inner in item.items():
                yield str(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _body_texts(body: bytes) -> list[str]:
    text = body[:BODY_LIMIT].decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return [text]
    return list(_strings(doc)) if isinstance(doc, dict | list) else [text]


def _excerpt(text: str, word: str | None) -> str:
    flat = " ".join(text.split())
    at = flat.lower().find(word) if word else -1
    start = max(0, at - EXCERPT_CHARS // 2) if at >= 0 else 0
    cut = flat[start : start + EXCERPT_CHARS]
    return ("…" if start else "") + cut + ("…" if start + EXCERPT_CHARS < len(flat) else "")


def judge_answer(
    answer: Answer, sha: str, *, expect: str = "commit", header: str | None = None
) -> Verdict:
    """Whether ``answer`` shows that ``sha`` is served (``expect="commit"``), or is any 2xx
    (``expect="ok"``). With ``header``, only that response header is searched."""
    if not answer.ok:
        return Verdict(False, excerpt=_excerpt(answer.body[:4096].decode("utf-8", "replace"), None))
    if expect == "ok":
        return Verdict(True, matched_in="status")
    places: list[tuple[str, str]] = []
    if header is None:
        places += [("body", text) for text in _body_texts(answer.body)]
    wanted = header.lower() if header else None
    places += [
        (name, value) for name, value in answer.headers if wanted is None or name.lower() == wanted
    ]
    first: tuple[str, str, str] | None = None
    for where, text in places:
        for word in commit_tokens(text):
            if sha_token_matches(word, sha):
                return Verdict(True, matched_in=where, excerpt=_excerpt(text, word))
            if first is None:
                first = (word, where, text)
    if first is None:
        shown = "".join(t for w, t in places if w == "body")[:4096] or (
            "; ".join(f"{w}: {t}" for w, t in places) if places else ""
        )
        return Verdict(False, excerpt=_excerpt(shown, None))
    word, where, text = first
    return Verdict(False, served=word, served_in=where, excerpt=_excerpt(text, word))
