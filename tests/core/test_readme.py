"""The README's promises that code can check: every option documented, commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_homelab.cli import build_parser
from pytest_homelab.core.settings import OPTIONS

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_option_is_in_the_configuration_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| ")]
    for option in OPTIONS:
        row = next((r for r in rows if f"`{option.flag}`" in r), None)
        assert row is not None, f"{option.flag} missing from README"
        for env in option.env:
            assert f"`{env}`" in row, (option.flag, env)
        if option.key != "commit":
            assert f"`{option.key}`" in row


def test_the_two_first_commands_come_first() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    commands = [line for line in first_block.group(1).splitlines() if line and line[0] != "#"]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/homelab demo",
        "bash scripts/ci/test.sh",
    ]
    assert (Path(__file__).parents[2] / "scripts/ci/test.sh").is_file()


def test_documented_verbs_exist() -> None:
    parser = build_parser()
    for verb in (
        ["ci", "status", "--help"],
        ["ci", "watch", "--help"],
        ["manifest", "check", "--help"],
        ["demo", "--help"],
    ):
        try:
            parser.parse_args(verb)
        except SystemExit as exc:
            assert exc.code == 0, verb
