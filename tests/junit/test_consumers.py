"""The landing's JUnit as other CI reads it: every demo scenario's file and a plain
``pytest checks/`` file validate against the Jenkins xunit plugin's schema (junit-10.xsd, vendored
here with its MIT licence header); junitparser finds the evidence in each failure's text;
junit2html renders it; the ``homelab`` read-back reads this shape and the previous one."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from junit2htmlreport import parser as junit2html
from junitparser import Error, Failure, JUnitXml

from pytest_homelab.cli import main
from pytest_homelab.demo import SCENARIOS
from pytest_homelab.report.junit import exit_code, read_junit
from pytest_homelab.report.verdict import render_text
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

HERE = Path(__file__).parent
# jenkinsci/xunit-plugin src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd
# @031e285ef3b60dee7aaf36e9096d7dcd95ffae83
SCHEMA = xmlschema.XMLSchema(HERE / "junit-10.xsd")
SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
CHECKS = Path(__file__).parents[2] / "pytest_homelab" / "checks"

# scenario -> {testcase name: a line its failure text must hold}
EVIDENCE: dict[str, dict[str, str]] = {
    "green": {},
    "red": {"test_pipeline_green": "E   AssertionError: assert 'hello again, homelab'"},
    "stale-image": {"test_rolled_out[web]": "DeadlineExceeded"},
    "crashloop": {"test_rolled_out[api]": "Warning BackOff: Back-off restarting failed container"},
    "wrong-version": {"test_serves_commit[web]": "https://web.shop-dev.demo.test/version"},
    "e2e-fail": {"smoke": "POST /checkout 502 Bad Gateway", "test_dev_e2e": "FAIL: checkout"},
    "flaky": {},
    "never": {"test_pipeline_green": "NotFound"},
    "superseded": {},
}


@pytest.fixture(autouse=True)
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)


def schema_errors(path: Path) -> list[str]:
    return [f"{e.path}: {e.reason}" for e in SCHEMA.iter_errors(str(path))]


def failures(path: Path) -> dict[str, Failure | Error]:
    """Each failed or errored testcase's result, as junitparser reads it."""
    found: dict[str, Failure | Error] = {}
    xml = JUnitXml.fromfile(str(path))
    for suite in xml:
        for case in suite:
            for result in case.result:
                if isinstance(result, (Failure, Error)):
                    found[case.name] = result
    return found


def rendered(path: Path) -> str:
    report = junit2html.Junit(filename=str(path))
    html: str = report.html()
    return html


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_each_demo_junit_is_valid_and_readable(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "demo.xml"
    code = main(["demo", "--scenario", scenario, "--junitxml", str(junit)])
    out = capsys.readouterr().out
    assert schema_errors(junit) == []
    root = ET.parse(junit).getroot()
    assert all(set(c.attrib) <= {"name", "time", "classname"} for c in root.iter("testcase"))
    for suite in root.iter("testsuite"):
        assert {"timestamp", "time", "hostname"} <= set(suite.attrib), suite.get("name")
    found = failures(junit)
    for name, line in EVIDENCE.get(scenario, {}).items():
        assert line in (found[name].text or ""), (name, found[name].text)
    for name, result in found.items():
        if name.startswith("test_"):  # a check's message is "<Outcome>: expected, seen" + next
            assert (result.message or "").split(":")[0] == result.type, name
    html = rendered(junit)
    assert "test_pipeline_green" in html
    records = read_junit(junit)
    assert exit_code(records) == code
    assert render_text(records, junit, code)[-1] in out  # the CLI read the same verdict


def test_a_red_pipeline_failure_as_junitparser_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "red.xml"
    assert main(["demo", "--scenario", "red", "--junitxml", str(junit)]) == 1
    capsys.readouterr()
    failure = failures(junit)["test_pipeline_green"]
    lines = (failure.text or "").splitlines()
    assert lines[0].startswith("CheckFailed: expected pipeline #")
    assert lines[1].startswith("  next: read the failing step's log below")
    assert "--- last lines of the log of test ---" in lines
    log = lines[lines.index("--- last lines of the log of test ---") + 1 :]
    assert log == [
        "+ pytest -q",
        "..F.",
        "FAILED tests/test_app.py::test_greeting",
        "E   AssertionError: assert 'hello again, homelab' == 'hello homelab'",
        "1 failed, 41 passed in 0.9s",
    ]


def red_pipeline(sim: WoodpeckerSim, lines: int) -> None:
    sim.add_repo("homelab/app")
    log = [f"line {n}" for n in range(lines)]
    failing = StepSpec("test", exit_code=1, log=log)
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("clone"), failing])


@pytest.mark.parametrize("family", ["xunit2", "xunit1", "legacy"])
def test_plain_pytest_checks_junit_is_valid_in_every_family(
    family: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pytest checks/`` as a user runs it (here the ci check against the simulator), with
    whatever family pytest is asked for: valid, and the failure text holds the last 50 lines."""
    monkeypatch.setenv("WOODPECKER_TOKEN", "sim-token-for-junit")
    junit = pytester.path / "landing.xml"
    with WoodpeckerSim(token="sim-token-for-junit") as sim:
        red_pipeline(sim, lines=80)
        result = pytester.runpytest_subprocess(
            str(CHECKS),
            "-m",
            "ci",
            "-o",
            f"junit_family={family}",
            f"--junitxml={junit}",
            "--woodpecker-server",
            sim.base_url,
            "--woodpecker-repo",
            "homelab/app",
            "--commit",
            SHA,
            "-p",
            "no:cacheprovider",
        )
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    assert schema_errors(junit) == []
    text = failures(junit)["test_pipeline_green"].text or ""
    assert "line 79" in text and "line 30" in text and "line 29" not in text  # the last 50
    assert "sim-token-for-junit" not in junit.read_text()
    [record] = read_junit(junit)
    assert (record.phase, record.outcome) == ("ci", "CheckFailed")
    assert record.prop("commit") == SHA
    assert rendered(junit)


@pytest.mark.parametrize(
    ("name", "code", "evidence"),
    [
        ("old-red.xml", 1, "E   AssertionError: assert 'hello again, homelab' == 'hello homelab'"),
        ("old-e2e-fail.xml", 1, "POST /checkout 502 Bad Gateway"),
    ],
)
def test_files_of_the_previous_shape_are_still_read(name: str, code: int, evidence: str) -> None:
    """Written by the plugin before the schema-valid shape (xunit1, properties in testcases)."""
    path = HERE / "data" / name
    records = read_junit(path)
    assert exit_code(records) == code
    assert all(r.prop("phase") and r.prop("outcome") for r in records)
    text = "\n".join(render_text(records, path, code))
    assert evidence in text


def test_the_annotated_file_is_read_the_same_as_the_old_one(tmp_path: Path) -> None:
    """Annotating a file of the previous shape keeps every record, property and verdict."""
    from pytest_homelab.report.annotate import annotate_junit

    for name in ("old-red.xml", "old-e2e-fail.xml"):
        before = read_junit(HERE / "data" / name)
        path = tmp_path / name
        path.write_bytes((HERE / "data" / name).read_bytes())
        annotate_junit(path)
        assert schema_errors(path) == []
        after = read_junit(path)
        assert [(r.name, r.kind, r.outcome, r.message) for r in after] == [
            (r.name, r.kind, r.outcome, r.message) for r in before
        ]
        assert [dict(r.properties) for r in after] == [dict(r.properties) for r in before]
        annotate_junit(path)  # twice changes nothing
        assert read_junit(path) == after


def test_keys_of_checks_whose_names_share_a_prefix(tmp_path: Path) -> None:
    """``test_x`` and ``test_x[a::b]`` in one suite: each property goes to its own check."""
    from pytest_homelab.report.annotate import annotate_junit

    path = tmp_path / "x.xml"
    path.write_text(
        '<testsuites><testsuite name="s" tests="2" failures="0" errors="0">'
        '<testcase classname="c" name="test_x" file="c.py" line="3">'
        '<properties><property name="phase" value="ci"/></properties></testcase>'
        '<testcase classname="c" name="test_x[a::b]">'
        '<properties><property name="phase" value="rollout"/>'
        '<property name="b::odd" value="1"/></properties></testcase>'
        "</testsuite></testsuites>"
    )
    annotate_junit(path)
    assert schema_errors(path) == []
    first, second = read_junit(path)
    assert first.properties == (("phase", "ci"),)
    assert second.properties == (("phase", "rollout"), ("b::odd", "1"))


def test_no_file_attribute_names_a_path(tmp_path: Path) -> None:
    from pytest_homelab.report.annotate import annotate_junit

    path = tmp_path / "x.xml"
    path.write_text(
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase classname="test_ci" name="t" file="test_ci.py" line="13" url="u"/>'
        "</testsuite></testsuites>"
    )
    annotate_junit(path)
    assert not re.search(r"\b(file|line|url)=", path.read_text())
    assert os.path.getsize(path) > 0


def test_taskruns_named_by_task_with_skipped_and_tolerated(tmp_path: Path) -> None:
    """The runner's shapes (before and after issue 18): stable names, the run as data, a
    skipped task without a TaskRun, a tolerated failure visible and not failing."""
    from pytest_homelab.report.annotate import TASKRUNS_PROPERTY, annotate_junit

    runner = (
        '<testsuite name="dev-e2e" tests="3" failures="1" errors="0">'
        '<testcase classname="dev-e2e.e2e-1-pr" name="smoke" time="2.5">'
        '<failure message="TaskRun e2e-1-pr-smoke Failed: step-run exited 1 (kubectl -n ci logs '
        'e2e-1-pr-smoke-pod)">POST /checkout 502</failure></testcase>'
        '<testcase classname="dev-e2e.e2e-1-pr" name="notify"><skipped message="When '
        'Expressions evaluated to false"/></testcase>'
        '<testcase classname="dev-e2e.e2e-1-pr" name="lint" time="1"><system-out>tolerated '
        "failure (onError: continue): TaskRun e2e-1-pr-lint FailureIgnored</system-out></testcase>"
        "</testsuite>"
    )
    path = tmp_path / "x.xml"
    check = ET.Element("testsuites")
    suite = ET.SubElement(
        check, "testsuite", name="pytest", tests="1", failures="1", errors="0", timestamp="T0"
    )
    case = ET.SubElement(suite, "testcase", classname="test_dev_e2e", name="test_dev_e2e")
    ET.SubElement(case, "failure", message="CheckFailed: expected the run to pass").text = "x"
    props = ET.SubElement(case, "properties")
    for name, value in (
        ("phase", "e2e"),
        ("run_id", "e2e-1"),
        ("d601", "ssh ci@d601.example.test"),
        ("outcome", "CheckFailed"),
        (TASKRUNS_PROPERTY, runner),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    path.write_text(ET.tostring(check, encoding="unicode"))
    annotate_junit(path)
    assert schema_errors(path) == []
    records = {r.name: r for r in read_junit(path)}
    assert {r.classname for n, r in records.items() if n != "test_dev_e2e"} == {"dev-e2e"}
    smoke, notify, lint = records["smoke"], records["notify"], records["lint"]
    assert (smoke.outcome, smoke.prop("taskrun"), smoke.prop("pipeline_run")) == (
        "CheckFailed",
        "e2e-1-pr-smoke",
        "e2e-1-pr",
    )
    assert (notify.kind, notify.outcome, notify.prop("taskrun")) == (
        "skipped",
        "skipped-by-tekton",
        "",
    )
    assert (lint.kind, lint.outcome) == ("passed", "tolerated") and lint.prop("tolerated")
    assert exit_code([notify, lint]) == 0
    text = failures(path)["smoke"].text or ""
    assert "e2e-1-pr-smoke" in text and "kubectl get taskrun e2e-1-pr-smoke -n ci" in text
    assert "POST /checkout 502" in text
    assert "POST /checkout 502" in (failures(path)["test_dev_e2e"].text or "")
    second = ET.parse(path).getroot().findall("testsuite")[1]
    assert (second.get("hostname"), second.get("timestamp"), second.get("time")) == (
        "d601.example.test",
        "T0",
        "3.500",
    )
    assert "run_id" in {p.get("name") for p in second.iter("property")}
