"""The token from a real Vault API (OpenBao dev server): every failure says why, nothing leaks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.core.outcomes import AuthError
from pytest_homelab.core.secrets import VaultLocation, resolve_token

ENV_MISSING = "no Woodpecker token: WOODPECKER_TOKEN (or WP_TOKEN) is not set; Vault "


def test_kv2_default_location(seeded: Any, no_leak: Callable[..., None]) -> None:
    got = resolve_token(seeded.env())
    assert got.reveal() == seeded.woodpecker
    no_leak(seeded.secret_values, got, repr(got))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (VaultLocation(mount="secret", path="team/ci", field="token"), "team"),
        (VaultLocation(mount="/secret/", path="/ci/padded/"), "team"),  # value stripped
    ],
)
def test_kv2_custom_location(seeded: Any, where: VaultLocation, value: str) -> None:
    assert resolve_token(seeded.env(), where).reveal() == getattr(seeded, value)


def test_env_token_wins_over_vault(seeded: Any) -> None:
    env = seeded.env(WP_TOKEN="from-env")
    assert resolve_token(env).reveal() == "from-env"


def test_namespace(seeded: Any) -> None:
    env = seeded.env(VAULT_NAMESPACE="team")
    assert resolve_token(env).reveal() == seeded.ns_token_value


def test_limited_token_reads_only_its_path(seeded: Any) -> None:
    where = VaultLocation(path="team/ci", field="token")
    assert resolve_token(seeded.env(seeded.limited_token), where).reveal() == seeded.team


@pytest.mark.parametrize(
    ("where", "token", "expected"),
    [
        (
            VaultLocation(),
            "limited_token",
            "Vault secret/ci/global field woodpecker_api_token: permission denied: "
            "the Vault token may not read secret/data/ci/global (VAULT_ADDR=",
        ),
        (VaultLocation(), "revoked_token", "the Vault token is invalid or expired"),
        (VaultLocation(), "made_up", "the Vault token is invalid or expired"),
        (VaultLocation(path="ci/missing"), None, "no secret at secret/ci/missing (path missing)"),
        (VaultLocation(mount="nomount"), None, "no KV secrets engine is mounted at nomount/"),
        (VaultLocation(mount="sys"), None, ""),  # not KV: some clear Vault error, no leak
        (VaultLocation(mount="kv1"), None, "kv1/ is a KV version 1 mount"),
        (
            VaultLocation(field="nope"),
            None,
            "has no field nope (fields: other, woodpecker_api_token)",
        ),
        (VaultLocation(path="ci/number"), None, "holds a number, not a string"),
        (VaultLocation(path="ci/nested"), None, "holds an object, not a string"),
        (VaultLocation(path="ci/blank"), None, "is empty"),
        (
            VaultLocation(path="ci/deleted"),
            None,
            "the latest version (v1) of secret/ci/deleted was deleted",
        ),
        (
            VaultLocation(path="ci/destroyed"),
            None,
            "the latest version (v1) of secret/ci/destroyed is destroyed",
        ),
    ],
)
def test_failures_say_why_and_never_leak(
    seeded: Any,
    where: VaultLocation,
    token: str | None,
    expected: str,
    no_leak: Callable[..., None],
) -> None:
    vault_token = {None: None, "made_up": "hvs.made-up-" + "7" * 20}.get(token) or (
        getattr(seeded, token) if token else None
    )
    with pytest.raises(AuthError) as info:
        resolve_token(seeded.env(vault_token), where)
    text = str(info.value)
    assert text.startswith(ENV_MISSING) and expected in text
    assert text.split("\n")[0].endswith(f" (VAULT_ADDR={seeded.bao.addr})")
    assert info.value.hint and info.value.__cause__ is None and info.value.__context__ is None
    assert info.value.exit_code == 2 and info.value.outcome == "AuthError"
    no_leak(
        [*seeded.secret_values, vault_token or seeded.bao.root_token],
        text,
        repr(info.value),
        info.value.hint,
    )


def test_vault_down(seeded: Any, no_leak: Callable[..., None]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = {
        "VAULT_ADDR": f"http://u:pw-{port}@127.0.0.1:{port}",
        "VAULT_TOKEN": seeded.bao.root_token,
    }
    started = time.monotonic()
    with pytest.raises(AuthError) as info:
        resolve_token(env)
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert (
        f"Vault is unreachable: connection refused (VAULT_ADDR=http://***@127.0.0.1:{port})" in text
    )
    no_leak([seeded.bao.root_token, f"pw-{port}"], text, repr(info.value))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers (a hung Vault)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_vault_hangs_the_timeout_is_short(silent_server: int, no_leak: Callable[..., None]) -> None:
    vault_token = "hvs.hung-" + "5" * 20
    env = {
        "VAULT_ADDR": f"http://127.0.0.1:{silent_server}",
        "VAULT_TOKEN": vault_token,
        "VAULT_CLIENT_TIMEOUT": "0.3",
    }
    started = time.monotonic()
    expected = r"Vault is unreachable: no answer within 0.3s \(VAULT_ADDR="
    with pytest.raises(AuthError, match=expected) as info:
        resolve_token(env)
    assert time.monotonic() - started < 3
    no_leak([vault_token], str(info.value), repr(info.value))


def test_no_vault_addr_with_a_token_present(seeded: Any, no_leak: Callable[..., None]) -> None:
    with pytest.raises(AuthError) as info:
        resolve_token({"VAULT_TOKEN": seeded.bao.root_token})
    assert str(info.value).startswith(ENV_MISSING + "secret/ci/global field woodpecker_api_token: ")
    assert "VAULT_ADDR is not set" in str(info.value)
    assert "WOODPECKER_TOKEN" in (info.value.hint or "")
    no_leak([seeded.bao.root_token], str(info.value), repr(info.value))


def test_tls_with_vault_cacert(bao_tls: Any, tmp_path: Path, no_leak: Callable[..., None]) -> None:
    value = "tls-token-value-0123456789"
    bao_tls.client().secrets.kv.v2.create_or_update_secret(
        path="ci/global", secret={"woodpecker_api_token": value}
    )
    env = {"VAULT_ADDR": bao_tls.addr, "VAULT_TOKEN": bao_tls.root_token}
    assert resolve_token({**env, "VAULT_CACERT": str(bao_tls.ca)}).reveal() == value
    # the system CAs do not trust the dev CA, and VAULT_SKIP_VERIFY is not honoured
    for extra in ({}, {"VAULT_SKIP_VERIFY": "1"}):
        with pytest.raises(AuthError, match="TLS verification of Vault failed") as info:
            resolve_token({**env, **extra})
        assert "VAULT_CACERT" in str(info.value)
        no_leak([value, bao_tls.root_token], str(info.value), repr(info.value))
    # plain http to a TLS port
    http_addr = bao_tls.addr.replace("https://", "http://")
    with pytest.raises(
        AuthError,
        match="Vault answered InvalidRequest: Client sent an HTTP request to an HTTPS server",
    ) as info:
        resolve_token({**env, "VAULT_ADDR": http_addr})
    no_leak([value, bao_tls.root_token], str(info.value))
