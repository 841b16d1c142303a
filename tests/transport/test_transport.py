"""Internal-LB dialing over real TLS, and the retry rules against a scripted loopback server."""

from __future__ import annotations

import random
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_homelab.core.clock import SYSTEM_CLOCK, Deadline, FakeClock
from pytest_homelab.core.outcomes import AuthError, BadInput, DeadlineExceeded, InfraError, NotFound
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.transport import HttpNotFound, JsonApi, make_http_client, parse_dial

HOSTNAME = "ci.example.test"


def api_for(server: Any, ca_bundle: Path, timeout: float = 2.0, **kw: Any) -> JsonApi:
    http = make_http_client(
        f"https://{HOSTNAME}:{server.port}", dial="127.0.0.2", ca_bundle=ca_bundle, timeout=timeout
    )
    kw.setdefault("clock", FakeClock())  # backoff sleeps cost no wall time
    return JsonApi(http, token=Secret("tok-123"), service="Woodpecker", rng=random.Random(1), **kw)


# -- dialing -------------------------------------------------------------------------------------


def test_dial_keeps_sni_host_and_certificate_of_the_hostname(
    tls_server: Any, ca_bundle: Path
) -> None:
    api = api_for(tls_server, ca_bundle)
    with api.http:
        assert api.get("/api/user", deadline=Deadline.after(5)) == {"ok": True}
    seen = tls_server.seen[0]
    assert seen.sni == HOSTNAME
    assert seen.host == f"{HOSTNAME}:{tls_server.port}"
    assert seen.auth == "Bearer tok-123"


def test_dial_with_an_explicit_port(tls_server: Any, ca_bundle: Path) -> None:
    http = make_http_client(
        f"https://{HOSTNAME}:1", dial=f"127.0.0.2:{tls_server.port}", ca_bundle=ca_bundle
    )
    with http:
        assert http.get("/x").status_code == 200
    assert tls_server.seen[0].host == f"{HOSTNAME}:1"  # Host keeps the URL's authority


def test_wrong_hostname_fails_verification(tls_server: Any, ca_bundle: Path) -> None:
    http = make_http_client(
        f"https://evil.example.test:{tls_server.port}", dial="127.0.0.2", ca_bundle=ca_bundle
    )
    api = JsonApi(http, service="Woodpecker")
    with http, pytest.raises(InfraError, match="TLS verification") as info:
        api.get("/api/user", deadline=Deadline.after(5))
    assert "--ca-bundle" in str(info.value) and "cannot be turned off" in str(info.value)


def test_untrusted_ca_fails_verification(tls_server: Any) -> None:
    http = make_http_client(f"https://{HOSTNAME}:{tls_server.port}", dial="127.0.0.2")
    api = JsonApi(http, service="Woodpecker")
    with http, pytest.raises(InfraError, match="TLS verification"):
        api.get("/api/user", deadline=Deadline.after(5))
    assert tls_server.seen == []  # never got as far as a request


def test_without_dial_the_hostname_is_not_resolved_to_loopback(ca_bundle: Path) -> None:
    # ci.example.test does not resolve; nothing may be dialed but what the dial names.
    http = make_http_client(f"https://{HOSTNAME}:9", ca_bundle=ca_bundle)
    with http, pytest.raises(httpx.ConnectError):
        http.get("/x")


def test_a_non_verifying_context_is_refused() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(BadInput, match="does not verify"):
        make_http_client("https://ci.example.test", verify=context)


def test_missing_or_bad_ca_bundle_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        make_http_client("https://ci.example.test", ca_bundle=tmp_path / "nope.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(BadInput, match="not a PEM"):
        make_http_client("https://ci.example.test", ca_bundle=junk)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.20.203", ("10.0.20.203", None)),
        ("10.0.20.203:8443", ("10.0.20.203", 8443)),
        ("lb.internal", ("lb.internal", None)),
        ("[::1]:443", ("::1", 443)),
        ("::1", ("::1", None)),
        (" 127.0.0.2 ", ("127.0.0.2", None)),
    ],
)
def test_parse_dial(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_dial(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", ":443", "host:0", "host:70000", "host:x", "[::1", "[::1]x", "a b", "h/x", "u@h", "1:2:3"],
)
def test_parse_dial_rejects(text: str) -> None:
    with pytest.raises(BadInput):
        parse_dial(text)


# -- retries -------------------------------------------------------------------------------------


def ok(
    body: bytes = b'{"ok": 1}', status: int = 200, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return (status, dict(headers), body)


@pytest.mark.parametrize(
    "glitch",
    [
        ok(b""),
        ok(b"   \n"),
        ok(b"", status=500),
        ok(b"", status=502),
        ok(b"", status=503),
        ok(b'{"trunc'),
        ok(b"<html>proxy error</html>"),
        "reset",
        ("stall", 1.0),
    ],
    ids=["empty200", "blank200", "500", "502", "503", "truncated", "html", "reset", "stall"],
)
def test_transient_glitches_are_retried(tls_server: Any, ca_bundle: Path, glitch: object) -> None:
    tls_server.script.steps = [glitch, glitch]
    retries: list[str] = []
    api = api_for(tls_server, ca_bundle, timeout=0.4, on_retry=retries.append)
    with api.http:
        assert api.get("/api/x", deadline=Deadline.after(30, api.clock)) == {"ok": 1}
    assert api.stats.retries == 2 and len(retries) == 2


def test_429_honours_retry_after(tls_server: Any, ca_bundle: Path) -> None:
    tls_server.script.steps = [ok(b"", status=429, **{"Retry-After": "3"})]
    clock = FakeClock()
    api = api_for(tls_server, ca_bundle, clock=clock)
    with api.http:
        assert api.get("/api/x", deadline=Deadline.after(60, clock)) == {"ok": 1}
    assert clock.sleeps and clock.sleeps[0] >= 3


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (401, AuthError, "401 Unauthorized"),
        (403, AuthError, "403 Forbidden"),
        (404, HttpNotFound, "404 Not Found"),
    ],
)
def test_auth_and_not_found_are_never_retried(
    tls_server: Any, ca_bundle: Path, status: int, error: type[Exception], text: str
) -> None:
    tls_server.script.steps = [ok(b"", status=status)]
    api = api_for(tls_server, ca_bundle)
    with api.http, pytest.raises(error, match=text) as info:
        api.get("/api/x", deadline=Deadline.after(30))
    assert len(tls_server.seen) == 1
    assert "tok-123" not in str(info.value)
    assert issubclass(HttpNotFound, NotFound)


def test_400_is_an_infra_error_with_the_body(tls_server: Any, ca_bundle: Path) -> None:
    tls_server.script.steps = [ok(b"invalid event filter", status=400)]
    api = api_for(tls_server, ca_bundle)
    with api.http, pytest.raises(InfraError, match="400: invalid event filter"):
        api.get("/api/x", deadline=Deadline.after(30))


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"Content-Type": "text/html; charset=UTF-8"}, b"<!DOCTYPE html><html></html>"),
        (200, {"Content-Type": "text/html"}, b"<html><body>Sign in</body></html>"),
    ],
)
def test_a_web_page_is_bad_input_at_once_not_a_glitch(
    tls_server: Any, ca_bundle: Path, answer: tuple[int, dict[str, str], bytes]
) -> None:
    """A Woodpecker server answers an API path it lacks with its web UI's index.html and 200
    (woodpecker-ci/woodpecker server/router/router.go@v3.17.0:54, server/web/web.go
    @v3.17.0:142-150); a login proxy or a wrong root path does too. Retrying cannot help."""
    tls_server.script.default = answer
    api = api_for(tls_server, ca_bundle)
    with api.http, pytest.raises(BadInput, match="answered a web page") as info:
        api.get("/api/repos/lookup/x", deadline=Deadline.after(30))
    assert len(tls_server.seen) == 1
    assert "base URL" in info.value.render()


def test_204_and_json_null_are_none(tls_server: Any, ca_bundle: Path) -> None:
    tls_server.script.steps = [ok(b"", status=204), ok(b"null")]
    api = api_for(tls_server, ca_bundle)
    with api.http:
        assert api.get("/a", deadline=Deadline.after(5)) is None
        assert api.get("/b", deadline=Deadline.after(5)) is None


def test_persistent_failure_is_bounded_by_the_retry_budget(
    tls_server: Any, ca_bundle: Path
) -> None:
    tls_server.script.default = ok(b"", status=503)
    clock = FakeClock()
    api = api_for(tls_server, ca_bundle, clock=clock, retry_budget=30)
    with api.http, pytest.raises(InfraError, match="Woodpecker unreachable") as info:
        api.get("/api/x", deadline=Deadline.after(600, clock))
    assert sum(clock.sleeps) <= 30
    assert "503" in str(info.value)


def test_persistent_failure_at_the_deadline_is_deadline_exceeded(
    tls_server: Any, ca_bundle: Path
) -> None:
    tls_server.script.default = ok(b"", status=502)
    clock = FakeClock()
    api = api_for(tls_server, ca_bundle, clock=clock, retry_budget=300)
    with api.http, pytest.raises(DeadlineExceeded):
        api.get("/api/x", deadline=Deadline.after(10, clock))
    assert sum(clock.sleeps) <= 10


def test_read_timeout_is_capped_by_the_deadline(tls_server: Any, ca_bundle: Path) -> None:
    import time

    tls_server.script.default = ("stall", 3.0)
    api = api_for(tls_server, ca_bundle, clock=SYSTEM_CLOCK)
    started = time.monotonic()
    with api.http, pytest.raises((DeadlineExceeded, InfraError)):
        api.get("/api/x", deadline=Deadline.after(1.0))
    assert time.monotonic() - started < 3.0  # deadline + slack, never the 3 s stall twice


def test_plain_http_works_without_dial(plain_server: Any) -> None:
    http = make_http_client(f"http://127.0.0.1:{plain_server.port}")
    api = JsonApi(http)
    with http:
        assert api.get("/x", deadline=Deadline.after(5)) == {"ok": True}
    assert plain_server.seen[0].auth is None
