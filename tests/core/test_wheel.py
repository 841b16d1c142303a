"""What a user installs: the wheel holds the package, its checks, schemas and the reference
runner, and none of the development tooling (docgen) or the test suite."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_product_and_nothing_else(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("pytest_homelab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "pytest_homelab/py.typed",
        "pytest_homelab/core/deploy.schema.json",
        "pytest_homelab/checks/test_ci.py",
        "pytest_homelab/checks/pytest.ini",
        "pytest_homelab/runner/dev-e2e.sh",  # homelab demo runs it (e2e.launcher.reference_runner)
        "pytest_homelab/sim/kube/schemas/tekton-v1.json",
    ):
        assert shipped in names, shipped
    assert not [n for n in names if "docgen" in n], "docgen is development tooling"
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "benchmarks/"))]
