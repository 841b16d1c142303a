"""The pages hang together: the index links every page, and every link and anchor resolves."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from scripts.docgen import anchor
from tests.docs.blocks import DOCS, OTHERS, anchors, blocks, headings, links, pages, prose


def test_the_index_links_every_page() -> None:
    linked = {target.split("#")[0] for _, target in links(DOCS / "README.md")}
    missing = [p.name for p in pages() if p.name not in linked | {"README.md"} | OTHERS]
    assert missing == [], f"docs/README.md does not link {missing}"


@pytest.mark.parametrize("page", [p.name for p in pages()])
def test_links_and_anchors_resolve(page: str) -> None:
    broken = []
    for line, target in links(DOCS / page):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, fragment = target.partition("#")
        file = (DOCS / page).parent / unquote(path) if path else DOCS / page
        if not file.exists():
            broken.append(f"{page}:{line}: {target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{page}:{line}: {target} (no such heading)")
    assert broken == []


@pytest.mark.parametrize("page", [p.name for p in pages()])
def test_one_title_per_page(page: str) -> None:
    titles = [text for level, text in headings(DOCS / page) if level == 1]
    assert len(titles) == 1, titles


def test_teaching_pages_have_executable_examples() -> None:
    """Pages meant to teach by example have executable ones."""
    for page in ("simulators.md", "configuration.md", "deploy-json.md", "junit.md", "cli.md"):
        found = blocks(DOCS / page)
        runnable = [b for b in found if b.lang in ("python", "sh") and not b.has("no-run")]
        assert runnable, f"{page} has no executable example"
    simulators = [b for b in blocks(DOCS / "simulators.md") if b.lang == "python"]
    assert simulators and not [b.where for b in simulators if b.has("no-run")]


def test_anchor_matches_github() -> None:
    assert anchor("`homelab ci status`") == "homelab-ci-status"
    assert anchor("`environments.<env>.services[<n>].image`") == "environmentsenvservicesnimage"
    assert anchor("The dev end-to-end run (D601)") == "the-dev-end-to-end-run-d601"
    assert anchor("ci_timeout") == "ci_timeout"


@pytest.mark.parametrize("page", [p.name for p in pages()])
def test_no_placeholder_is_taken_for_html(page: str) -> None:
    """``<name>`` outside code would vanish as an unknown HTML tag; write `<name>` or \\<name>."""
    text = "\n".join(line for _, line in prose(DOCS / page))
    text = re.sub(r"`[^`]+`", "", text).replace("<!--", "").replace("\\<", "")
    assert re.findall(r"<[A-Za-z/][^>\n]*>?", text) == []
