"""The Kubernetes simulator, and real kubectl binaries to referee it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from tests.kubectl import SDK, Kubectl, kubectl_for


def kubectl_binaries() -> dict[str, str]:
    """Real kubectl builds to run: the versioned ones of the machine image, else PATH's."""
    found = {
        f"1.{minor}": str(SDK / f"kubectl.1.{minor}")
        for minor in (27, 30, 33)
        if (SDK / f"kubectl.1.{minor}").is_file()
    }
    override = os.environ.get("HOMELAB_KUBECTL")
    if override:
        found = {"env": override}
    elif not found and shutil.which("kubectl"):
        found = {"path": str(shutil.which("kubectl"))}
    return found


KUBECTLS = kubectl_binaries()


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(speed=4.0, timing=Timing(observe=0.1, terminate=0.2)) as k:
        yield k


@pytest.fixture(params=sorted(KUBECTLS) or ["missing"])
def kubectl(request: pytest.FixtureRequest, sim: KubeSim, tmp_path: Path) -> Kubectl:
    if request.param == "missing":
        pytest.fail("no kubectl found: install it, or set HOMELAB_KUBECTL to a kubectl binary")
    return kubectl_for(KUBECTLS[request.param], sim, tmp_path, "apps")
