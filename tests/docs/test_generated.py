"""The generated reference sections match the code, and the reference pages miss nothing.

The completeness checks do not trust docgen: they walk the code (OPTIONS, the CLI parser, the
JSON Schema, pytest's own help) by other means and look for every name in the pages.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.cli import build_parser
from pytest_homelab.core.manifest import schema
from pytest_homelab.core.outcomes import OUTCOME_TYPES
from pytest_homelab.core.settings import OPTIONS
from scripts import docgen
from tests.docs.blocks import DOCS, section, unescape

FIX = "run `python -m scripts.docgen` and commit the result"


def test_generated_sections_are_up_to_date() -> None:
    stale = [str(p.relative_to(DOCS.parent)) for p in docgen.stale(DOCS)]
    assert stale == [], f"generated docs are out of date: {', '.join(stale)}; {FIX}"


def run_docgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.docgen", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_rewrites_and_checks(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "cli.md"
    page.write_text(page.read_text().replace("| 124 |", "| 125 |"))
    checked = run_docgen("--docs", str(docs), "--check")
    assert checked.returncode == 1 and "cli.md: out of date" in checked.stdout
    assert "| 125 |" in page.read_text()  # --check changes nothing
    written = run_docgen("--docs", str(docs))
    assert written.returncode == 0 and "cli.md: rewritten" in written.stdout
    assert page.read_text() == (DOCS / "cli.md").read_text()
    assert run_docgen("--docs", str(docs), "--check").returncode == 0


def test_a_page_without_its_markers_is_an_error(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "deploy-json.md"
    page.write_text(page.read_text().replace(docgen.end_marker("deploy-json"), ""))
    done = run_docgen("--docs", str(docs))
    assert done.returncode == 2
    assert "deploy-json" in done.stderr and "END GENERATED deploy-json" in done.stderr


def test_docgen_imports_no_pytest() -> None:
    code = "import sys, scripts.docgen; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0


# -- configuration.md ------------------------------------------------------------------------


def test_every_option_is_documented_under_every_name() -> None:
    page = unescape((DOCS / "configuration.md").read_text())
    for option in OPTIONS:
        entry = section(DOCS / "configuration.md", option.key)
        for name in (option.flag, *option.env):
            assert f"`{name}`" in entry, (option.key, name)
        if option.key != "commit":
            assert f"`{option.key}`" in entry
        meaning = docgen.split_help(option)[0]
        assert meaning[1:] in unescape(entry), (option.key, meaning)
    assert "`--homelab-e2e`" in page


def cli_actions() -> Iterator[tuple[str, argparse.Action]]:
    """Every (verb, argument) of the CLI, found by walking argparse's own structures."""
    stack: list[tuple[str, argparse.ArgumentParser]] = [("homelab", build_parser())]
    while stack:
        name, parser = stack.pop()
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            stack += [(f"{name} {verb}", p) for verb, p in subs[0].choices.items()]
            continue
        yield from ((name, a) for a in parser._actions if a.dest != "help")


def test_every_cli_flag_that_sets_a_setting_is_in_the_configuration_reference() -> None:
    for verb, action in cli_actions():
        key = docgen.option_key(action)
        if key is None or not action.option_strings:
            continue
        entry = section(DOCS / "configuration.md", key)
        row = next(line for line in entry.splitlines() if line.startswith("| `homelab` |"))
        assert f"`{action.option_strings[-1]}`" in row, (verb, action.option_strings)
        assert verb.removeprefix("homelab ") in row, (verb, key)


def test_every_pytest_option_of_the_plugin_is_documented(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    group = done.stdout.split("pytest-homelab landing checks:", 1)[1]
    group = group.split("\n\n", 1)[0]
    lines = [line.split()[0] for line in group.splitlines() if line.startswith("  --")]
    flags = {line.split("=")[0].rstrip(",") for line in lines}
    assert len(flags) == len(OPTIONS) + 1
    page = (DOCS / "configuration.md").read_text()
    assert [f for f in sorted(flags) if f"`{f}`" not in page] == []


# -- cli.md ----------------------------------------------------------------------------------


def test_every_verb_and_flag_is_in_the_cli_reference() -> None:
    for verb, action in cli_actions():
        text = section(DOCS / "cli.md", f"`{verb}`")
        names = action.option_strings or [str(action.metavar)]
        assert any(f"`{n}" in text for n in names), (verb, names)


def test_the_exit_code_table_covers_every_outcome() -> None:
    text = section(DOCS / "cli.md", "Exit codes")
    for cls in OUTCOME_TYPES.values():
        if cls.__name__ != "HomelabError":
            row = next(line for line in text.splitlines() if f"`{cls.outcome}`" in line)
            assert row.startswith(f"| {cls.exit_code} |"), row
    assert "2 > 1 > 124 > 3 > 0" in text


# -- deploy-json.md --------------------------------------------------------------------------


def schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from schema_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from schema_nodes(value)


def test_every_schema_field_rule_and_example_is_documented() -> None:
    page = unescape((DOCS / "deploy-json.md").read_text())
    doc = schema()
    assert doc["description"] in page
    for node in schema_nodes(doc):
        for name, child in node.get("properties", {}).items():
            assert f".{name}`" in page or f"`{name}`" in page, name
            ref = str(child.get("$ref", "")).removeprefix("#/$defs/")
            description = child.get("description") or doc["$defs"][ref]["description"]
            assert description[1:] in page, description
        if "x-rule" in node:
            assert node["x-rule"] in page, node["x-rule"]
        for example in node.get("examples", []):
            assert str(example) in page, example


@pytest.mark.parametrize("path", [f.path for f in docgen.schema_fields()])
def test_each_field_has_its_own_heading(path: str) -> None:
    text = section(DOCS / "deploy-json.md", f"`{path}`")
    assert "- Type:" in text and "- Required:" in text
