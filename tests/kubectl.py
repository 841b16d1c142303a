"""Real kubectl, run as the referee of the Kubernetes simulator: hermetic HOME and cache."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_homelab.sim.kube.api import KubeSim

SDK = Path("/usr/lib/google-cloud-sdk/bin")  # the machine image's versioned kubectl builds


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path
    cache: Path

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.cache),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.cache),
        }
        return subprocess.run(
            [self.binary, "--cache-dir", str(self.cache), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def kubectl_for(binary: str, sim: KubeSim, tmp_path: Path, namespace: str) -> Kubectl:
    """``binary`` pointed at ``sim`` (default namespace ``namespace``), with its own cache."""
    cache = tmp_path / "kube-cache"
    cache.mkdir()
    return Kubectl(binary, sim.kubeconfig(tmp_path / "kubeconfig", "sim", namespace), cache)
