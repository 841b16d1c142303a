"""pytest-xdist: a landing session under ``-n`` gives the serial verdict, gating and JUnit, and
each phase's watch runs once, because every landing check runs on one worker."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from pytest_homelab.report.junit import exit_code, read_junit

SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "junit" / "junit-10.xsd")

CHECKS = """
import os
import pytest
from pytest_homelab.core.outcomes import CheckFailed

WATCHES = []

@pytest.fixture(scope="session")
def watch(homelab_landing):
    homelab_landing.progress("ci: watching the pipeline")  # once per session
    return os.environ.get("PYTEST_XDIST_WORKER", "serial")

@pytest.mark.rollout
def test_web_rolled_out(homelab_landing, homelab_record):
    homelab_record([("worker", os.environ.get("PYTEST_XDIST_WORKER", "serial"))])

@pytest.mark.rollout
@pytest.mark.parametrize("service", ["api", "worker@blue"])
def test_service_rolled_out(homelab_landing, homelab_record, service):
    homelab_record([("worker", os.environ.get("PYTEST_XDIST_WORKER", "serial"))])

@pytest.mark.ci
def test_pipeline(homelab_landing, homelab_record, watch):
    homelab_record([("worker", watch)])
    if {fail!r}:
        raise CheckFailed("expected #12 green, saw failure", hint="read the log")
"""

OTHERS = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_other(n):
    pass
"""


def run(
    pytester: pytest.Pytester, fail: bool, *args: str
) -> tuple[pytest.RunResult, Path, list[tuple[str, str, str, str]]]:
    pytester.makepyfile(test_checks=CHECKS.format(fail=fail), test_others=OTHERS)
    junit = pytester.path / f"junit{len(args)}.xml"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "--woodpecker-server",
        "https://ci.example.test",
        *args,
    )
    records: list[tuple[str, str, str, str]] = [
        (r.classname, r.name, str(r.kind), r.outcome) for r in read_junit(junit) if r.prop("phase")
    ]
    return result, junit, records


@pytest.mark.parametrize("dist", ["load", "loadfile"])
def test_under_xdist_the_session_is_the_serial_one(pytester: pytest.Pytester, dist: str) -> None:
    serial, serial_junit, serial_records = run(pytester, True)
    parallel, junit, records = run(pytester, True, "-n", "2", "--dist", dist)
    assert parallel.ret == serial.ret == 1, parallel.stdout.str() + parallel.stderr.str()
    assert records == serial_records  # same names, order, verdicts and outcomes
    assert [o for *_, o in records] == ["CheckFailed", *["PrerequisiteFailed"] * 3]
    assert exit_code(read_junit(junit)) == exit_code(read_junit(serial_junit)) == 1
    workers = {r.prop("worker") for r in read_junit(junit) if r.prop("worker")}
    assert len(workers) == 1 and workers != {"serial"}  # one worker ran every check
    assert parallel.stderr.str().count("ci: watching the pipeline") == 1
    assert list(SCHEMA.iter_errors(str(junit))) == []
    others = [c for c in ET.parse(junit).getroot().iter("testcase") if "other" in c.get("name", "")]
    assert len(others) == 6


def test_green_under_xdist(pytester: pytest.Pytester) -> None:
    result, junit, records = run(pytester, False, "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert [o for *_, o in records] == ["success"] * 4
    assert exit_code(read_junit(junit)) == 0


@pytest.mark.parametrize("dist", ["each", "worksteal"])
def test_modes_that_cannot_keep_the_checks_together_are_refused(
    pytester: pytest.Pytester, dist: str
) -> None:
    result, _, _ = run(pytester, False, "-n", "2", "--dist", dist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR or result.ret != 0
    text = result.stdout.str() + result.stderr.str()
    assert f"cannot run with --dist {dist}" in text and "on one worker" in text
