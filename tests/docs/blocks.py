"""Reading docs/: fenced code blocks with their info strings, headings, links and tables.

An info string is a language and optional words: ``python``, ``python pytest``,
``python no-run``, ``python file=checks/test_x.py``, ``sh``, ``sh no-run``, ``sh exit=2``,
``text output``, ``json file=deploy.json``, ``toml file=pyproject.toml``. GitHub highlights by
the first word and ignores the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from scripts.docgen import anchor

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
# Pages other people write; linked from the index only once they exist.
OTHERS = frozenset({"benchmarks.md", "reliability.md"})
LANGUAGES = frozenset({"python", "sh", "text", "json", "toml", "xml", ""})
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    words: tuple[str, ...]
    text: str
    attrs: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    def has(self, word: str) -> bool:
        return word in self.words


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def blocks(path: Path) -> list[Block]:
    """Every fenced block of the page, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        match = _FENCE.match(lines[n])
        if match is None:
            n += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        info = match["info"].strip().split()
        start, body = n + 1, []
        n += 1
        while n < len(lines) and not lines[n].strip().startswith(fence):
            body.append(lines[n][indent:] if lines[n][:indent].strip() == "" else lines[n])
            n += 1
        n += 1
        words = tuple(info[1:])
        attrs = dict(w.split("=", 1) for w in words if "=" in w)
        lang = info[0] if info else ""
        text = "\n".join(body) + "\n"
        found.append(Block(path.name, start, lang, words, text, attrs))
    return found


def prose(path: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced blocks, numbered from 1."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(line)
        if match is not None and (fence is None or match["fence"].startswith(fence)):
            fence = match["fence"][:3] if fence is None else None
            continue
        if fence is None:
            out.append((number, line))
    return out


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every heading outside code blocks."""
    found = []
    for _, line in prose(path):
        match = _HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the page's headings, with its -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for _, text in headings(path):
        base = anchor(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link outside code blocks."""
    found = []
    for number, line in prose(path):
        stripped = re.sub(r"`[^`]*`", "", line)
        found += [(number, m.group(1)) for m in _LINK.finditer(stripped)]
    return found


def section(path: Path, title: str) -> str:
    """The text under the heading ``title`` up to the next heading of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    level = None
    out: list[str] = []
    for line in lines:
        match = _HEADING.match(line)
        if level is None:
            if match and match.group(2) == title:
                level = len(match.group(1))
            continue
        if match and len(match.group(1)) <= level:
            break
        out.append(line)
    if level is None:
        raise AssertionError(f"{path.name} has no heading {title!r}")
    return "\n".join(out)


def table_column(text: str, column: int = 0) -> list[str]:
    """The cells of one column of every Markdown table row in ``text`` (header rows dropped)."""
    cells = []
    rows = [line for line in text.splitlines() if line.startswith("|")]
    for n, row in enumerate(rows):
        parts = [p.strip() for p in re.split(r"(?<!\\)\|", row)[1:-1]]
        if n + 1 < len(rows) and set(rows[n + 1].replace("|", "").strip()) <= {"-", ":"}:
            continue  # a header row
        if set("".join(parts)) <= {"-", ":", " "}:
            continue
        cells.append(parts[column] if column < len(parts) else "")
    return cells


def unescape(text: str) -> str:
    """Markdown prose back to plain text (the backslash escapes docgen adds)."""
    return text.replace("\\<", "<").replace("\\|", "|")
