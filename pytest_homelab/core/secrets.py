"""The Woodpecker API token: ``WOODPECKER_TOKEN`` (or the Go CLI's ``WP_TOKEN``), else Vault KV v2.

The value lives in a :class:`Secret`, which never prints. Every secret value this process holds
is remembered (:func:`known_secrets`) so that report writers (JUnit, logs) can scrub it as a last
line of defence, and tests can check nothing leaked.

Vault settings come only from the ``env`` mapping given to :func:`resolve_token` (never from
``os.environ`` behind its back, so callers and tests stay hermetic), with the names the ``vault``
CLI uses: ``VAULT_ADDR``, ``VAULT_TOKEN`` (else the file ``$HOME/.vault-token`` that ``vault
login`` writes, with ``HOME`` taken from the same mapping), ``VAULT_NAMESPACE``, ``VAULT_CACERT``
/ ``VAULT_CAPATH``, ``VAULT_CLIENT_CERT`` + ``VAULT_CLIENT_KEY``, ``VAULT_CLIENT_TIMEOUT``
(seconds, default 5) and ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (loopback never proxied).
Not honoured: ``VAULT_SKIP_VERIFY`` (verification stays on), token helpers, ``REQUESTS_CA_BUNDLE``.
``hvac`` (and ``requests``) are imported only when Vault is actually asked.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pytest_homelab.core.outcomes import AuthError, BadInput

TOKEN_ENV = ("WOODPECKER_TOKEN", "WP_TOKEN")
"""Checked in this order; ``WP_TOKEN`` is the Go CLI's alias."""

VAULT_TIMEOUT = 5.0

_known: set[str] = set()
_known_lock = threading.Lock()


def known_secrets() -> frozenset[str]:
    """Every secret value wrapped in a :class:`Secret` in this process."""
    with _known_lock:
        return frozenset(_known)


SHORT_SECRET = 12
"""A secret shorter than this is scrubbed only where it stands alone (see :func:`scrub`)."""
_TOKEN_CHARS = "A-Za-z0-9._~+/=-"


def token_problem(value: str) -> str | None:
    """Why ``value`` cannot be a token, or None: tokens are visible ASCII (``!`` to ``~``).

    The answer names the kind of character and its position, never the value or the character.
    """
    for index, char in enumerate(value):
        if "\x21" <= char <= "\x7e":
            continue
        if char == " ":
            kind = "a space"
        elif ord(char) < 32 or ord(char) == 127:
            kind = "a control character (a newline, tab or the like)"
        else:
            kind = "a character that is not ASCII (an invisible or look-alike one, perhaps)"
        return f"{kind} at position {index + 1} of {len(value)}"
    return None


def _env_token(env: Mapping[str, str], name: str, what: str) -> Secret | str:
    """The token in ``env[name]`` as a Secret, else ``"unset"`` or ``"empty"``; AuthError when it
    is not visible ASCII. The value is remembered for scrubbing either way, and no frame keeps it
    in a plain local when the error is raised (pytest's ``-l`` prints every frame's locals)."""
    raw = env.get(name)
    if raw is None:
        return "unset"
    if not raw.strip():
        return "empty"
    secret = Secret(raw.strip())
    problem = token_problem(raw.strip())
    raw = None
    if problem is None:
        return secret
    del secret
    raise AuthError(
        f"{name} holds {problem}; {what} is visible ASCII only, so it is refused without being "
        "sent or shown",
        hint=f"set {name} again without the stray character (copying can add one)",
    )


class Environ(Mapping[str, str]):
    """The process environment (or a test's), read like a dict, that never prints its values:
    frames holding it show ``Environ(<n> variables)`` under ``-l``, not the tokens in it."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Environ({len(self._data)} variables, values not shown)"

    __str__ = __repr__

    def only(self, *names: str) -> Environ:
        """A copy with just these variables (those that are set)."""
        return Environ({k: self._data[k] for k in names if k in self._data})

    def without(self, *names: str) -> Environ:
        """A copy without these variables."""
        return Environ({k: v for k, v in self._data.items() if k not in names})

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Environ cannot be pickled (it would write its values out)")


def _forms(value: str) -> set[str]:
    """How ``value`` is written out: as is, in a repr (str and bytes), JSON, XML/HTML, a URL."""
    from html import escape
    from urllib.parse import quote, quote_plus

    xml = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    forms = {
        value,
        repr(value)[1:-1],
        repr(value.encode("utf-8", "backslashreplace"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        escape(value, quote=True),
        escape(value, quote=True).replace("&#x27;", "&#39;"),
        xml,
        xml.replace('"', "&quot;").replace("'", "&apos;"),
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    return {form for form in forms if form}


@functools.lru_cache(maxsize=256)
def _pattern(value: str) -> re.Pattern[str]:
    parts = []
    for form in sorted(_forms(value), key=len, reverse=True):
        escaped = re.escape(form)
        if len(form) < SHORT_SECRET:
            # A short value is a secret only as a whole token: never inside a word, an outcome
            # name, a key or an XML tag.
            escaped = rf"(?<![{_TOKEN_CHARS}]){escaped}(?![{_TOKEN_CHARS}])"
        parts.append(escaped)
    return re.compile("|".join(parts))


def scrub(text: str) -> str:
    """``text`` with every known secret replaced by ``***``, in each form it is written in
    (plain, repr, JSON, XML, URL). A secret shorter than :data:`SHORT_SECRET` characters is
    replaced only where it stands alone, so words, outcome names and keys are never altered.

    This is the last net: secrets are kept out of output by construction."""
    for value in sorted(known_secrets(), key=len, reverse=True):
        text = _pattern(value).sub("***", text)
    return text


class Secret:
    """A string that never prints. Call :meth:`reveal` only where the value is sent."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret wraps a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)
        if value:
            with _known_lock:
                _known.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled (it would write the value out)")


@dataclass(frozen=True)
class VaultLocation:
    """Where the token lives in Vault: KV v2 ``mount``, secret ``path``, ``field`` in it."""

    mount: str = "secret"
    path: str = "ci/global"
    field: str = "woodpecker_api_token"

    def __post_init__(self) -> None:
        for name in ("mount", "path"):
            value = getattr(self, name).strip().strip("/")
            if not value or any(p in {"", ".", ".."} for p in value.split("/")):
                raise BadInput(f"vault_{name} {getattr(self, name)!r} is not a Vault path")
            object.__setattr__(self, name, value)
        if not self.field.strip():
            raise BadInput("vault_field is empty")

    def __str__(self) -> str:
        return f"{self.mount}/{self.path} field {self.field}"


@dataclass(frozen=True)
class VaultConfig:
    """What a Vault client needs, all taken from the ``env`` mapping."""

    addr: str
    token: Secret
    namespace: str | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    timeout: float = VAULT_TIMEOUT
    proxies: dict[str, str] = field(default_factory=dict)


VaultClientFactory = Callable[[VaultConfig], Any]
"""Makes an hvac-compatible client (``.secrets.kv.v2``, ``.auth.token``, ``.adapter``)."""


def hvac_client(config: VaultConfig) -> Any:
    """An ``hvac.Client`` that reads nothing from ``os.environ`` (all from ``config``)."""
    import hvac
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxies, CA bundles or .netrc from the process environment
    # hvac prefers a given session's settings over its own arguments: set both
    session.verify = config.verify
    session.cert = config.cert
    session.proxies = dict(config.proxies)
    # Redirects are never followed: requests strips only Authorization on a cross-host redirect
    # (sessions.py rebuild_auth), not X-Vault-Token. hvac follows them by default
    # (adapters.py allow_redirects=True); the hook refuses any 3xx even if that changes.
    session.max_redirects = 0
    session.hooks["response"].append(_refuse_redirect)
    return hvac.Client(
        url=config.addr,
        token=config.token.reveal(),
        namespace=config.namespace,
        verify=config.verify,
        cert=config.cert or (),  # () not None: None lets hvac read VAULT_CLIENT_CERT itself
        timeout=config.timeout,
        proxies=config.proxies,
        session=session,
        allow_redirects=False,
    )


class VaultRedirect(Exception):
    """Vault answered a redirect; it is not followed (the token would go along)."""

    def __init__(self, status: int, target: str) -> None:
        super().__init__(f"{status} to {target}")
        self.status = status
        self.target = target


def _refuse_redirect(response: Any, *args: object, **kwargs: object) -> None:
    if 300 <= int(response.status_code) < 400:
        location = urlsplit(str(response.headers.get("Location") or ""))
        try:
            where = f"{location.scheme}://{location.hostname}" + (
                f":{location.port}" if location.port else ""
            )
        except ValueError:
            where = "an unusable address"
        raise VaultRedirect(int(response.status_code), where if location.hostname else "(none)")


def _mask_addr(addr: str) -> str:
    """``addr`` for messages: anything up to the last ``@`` (user:password) masked."""
    if "@" not in addr:
        return addr
    before, after = addr.rsplit("@", 1)
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", before)
    return (scheme.group(0) if scheme else "") + "***@" + after


def is_loopback(host: str) -> bool:
    """``localhost`` (and ``*.localhost``) or a loopback IP address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxies(env: Mapping[str, str], addr: str) -> dict[str, str]:
    """The proxy for ``addr`` per ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` in ``env``."""
    parts = urlsplit(addr)
    host = (parts.hostname or "").lower()
    if is_loopback(host):
        return {}
    no_proxy = env.get("NO_PROXY", env.get("no_proxy", ""))
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        entry = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        domain = entry.lstrip(".")
        if entry == "*" or (domain and (host == domain or host.endswith("." + domain))):
            return {}
    scheme = parts.scheme.lower()
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if env.get(name, "").strip():
            return {scheme: env[name].strip()}
    return {}


class _VaultFailure(Exception):
    """Why Vault gave no token: a message safe to show (no secret in it) and a hint."""

    def __init__(self, why: str, hint: str) -> None:
        super().__init__(why)
        self.why = why
        self.hint = hint


_HINT_LOGIN = "log in to Vault (`vault login`, or set VAULT_TOKEN)"
_HINT_ENV = "or set WOODPECKER_TOKEN"
_HINT_LOCATION = "set vault_mount/vault_path/vault_field to where the token is kept"


def _vault_config(env: Mapping[str, str]) -> VaultConfig:
    addr = env.get("VAULT_ADDR", "").strip()
    if not addr:
        raise _VaultFailure(
            "VAULT_ADDR is not set",
            f"set WOODPECKER_TOKEN, or set VAULT_ADDR and {_HINT_LOGIN}",
        )
    shown = _mask_addr(addr)
    try:
        parts = urlsplit(addr)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _VaultFailure(
            f"VAULT_ADDR={shown!r} is not an http(s):// URL",
            f"set VAULT_ADDR like https://vault.example:8200, {_HINT_ENV}",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname.lower()):
        raise _VaultFailure(
            f"VAULT_ADDR={shown!r} is plain http to a host that is not loopback: the Vault token "
            "would cross the network unencrypted, so it is not sent",
            f"use https:// (with VAULT_CACERT for a private CA), {_HINT_ENV}",
        )
    token = env.get("VAULT_TOKEN", "").strip()
    token_file = Path(env["HOME"]) / ".vault-token" if env.get("HOME") else None
    if not token and token_file is not None and token_file.is_file():
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            token = ""
    if not token:
        read = ""
        if token_file is not None:
            state = "is empty or unreadable" if token_file.exists() else "does not exist"
            read = f" and {token_file} {state}"
        raise _VaultFailure(
            f"no Vault token: VAULT_TOKEN is not set{read} (VAULT_ADDR={shown})",
            f"{_HINT_LOGIN}, {_HINT_ENV}",
        )
    verify: bool | str = True
    for name in ("VAULT_CACERT", "VAULT_CAPATH"):  # VAULT_CACERT wins, as in the vault CLI
        value = env.get(name, "").strip()
        if value:
            if not Path(value).exists():
                raise _VaultFailure(
                    f"{name}={value} does not exist",
                    f"point {name} at the CA certificate of Vault, {_HINT_ENV}",
                )
            verify = value
            break
    cert_file, key_file = env.get("VAULT_CLIENT_CERT", ""), env.get("VAULT_CLIENT_KEY", "")
    cert = (cert_file, key_file) if cert_file and key_file else None
    timeout = VAULT_TIMEOUT
    raw_timeout = env.get("VAULT_CLIENT_TIMEOUT", "").strip().removesuffix("s")
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            raise _VaultFailure(
                f"VAULT_CLIENT_TIMEOUT={env['VAULT_CLIENT_TIMEOUT']!r} is not a number of seconds",
                "set VAULT_CLIENT_TIMEOUT like 5 or 5s, or unset it",
            )
    problem = token_problem(token)
    vault_token = Secret(token)
    token = ""
    if problem is not None:
        raise _VaultFailure(
            f"the Vault token holds {problem}; a token is visible ASCII only, so it is refused "
            "without being sent or shown",
            f"set VAULT_TOKEN (or {token_file}) again without the stray character, {_HINT_ENV}",
        )
    return VaultConfig(
        addr=addr,
        token=vault_token,
        namespace=env.get("VAULT_NAMESPACE", "").strip() or None,
        verify=verify,
        cert=cert,
        timeout=timeout,
        proxies=_proxies(env, addr),
    )


def _errors(exc: Exception) -> list[str]:
    """What Vault said in an hvac exception (its ``errors``, else a plain-text body), scrubbed."""
    errors = getattr(exc, "errors", None)
    if not isinstance(errors, list) or not errors:
        text = getattr(exc, "text", None)
        errors = [text.strip().splitlines()[0]] if isinstance(text, str) and text.strip() else []
        if errors and errors[0].startswith(("{", "<")):  # JSON or HTML: not a sentence
            errors = []
    return [scrub(str(e)).strip()[:200] for e in errors if str(e).strip()]


def _kv_metadata(exc: Exception) -> dict[str, Any]:
    body = getattr(exc, "json", None)
    data = body.get("data") if isinstance(body, dict) else None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _deleted(metadata: Mapping[str, Any], where: VaultLocation) -> _VaultFailure | None:
    version = metadata.get("version", "?")
    undelete = (
        f"undelete it (vault kv undelete -versions={version} -mount={where.mount} {where.path})"
    )
    if metadata.get("destroyed"):
        return _VaultFailure(
            f"the latest version (v{version}) of {where.mount}/{where.path} is destroyed",
            f"write the token again (vault kv put), {_HINT_ENV}",
        )
    if metadata.get("deletion_time"):
        return _VaultFailure(
            f"the latest version (v{version}) of {where.mount}/{where.path} was deleted "
            f"at {metadata['deletion_time']}",
            f"{undelete} or write it again, {_HINT_ENV}",
        )
    return None


def _mount_version(client: Any, mount: str) -> str | None:
    """The KV version of ``mount`` as the vault CLI finds it, or None when it cannot tell."""
    try:
        answer = client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}")
        options = answer["data"].get("options") or {}
        return str(options.get("version", "1")) if answer["data"].get("type") == "kv" else "none"
    except Exception:
        return None


def _read_kv2(client: Any, where: VaultLocation, timeout: float) -> Secret:
    """Read the field from KV v2; raise _VaultFailure with a safe message on any failure."""
    import hvac.exceptions as hv
    import requests.exceptions as rq

    secret_path = f"{where.mount}/data/{where.path}"
    try:
        answer = client.secrets.kv.v2.read_secret_version(
            path=where.path, mount_point=where.mount, raise_on_deleted_version=False
        )
    except hv.Forbidden:
        try:
            client.auth.token.lookup_self()
        except hv.Forbidden:
            raise _VaultFailure(
                "the Vault token is invalid or expired (permission denied)",
                f"{_HINT_LOGIN} again, {_HINT_ENV}",
            ) from None
        except Exception:
            pass
        raise _VaultFailure(
            f"permission denied: the Vault token may not read {secret_path}",
            f"get a policy with read on {secret_path}, or {_HINT_LOCATION}, {_HINT_ENV}",
        ) from None
    except hv.Unauthorized:
        raise _VaultFailure(
            "the Vault token was refused (401)", f"{_HINT_LOGIN} again, {_HINT_ENV}"
        ) from None
    except hv.InvalidPath as exc:
        gone = _deleted(_kv_metadata(exc), where)
        if gone is not None:
            raise gone from None
        errors = " ".join(map(str, getattr(exc, "errors", None) or []))  # matched, never shown
        version = None if "no handler for route" in errors else _mount_version(client, where.mount)
        if "no handler for route" in errors or version == "none":
            why = f"no KV secrets engine is mounted at {where.mount}/"
        elif version == "1":
            why = f"{where.mount}/ is a KV version 1 mount; only KV version 2 is read"
        else:
            why = f"no secret at {where.mount}/{where.path} (path missing)"
        raise _VaultFailure(f"{why}", f"{_HINT_LOCATION}, {_HINT_ENV}") from None
    except hv.VaultDown:
        raise _VaultFailure(
            "Vault is sealed or in maintenance (503)", f"try again later, {_HINT_ENV}"
        ) from None
    except hv.VaultError as exc:
        said = "; ".join(_errors(exc)) or "no details"
        raise _VaultFailure(
            f"Vault answered {type(exc).__name__}: {said}", f"{_HINT_LOCATION}, {_HINT_ENV}"
        ) from None
    except VaultRedirect as exc:
        raise _VaultFailure(
            f"Vault answered a redirect ({exc.status} to {exc.target}); redirects are never "
            "followed, so the token was not sent there",
            "set VAULT_ADDR to the address Vault itself answers on (the active node, not a "
            f"standby or a proxy that redirects), {_HINT_ENV}",
        ) from None
    except rq.SSLError:
        raise _VaultFailure(
            "TLS verification of Vault failed",
            "set VAULT_CACERT to the CA that signed Vault's certificate "
            "(VAULT_SKIP_VERIFY is not honoured)",
        ) from None
    except (rq.MissingSchema, rq.InvalidSchema, rq.InvalidURL):
        raise _VaultFailure(
            "VAULT_ADDR is not a usable URL", f"fix VAULT_ADDR, {_HINT_ENV}"
        ) from None
    except rq.Timeout:
        raise _VaultFailure(
            f"Vault is unreachable: no answer within {timeout:g}s",
            f"check VAULT_ADDR and the network (VAULT_CLIENT_TIMEOUT sets the wait), {_HINT_ENV}",
        ) from None
    except rq.ConnectionError as exc:
        reason = _connection_reason(exc)
        raise _VaultFailure(
            f"Vault is unreachable: {reason}", f"check VAULT_ADDR and the network, {_HINT_ENV}"
        ) from None
    except Exception as exc:  # a wrapped client's surprise: name it, never print its text
        raise _VaultFailure(
            f"reading Vault failed with {type(exc).__name__}",
            f"check VAULT_ADDR, {_HINT_ENV}",
        ) from None
    return _field(answer, where)


def _connection_reason(exc: Exception) -> str:
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "the host name does not resolve"),
        ("nodename nor servname", "the host name does not resolve"),
        ("temporary failure in name resolution", "the host name does not resolve"),
        ("network is unreachable", "the network is unreachable"),
        ("no route to host", "no route to host"),
        ("reset", "the connection was reset"),
        ("proxy", "the proxy failed"),
    ):
        if needle in text:
            return reason
    return "the connection failed"


def _field(answer: object, where: VaultLocation) -> Secret:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        raise _VaultFailure(
            f"Vault's answer for {where.mount}/{where.path} has no data",
            f"{_HINT_LOCATION}, {_HINT_ENV}",
        )
    values = data.get("data")
    if values is None:
        gone = _deleted(data.get("metadata") or {}, where)
        raise gone or _VaultFailure(
            f"{where.mount}/{where.path} holds no data", f"{_HINT_LOCATION}, {_HINT_ENV}"
        )
    if not isinstance(values, dict):
        raise _VaultFailure(
            f"{where.mount}/{where.path} is not a KV v2 secret", f"{_HINT_LOCATION}, {_HINT_ENV}"
        )
    if where.field not in values:
        names = sorted(map(str, values))
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
        raise _VaultFailure(
            f"{where.mount}/{where.path} has no field {where.field} (fields: {listed})",
            f"{_HINT_LOCATION}, {_HINT_ENV}",
        )
    value = values[where.field]
    if not isinstance(value, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
            type(value), "an object" if isinstance(value, dict) else f"a {type(value).__name__}"
        )
        raise _VaultFailure(
            f"field {where.field} of {where.mount}/{where.path} holds {kind}, not a string",
            f"store the token as a string, {_HINT_ENV}",
        )
    if not value.strip():
        raise _VaultFailure(
            f"field {where.field} of {where.mount}/{where.path} is empty",
            f"store the token there, {_HINT_ENV}",
        )
    field_secret = Secret(value.strip())
    problem = token_problem(value.strip())
    value = answer = data = values = None  # no frame keeps the secret when this raises
    if problem is not None:
        raise _VaultFailure(
            f"field {where.field} of {where.mount}/{where.path} holds {problem}; a token is "
            "visible ASCII only, so it is refused without being sent or shown",
            f"store the token again without the stray character, {_HINT_ENV}",
        )
    return field_secret


def _from_vault(
    env: Mapping[str, str], where: VaultLocation, factory: VaultClientFactory
) -> Secret:
    config = _vault_config(env)
    shown = _mask_addr(config.addr)
    try:
        client = factory(config)
    except Exception as exc:
        raise _VaultFailure(
            f"cannot make a Vault client ({type(exc).__name__}) (VAULT_ADDR={shown})",
            f"check the VAULT_* settings, {_HINT_ENV}",
        ) from None
    try:
        return _read_kv2(client, where, config.timeout)
    except _VaultFailure as failure:
        why, hint = f"{failure.why} (VAULT_ADDR={shown})", failure.hint
    raise _VaultFailure(why, hint)


def resolve_token(
    env: Mapping[str, str],
    vault: VaultLocation | None = None,
    *,
    vault_client_factory: VaultClientFactory | None = None,
) -> Secret:
    """The Woodpecker token: ``WOODPECKER_TOKEN``, else ``WP_TOKEN``, else Vault KV v2.

    Raises AuthError saying why each place failed; the message never holds a secret.
    """
    where = vault if vault is not None else VaultLocation()
    empty = []
    for name in TOKEN_ENV:
        found = _env_token(env, name, "a Woodpecker token")
        if isinstance(found, Secret):
            return found
        if found == "empty":
            empty.append(name)
    env_why = (
        f"{' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} set but empty"
        if empty
        else f"{TOKEN_ENV[0]} (or {TOKEN_ENV[1]}) is not set"
    )
    try:
        return _from_vault(env, where, vault_client_factory or hvac_client)
    except _VaultFailure as failure:
        why, hint = failure.why, failure.hint
    raise AuthError(f"no Woodpecker token: {env_why}; Vault {where}: {why}", hint=hint)
