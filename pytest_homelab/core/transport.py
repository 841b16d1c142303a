"""HTTP for the homelab's APIs: internal-LB dialing and requests that ride out flakiness.

*Dialing* (``curl --resolve``): the URL keeps the public hostname; only the TCP connect goes to the
dial address. TLS SNI, certificate verification and the ``Host`` header all use the hostname, so
the certificate still has to match. There is no way to turn verification off here.

*Retrying*: empty bodies (also with 200), 5xx, 429 (Retry-After honoured), connection resets, read
timeouts and truncated or invalid JSON are retried with exponential backoff and jitter, bounded by
the caller's deadline. 401, 403 and 404 are answers, not glitches: they are never retried.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import os
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from pytest_homelab.core.clock import SYSTEM_CLOCK, Backoff, Clock, Deadline, format_duration
from pytest_homelab.core.outcomes import (
    AuthError,
    BadInput,
    DeadlineExceeded,
    HomelabError,
    InfraError,
    NotFound,
)
from pytest_homelab.core.secrets import Secret, is_loopback, scrub, token_problem

# -- dialing ------------------------------------------------------------------------------------


def parse_dial(value: str) -> tuple[str, int | None]:
    """Parse ``HOST[:PORT]`` or ``[V6]:PORT``. Raises BadInput."""
    text = value.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadInput(f"dial address {value!r}: missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise BadInput(f"dial address {value!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise BadInput(
                f"dial address {value!r} is not HOST[:PORT]",
                hint="write an IPv6 address with a port as [ADDR]:PORT",
            ) from None
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise BadInput(f"dial address {value!r} is not HOST[:PORT]")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadInput(f"dial address {value!r}: port must be 1-65535")
        port = int(port_text)
    return host, port


class _DialingBackend(httpcore.NetworkBackend):
    """Connects to the dial address for one hostname; every other host resolves normally."""

    def __init__(self, hostname: str, dial_host: str, dial_port: int | None) -> None:
        self._hostname = hostname.lower()
        self._dial_host = dial_host
        self._dial_port = dial_port
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.lower() == self._hostname:
            host, port = self._dial_host, self._dial_port or port
        return self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - not used
        return self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - used by httpcore retries only
        self._inner.sleep(seconds)


class DialingTransport(httpx.HTTPTransport):
    """An httpx transport whose TCP connects for ``hostname`` go to ``dial``."""

    def __init__(self, hostname: str, dial: str, *, verify: ssl.SSLContext) -> None:
        _require_verifying(verify)
        super().__init__(verify=verify, trust_env=False)
        dial_host, dial_port = parse_dial(dial)
        # httpx has no public hook for the network backend; the pool it builds is replaced by an
        # identical one that dials differently. tests/transport pins this against real TLS.
        self._pool = httpcore.ConnectionPool(
            ssl_context=verify,
            network_backend=_DialingBackend(hostname, dial_host, dial_port),
        )


def _require_encrypted_off_loopback(base_url: str, dial: str | None) -> None:
    """Plain http carries the bearer token in clear text: only to this machine (the URL's host
    and the dial address both loopback), never across a network."""
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return
    dial_host = parse_dial(dial)[0] if dial else None
    if is_loopback(url.host) and (dial_host is None or is_loopback(dial_host)):
        return
    where = url.host if not is_loopback(url.host) else f"{url.host} dialed at {dial_host}"
    raise BadInput(
        f"refusing plain http:// to {where}: the API token would cross the network "
        "unencrypted (http is allowed only when the host and the dial address are loopback)",
        hint="use the https:// URL of the server (with --ca-bundle for a private CA)",
    )


def _require_verifying(context: ssl.SSLContext) -> None:
    """Dialing an address while keeping the hostname is only safe if the certificate is checked."""
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise BadInput("refusing a TLS context that does not verify certificates and hostnames")


def _system_context() -> ssl.SSLContext:
    """A verifying context trusting the system's CA store as OpenSSL was built to find it.

    Not ``ssl.create_default_context()``: its ``load_default_certs`` lets ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` replace the trusted CAs. No environment variable changes what is trusted
    here; only ``--ca-bundle`` does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostnames checked
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if cafile is not None or capath is not None:
        context.load_verify_locations(cafile=cafile, capath=capath)
    return context


def ssl_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or only those in ``ca_bundle``."""
    if ca_bundle is None:
        return _system_context()
    if not ca_bundle.is_file():
        raise BadInput(
            f"CA bundle {ca_bundle} does not exist or is not a file",
            hint="pass a PEM file with --ca-bundle (env HOMELAB_CA_BUNDLE)",
        )
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no default paths: nothing from env
        context.load_verify_locations(cafile=str(ca_bundle))
        return context
    except ssl.SSLError as exc:
        raise BadInput(f"CA bundle {ca_bundle} is not a PEM certificate file: {exc}") from None


def make_http_client(
    base_url: str,
    *,
    dial: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 20.0,
    verify: ssl.SSLContext | None = None,
    credentials: bool = True,
) -> httpx.Client:
    """An httpx client for ``base_url`` that verifies TLS and, with ``dial``, dials the LB.

    ``verify`` lets tests pass a context trusting their own CA; it is still a verifying context.
    A client that will carry credentials (the default) refuses plain http off loopback;
    ``credentials=False`` is for clients that never send any (probes, a landing's own checks).
    """
    if credentials:
        _require_encrypted_off_loopback(base_url, dial)
    context = verify if verify is not None else ssl_context(ca_bundle)
    _require_verifying(context)
    host = httpx.URL(base_url).host
    transport: httpx.BaseTransport
    if dial:
        transport = DialingTransport(host, dial, verify=context)
    else:
        transport = httpx.HTTPTransport(verify=context, trust_env=False)
    return httpx.Client(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 8.0)),
        trust_env=False,
        follow_redirects=False,
    )


# -- retrying JSON requests ---------------------------------------------------------------------


class HttpNotFound(NotFound):
    """A 404; the caller decides whether that means 'not there' or 'no access'."""


class HttpUnauthorized(AuthError):
    """A 401; a caller that saw the token work may treat it as transient (Woodpecker runs a
    request anonymously when loading the token's user fails)."""


_NOT_RETRIED_TLS = (ssl.SSLCertVerificationError,)


def _tls_verification_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _NOT_RETRIED_TLS):
            return current
        if isinstance(current, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(current):
            return current
        current = current.__cause__ or current.__context__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "Hostname mismatch" in str(exc):
        return ssl.SSLError(str(exc))
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0


def _is_web_page(content_type: str, body: bytes) -> bool:
    """A 2xx HTML page where JSON was asked for (a bare ``<html>`` body without the content type
    is more likely a proxy's passing error page: that one is retried)."""
    return content_type.split(";")[0].strip().lower() == "text/html" and bool(body.strip())


class JsonApi:
    """GETs and POSTs JSON with the retry rules above. No pytest, no printing."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        token: Secret | None = None,
        service: str = "API",
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        retry_budget: float = 120.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.http = http
        if token is not None and token.reveal():
            problem = token_problem(token.reveal())
            if problem is not None:  # it would be refused by HTTP, and quoted in the error
                raise BadInput(
                    f"the {service} token holds {problem}; a token is visible ASCII only, so "
                    "it is not sent (and not shown)",
                    hint="copy the token again without the stray character",
                )
        self._token = token
        self.service = service
        self.clock = clock
        self.rng = rng or random.Random()
        self.retry_budget = retry_budget
        self.on_retry = on_retry
        self.stats = RequestStats()

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return headers

    def get(
        self, path: str, params: Mapping[str, str | int] | None = None, *, deadline: Deadline
    ) -> Any:
        return self.request("GET", path, params=params, deadline=deadline)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        deadline: Deadline,
    ) -> Any:
        """One logical request; returns parsed JSON (``None`` for 204 or JSON null)."""
        budget = deadline.sub(self.retry_budget)
        delays = Backoff(initial=0.25, maximum=8.0, rng=self.rng).delays()
        attempt = 0
        what = f"{method} {path}"
        while True:
            attempt += 1
            problem, wait_hint = self._attempt(method, path, params, budget)
            if not isinstance(problem, str):
                return problem.value
            delay = next(delays)
            if wait_hint is not None:
                delay = max(delay, wait_hint)
            if budget.remaining() <= delay:
                if deadline.expired() or deadline.remaining() <= delay:
                    raise DeadlineExceeded(
                        f"{self.service} {what} still failing when the deadline passed: {problem}",
                        hint="the server is flaky or down; check it, or allow more time",
                    )
                raise InfraError(
                    f"{self.service} unreachable: {what} failed {attempt} times over "
                    f"{format_duration(self.retry_budget - budget.remaining())}; last: {problem}",
                    hint=f"check that {self.base_url} is up and reachable from here",
                )
            self.stats.retries += 1
            if self.on_retry is not None:
                self.on_retry(f"{what}: {problem}; retrying in {delay:.1f}s")
            self.clock.sleep(delay)

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        budget: Deadline,
    ) -> tuple[_Ok | str, float | None]:
        """Return (_Ok(value), None) or (problem text, minimum wait) for a retryable problem.

        Every exception of the HTTP stack and of JSON decoding ends here as a typed outcome or a
        retryable problem. The outcome is raised after the ``except`` block, so it carries neither
        a cause nor a context: no frame that holds the request's headers (the token) can be
        printed with it, whatever ``--tb``/``-l`` asks for."""
        timeout = min(self.http.timeout.read or 20.0, budget.remaining() + 0.05)
        self.stats.requests += 1
        fault: _Fault | None = None
        try:
            response = self.http.request(
                method,
                path,
                params=params,
                headers=self.headers(),
                timeout=httpx.Timeout(timeout, connect=min(timeout, 8.0)),
            )
        except Exception as exc:
            fault = self._fault(exc, timeout)
        if fault is not None:
            if fault.error is not None:
                raise fault.error
            return fault.problem, None
        status = response.status_code
        body = response.content
        url = f"{method} {path}"
        if status == 401:
            raise HttpUnauthorized(
                f"{self.service} {url} -> 401 Unauthorized",
                hint="the token is missing, wrong or expired, or the repo is private and the "
                "token cannot see it; check WOODPECKER_TOKEN or the Vault secret",
            )
        if status == 403:
            raise AuthError(
                f"{self.service} {url} -> 403 Forbidden",
                hint="the token's user lacks permission for this; use a token with access",
            )
        if status == 404:
            raise HttpNotFound(f"{self.service} {url} -> 404 Not Found")
        if status == 429:
            return "429 Too Many Requests", _retry_after(response)
        if status >= 500:
            return f"{status} {response.reason_phrase}", None
        if status == 204:
            return _Ok(None), None
        if not 200 <= status < 300:
            text = scrub(body[:200].decode("utf-8", "replace").strip())
            raise InfraError(f"{self.service} {url} -> {status}: {text or '(empty body)'}")
        if not body.strip():
            return f"{status} with an empty body", None
        if _is_web_page(response.headers.get("content-type", ""), body):
            # Not a glitch to retry: every API path of a Woodpecker server that lacks the route
            # answers its web UI's index.html with 200 (server/router/router.go@v3.17.0:54,
            # server/web/web.go@v3.17.0:142-150), and so do a login proxy or a wrong root path.
            raise BadInput(
                f"{self.service} {url} -> {status} answered a web page (text/html), not the "
                "API's JSON",
                hint=f"{self.base_url} does not look like the {self.service} API's base URL: "
                "give the server's own URL (not a page of its web UI, a proxy's login page or "
                "another root path)",
            )
        problem = ""
        try:
            return _Ok(json.loads(body)), None
        except json.JSONDecodeError as exc:  # its message names a place, never the content
            problem = f"invalid JSON (JSONDecodeError: {exc})"
        except Exception as exc:
            problem = f"invalid JSON ({type(exc).__name__})"
        return problem, None

    def _fault(self, exc: Exception, timeout: float) -> _Fault:
        """What a failed request means, as text that holds no secret (the exception's own text
        can: h11 quotes an illegal header value in full)."""
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return _Fault(f"{kind} after {timeout:.1f}s")
        tls = _tls_verification_error(exc)
        if tls is not None:
            return _Fault(
                error=InfraError(
                    f"TLS verification of {self.base_url} failed: {scrub(str(tls))}",
                    hint="the certificate must match the URL's hostname and chain to a trusted "
                    "CA; pass the CA with --ca-bundle (verification cannot be turned off)",
                )
            )
        if isinstance(exc, httpx.LocalProtocolError | UnicodeEncodeError | ValueError):
            # Our own request is malformed (a header value HTTP forbids): retrying cannot help,
            # and the library's message would quote the value.
            return _Fault(
                error=BadInput(
                    f"{self.service} request could not be sent: the HTTP client refused it as "
                    f"malformed ({kind}); a header value, such as the token, holds a character "
                    "HTTP does not allow",
                    hint="check the token: it must be visible ASCII, without spaces or newlines",
                )
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return _Fault(
                error=BadInput(
                    f"{self.service} URL {self.base_url} cannot be requested ({kind})",
                    hint="give an https:// base URL like https://ci.example.org",
                )
            )
        if isinstance(exc, httpx.DecodingError):
            return _Fault(f"the response body could not be decoded ({kind}: {scrub(str(exc))})")
        if isinstance(exc, httpx.TransportError):
            return _Fault(f"{kind}: {scrub(str(exc))}")
        return _Fault(
            error=InfraError(
                f"{self.service} request failed inside the HTTP client ({kind})",
                hint=f"check that {self.base_url} is a Woodpecker API; report this if it persists",
            )
        )


@dataclass(frozen=True)
class _Fault:
    """A failed request: a retryable problem, or the outcome to raise (``error``)."""

    problem: str = ""
    error: HomelabError | None = None


@dataclass(frozen=True)
class _Ok:
    value: Any


class ClientPool:
    """httpx clients for a landing's own checks: the CA bundle and request timeout of the
    settings, the LB dialer on request, no credentials, no proxies from the environment, no
    redirects followed. One client per (origin, dial), all closed by :meth:`close`."""

    def __init__(self, *, ca_bundle: Path | None = None, timeout: float = 20.0) -> None:
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self._clients: dict[tuple[str, str | None], httpx.Client] = {}

    def __call__(self, url: str, *, dial: str | None = None) -> httpx.Client:
        """A client whose relative requests go to ``url``; with ``dial``, TCP goes to that
        ``HOST[:PORT]`` while TLS and ``Host`` keep the URL's name."""
        key = (str(httpx.URL(url).copy_with(path="/", query=None, fragment=None)), dial)
        if key not in self._clients:
            self._clients[key] = make_http_client(
                url, dial=dial, ca_bundle=self.ca_bundle, timeout=self.timeout, credentials=False
            )
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
