"""`homelab ci watch` / `ci status` and `pytest checks/ -m ci` end to end: real git, real TLS
through the dialer, the Woodpecker simulator, and the JUnit the session writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import case_properties
from pytest_homelab.sim.woodpecker import StepSpec
from tests.waiting import wait_until

HERE = Path(__file__).parent
TOKEN = "wp-token-3f9c2d1e"
OTHER = "f" * 40


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


_PROPERTIES: dict[int, dict[str, str]] = {}


def cases(path: Path) -> list[ET.Element]:
    found = case_properties(ET.parse(path).getroot())
    _PROPERTIES.update({id(case): dict(props) for case, props in found})
    return [case for case, _ in found]


def props(case: ET.Element) -> dict[str, str]:
    """The properties of a testcase that ``cases`` returned (they live in its testsuite)."""
    return _PROPERTIES[id(case)]


def quick(*names: str, fail: str | None = None, log: list[str] | None = None) -> list[StepSpec]:
    return [
        StepSpec(
            name,
            duration=0.05,
            exit_code=1 if name == fail else 0,
            log=log if name == fail else [f"{name} ok"],
        )
        for name in names
    ]


def test_watch_green(lab: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("clone", "test"))
    junit = tmp_path / "ci.xml"
    code, out, err = run(["ci", "watch", *lab.flags(), "--junitxml", str(junit)], capsys)
    assert code == 0, out + err
    assert "PASS  ci" in out and "#1 success push" in out
    assert f"verdict: PASSED (exit 0) · junit: {junit}" in out
    assert "ci: #1" in err  # progress on stderr
    (case,) = cases(junit)
    p = props(case)
    assert p["outcome"] == "success" and p["phase"] == "ci"
    assert p["repo"] == "homelab/app" and p["commit"] == lab.sha
    assert p["pipeline_number"] == "1" and p["status"] == "success" and p["event"] == "push"
    assert p["pipeline_url"] == f"{lab.sim.base_url}/repos/1/pipeline/1"
    assert TOKEN not in junit.read_text() and TOKEN not in out + err


def test_watch_red_shows_the_failing_step_log(
    lab: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = [f"collecting {n}" for n in range(70)] + ["E   assert 2 == 3", "1 failed"]
    lab.sim.add_pipeline(
        "homelab/app", commit=lab.sha, steps=quick("clone", "test", "deploy", fail="test", log=log)
    )
    junit = tmp_path / "ci.xml"
    code, out, err = run(["ci", "watch", *lab.flags(), "--junitxml", str(junit)], capsys)
    assert code == 1, out + err
    assert "FAIL  ci       CheckFailed: expected pipeline #1 of" in out
    assert "E   assert 2 == 3" in out and "verdict: FAILED (exit 1)" in out
    (case,) = cases(junit)
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    p = props(case)
    assert p["failing_steps"] == "test"
    tail = p["log_tail:test"].splitlines()
    assert len(tail) == 50 and tail[-1] == "1 failed"


def test_watch_never_appears_is_exit_3(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    lab.sim.add_pipeline("homelab/app", commit=OTHER, steps=quick("test"))
    code, out, err = run(
        ["ci", "watch", *lab.flags(), "--appear-grace", "1s", "--ci-poll-interval", "0.2s"], capsys
    )
    assert code == 3, out + err
    assert "NotFound: no Woodpecker pipeline for" in out


def test_watch_deadline_is_exit_124(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=[StepSpec("slow", duration=3600)])
    code, out, err = run(["ci", "watch", *lab.flags(), "--timeout", "1.5s"], capsys)
    assert code == 124, out + err
    assert "DeadlineExceeded" in out


def test_watch_pipeline_appearing_later(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"), appear_after=1.0)
    code, out, err = run(["ci", "watch", *lab.flags(), "--ci-poll-interval", "0.3s"], capsys)
    assert code == 0, out + err
    assert "ci: waiting for a pipeline of" in err


def test_bad_token_is_exit_2_without_leaking(
    lab: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WOODPECKER_TOKEN", "wrong-token-value")
    code, out, err = run(["ci", "watch", *lab.flags()], capsys)
    assert code == 2, out + err
    assert "401" in out + err and "wrong-token-value" not in out + err


def test_unknown_repo_is_an_error(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ci", "watch", *lab.flags(), "--repo", "homelab/nope"], capsys)
    assert code in (2, 3), out + err
    assert "homelab/nope" in out + err


def test_status_lines_and_codes(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ci", "status", *lab.flags()], capsys)
    assert code == 3 and "no pipeline for" in out
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=[StepSpec("slow", duration=3600)])
    code, out, _ = run(["ci", "status", *lab.flags()], capsys)
    assert code == 4 and out.startswith("#1 running push " + lab.sha[:8])
    code, out, _ = run(["ci", "status", *lab.flags(), "--json"], capsys)
    doc = json.loads(out)
    assert code == 4 and doc["pipeline"]["number"] == 1 and doc["pipeline"]["status"] == "running"


def pytest_in_repo(lab: Any, *args: str) -> subprocess.CompletedProcess[str]:
    checks = Path(__file__).parents[2] / "checks"
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(checks), *args, *lab.flags()],
        cwd=lab.repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_pytest_checks_directly(lab: Any, tmp_path: Path) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"))
    junit = tmp_path / "out.xml"
    done = pytest_in_repo(lab, "-m", "ci", "--commit", "HEAD", f"--junitxml={junit}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "warning" not in done.stdout.lower()
    assert "ci: #1 success" in done.stderr  # progress reaches the terminal despite capture
    (case,) = cases(junit)
    assert props(case)["commit"] == lab.sha and props(case)["outcome"] == "success"


def test_pytest_red_pipeline_is_a_short_failure_not_a_traceback(lab: Any, tmp_path: Path) -> None:
    lab.sim.add_pipeline(
        "homelab/app", commit=lab.sha, steps=quick("test", fail="test", log=["boom"])
    )
    junit = tmp_path / "out.xml"
    done = pytest_in_repo(lab, "-m", "ci", f"--junitxml={junit}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CheckFailed: expected pipeline #1 of" in done.stdout
    assert "Traceback" not in done.stdout and "woodpecker.py:" not in done.stdout
    (case,) = cases(junit)
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    assert (failure.get("message") or "").startswith("CheckFailed: expected pipeline #1")


def test_pytest_bad_input_is_an_error_element(lab: Any, tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    done = pytest_in_repo(lab, "-m", "ci", "--commit", "no-such-branch", f"--junitxml={junit}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unknown commit 'no-such-branch'" in done.stdout
    (case,) = cases(junit)
    error = case.find("error")
    assert error is not None and error.get("type") == "BadInput"


def test_an_invalid_deploy_json_stops_the_verb_before_it_acts(
    lab: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (lab.repo / "deploy.json").write_text('{"schemaVersion": 2, "environments": {"dev": {}}}')
    code, _, err = run(["ci", "watch", *lab.flags()], capsys)
    assert code == 2
    assert "environments.dev.services: is required" in err
    assert lab.sim.requests == []  # nothing was asked of Woodpecker
    code, _, err = run(["ci", "status", *lab.flags(), "--deploy-json", "missing.json"], capsys)
    assert code == 2 and "no deploy.json at" in err


def test_v2_server_end_to_end(
    lab: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_homelab.sim.woodpecker import WoodpeckerSim

    with WoodpeckerSim(host="127.0.0.1", naming="v2", token=TOKEN) as old:
        old.add_repo("homelab/app")
        old.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"))
        code, out, err = run(["ci", "watch", "--woodpecker-server", old.base_url], capsys)
    assert code == 0, out + err
    assert "#1 success push" in out


def test_repo_flag_and_sha_outside_a_git_repo(
    lab: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"))
    lab.sim.advance(5)  # finished: status reports green, not still running
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run(
        ["ci", "status", lab.sha[:10], "--repo", "homelab/app", *lab.flags()], capsys
    )
    assert code == 0, out + err
    code, out, err = run(["ci", "status", "--repo", "homelab/app", *lab.flags()], capsys)
    assert code == 2 and "cannot be resolved outside a git repository" in err


@pytest.mark.parametrize("seed", range(3))
def test_watch_under_faults_still_gets_the_right_verdict(
    lab: Any, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    from pytest_homelab.sim.faults import FaultPlan

    faults = FaultPlan(seed=seed, rate=0.3, stall_seconds=1.0)
    # every kind across the seeds, two scripted per run, on top of the random 30%
    kinds = [["empty200", "reset"], ["5xx", "truncated"], ["429", "stall"]][seed]
    for kind in kinds:
        faults.inject(kind, path_prefix="/api/repos")
    faults.inject("stream_drop", path_prefix="/api/stream")
    lab.sim.faults = faults
    fail = seed % 2 == 1
    lab.sim.add_pipeline("homelab/app", commit=OTHER, steps=quick("test"))
    lab.sim.add_pipeline(
        "homelab/app",
        commit=lab.sha,
        steps=quick("clone", "test", fail="test" if fail else None, log=["x"]),
    )
    code, out, err = run(
        [
            "ci",
            "watch",
            *lab.flags(),
            "--homelab-request-timeout",
            "0.5s",
            "--ci-poll-interval",
            "0.2s",
        ],
        capsys,
    )
    assert code == (1 if fail else 0), out + err
    assert "Traceback" not in out + err
    # The faults really happened. A stalled request is recorded when its handler finishes, which
    # can be after the client gave up on it and the watch ended: wait for the record, bounded.
    wait_until(
        lambda: {r.fault for r in lab.sim.requests} >= set(kinds),
        what=f"the simulator's records of faults {sorted(kinds)}",
        timeout=5,
        detail=lambda: sorted({str(r.fault) for r in lab.sim.requests}),
    )


def test_watch_json(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"))
    code, out, _ = run(["ci", "watch", *lab.flags(), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["exit_code"] == 0 and doc["verdict"] == "PASSED"
    (check,) = doc["checks"]
    assert check["phase"] == "ci" and check["outcome"] == "success"
    assert check["properties"]["commit"] == lab.sha


def test_a_trusted_repos_own_checks_join_the_shipped_ones(
    lab: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repo's checks/ is code of the branch under test: it runs only where the user listed
    the repository in trusted_repos (~/.config/homelab/config.toml), then beside the shipped
    checks."""
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, steps=quick("test"))
    own = lab.repo / "checks"
    own.mkdir()
    (own / "test_extra.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.ci\n"
        "def test_team_rule(homelab_ci, homelab_record):\n"
        "    homelab_record([('team', 'yes')])\n"
        "    homelab_ci.check()\n"
    )
    code, out, err = run(["ci", "watch", *lab.flags()], capsys)
    assert code == 0, out + err
    assert "test_team_rule" not in out and "the repository is not trusted" in err

    config = Path(os.environ["HOME"]) / ".config" / "homelab" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'trusted_repos = ["{lab.repo}"]\n')
    code, out, err = run(["ci", "watch", *lab.flags()], capsys)
    assert code == 0, out + err
    assert "PASS  ci       test_team_rule" in out and "PASS  ci       #" in out


def test_watch_config_error_names_the_reason_in_the_verdict_and_junit(
    lab: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # woodpecker-ci/woodpecker server/pipeline/create.go@v3.17.0:116-118: a config error ends
    # the pipeline ``error`` with errors[] and no workflows
    reason = "steps.test.image: required"
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, config_errors=[reason])
    junit = tmp_path / "ci.xml"
    code, out, err = run(["ci", "watch", *lab.flags(), "--junitxml", str(junit)], capsys)
    assert code == 1, out + err
    verdict_line = next(line for line in out.splitlines() if line.startswith("FAIL  ci"))
    assert f"ended error: [linter] {reason}" in verdict_line
    (case,) = cases(junit)
    failure = case.find("failure")
    assert failure is not None
    assert f"[linter] {reason}" in (failure.get("message") or "") + (failure.text or "")
    assert props(case)["errors"] == f"[linter] {reason}"


def test_watch_ignores_a_green_pipeline_of_another_branch(
    lab: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # one pipeline per pushed branch (server/api/hook.go@v3.17.0:227); the clone has no
    # origin/HEAD, so the Woodpecker repo's default branch (main) counts. The v3 list filters
    # by branch, so the feature pipeline is seen through its stream events only.
    feature = [StepSpec("clone", 0.5), StepSpec("test", 2.0)]
    lab.sim.add_pipeline("homelab/app", commit=lab.sha, branch="feature", steps=feature)
    lab.sim.add_pipeline(
        "homelab/app",
        commit=lab.sha,
        branch="main",
        steps=quick("clone", "test", fail="test", log=["boom"]),
        appear_after=4.0,
    )
    code, out, err = run(["ci", "watch", *lab.flags()], capsys)
    assert code == 1, out + err
    assert "#1 of" in err and "runs on branch feature, not main: ignored" in err
    assert "expected pipeline #2 of" in out
