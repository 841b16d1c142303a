"""Kubernetes access as users expect it: kubeconfig (file, KUBECONFIG, ~/.kube/config, context)
or the in-cluster service account; a clear error when there is neither."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.rollout.tracker import ClusterView, ResourceWatch, connect
from pytest_homelab.sim.kube.api import KubeSim


def list_apps(client: object) -> int:
    view = ClusterView()
    ResourceWatch(client, "deployments", "apps", view)._list_once()
    return len(view.objects[("deployments", "apps")])


@pytest.fixture
def tls_sim(ca: trustme.CA) -> KubeSim:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return KubeSim(ssl_context=context)


def test_kubeconfig_sources_in_order(tmp_path: Path) -> None:
    with KubeSim() as sim:
        sim.create_namespace("apps")
        explicit = sim.kubeconfig(tmp_path / "explicit")
        home = tmp_path / "home"
        (home / ".kube").mkdir(parents=True)
        sim.kubeconfig(home / ".kube" / "config")
        for client in (
            connect(kubeconfig=str(explicit), context=None, environ={}),
            connect(kubeconfig=None, context=None, environ={"KUBECONFIG": f"/nope:{explicit}"}),
            connect(kubeconfig=None, context=None, environ={"HOME": str(home)}),
        ):
            assert list_apps(client) == 0
            client.close()


def test_context_choice_and_unknown_context(tmp_path: Path) -> None:
    with KubeSim() as sim:
        path = sim.kubeconfig(tmp_path / "kc", context="lab")
        connect(kubeconfig=str(path), context="lab", environ={}).close()
        with pytest.raises(BadInput, match="'nope'"):
            connect(kubeconfig=str(path), context="nope", environ={})


def test_in_cluster_service_account(tls_sim: KubeSim, ca: trustme.CA, tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("in-cluster-token")
    ca.cert_pem.write_to_path(str(account / "ca.crt"))
    with tls_sim:
        tls_sim.create_namespace("apps")
        env = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(tls_sim.port),
            "HOME": str(tmp_path),
        }
        client = connect(kubeconfig=None, context=None, environ=env, service_account=account)
        try:
            assert list_apps(client) == 0
        finally:
            client.close()


def test_tls_kubeconfig_verifies_the_server(
    tls_sim: KubeSim, ca: trustme.CA, tmp_path: Path
) -> None:
    with tls_sim:
        tls_sim.create_namespace("apps")
        good = tls_sim.kubeconfig(tmp_path / "good", ca_pem=ca.cert_pem.bytes())
        client = connect(kubeconfig=str(good), context=None, environ={})
        assert list_apps(client) == 0
        client.close()
        untrusted = tls_sim.kubeconfig(tmp_path / "bad", ca_pem=trustme.CA().cert_pem.bytes())
        client = connect(kubeconfig=str(untrusted), context=None, environ={})
        with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            list_apps(client)
        client.close()


def test_nothing_configured_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        connect(
            kubeconfig=None,
            context=None,
            environ={"HOME": str(tmp_path)},
            service_account=tmp_path / "none",
        )
    text = str(info.value)
    assert "no Kubernetes configuration found" in text
    for tried in ("--kubeconfig", "KUBECONFIG", ".kube/config", "KUBERNETES_SERVICE_HOST"):
        assert tried in text
    with pytest.raises(BadInput, match="does not exist"):
        connect(kubeconfig=str(tmp_path / "missing"), context=None, environ={})
