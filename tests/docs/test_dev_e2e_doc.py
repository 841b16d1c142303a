"""docs/dev-e2e.md states the runner contract; the launcher and the runner must agree with it."""

from __future__ import annotations

import re

from pytest_homelab.e2e import launcher as devrun
from pytest_homelab.e2e.phase import CONFIG_STATUSES, INFRA_STATUSES
from tests.docs.blocks import DOCS, ROOT, blocks, section, table_column

PAGE = DOCS / "dev-e2e.md"
RUNNER = (ROOT / "scripts" / "ci" / "dev-e2e.sh").read_text()
LAUNCHER = devrun._WRAPPER


def statuses() -> set[str]:
    """Every result.json status the launcher or the runner can write."""
    found = set(re.findall(r"\b(?:fail|finish) ([a-z][a-z-]*) \"", RUNNER + LAUNCHER))
    found |= set(re.findall(r"write_result (?:true|false) ([a-z][a-z-]*) ", RUNNER))
    return found


def test_every_status_is_documented() -> None:
    text = section(PAGE, "Files a run leaves in `$HOME/.unidesk/runs/<runId>/`")
    assert statuses() >= INFRA_STATUSES | CONFIG_STATUSES
    missing = sorted(s for s in statuses() if f"`{s}`" not in text)
    assert missing == [], f"result.json statuses missing from dev-e2e.md: {missing}"


def test_statuses_the_cli_treats_as_errors_are_documented_as_exit_2() -> None:
    text = " ".join(section(PAGE, "Files a run leaves in `$HOME/.unidesk/runs/<runId>/`").split())
    for status in INFRA_STATUSES | CONFIG_STATUSES:
        after = text[text.index(f"`{status}`") :]
        exit_code = re.search(r"\(exit (\d+)\)", after)
        assert exit_code is not None and exit_code.group(1) == "2", status


def test_host_setting_defaults_are_the_scripts_defaults() -> None:
    rows = section(PAGE, "D601 host settings")
    names = table_column(rows, 0)
    defaults = table_column(rows, 1)
    checked = 0
    for name, default in zip(names, defaults, strict=True):
        variable, value = name.strip("`"), default.strip("`")
        if not variable.startswith("HOMELAB_E2E_"):
            continue
        assert f"${{{variable}:-{value}}}" in RUNNER + LAUNCHER, (variable, value)
        checked += 1
    assert checked >= 6


def test_the_runner_contract_is_what_the_launcher_passes_and_the_runner_reads() -> None:
    [contract] = [b for b in blocks(PAGE) if "scripts/ci/dev-e2e.sh" in b.text and b.lang == "text"]
    flags = set(re.findall(r"--[a-z][a-z-]*", contract.text))
    assert flags == set(re.findall(r"--[a-z][a-z-]*", LAUNCHER.split("set --", 1)[1][:400]))
    for flag in flags:
        assert f"    {flag})" in RUNNER, flag


def test_the_files_table_names_what_the_runner_writes() -> None:
    files = table_column(section(PAGE, "Files a run leaves in `$HOME/.unidesk/runs/<runId>/`"))
    for cell in files:
        for name in re.findall(r"`([^`]+)`", cell):
            stem = name.split("/")[0].replace("<task>-<step>.log", "")
            assert stem in RUNNER + LAUNCHER, name
