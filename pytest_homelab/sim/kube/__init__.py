"""The simulated Kubernetes API server with its rollout and Tekton controllers.

``from pytest_homelab.sim.kube import KubeSim`` is the entry point; the object builders are in
``pytest_homelab.sim.kube.objects`` and Tekton in ``pytest_homelab.sim.kube.tekton``.
"""

from pytest_homelab.sim.kube.api import KubeSim, iter_namespace_writes

__all__ = ["KubeSim", "iter_namespace_writes"]
