"""The Vault token never follows a redirect, and never crosses the network in clear text
(issue 19, finding 4).

The review's shape: Vault (here a server on 127.0.0.1) answers the KV read with a 307 to another
host (a recording server on 127.0.0.3); requests strips ``Authorization`` on a cross-host
redirect but not ``X-Vault-Token``, and hvac follows redirects by default, so the other host got
the token twice. Every redirect status, to another host or the same host, is refused: the
recording server sees no request at all.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_homelab.core.outcomes import AuthError
from pytest_homelab.core.secrets import resolve_token


class Recorder:
    """An HTTP server that answers every request with ``answer`` and records its headers."""

    def __init__(self, host: str, answer: Callable[[str], tuple[int, dict[str, str]]]) -> None:
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                recorder.seen.append(dict(self.headers.items()))
                status, headers = answer(self.path)
                body = b'{"data": {"data": {"woodpecker_api_token": "stolen"}}}'
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_GET

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = Recorder("127.0.0.3", lambda path: (200, {"Content-Type": "application/json"}))
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("same_host", [False, True], ids=["other-host", "same-host"])
def test_a_redirecting_vault_never_gets_the_token_sent_on(
    elsewhere: Recorder, status: int, same_host: bool, no_leak: Callable[..., None]
) -> None:
    target = elsewhere.url.replace("127.0.0.3", "127.0.0.1") if same_host else elsewhere.url
    if same_host:  # the same address on another port: still not followed
        other = Recorder("127.0.0.1", lambda path: (200, {"Content-Type": "application/json"}))
        target, elsewhere = other.url, other
    vault = Recorder("127.0.0.1", lambda path: (status, {"Location": f"{target}{path}"}))
    token = "hvs." + secrets.token_urlsafe(24)
    try:
        with pytest.raises(AuthError) as caught:
            resolve_token({"VAULT_ADDR": vault.url, "VAULT_TOKEN": token})
    finally:
        vault.close()
        if same_host:
            elsewhere.close()
    message = caught.value.render()
    assert f"Vault answered a redirect ({status} to {target})" in message
    assert "never followed" in message
    assert elsewhere.seen == []  # not one request, so not one token, went there
    assert [h.get("X-Vault-Token") for h in vault.seen] == [token]  # only Vault itself got it
    no_leak([token], message)


@pytest.mark.parametrize("addr", ["http://vault.example.test:8200", "http://vault.example.org"])
def test_plain_http_vault_off_loopback_is_refused_before_sending(
    addr: str, no_leak: Callable[..., None]
) -> None:
    token = "hvs." + secrets.token_urlsafe(24)
    with pytest.raises(AuthError, match="plain http to a host that is not loopback") as caught:
        resolve_token({"VAULT_ADDR": addr, "VAULT_TOKEN": token})
    no_leak([token], caught.value.render())
