"""Fixtures for the simulator tests: running simulators, HTTP helpers, the OpenAPI contract.

The contract is the real server's Swagger 2.0 spec in ``shared/reference/`` (provenance in
``woodpecker-openapi.SOURCE.txt`` there), which sits beside the checkout as ``../shared``.
"""

from __future__ import annotations

import copy
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import trustme

from pytest_homelab.sim.woodpecker import WoodpeckerSim

TOKEN = "sim-token-123"
HOSTNAME = "ci.example.test"

Call = Callable[..., httpx.Response]
# Built once: httpx would otherwise load the CA bundle on every call (tests speak plain HTTP).
_PLAIN_HTTP_CONTEXT = ssl.create_default_context()
Conforms = Callable[[str, object], None]


SPEC = Path(__file__).parents[3] / "shared" / "reference" / "woodpecker-openapi.json"


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    if not SPEC.is_file():
        pytest.fail(f"the Woodpecker OpenAPI spec is missing at {SPEC}: check out ../shared")
    spec: dict[str, Any] = json.loads(SPEC.read_text())
    return spec


@pytest.fixture(scope="session")
def conforms(openapi: dict[str, Any]) -> Conforms:
    """Assert that an instance matches a spec definition and carries no field the spec lacks.

    Swagger 2.0 definitions are draft-4 schemas once the ``#/definitions`` map is embedded. The
    spec types ``LogEntry.data`` as an integer array; the server sends Go ``[]byte``: base64.
    ``Pipeline.errors`` may be null.
    """
    definitions = copy.deepcopy(openapi["definitions"])
    definitions["LogEntry"]["properties"]["data"] = {"type": "string"}
    # A nil Go slice without omitempty is JSON null, which swag cannot express: a pipeline
    # without errors sends ``"errors": null`` (woodpecker-ci/woodpecker
    # server/model/pipeline.go@v3.17.0:34).
    errors = definitions["Pipeline"]["properties"]["errors"]
    errors["type"] = ["array", "null"]
    for schema in definitions.values():
        if "properties" in schema:
            schema["additionalProperties"] = False
    validators: dict[str, jsonschema.Draft4Validator] = {}

    def check(definition: str, instance: object) -> None:
        if definition not in validators:
            validators[definition] = jsonschema.Draft4Validator(
                {"definitions": definitions, "$ref": f"#/definitions/{definition}"}
            )
        errors = sorted(validators[definition].iter_errors(instance), key=str)
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])

    return check


@pytest.fixture
def sim() -> Iterator[WoodpeckerSim]:
    """A v3 simulator with a private repo (id 1) and a public one (id 2)."""
    with WoodpeckerSim(token=TOKEN, ping_interval=0.2) as s:
        s.add_repo("homelab/app", private=True)
        s.add_repo("homelab/public", private=False)
        yield s
    assert not s.errors


@pytest.fixture
def v2sim() -> Iterator[WoodpeckerSim]:
    """A v2.8.3 simulator with one private repo (id 1)."""
    with WoodpeckerSim(token=TOKEN, naming="v2", ping_interval=0.2) as s:
        s.add_repo("homelab/app", private=True)
        yield s
    assert not s.errors


def _call(
    sim: WoodpeckerSim,
    method: str,
    path: str,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    **params: str,
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent |= headers or {}
    return httpx.request(
        method,
        sim.base_url + path,
        headers=sent,
        params=params,
        timeout=timeout,
        verify=_PLAIN_HTTP_CONTEXT,
    )


@pytest.fixture(scope="session")
def get() -> Call:
    """``get(sim, path, token=TOKEN, headers=None, timeout=5, **query)``."""

    def call(sim: WoodpeckerSim, path: str, *args: Any, **kwargs: Any) -> httpx.Response:
        return _call(sim, "GET", path, *args, **kwargs)

    return call


@pytest.fixture(scope="session")
def post() -> Call:
    """``post(sim, path, token=TOKEN, headers=None, timeout=5, **query)``."""

    def call(sim: WoodpeckerSim, path: str, *args: Any, **kwargs: Any) -> httpx.Response:
        return _call(sim, "POST", path, *args, **kwargs)

    return call


@pytest.fixture(scope="session")
def tls_contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: a certificate for ci.example.test from the session CA."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.fixture
def leak_check() -> Iterator[None]:
    """Fail if the test leaves threads or file descriptors (sockets) behind."""
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    extra = {t for t in threading.enumerate() if t.is_alive()} - threads
    assert not extra, f"threads left behind: {sorted(t.name for t in extra)}"
    if fds is not None:
        assert _open_fds() == fds, "file descriptors left open"


def _open_fds() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None
