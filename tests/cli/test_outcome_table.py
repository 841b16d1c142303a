"""One table: for every outcome type, the exit code, the verdict line, the JSON ``outcome`` and
the JUnit element agree with each other and with the exit-code table of docs/cli.md."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_homelab.core.outcomes import (
    EXIT_SUCCESS,
    OUTCOME_TYPES,
    SIGNAL_EXIT_CODES,
    VERDICTS,
    fold_exit_codes,
)
from pytest_homelab.core.settings import resolve_settings
from pytest_homelab.report.junit import case_properties
from pytest_homelab.report.session import run_checks

ROOT = Path(__file__).parents[2]
NAMES = ["success", *OUTCOME_TYPES]
CHECK = """
import pytest

from pytest_homelab.core.outcomes import OUTCOME_TYPES


@pytest.mark.rollout
@pytest.mark.parametrize("name", {names!r})
def test_outcome(homelab_landing: object, name: str) -> None:
    if name != "success":
        raise OUTCOME_TYPES[name](f"expected one thing, saw {{name}}", hint="do the next thing")
"""


def documented_rows() -> dict[int, str]:
    text = (ROOT / "docs" / "cli.md").read_text()
    return {
        int(code): f"| {code} | {verdict} | {outcomes} |"
        for code, verdict, outcomes in re.findall(
            r"^\| (\d+) \| ([A-Z ]+) \| ([^|]+) \|", text, re.M
        )
    }


def expected(name: str) -> tuple[int, str | None]:
    """The exit code and the JUnit element (None: passed) the table promises."""
    if name == "success":
        return EXIT_SUCCESS, None
    cls = OUTCOME_TYPES[name]
    # Bad input, auth, unreachable infrastructure and interrupts: "the check could not run".
    element = (
        "error" if cls.exit_code == 2 or cls.exit_code in SIGNAL_EXIT_CODES.values() else cls.junit
    )
    return cls.exit_code, element


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    (tmp_path / "checks").mkdir()
    # A module name of its own: these in-process sessions share one sys.modules.
    module = f"test_outcomes_n{NAMES.index(request.node.callspec.params['name'])}.py"
    (tmp_path / "checks" / module).write_text(CHECK.format(names=NAMES))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", NAMES)
def test_every_outcome_agrees_everywhere(
    name: str, suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, element = expected(name)
    config = suite / "xdg" / "homelab" / "config.toml"  # the repo's own checks/ run if trusted
    config.parent.mkdir(parents=True)
    config.write_text(f"trusted_repos = [{str(suite)!r}]\n")
    flags: dict[str, object | None] = {"own_checks": "replace"}
    environ = {"XDG_CONFIG_HOME": str(suite / "xdg")}
    settings = resolve_settings(flags, environ=environ, cwd=suite)
    runs = {}
    for as_json in (False, True):
        junit = suite / f"{name}-{as_json}.xml"
        runs[as_json] = run_checks(
            settings,
            verb="outcomes",
            markexpr="rollout",
            flags=flags,
            junitxml=str(junit),
            as_json=as_json,
            extra_args=["-k", name],
        )
        out = capsys.readouterr().out
        if as_json:
            document = json.loads(out)
            assert document["exit_code"] == code and document["verdict"] == VERDICTS[code]
            [check] = document["checks"]
            assert check["outcome"] == name
            assert check["result"] == (element or "passed")
        else:
            assert (
                out.rstrip().splitlines()[-1].startswith(f"verdict: {VERDICTS[code]} (exit {code})")
            )
        [(case, pairs)] = case_properties(ET.parse(junit).getroot())
        children = [e for e in case if e.tag in ("failure", "error", "skipped")]
        if element is None:
            assert children == []
        else:
            [child] = children
            assert (child.tag, child.get("type")) == (element, name)
        assert dict(pairs)["outcome"] == name
    assert runs == {False: code, True: code}
    row = documented_rows()[code]
    assert VERDICTS[code] in row
    if name != "HomelabError":  # the base class is no outcome of its own in the docs
        assert f"`{name}` ({element or 'passed'})" in row, row


def test_the_fold_order_is_the_documented_one() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    order = [int(c) for c in re.search(r"folds as ([\d >]+)\.", text).group(1).split(" > ")]  # type: ignore[union-attr]
    assert order[:2] == [143, 130]  # an interrupt outranks every other outcome
    for n, code in enumerate(order):
        assert fold_exit_codes(order[n:]) == code
