"""Small raw requests through the official Kubernetes ``ApiClient`` (its auth and TLS), for the
doctor and ``homelab init``: bounded by a timeout, no retries, no generated API classes (their
validators cost a second per process)."""

from __future__ import annotations

import json
from typing import Any

from pytest_homelab.core.outcomes import AuthError, InfraError, NotFound

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


class Forbidden(AuthError):
    """403 from the API server."""


def request(
    api_client: Any,
    method: str,
    path: str,
    *,
    timeout: float,
    body: object = None,
    query: list[tuple[str, str]] | None = None,
) -> Any:
    """The parsed JSON answer; AuthError (401/403), NotFound (404) or InfraError otherwise."""
    import urllib3

    server = api_client.configuration.host
    try:
        response = api_client.request(
            method, path, query=query or [], body=body, timeout=(timeout, timeout)
        )
        try:
            data = response.data
        finally:
            response.release_conn()
    except urllib3.exceptions.MaxRetryError as exc:
        raise InfraError(
            f"the Kubernetes API at {server} is unreachable: {_reason(exc.reason)}",
            hint="check the kubeconfig's server address and that the cluster is up",
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise InfraError(
            f"the Kubernetes API at {server} failed: {_reason(exc)}",
            hint="check the kubeconfig's server address and that the cluster is up",
        ) from None
    status = response.status
    if status == 401:
        raise AuthError(
            f"the Kubernetes API at {server} refused the kubeconfig's credentials (401)",
            hint="refresh the credentials of the kubeconfig's user (kubectl get ns to try)",
        )
    if status == 403:
        message = _status_message(data)
        raise Forbidden(f"{method} {path}: 403 Forbidden: {message}")
    if status == 404:
        raise NotFound(f"{method} {path}: 404 Not Found: {_status_message(data)}")
    if not 200 <= status < 300:
        raise InfraError(f"{method} {path}: {status}: {_status_message(data)}")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InfraError(f"{method} {path}: the answer is not JSON") from None


def _status_message(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])[:300]
    return "(no message)"


def _reason(exc: object) -> str:
    text = str(exc)
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "no answer in time"),
        ("Read timed out", "no answer in time"),
        ("CERTIFICATE_VERIFY_FAILED", "its certificate does not verify"),
        ("Name or service not known", "the host name does not resolve"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def can_i(
    api_client: Any,
    *,
    verb: str,
    resource: str,
    namespace: str,
    group: str = "",
    subresource: str = "",
    timeout: float,
) -> tuple[bool, str]:
    """A SelfSubjectAccessReview, as ``kubectl auth can-i`` sends it (kubernetes/kubectl
    pkg/cmd/auth/cani.go@v0.33.9:269-311): (allowed, reason or evaluation error)."""
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    answer = request(
        api_client,
        "POST",
        SSAR_PATH,
        timeout=timeout,
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise InfraError("the SelfSubjectAccessReview came back without a status")
    why = str(status.get("reason") or status.get("evaluationError") or "")
    return bool(status.get("allowed")), why
