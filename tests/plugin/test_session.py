"""Landing sessions through pytester: phase order, prerequisites, outcomes in the JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_homelab.report.junit import exit_code, read_junit

CHECKS = """
import pytest
from pytest_homelab.core.outcomes import CheckFailed, InfraError

@pytest.mark.rollout
def test_web_rolled_out(homelab_landing, homelab_record):
    homelab_record([("deployment", "apps/web")])

@pytest.mark.rollout
def test_api_rolled_out(homelab_landing):
    pass

@pytest.mark.ci
def test_pipeline(homelab_landing, homelab_record):
    homelab_record([("pipeline_number", "12")])
    if {fail!r}:
        raise CheckFailed("expected #12 green, saw failure", hint="read the log")
"""


def run(pytester: pytest.Pytester, fail: bool, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_checks=CHECKS.format(fail=fail))
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-o",
        "junit_family=xunit1",
        f"--junitxml={junit}",
        "--woodpecker-server",
        "https://ci.example.test",
        *args,
    )
    return result, junit


def test_green_session(pytester: pytest.Pytester) -> None:
    result, junit = run(pytester, False, "-v")
    result.assert_outcomes(passed=3)
    order = [line.split("::")[1].split()[0] for line in result.stdout.lines if " PASSED" in line]
    assert order == ["test_pipeline", "test_web_rolled_out", "test_api_rolled_out"]
    records = read_junit(junit)
    assert [(r.phase, r.outcome) for r in records] == [
        ("ci", "success"),
        ("rollout", "success"),
        ("rollout", "success"),
    ]
    assert records[0].prop("pipeline_number") == "12"
    assert exit_code(records) == 0
    assert "PytestWarning" not in result.stdout.str()


def test_a_failed_phase_fails_later_phases_at_once(pytester: pytest.Pytester) -> None:
    result, junit = run(pytester, True)
    result.assert_outcomes(failed=3)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["test_pipeline"].find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    assert failure.get("message", "").startswith("CheckFailed: expected #12 green, saw failure")
    for name in ("test_web_rolled_out", "test_api_rolled_out"):
        prereq = cases[name].find("failure")
        assert prereq is not None and prereq.get("type") == "PrerequisiteFailed"
        assert "needs the ci phase to pass, but test_pipeline failed" in prereq.get("message", "")
        assert cases[name].find("skipped") is None  # never a skip
    records = read_junit(junit)
    assert exit_code(records) == 1
    assert "Traceback" not in result.stdout.str()


def test_errors_are_error_elements_with_their_type(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_homelab.core.outcomes import AuthError

        @pytest.fixture(scope="session")
        def broken(homelab_landing):
            raise AuthError("401 from Woodpecker", hint="check the token")
        """
    )
    pytester.makepyfile(
        test_e="""
        import pytest

        @pytest.mark.ci
        def test_ci(broken):
            pass
        """
    )
    junit = pytester.path / "j.xml"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "--woodpecker-server",
        "https://ci.example.test",
    )
    result.assert_outcomes(errors=1)
    (record,) = read_junit(junit)
    assert (record.kind, record.outcome, record.exit_code) == ("error", "AuthError", 2)
    assert record.message == "401 from Woodpecker\n  next: check the token"


def test_timeout_backstop_is_the_landing_budget_plus_a_margin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            for item in session.items:
                marker = item.get_closest_marker("timeout")
                print("TIMEOUT", item.name, marker.args if marker else None)
        """
    )
    pytester.makepyfile(test_t=CHECKS.format(fail=False) + "\ndef test_plain():\n    pass\n")
    result = pytester.runpytest(
        "-s",
        "-p",
        "no:cacheprovider",
        "--woodpecker-server",
        "https://ci.example.test",
        "--landing-timeout",
        "10m",
    )
    result.stdout.fnmatch_lines(["TIMEOUT test_pipeline (660.0,)", "TIMEOUT test_plain None"])


def test_infrastructure_raised_inside_a_check_is_an_error_element(
    pytester: pytest.Pytester,
) -> None:
    """An InfraError raised in the test body (not a fixture) is still an <error>, counted so."""
    pytester.makepyfile(
        test_e="""
        import pytest
        from pytest_homelab.core.outcomes import CheckFailed, InfraError

        @pytest.mark.ci
        def test_ci(homelab_landing):
            raise InfraError("D601 unreachable", hint="check the proxy")

        def test_plain():
            raise CheckFailed("red")
        """
    )
    junit = pytester.path / "j.xml"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--junitxml={junit}", "--woodpecker-server", "https://ci.test"
    )
    result.assert_outcomes(failed=2)  # pytest's own view is unchanged
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("errors"), suite.get("failures")) == ("1", "1")
    records = {r.name: r for r in read_junit(junit)}
    assert (records["test_ci"].kind, records["test_ci"].outcome) == ("error", "InfraError")
    assert records["test_plain"].kind == "failure"  # not a homelab check: left as pytest wrote it


def test_pytests_junit_elements_are_let_go_once_written(pytester: pytest.Pytester) -> None:
    # pytest's JUnit plugin keeps every testcase element until unconfigure (_pytest/junitxml.py,
    # pytest 9.2, LogXML.node_reporters_ordered); the landing lets go of them once written, so
    # the annotation's own tree is not held beside them. Nothing it shows may change.
    pytester.makeconftest(
        """
import pytest
from _pytest.junitxml import xml_key

@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    xml = config.stash.get(xml_key, None)
    held = len(xml.node_reporters_ordered) + len(xml.node_reporters) if xml else -1
    (config.rootpath / "held.txt").write_text(str(held))
"""
    )
    result, junit = run(pytester, False)
    result.assert_outcomes(passed=3)
    assert (pytester.path / "held.txt").read_text() == "0"
    assert f"generated xml file: {junit}" in result.stdout.str()
    assert len(read_junit(junit)) == 3
