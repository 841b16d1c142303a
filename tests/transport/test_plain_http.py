"""The bearer token never goes out over plain http except to this machine (issue 19, finding 8).

The review's shape: ``--woodpecker-server http://ci.example.test`` sent ``Authorization: Bearer``
unencrypted. Plain http is allowed only when the URL's host and the dial address are loopback;
everything else is refused before a connection is made (a listener counts them).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.ci.phase import open_client
from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import BadInput, InfraError
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.settings import resolve_settings
from pytest_homelab.core.transport import JsonApi, make_http_client
from tests.transport.conftest import HOSTNAME


class Listener:
    """Accepts and counts connections on 127.0.0.1 (answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize(
    ("server", "dial"),
    [
        ("http://ci.example.test", None),  # the review's
        ("http://ci.example.test", "127.0.0.1:{port}"),  # loopback dial, public name: refused
        ("http://127.0.0.1:{port}", "ci-lb.example.test:{port}"),  # loopback name, remote dial
        ("http://localhost:{port}", "lb.example.org"),
        ("http://[::2]:{port}", None),
    ],
)
def test_plain_http_off_loopback_is_refused_before_connecting(
    listener: Listener, tmp_path: Path, server: str, dial: str | None
) -> None:
    flags = {
        "woodpecker_server": server.format(port=listener.port),
        "woodpecker_dial": dial.format(port=listener.port) if dial else None,
    }
    settings = resolve_settings(flags, environ={}, cwd=tmp_path)
    with pytest.raises(BadInput, match="refusing plain http://") as caught:
        client = open_client(settings, Secret("wp-plain-http-token-0123456789"))
        client.lookup_repo("owner/name", deadline=Deadline.after(2))
    assert "unencrypted" in caught.value.message
    assert listener.connections == 0


@pytest.mark.parametrize(
    ("server", "dial"),
    [
        ("http://127.0.0.1:{port}", None),
        ("http://localhost:{port}", None),
        ("http://ci.localhost:{port}", "127.0.0.1:{port}"),
        ("https://ci.example.test", "127.0.0.1:{port}"),  # https: anything goes (TLS verifies)
    ],
)
def test_loopback_and_https_are_allowed(listener: Listener, server: str, dial: str | None) -> None:
    client = make_http_client(
        server.format(port=listener.port), dial=dial.format(port=listener.port) if dial else None
    )
    client.close()


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_no_environment_variable_changes_the_trusted_cas(
    tls_server: Any, ca: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """OpenSSL's SSL_CERT_FILE/SSL_CERT_DIR would replace the system store behind
    ``ssl.create_default_context()``: the docs say only --ca-bundle changes what is trusted."""
    bundle = tmp_path / "certs" / "ca.pem"
    bundle.parent.mkdir()
    ca.cert_pem.write_to_path(str(bundle))
    subprocess.run(["openssl", "rehash", str(bundle.parent)], check=True, capture_output=True)
    monkeypatch.setenv(variable, str(bundle if variable == "SSL_CERT_FILE" else bundle.parent))
    http = make_http_client(
        f"https://{HOSTNAME}:{tls_server.port}", dial=f"127.0.0.2:{tls_server.port}"
    )
    api = JsonApi(http, service="Woodpecker")
    with pytest.raises(InfraError, match="TLS verification"):
        api.get("/api/version", deadline=Deadline.after(5))
    assert tls_server.seen == []  # no request got through the handshake
    trusted = make_http_client(
        f"https://{HOSTNAME}:{tls_server.port}",
        dial=f"127.0.0.2:{tls_server.port}",
        ca_bundle=bundle,
    )
    assert JsonApi(trusted, service="Woodpecker").get("/x", deadline=Deadline.after(5)) == {
        "ok": True
    }
