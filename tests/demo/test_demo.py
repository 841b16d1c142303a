"""`homelab demo`: every scenario runs the real landing session against the simulated homelab,
and its JUnit says what the scenario promises. Nothing is left behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.demo import SCENARIOS
from pytest_homelab.report.junit import case_properties

# scenario -> (exit code, {testcase label: outcome}); labels are "<phase>:<name>"
EXPECTED: dict[str, tuple[int, dict[str, str]]] = {
    "green": (
        0,
        {
            "ci:test_pipeline_green": "success",
            "rollout:test_rolled_out[web]": "success",
            "rollout:test_rolled_out[api]": "success",
            "rollout:test_rolled_out[worker]": "success",
            "smoke:test_serves_commit[web]": "success",
            "smoke:test_serves_commit[api]": "success",
            "e2e:test_dev_e2e": "success",
            "e2e:setup": "success",
            "e2e:smoke": "success",
            "e2e:teardown": "success",
        },
    ),
    "red": (
        1,
        {
            "ci:test_pipeline_green": "CheckFailed",
            "rollout:test_rolled_out[web]": "PrerequisiteFailed",
            "smoke:test_serves_commit[web]": "PrerequisiteFailed",
            "e2e:test_dev_e2e": "PrerequisiteFailed",
        },
    ),
    "stale-image": (
        1,
        {
            "rollout:test_rolled_out[web]": "DeadlineExceeded",
            "rollout:test_rolled_out[api]": "success",
            "smoke:test_serves_commit[web]": "PrerequisiteFailed",
            "smoke:test_serves_commit[api]": "success",
            "e2e:test_dev_e2e": "PrerequisiteFailed",
        },
    ),
    "crashloop": (
        1,
        {
            "rollout:test_rolled_out[api]": "CheckFailed",
            "rollout:test_rolled_out[web]": "success",
            # a smoke check needs its own service's rollout, not every service's
            "smoke:test_serves_commit[api]": "PrerequisiteFailed",
            "smoke:test_serves_commit[web]": "success",
            "e2e:test_dev_e2e": "PrerequisiteFailed",
        },
    ),
    "wrong-version": (
        1,
        {
            "rollout:test_rolled_out[web]": "success",
            "smoke:test_serves_commit[web]": "CheckFailed",
            "smoke:test_serves_commit[api]": "success",
            "e2e:test_dev_e2e": "PrerequisiteFailed",
        },
    ),
    "e2e-fail": (
        1,
        {"e2e:test_dev_e2e": "CheckFailed", "e2e:smoke": "CheckFailed", "e2e:setup": "success"},
    ),
    "flaky": (0, {"ci:test_pipeline_green": "success", "e2e:test_dev_e2e": "success"}),
    "never": (3, {"ci:test_pipeline_green": "NotFound"}),
    "superseded": (0, {"ci:test_pipeline_green": "success"}),
}


def outcomes(junit: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for case, pairs in case_properties(ET.parse(junit).getroot()):
        props = dict(pairs)
        found[f"{props.get('phase')}:{case.get('name')}"] = props.get("outcome", "")
    return found


@pytest.fixture(autouse=True)
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's temporary directory goes under tmp_path, so the test sees what is left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", None)


@dataclass(frozen=True)
class DemoRun:
    """One finished ``homelab demo``: its exit code, output, JUnit file, and the TMPDIR it ran
    with (empty again afterwards if the simulated homelab is gone)."""

    code: int
    out: str
    err: str
    junit: Path
    tmp: Path


_RUNS: dict[str, DemoRun] = {}  # one run per scenario and worker, shared by the tests below


def run_installed(root: Path) -> DemoRun:
    """The README's first command, as a user runs it: ``homelab demo`` (the green scenario) in a
    process of its own, its JUnit where the state directory says."""
    tmp = root / "tmp"
    tmp.mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_STATE_HOME": str(root)}
    homelab = Path(sys.executable).with_name("homelab")
    done = subprocess.run(
        [str(homelab), "demo"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    return DemoRun(done.returncode, done.stdout, done.stderr, root / "homelab" / "demo.xml", tmp)


def run_in_process(name: str, root: Path) -> DemoRun:
    tmp = root / "tmp"
    tmp.mkdir(parents=True)
    junit = root / "demo.xml"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp))
        patch.setenv("XDG_STATE_HOME", str(root / "state"))
        patch.setattr(tempfile, "tempdir", None)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo", "--scenario", name, "--junitxml", str(junit)])
    return DemoRun(code, out.getvalue(), err.getvalue(), junit, tmp)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], DemoRun]:
    """``demo(scenario)``: the scenario's run, made once per worker (green through the installed
    command). Under pytest-xdist this file's tests share a worker (tests/conftest.py)."""

    def get(name: str) -> DemoRun:
        if name not in _RUNS:
            root = tmp_path_factory.mktemp(f"demo-{name}")
            _RUNS[name] = run_installed(root) if name == "green" else run_in_process(name, root)
        return _RUNS[name]

    return get


def test_every_scenario_is_expected() -> None:
    assert {s.name for s in SCENARIOS} == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scenario(name: str, demo: Callable[[str], DemoRun]) -> None:
    run = demo(name)
    expected_code, expected = EXPECTED[name]
    assert run.code == expected_code, run.out + run.err
    seen = outcomes(run.junit)
    for label, outcome in expected.items():
        assert seen.get(label) == outcome, (label, seen)
    assert "verdict: " in run.out and str(run.junit) in run.out
    assert "Traceback" not in run.out + run.err
    assert list(run.tmp.iterdir()) == []  # the simulated homelab is gone
    about = next(s.about for s in SCENARIOS if s.name == name)
    assert f"(exit {expected_code})" in about or f"exit {expected_code})" in about


def test_the_red_pipeline_shows_the_failing_step_log(demo: Callable[[str], DemoRun]) -> None:
    out = demo("red").out
    assert "--- test (last lines) ---" in out and "FAILED tests/test_app.py::test_greeting" in out


def test_the_green_landing_wrote_nothing_to_service_namespaces(
    demo: Callable[[str], DemoRun],
) -> None:
    err = demo("green").err
    assert "landed greeting onto origin/main" in err
    assert "no client wrote to jobs-dev, shop-dev" in err


def test_the_installed_command(demo: Callable[[str], DemoRun]) -> None:
    """`homelab demo` as a user runs it: a separate process, exit 0, no leftovers."""
    run = demo("green")
    assert run.code == 0, run.out + run.err
    assert "verdict: PASSED (exit 0)" in run.out
    assert run.junit.is_file()
    assert list(run.tmp.iterdir()) == []


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "never", "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 3 and doc["checks"][0]["outcome"] == "NotFound"


def test_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown demo scenario 'nope'" in err and "homelab demo --list" in err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(s.name in out for s in SCENARIOS)


def test_wrong_version_names_the_url_and_both_commits(demo: Callable[[str], DemoRun]) -> None:
    """The rollout is done, yet the URL serves the old commit: the smoke check says which."""
    run = demo("wrong-version")
    assert run.code == 1, run.out + run.err
    line = next(x for x in run.out.splitlines() if x.startswith("FAIL  smoke"))
    assert "https://web.shop-dev.demo.test/version" in line
    found = re.search(r"serves ([0-9a-f]{7,40}), expected ([0-9a-f]{40})", line)
    assert found is not None, line
    served, expected = found.groups()
    assert not expected.startswith(served)
    props = next(
        dict(pairs)
        for c, pairs in case_properties(ET.parse(run.junit).getroot())
        if c.get("name") == "test_serves_commit[web]"
    )
    assert props["served_commit"] == served and props["expected_sha"] == expected
    assert props["status"] == "200" and props["url"].endswith("/version")
