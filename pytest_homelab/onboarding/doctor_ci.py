"""The doctor's Woodpecker checks: name, TCP, TLS, /version, the token (and Vault), /api/user,
the repo lookup and the event stream. Each is one short request without retries."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from pytest_homelab.onboarding.doctor import Context, Degraded, Group, Problem, Skip

STREAM_WINDOW = 2.0
"""Seconds the event stream is watched for the server's first bytes and this repo's events."""


DIAL_HINT = "check the host name, or set woodpecker_dial HOST[:PORT] to the address to dial"


def resolve_host(host: str, port: int, timeout: float, hint: str = DIAL_HINT) -> list[str]:
    """getaddrinfo with a timeout (the resolver's own can be far longer)."""
    found: list[Any] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            error.append(exc)

    thread = threading.Thread(target=work, daemon=True, name="doctor-dns")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Problem(f"{host} did not resolve within {timeout:g} s", f"check the resolver; {hint}")
    if error:
        raise Problem(f"{host} does not resolve: {error[0]}", hint)
    return sorted({str(info[4][0]) for info in found})


def ci_group(ctx: Context, group: Group) -> None:
    settings = ctx.settings
    server = settings.woodpecker_server
    if server is None:
        group.check(
            "woodpecker.server",
            _missing("woodpecker_server", "the Woodpecker base URL, e.g. https://ci.example.org"),
        )
        return
    parts = urlsplit(server)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if settings.woodpecker_dial:
        from pytest_homelab.core.transport import parse_dial

        dial_host, dial_port = parse_dial(settings.woodpecker_dial)
        dial_port = dial_port or port
        via = f" (dialed at {settings.woodpecker_dial}, woodpecker_dial)"
    else:
        dial_host, dial_port, via = host, port, ""

    def dns(timeout: float) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(dial_host)
        except ValueError:
            pass
        else:
            return f"{dial_host} is an address: nothing to resolve{via}"
        addresses = resolve_host(dial_host, dial_port, timeout)
        return f"{dial_host} resolves to {', '.join(addresses[:3])}{via}"

    group.check("woodpecker.dns", dns)

    def tcp(timeout: float) -> str:
        try:
            with socket.create_connection((dial_host, dial_port), timeout=timeout):
                pass
        except TimeoutError:
            raise Problem(
                f"no TCP answer from {dial_host}:{dial_port} within {timeout:g} s",
                "check that Woodpecker is up and reachable from here (VPN, firewall)",
            ) from None
        except OSError as exc:
            raise Problem(
                f"cannot connect to {dial_host}:{dial_port}: {exc.strerror or exc}",
                "check that Woodpecker is up and listens there (woodpecker_server, "
                "woodpecker_dial)",
            ) from None
        return f"TCP {dial_host}:{dial_port} accepts connections"

    group.check("woodpecker.tcp", tcp, needs=["woodpecker.dns"])

    def tls(timeout: float) -> str:
        if parts.scheme != "https":
            raise Degraded(
                f"{server} is plain http: the token travels unencrypted",
                "use the https:// URL of Woodpecker",
            )
        from pytest_homelab.core.transport import ssl_context

        context = ssl_context(settings.ca_bundle)
        ca = (
            f"the CA bundle {settings.ca_bundle}"
            if settings.ca_bundle is not None
            else "the system's CAs"
        )
        try:
            with (
                socket.create_connection((dial_host, dial_port), timeout=timeout) as sock,
                context.wrap_socket(sock, server_hostname=host) as wrapped,
            ):
                version = wrapped.version()
        except ssl.SSLCertVerificationError as exc:
            raise Problem(
                f"the certificate of {host} does not verify against {ca}: "
                f"{exc.verify_message or exc.reason}",
                "pass the CA that signed Woodpecker's certificate with ca_bundle (--ca-bundle, "
                "HOMELAB_CA_BUNDLE); verification cannot be turned off",
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise Problem(
                f"TLS handshake with {host} at {dial_host}:{dial_port} failed: {exc}",
                "check that the port speaks TLS (https) and the URL is right",
            ) from None
        return f"TLS {version} for {host}, certificate verified with {ca}"

    group.check("woodpecker.tls", tls, needs=["woodpecker.tcp"])

    def client(timeout: float) -> Any:
        from pytest_homelab.core.transport import make_http_client

        return make_http_client(
            server, dial=settings.woodpecker_dial, ca_bundle=settings.ca_bundle, timeout=timeout
        )

    def version(timeout: float) -> str:
        data = _get(client(timeout), "/version", None, timeout, server)
        text = str(data.get("version", "")) if isinstance(data, dict) else ""
        if not text:
            raise Problem(
                f"{server}/version answered without a version: is this Woodpecker?",
                "check woodpecker_server: the base URL of the Woodpecker server",
            )
        major = text.lstrip("v").split(".")[0]
        if major.isdigit() and int(major) < 2:
            raise Problem(
                f"Woodpecker {text} is too old (major {major}); pytest-homelab reads v2 and v3",
                "upgrade Woodpecker to v2 or v3",
            )
        return f"Woodpecker {text} (major {major if major.isdigit() else '?'}) at {server}"

    group.check("woodpecker.version", version, needs=["woodpecker.tls"])

    token = _token_checks(ctx, group)

    def user(timeout: float) -> str:
        data = _get(client(timeout), "/api/user", token, timeout, server)
        login = data.get("login", "?") if isinstance(data, dict) else "?"
        return f"the token ({_token_source(ctx)}) is accepted by /api/user: user {login}"

    group.check("woodpecker.user", user, needs=["woodpecker.version", "woodpecker.token"])

    def repo(timeout: float) -> tuple[str, int]:
        if ctx.slug is None:
            raise Skip("the Woodpecker repo is unknown (see git.repo-slug)")
        data = _get(client(timeout), f"/api/repos/lookup/{ctx.slug}", token, timeout, server)
        repo_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(repo_id, int):
            raise Problem(f"the lookup of {ctx.slug} returned no repo id")
        return f"Woodpecker knows {ctx.slug} (repo id {repo_id})", repo_id

    repo_id = group.check("woodpecker.repo", repo, needs=["woodpecker.user"])

    def stream(timeout: float) -> str:
        return _stream(client(timeout), token, repo_id, server, ctx.slug or "?")

    group.check("woodpecker.stream", stream, needs=["woodpecker.repo"], timeout=4.0)
    return


def _missing(key: str, what: str) -> Any:
    def check(_: float) -> str:
        raise Problem(
            f"{key} ({what}) is not set",
            f"set it with the environment (homelab config shows every setting's names), "
            f"e.g. export {key.upper()}=...",
        )

    return check


def _get(http: Any, path: str, token: Any, timeout: float, server: str) -> Any:
    import httpx

    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    try:
        with http:
            response = http.get(path, headers=headers)
    except httpx.TimeoutException:
        raise Problem(
            f"GET {path} got no answer within {timeout:g} s", f"check that {server} is up"
        ) from None
    except httpx.HTTPError as exc:
        raise Problem(
            f"GET {path} failed: {type(exc).__name__}: {exc}", f"check that {server} is up"
        ) from None
    if response.status_code == 401:
        raise Problem(
            f"GET {path} -> 401 Unauthorized: the token was refused",
            f"make a new token in Woodpecker (your user settings, CLI & API at {server}) and "
            "set WOODPECKER_TOKEN, or update the Vault secret",
        )
    if response.status_code == 403:
        raise Problem(
            f"GET {path} -> 403 Forbidden: the token's user may not see this",
            "use a token of a user with access to the repository",
        )
    if response.status_code == 404:
        raise Problem(
            f"GET {path} -> 404: Woodpecker has no such repo that this token can see",
            "check the repo (woodpecker_repo or the git remote), that it is activated in "
            "Woodpecker, and that the token's user has access to it",
        )
    if response.status_code != 200:
        raise Problem(
            f"GET {path} -> {response.status_code} {response.reason_phrase}",
            f"check that {server} is Woodpecker and healthy",
        )
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Problem(
            f"GET {path} answered something that is not JSON",
            f"check that woodpecker_server ({server}) is the Woodpecker base URL",
        ) from None


def _token_source(ctx: Context) -> str:
    from pytest_homelab.core.secrets import TOKEN_ENV

    for name in TOKEN_ENV:
        if ctx.environ.get(name, "").strip():
            return f"env {name}"
    s = ctx.settings
    return f"Vault {s.vault_mount}/{s.vault_path} field {s.vault_field}"


def _token_checks(ctx: Context, group: Group) -> Any:
    """The token line, and when it comes from Vault: Vault reachable, then the secret read."""
    from pytest_homelab.core.outcomes import AuthError
    from pytest_homelab.core.secrets import TOKEN_ENV, Secret, VaultLocation, resolve_token

    environ = dict(ctx.environ)
    from_env = next((n for n in TOKEN_ENV if environ.get(n, "").strip()), None)
    if from_env is not None:
        return group.check(
            "woodpecker.token",
            lambda _: (f"set by env {from_env}", Secret(environ[from_env].strip())),
        )
    s = ctx.settings
    where = f"{s.vault_mount}/{s.vault_path} field {s.vault_field}"
    addr = environ.get("VAULT_ADDR", "").strip()

    def vault_reachable(timeout: float) -> str:
        if not addr:
            raise Problem(
                "no token: WOODPECKER_TOKEN (or WP_TOKEN) is not set, and neither is VAULT_ADDR",
                "export WOODPECKER_TOKEN=..., or VAULT_ADDR and VAULT_TOKEN (vault login) with "
                f"the token at {where}",
            )
        parts = urlsplit(addr)
        vault_host = parts.hostname or ""
        vault_port = parts.port or (443 if parts.scheme == "https" else 8200)
        try:
            with socket.create_connection((vault_host, vault_port), timeout=timeout):
                pass
        except OSError as exc:
            raise Problem(
                f"Vault at {vault_host}:{vault_port} is unreachable: {exc.strerror or exc}",
                "check VAULT_ADDR and the network, or export WOODPECKER_TOKEN instead",
            ) from None
        return f"Vault at {vault_host}:{vault_port} accepts connections (VAULT_ADDR)"

    group.check("vault.reachable", vault_reachable)

    def limited(timeout: float) -> dict[str, str]:
        """The environment with VAULT_CLIENT_TIMEOUT at most ``timeout``."""
        env = dict(environ)
        current = env.get("VAULT_CLIENT_TIMEOUT", "").strip().removesuffix("s")
        try:
            if not current or float(current) > timeout:
                env["VAULT_CLIENT_TIMEOUT"] = f"{timeout:g}"
        except ValueError:
            pass  # core.secrets reports the bad value
        return env

    def vault_auth(timeout: float) -> str:
        return _vault_lookup_self(limited(timeout))

    group.check("vault.auth", vault_auth, needs=["vault.reachable"], timeout=5.0)

    def vault_secret(timeout: float) -> tuple[str, Secret]:
        location = VaultLocation(s.vault_mount, s.vault_path, s.vault_field)
        try:
            secret = resolve_token(limited(timeout), location)
        except AuthError as exc:
            raise Problem("Vault " + exc.message.split("; Vault ", 1)[-1], exc.hint or "") from None
        return f"{where} exists and holds the token", secret

    secret = group.check("vault.secret", vault_secret, needs=["vault.auth"], timeout=5.0)
    return group.check(
        "woodpecker.token",
        lambda _: (f"from Vault {where}", secret),
        needs=["vault.secret"],
    )


def _vault_lookup_self(env: dict[str, str]) -> str:
    """Vault's ``auth/token/lookup-self`` with the client core.secrets builds from ``env`` (the
    same address, token, CA, namespace, proxy and timeout the token is read with)."""
    from pytest_homelab.core import secrets

    try:
        config = secrets._vault_config(env)
    except secrets._VaultFailure as failure:
        raise Problem(failure.why, failure.hint) from None
    source = "env VAULT_TOKEN" if env.get("VAULT_TOKEN", "").strip() else "~/.vault-token"
    try:
        client = secrets.hvac_client(config)
        client.auth.token.lookup_self()
    except Exception as exc:
        name = type(exc).__name__
        if name in ("Forbidden", "Unauthorized"):
            raise Problem(
                f"Vault refused the token ({source}): invalid or expired",
                "log in to Vault again (vault login), or set VAULT_TOKEN",
            ) from None
        if name in ("Timeout", "ReadTimeout", "ConnectTimeout"):
            why = f"Vault gave no answer within {config.timeout:g} s"
        elif name in ("SSLError",):
            why = "TLS verification of Vault failed (VAULT_CACERT names its CA)"
        elif name == "VaultDown":
            why = "Vault is sealed or in maintenance"
        else:
            why = f"asking Vault who the token is failed ({name})"
        raise Problem(
            why, "check VAULT_ADDR and that Vault is up, or set WOODPECKER_TOKEN"
        ) from None
    return f"the Vault token ({source}) is accepted"


def _stream(http: Any, token: Any, repo_id: int, server: str, slug: str) -> str:
    """Open ``/api/stream/events``: the server pings at once on connect, then sends a ``data:``
    line per pipeline change (woodpecker-ci/woodpecker server/api/stream.go@v3.17.0:56-72,108-127).
    Nothing at all within the window: a proxy buffers the stream (a warning: the watch polls)."""
    import time

    import httpx

    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    got_bytes = False
    ours = 0
    ends = time.monotonic() + STREAM_WINDOW
    try:
        with (
            http,
            http.stream(
                "GET",
                "/api/stream/events",
                headers=headers,
                timeout=httpx.Timeout(3.0, read=STREAM_WINDOW),
            ) as response,
        ):
            if response.status_code != 200:
                raise Degraded(
                    f"the event stream answered {response.status_code}; the watch will poll "
                    "every ci_poll_interval instead",
                    "let /api/stream/events through the reverse proxy",
                )
            for line in response.iter_lines():
                got_bytes = True
                if line.startswith("data:"):
                    try:
                        event = json.loads(line[5:])
                    except json.JSONDecodeError:
                        continue
                    repo = event.get("repo") if isinstance(event, dict) else None
                    if isinstance(repo, dict) and repo.get("id") == repo_id:
                        ours += 1
                        break
                if time.monotonic() >= ends:
                    break
    except httpx.ReadTimeout:
        pass
    except httpx.HTTPError as exc:
        raise Degraded(
            f"the event stream failed: {type(exc).__name__}; the watch will poll instead",
            f"check that {server}/api/stream/events is reachable",
        ) from None
    if not got_bytes:
        raise Degraded(
            f"the event stream opened but was silent for {STREAM_WINDOW:g} s (not even the "
            "server's ping): a proxy buffers it; the watch copes by polling",
            "turn off response buffering for /api/stream/events in the reverse proxy "
            "(nginx: proxy_buffering off)",
        )
    if ours:
        return f"the event stream is open and carries {slug}"
    return (
        f"the event stream is open (the server pinged); no pipeline of {slug} changed in the "
        f"{STREAM_WINDOW:g} s watched"
    )
