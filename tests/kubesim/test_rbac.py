"""Per-namespace permissions in the Kubernetes simulator, refereed by real ``kubectl auth can-i``
(which sends a SelfSubjectAccessReview, kubernetes/kubectl pkg/cmd/auth/cani.go@v0.33.9:269-311)
and by the 403s of the requests themselves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from tests.kubectl import SDK, kubectl_for

KUBECTL = [str(p) for p in (SDK / "kubectl.1.27", SDK / "kubectl.1.33") if p.exists()]


@pytest.mark.parametrize("binary", KUBECTL)
def test_kubectl_auth_can_i(binary: str, tmp_path: Path) -> None:
    with KubeSim() as sim:
        for ns in ("open", "narrow"):
            sim.create_namespace(ns)
        sim.rbac.restrict("narrow", ["list,watch deployments.apps", "get pods/log"])
        kubectl = kubectl_for(binary, sim, tmp_path, "open")
        cases = [
            (("list", "deployments.apps", "-n", "open"), "yes"),
            (("list", "deployments.apps", "-n", "narrow"), "yes"),
            (("watch", "deployments", "-n", "narrow"), "yes"),
            (("list", "pods", "-n", "narrow"), "no"),
            (("get", "pods", "--subresource=log", "-n", "narrow"), "yes"),
            (("delete", "deployments", "-n", "narrow"), "no"),
        ]
        for args, expected in cases:
            done = kubectl("auth", "can-i", *args)
            assert done.stdout.strip().splitlines()[0] == expected, (args, done.stdout, done.stderr)
            assert done.returncode == (0 if expected == "yes" else 1)
        # the request itself: 403 with the API server's Status
        denied = kubectl("get", "pods", "-n", "narrow")
        assert denied.returncode == 1
        assert 'cannot list resource "pods" in API group "" in the namespace "narrow"' in (
            denied.stderr
        )
        assert kubectl("get", "deployments", "-n", "narrow").returncode == 0


def test_ssar_needs_exactly_one_kind_of_attributes() -> None:
    with KubeSim() as sim:
        request = urllib.request.Request(
            f"{sim.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            data=json.dumps({"kind": "SelfSubjectAccessReview", "spec": {}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 422
        body = json.loads(caught.value.read())
        assert body["reason"] == "Invalid"
