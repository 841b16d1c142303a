"""Real kubectl, run as the referee of the Kubernetes simulator: hermetic HOME and cache."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def rolled_out(kind: str, obj: dict[str, Any]) -> bool:
    """Whether ``kubectl rollout status`` would call the workload done (the checks only, not the
    messages): kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go@v0.33.0:75-91 (a
    Deployment), 107-116 (a DaemonSet), 130-150 (a StatefulSet, no partition)."""
    spec, status = obj.get("spec", {}), obj.get("status", {})
    generation, observed = obj["metadata"].get("generation", 0), status.get("observedGeneration", 0)
    replicas = spec.get("replicas", 1)
    if kind == "Deployment":
        return bool(
            generation <= observed
            and status.get("updatedReplicas", 0) >= replicas
            and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
            and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)
        )
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return bool(
            generation <= observed
            and status.get("updatedNumberScheduled", 0) >= desired
            and status.get("numberAvailable", 0) >= desired
        )
    if kind == "StatefulSet":
        return bool(
            observed != 0
            and generation <= observed
            and status.get("readyReplicas", 0) >= replicas
            and status.get("updateRevision") == status.get("currentRevision")
        )
    raise ValueError(f"kubectl has no rollout status for a {kind}")
