"""scripts/ci/test.sh (what .ci/run executes) fails on each failed check, and runs them all.

The steps run against stand-ins for the venv's ruff, mypy and python (``HOMELAB_VENV``), so
each failure is tried without running the suite inside the suite.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
STEPS = {
    "ruff check": "RUFF_CHECK",
    "ruff format": "RUFF_FORMAT",
    "mypy": "MYPY",
    "pytest": "PYTEST",
}

STAND_IN = """#!/bin/sh
# A stand-in for the venv's {tool}: logs its arguments, exits as FAKE_<step> says.
echo "{tool} $*" >>"$FAKE_LOG"
case "{tool} $1 $2" in
  "python -m pip") exit 0 ;;
  "python -m pytest") exit "${{FAKE_PYTEST:-0}}" ;;
  "ruff check "*) exit "${{FAKE_RUFF_CHECK:-0}}" ;;
  "ruff format "*) exit "${{FAKE_RUFF_FORMAT:-0}}" ;;
  "mypy "*) exit "${{FAKE_MYPY:-0}}" ;;
esac
exit 99
"""


def run_script(tmp_path: Path, **exits: int) -> tuple[subprocess.CompletedProcess[str], str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for tool in ("python", "ruff", "mypy"):
        path = venv / "bin" / tool
        path.write_text(STAND_IN.format(tool=tool))
        path.chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HOMELAB_VENV": str(venv),
        "HOMELAB_KUBECTL": "/bin/true",  # not looked for here
        "FAKE_LOG": str(log),
        **{f"FAKE_{name}": str(code) for name, code in exits.items()},
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci" / "test.sh"), "tests/some_test.py"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return done, log.read_text()


def test_all_green_exits_0_and_runs_pytest_on_workers(tmp_path: Path) -> None:
    done, log = run_script(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    pytest_line = next(line for line in log.splitlines() if line.startswith("python -m pytest"))
    assert "-n 4 --dist loadgroup" in pytest_line and pytest_line.endswith("tests/some_test.py")


@pytest.mark.parametrize("step", list(STEPS))
def test_each_failed_check_fails_the_script_and_the_others_still_run(
    tmp_path: Path, step: str
) -> None:
    done, log = run_script(tmp_path, **{STEPS[step]: 1})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"test.sh: {step} failed (exit 1)" in done.stderr
    assert f"FAILED: {step}" in done.stderr
    for tool in ("ruff check", "ruff format", "mypy", "python -m pytest"):
        assert tool in log  # every check ran, the failing one included


def test_pytest_collecting_no_test_fails_too(tmp_path: Path) -> None:
    done, _ = run_script(tmp_path, PYTEST=5)  # pytest's "no tests ran"
    assert done.returncode == 1 and "pytest failed (exit 5)" in done.stderr
