"""The public API: what ``pytest_homelab.__all__`` promises is there, importable and light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_homelab

# Names a user's own checks and tests are documented to import (docs/api.md).
PROMISED = {
    "AuthError", "BadInput", "Blocked", "CheckFailed", "CheckRecord", "CiResult", "Deadline",
    "DeadlineExceeded", "DevRunResult", "FakeClock", "FaultPlan", "ForwardProxy", "GitHttpServer",
    "HomelabError", "InfraError", "KubeSim", "Landing", "Manifest", "NotFound",
    "PrerequisiteFailed", "RolloutResult", "Secret", "Service", "Settings", "StepSpec",
    "Superseded", "Target", "WoodpeckerSim", "check_manifest", "exit_code", "fold_exit_codes",
    "load_manifest", "parse_manifest", "read_junit", "resolve_settings",
}  # fmt: skip


def test_all_lists_exactly_the_promised_names() -> None:
    assert set(pytest_homelab.__all__) == PROMISED
    assert set(pytest_homelab._API) == PROMISED  # every promised name knows its module
    assert len(pytest_homelab.__all__) == len(set(pytest_homelab.__all__))


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_each_name_imports(name: str) -> None:
    value = getattr(pytest_homelab, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(pytest_homelab)
    namespace: dict[str, object] = {}
    exec(f"from pytest_homelab import {name}", namespace)
    assert namespace[name] is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_homelab.__getattr__("nope")


def test_the_package_imports_light() -> None:
    """Every pytest run imports the package (entry point): no HTTP, Kubernetes, SSH or typing."""
    code = (
        "import sys, pytest_homelab as p; assert p.__all__; "
        "heavy = [m for m in ('httpx', 'kubernetes', 'paramiko', 'hvac', 'typing') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_old_documented_paths_still_import() -> None:
    """Modules moved into phase folders keep their documented paths (docs/simulators.md,
    docs/cli.md, docs/configuration.md)."""
    from pytest_homelab.junit import read_junit
    from pytest_homelab.settings import resolve_settings
    from pytest_homelab.sim.kube import KubeSim
    from pytest_homelab.sim.kube_objects import deployment
    from pytest_homelab.sim.tekton import pipeline

    assert read_junit is pytest_homelab.read_junit
    assert resolve_settings is pytest_homelab.resolve_settings
    assert KubeSim is pytest_homelab.KubeSim
    assert callable(deployment) and callable(pipeline)
