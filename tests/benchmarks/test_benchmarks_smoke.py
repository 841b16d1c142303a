"""The benchmark command runs end to end in --quick mode. It measures, it does not judge: no
timing is asserted here, only that every figure is reported and the command could run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(400)
def test_quick_run_reports_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ids = set(re.findall(r"^\| (P\d)\b", done.stdout, flags=re.MULTILINE))
    assert ids == {"P1", "P2", "P3", "P4", "P5", "P6"}, done.stdout
    assert "could not run" not in done.stdout
