"""The light Kubernetes access (pytest_homelab.rollout.kubeclient): the official kubeconfig
loader and REST client without the generated ApiClient, pydantic and models, and a package
that still works whole for anyone who asks for more later in the same process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pytest_homelab.rollout.tracker import connect, list_request
from pytest_homelab.sim.kube.api import KubeSim

HEAVY = (
    "pydantic",
    "kubernetes.client.api_client",
    "kubernetes.client.models",
    "kubernetes.watch",
    "requests",
    "requests_oauthlib",
    "oauthlib.oauth2.rfc6749",
)


def _python(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_a_rollout_connection_loads_no_generated_client(tmp_path: Path) -> None:
    with KubeSim() as sim:
        kubeconfig = sim.kubeconfig(tmp_path / "kc")
        seen = _python(
            f"""
import json, sys
from pytest_homelab.rollout.tracker import connect, list_request
api = connect(kubeconfig={str(kubeconfig)!r}, context=None, environ={{}})
response = list_request(api, "pods")("default", _request_timeout=10)
status = response.status
response.data
response.release_conn()
api.close()
print(json.dumps({{"status": status, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
        )
    assert seen == {"status": 200, "heavy": []}


def test_the_whole_package_is_there_for_whoever_asks_later() -> None:
    seen = _python(
        """
import json
from pytest_homelab.rollout.kubeclient import kube_config_modules
kube_config_modules()
import kubernetes
from kubernetes import client, config, watch
from kubernetes.client import ApiClient
print(json.dumps({
    "version": kubernetes.__version__,
    "api": client.CoreV1Api.__name__,
    "api_client_is_the_class": isinstance(ApiClient, type) and ApiClient.__name__ == "ApiClient",
    "watch": watch.Watch.__name__,
    "loader": callable(config.load_kube_config),
}))
"""
    )
    assert seen["api"] == "CoreV1Api"
    assert seen["api_client_is_the_class"] is True
    assert seen["watch"] == "Watch"
    assert seen["loader"] is True
    assert isinstance(seen["version"], str) and seen["version"]


def test_the_oidc_provider_gets_the_real_oauth_libraries_when_it_uses_them() -> None:
    # kube_config names them at import and uses them in _refresh_oidc: OAuth2Session(...) and
    # `except oauthlib.oauth2.rfc6749.errors.InvalidClientIdError` (kubernetes-client/python
    # kubernetes/base/config/kube_config.py@v37.0.3 _refresh_oidc).
    seen = _python(
        """
import json, sys
from pytest_homelab.rollout.kubeclient import kube_config_modules
kube_config_modules()
before = sorted(m for m in ("requests", "requests_oauthlib", "oauthlib.oauth2.rfc6749")
                if m in sys.modules)
kc = sys.modules["kubernetes.config.kube_config"]
error = kc.oauthlib.oauth2.rfc6749.errors.InvalidClientIdError
session = kc.OAuth2Session(client_id="homelab")
import oauthlib
import oauthlib.oauth2.rfc6749.errors as errors
import requests_oauthlib
print(json.dumps({
    "before": before,
    "error_is_real": error is errors.InvalidClientIdError,
    "session_is_real": type(session) is requests_oauthlib.OAuth2Session,
    "debug": oauthlib.get_debug(),  # the package's own __init__ ran when first asked
}))
"""
    )
    assert seen == {"before": [], "error_is_real": True, "session_is_real": True, "debug": False}


def test_an_error_status_raises_the_official_exception_with_its_body(tmp_path: Path) -> None:
    from kubernetes.client.exceptions import ApiException

    with KubeSim() as sim:
        api = connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc")), context=None, environ={})
        try:
            request = list_request(api, "pods")
            try:
                request("default", field_selector="spec.nope=x", _request_timeout=10)
            except ApiException as exc:
                assert exc.status == 400
                assert "spec.nope" in str(exc.body)
            else:
                raise AssertionError("an unsupported field selector was accepted")
        finally:
            api.close()
