"""The Woodpecker token never reaches the terminal or JUnit, whatever pytest is asked to show
(issue 19, finding 2).

The review's shape: a server answers ``Content-Encoding: gzip`` with a body that is not gzip, and
``--tb=long`` (or ``-l``) printed ``Client.request``'s ``headers = {'Authorization': 'Bearer …'}``.
Here every fault of the HTTP stack and of JSON decoding — a bad gzip body, invalid JSON, a chunked
body cut short, a TLS failure, and a token HTTP refuses as a header value — is played by a
hostile TLS server on loopback against a real pytest session with the plugin (its ``woodpecker``
fixture), under ``--tb=long``, ``-l`` and ``--showlocals --tb=long -vv``. Each check must fail
with a typed outcome, and the token must appear neither in the output nor in the JUnit file.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme

HOSTNAME = "ci.example.test"
MODES = {
    "tb-long": ["--tb=long"],
    "locals": ["-l"],
    "locals-long-vv": ["--showlocals", "--tb=long", "-vv"],
}
# What the hostile server does for each repo name (GET /api/repos/lookup/owner/<fault>).
FAULTS = {
    # openssl/zlib says "incorrect header check"; httpx raises DecodingError, not a TransportError
    "bad-gzip": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 13\r\n\r\nnot gzip data",
    "invalid-json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n"
    b"\r\n{not json",
    "deep-json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n"
    b"\r\n" + b"[" * 200000,  # json.loads raises RecursionError, not JSONDecodeError
    "truncated-chunked": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n100\r\n{"id": 1, "na',
}

INNER = """
import dataclasses
import pytest
from pytest_homelab.ci.phase import open_client
from pytest_homelab.core.clock import Deadline

FAULTS = {faults!r}

@pytest.mark.parametrize("fault", FAULTS)
def test_lookup(homelab_woodpecker, fault):
    deadline = Deadline.after(1.5)
    homelab_woodpecker.lookup_repo(f"owner/{{fault}}", deadline=deadline)

def test_tls_failure(homelab_settings, homelab_woodpecker_token):
    settings = dataclasses.replace(homelab_settings, woodpecker_dial="127.0.0.1:{untrusted}")
    client = open_client(settings, homelab_woodpecker_token)
    client.lookup_repo("owner/tls", deadline=Deadline.after(1.5))
"""


class HostileServer:
    """A TLS server for ci.example.test that plays a fault by path and records what it got."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.authorizations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                for line in head[1:]:
                    if line.lower().startswith("authorization:"):
                        self.authorizations.append(line.split(":", 1)[1].strip())
                fault = path.rsplit("/", 1)[-1]
                conn.sendall(FAULTS.get(fault, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))
        except (OSError, ssl.SSLError):
            return

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def servers(ca: trustme.CA) -> Iterator[tuple[HostileServer, HostileServer]]:
    trusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(trusted)
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert(HOSTNAME).configure_cert(untrusted)  # a CA nobody trusts
    pair = HostileServer(trusted), HostileServer(untrusted)
    try:
        yield pair
    finally:
        for server in pair:
            server.close()


def leaks(text: str, token: str) -> list[str]:
    """Where the token shows: whole, in a repr, or either half of it."""
    forms = {token, repr(token)[1:-1], token.encode("unicode_escape").decode()}
    forms |= {part for part in token.split("\n") if len(part) >= 8}
    return sorted(form for form in forms if form in text)


def run_inner(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ca: trustme.CA,
    server: HostileServer,
    untrusted: HostileServer,
    token: str,
    mode: list[str],
) -> tuple[pytest.RunResult, str]:
    bundle = pytester.path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    pytester.makepyfile(INNER.format(faults=list(FAULTS), untrusted=untrusted.port))
    monkeypatch.setenv("HOME", str(pytester.path))
    monkeypatch.setenv("WOODPECKER_TOKEN", token)
    for name in ("WP_TOKEN", "VAULT_ADDR", "VAULT_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--woodpecker-server=https://{HOSTNAME}",
        f"--woodpecker-dial=127.0.0.1:{server.port}",
        f"--ca-bundle={bundle}",
        "--homelab-request-timeout=1s",
        *mode,
        timeout=120,
    )
    return result, junit.read_text() if junit.exists() else ""


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_no_fault_of_the_http_stack_prints_the_token(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ca: trustme.CA,
    servers: tuple[HostileServer, HostileServer],
    mode: list[str],
) -> None:
    token = "wp-" + secrets.token_urlsafe(32)
    server, untrusted = servers
    result, junit = run_inner(pytester, monkeypatch, ca, server, untrusted, token, mode)
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=len(FAULTS) + 1)
    assert f"Bearer {token}" in server.authorizations  # the token did go out, to this server
    assert leaks(output, token) == []
    assert leaks(junit, token) == []
    # every fault is a typed outcome, not a library exception with its frames
    for name in ("DecodingError", "RecursionError", "RemoteProtocolError", "JSONDecodeError"):
        assert f"raise {name}" not in output
    assert "httpx/_client.py" not in output and "httpcore" not in output
    assert output.count("DeadlineExceeded") >= len(FAULTS)
    assert "TLS verification of https://ci.example.test failed" in output


@pytest.mark.parametrize(
    ("bad", "mode"),
    [
        *(("\n", mode) for mode in MODES.values()),
        ("\u200b", MODES["locals-long-vv"]),
        (" ", MODES["tb-long"]),
        ("\r\n", MODES["locals"]),
    ],
    ids=[*(f"lf-{name}" for name in MODES), "zwsp-locals-long-vv", "space-tb-long", "crlf-locals"],
)
def test_a_token_http_would_refuse_is_never_sent_nor_shown(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ca: trustme.CA,
    servers: tuple[HostileServer, HostileServer],
    mode: list[str],
    bad: str,
) -> None:
    """The review: a newline gave ``Illegal header value b'Bearer …'`` on stderr and 60 s of
    retries; a zero-width space printed the token in a repr."""
    token = "SUPERSECRET" + secrets.token_hex(8) + bad + "TOKEN" + secrets.token_hex(8)
    server, untrusted = servers
    result, junit = run_inner(pytester, monkeypatch, ca, server, untrusted, token, mode)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert server.authorizations == [] and untrusted.authorizations == []  # nothing was sent
    assert leaks(output, token) == [] and leaks(junit, token) == []
    assert "WOODPECKER_TOKEN holds" in output and "visible ASCII only" in output
    assert "Illegal header value" not in output
