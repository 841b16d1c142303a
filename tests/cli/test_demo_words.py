"""The demo's last words are true: it prints no command the user cannot run (its dev e2e run's
files are deleted with the simulated homelab), and every property docs/junit.md documents for
a passing check is one a green landing writes, and the other way round."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import case_properties

ROOT = Path(__file__).parents[2]
# The "present" conditions of docs/junit.md's property tables that a green landing never meets.
NOT_GREEN = {
    "a descendant's pipeline verified the landing",
    "the same",
    "the same, once it finished",
    "the pipeline failed",
    "one per failing step",
    "the TaskRun failed",
    "a TaskRun failed under `onError: continue`",
    "the failure was tolerated",
    "Tekton skipped tasks of a run that passed or failed",
    "a pod of the new image is stuck (`CrashLoopBackOff`, `ImagePullBackOff`, …)",
}
TABLES = {
    "The ci check": "ci",
    "A rollout check": "rollout",
    "A smoke check": "smoke",
    "The dev e2e check": "e2e",
    "TaskRun testcases": "taskrun",
}


def documented() -> dict[str, set[str]]:
    """Per kind of check, the properties docs/junit.md says a passing one has."""
    text = (ROOT / "docs" / "junit.md").read_text()
    found: dict[str, set[str]] = {}
    for title, kind in TABLES.items():
        section = text[text.index(f"### {title}\n") :]
        rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section.split("\n\n#", 1)[0], re.M)
        assert rows, f"no property table under {title}"
        found[kind] = {name for name, present in rows if present.strip() not in NOT_GREEN}
    return found


def kind_of(case: ET.Element, props: dict[str, str]) -> str:
    if case.get("classname", "").startswith("dev-e2e") or "task" in props:
        return "taskrun"
    return props["phase"]


def test_a_green_landing_writes_every_documented_property_and_no_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "demo.xml"
    code = main(["demo", "--junitxml", str(junit)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    # Print only what the user can run: the run's files are gone when the demo ends.
    assert "homelab ci logs" not in out + err
    assert "files are gone" in err
    written: dict[str, set[str]] = {}
    for case, pairs in case_properties(ET.parse(junit).getroot()):
        props = dict(pairs)
        names = {re.sub(r"^log_tail:.*$", "log_tail:<step>", n) for n in props}
        kind = kind_of(case, props)
        if kind in written:
            assert names == written[kind], f"{kind} checks differ among themselves"
        written[kind] = names
    assert written == documented()
