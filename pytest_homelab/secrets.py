"""The Woodpecker API token: ``WOODPECKER_TOKEN`` (or the Go CLI's ``WP_TOKEN``), else Vault.

The value lives in a :class:`Secret`, which never prints. Every revealed value is remembered so
that writers of reports (JUnit, logs) can scrub it as a last line of defence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_homelab.outcomes import AuthError

TOKEN_ENV = ("WOODPECKER_TOKEN", "WP_TOKEN")
VAULT_TIMEOUT = 5.0

_known: set[str] = set()
_known_lock = threading.Lock()


def known_secrets() -> frozenset[str]:
    """Every secret value revealed in this process (for scrubbing reports)."""
    with _known_lock:
        return frozenset(_known)


class Secret:
    """A string that does not print. Use :meth:`reveal` exactly where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if value:
            with _known_lock:
                _known.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class VaultLocation:
    mount: str = "secret"
    path: str = "ci/global"
    field: str = "woodpecker_api_token"

    def __str__(self) -> str:
        return f"{self.mount}/{self.path} field {self.field}"


VaultClientFactory = Callable[[Mapping[str, str]], Any]


def _hvac_client(env: Mapping[str, str]) -> Any:
    import hvac

    # VAULT_SKIP_VERIFY is deliberately not honoured: verification stays on.
    verify: bool | str = env.get("VAULT_CACERT") or True
    return hvac.Client(
        url=env["VAULT_ADDR"],
        token=env.get("VAULT_TOKEN") or None,
        namespace=env.get("VAULT_NAMESPACE") or None,
        verify=verify,
        timeout=VAULT_TIMEOUT,
    )


def _from_vault(
    env: Mapping[str, str], where: VaultLocation, factory: VaultClientFactory
) -> tuple[Secret | None, str]:
    """The token from Vault, or None and why not (never containing a secret)."""
    addr = env.get("VAULT_ADDR", "").strip()
    if not addr:
        return None, "VAULT_ADDR is not set"
    if not env.get("VAULT_TOKEN", "").strip():
        return None, f"VAULT_TOKEN is not set (VAULT_ADDR={addr})"
    import requests

    try:
        import hvac.exceptions as hv
    except ImportError:  # pragma: no cover - hvac is a dependency
        return None, "the hvac package is not installed"
    try:
        client = factory(env)
        response = client.secrets.kv.v2.read_secret_version(
            path=where.path, mount_point=where.mount, raise_on_deleted_version=True
        )
    except hv.Forbidden:
        return None, f"permission denied reading {where.mount}/{where.path} (VAULT_ADDR={addr})"
    except hv.Unauthorized:
        return None, f"the Vault token was refused (VAULT_ADDR={addr})"
    except hv.InvalidPath:
        return (
            None,
            f"no secret at {where.mount}/{where.path}, or it is deleted (VAULT_ADDR={addr})",
        )
    except hv.VaultError as exc:
        return None, f"Vault error {type(exc).__name__} (VAULT_ADDR={addr})"
    except requests.exceptions.SSLError:
        return None, f"TLS verification of Vault failed (VAULT_ADDR={addr}; set VAULT_CACERT)"
    except requests.exceptions.RequestException as exc:
        return None, f"Vault unreachable: {type(exc).__name__} (VAULT_ADDR={addr})"
    data = response.get("data", {}) if isinstance(response, dict) else {}
    values = data.get("data") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        return None, f"{where.mount}/{where.path} is deleted or empty (VAULT_ADDR={addr})"
    if where.field not in values:
        return None, (
            f"{where.mount}/{where.path} has no field {where.field} "
            f"(fields: {', '.join(sorted(map(str, values))) or 'none'})"
        )
    value = values[where.field]
    if not isinstance(value, str) or not value.strip():
        return None, f"{where} is not a non-empty string"
    return Secret(value.strip()), ""


def resolve_token(
    env: Mapping[str, str],
    vault: VaultLocation = VaultLocation(),
    *,
    vault_client_factory: VaultClientFactory | None = None,
) -> Secret:
    """The token from the environment, else Vault KV v2; AuthError says why both failed."""
    for name in TOKEN_ENV:
        value = env.get(name, "").strip()
        if value:
            return Secret(value)
    token, why = _from_vault(env, vault, vault_client_factory or _hvac_client)
    if token is not None:
        return token
    raise AuthError(
        f"no Woodpecker token: {' and '.join(TOKEN_ENV)} are not set; Vault {vault}: {why}",
        hint="set WOODPECKER_TOKEN, or log in to Vault (VAULT_ADDR, VAULT_TOKEN); the Vault "
        "location is set with --vault-mount/--vault-path/--vault-field",
    )
