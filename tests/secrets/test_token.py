"""The Woodpecker token: env first, then a real Vault (OpenBao); it never shows up anywhere."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest

from pytest_homelab.outcomes import AuthError
from pytest_homelab.secrets import Secret, VaultLocation, known_secrets, resolve_token

TOKEN = "wp-" + os.urandom(8).hex()


def no_vault(_: Any) -> Any:
    raise AssertionError("Vault must not be asked when the env has the token")


def test_env_token_wins_and_aliases() -> None:
    got = resolve_token({"WOODPECKER_TOKEN": f" {TOKEN} "}, vault_client_factory=no_vault)
    assert got.reveal() == TOKEN
    assert resolve_token({"WP_TOKEN": TOKEN}, vault_client_factory=no_vault).reveal() == TOKEN
    both = {"WOODPECKER_TOKEN": "a-token", "WP_TOKEN": "b-token"}
    assert resolve_token(both, vault_client_factory=no_vault).reveal() == "a-token"


def test_secret_never_prints() -> None:
    s = Secret(TOKEN)
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in f"{s}"
    assert TOKEN not in repr([s]) and TOKEN in known_secrets()
    assert s == Secret(TOKEN) and s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_neither_place_says_why_both_failed() -> None:
    with pytest.raises(AuthError) as info:
        resolve_token({})
    text = str(info.value)
    assert "WOODPECKER_TOKEN and WP_TOKEN are not set" in text
    assert "VAULT_ADDR is not set" in text and "next:" in text
    with pytest.raises(AuthError, match="VAULT_TOKEN is not set"):
        resolve_token({"VAULT_ADDR": "http://127.0.0.1:1"})


@pytest.fixture(scope="module")
def vault_env(bao: Any) -> dict[str, str]:
    root = bao.client()
    root.secrets.kv.v2.create_or_update_secret(
        path="ci/global", secret={"woodpecker_api_token": TOKEN, "other": "x"}
    )
    root.secrets.kv.v2.create_or_update_secret(path="team/ci", secret={"token": TOKEN + "-team"})
    root.secrets.kv.v2.create_or_update_secret(
        path="ci/number", secret={"woodpecker_api_token": 12345}
    )
    root.secrets.kv.v2.create_or_update_secret(
        path="ci/gone", secret={"woodpecker_api_token": "gone-value"}
    )
    root.secrets.kv.v2.delete_latest_version_of_secret(path="ci/gone")
    root.sys.create_or_update_policy(
        name="other-only", policy='path "secret/data/team/*" { capabilities = ["read"] }'
    )
    limited = root.auth.token.create(policies=["other-only"], ttl="1h")
    return {
        "VAULT_ADDR": bao.addr,
        "VAULT_TOKEN": bao.root_token,
        "LIMITED": limited["auth"]["client_token"],
    }


def env_for(vault_env: dict[str, str], token: str | None = None) -> dict[str, str]:
    return {"VAULT_ADDR": vault_env["VAULT_ADDR"], "VAULT_TOKEN": token or vault_env["VAULT_TOKEN"]}


def test_vault_kv2_default_location(vault_env: dict[str, str]) -> None:
    assert resolve_token(env_for(vault_env)).reveal() == TOKEN


def test_vault_custom_location(vault_env: dict[str, str]) -> None:
    where = VaultLocation(mount="secret", path="team/ci", field="token")
    assert resolve_token(env_for(vault_env), where).reveal() == TOKEN + "-team"


@pytest.mark.parametrize(
    ("where", "token_key", "expected"),
    [
        (VaultLocation(), "LIMITED", "permission denied reading secret/ci/global"),
        (VaultLocation(path="ci/missing"), None, "no secret at secret/ci/missing"),
        (VaultLocation(field="nope"), None, "has no field nope (fields: other, woodpecker_api"),
        (VaultLocation(path="ci/number"), None, "is not a non-empty string"),
        (VaultLocation(path="ci/gone"), None, "ci/gone"),
        (VaultLocation(mount="kv-missing"), None, "kv-missing"),
    ],
)
def test_vault_failures_say_why_and_never_leak(
    vault_env: dict[str, str],
    where: VaultLocation,
    token_key: str | None,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = vault_env[token_key] if token_key else None
    with pytest.raises(AuthError) as info:
        resolve_token(env_for(vault_env, token), where)
    text = str(info.value) + repr(info.value)
    assert expected in text
    assert "WOODPECKER_TOKEN and WP_TOKEN are not set" in text
    out, err = capsys.readouterr()
    for secret in (TOKEN, vault_env["VAULT_TOKEN"], vault_env["LIMITED"], "gone-value"):
        assert secret not in text + out + err
    assert info.value.__cause__ is None or secret not in str(info.value.__cause__)


def test_bad_vault_token(vault_env: dict[str, str]) -> None:
    with pytest.raises(AuthError, match=r"permission denied|refused") as info:
        resolve_token(env_for(vault_env, "not-a-real-token"))
    assert "not-a-real-token" not in str(info.value)


def test_vault_down(unused_port: int) -> None:
    env = {"VAULT_ADDR": f"http://127.0.0.1:{unused_port}", "VAULT_TOKEN": "t-123456"}
    with pytest.raises(AuthError, match="Vault unreachable") as info:
        resolve_token(env)
    assert "t-123456" not in str(info.value)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
