"""Token resolution without a server: env precedence, aliases, Vault settings, answer parsing."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_homelab.core.outcomes import AuthError
from pytest_homelab.core.secrets import (
    TOKEN_ENV,
    Secret,
    VaultConfig,
    VaultLocation,
    resolve_token,
)

TOKEN = "wp-" + secrets.token_hex(16)
VAULT_TOKEN = "hvs." + secrets.token_hex(16)


def no_vault(config: VaultConfig) -> Any:
    raise AssertionError("Vault must not be asked when the env has the token")


class FakeKv2:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def read_secret_version(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def fake_factory(answer: Any, seen: list[VaultConfig]) -> Callable[[VaultConfig], Any]:
    kv2 = FakeKv2(answer)

    def factory(config: VaultConfig) -> Any:
        seen.append(config)
        return SimpleNamespace(secrets=SimpleNamespace(kv=SimpleNamespace(v2=kv2)))

    return factory


def kv2_answer(data: Any, **metadata: Any) -> dict[str, Any]:
    return {"data": {"data": data, "metadata": {"version": 3, **metadata}}}


VAULT_ENV = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": VAULT_TOKEN}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WOODPECKER_TOKEN": TOKEN}, TOKEN),
        ({"WOODPECKER_TOKEN": f"  {TOKEN}\n"}, TOKEN),
        ({"WP_TOKEN": TOKEN}, TOKEN),
        ({"WOODPECKER_TOKEN": TOKEN, "WP_TOKEN": "alias-loses"}, TOKEN),
        ({"WOODPECKER_TOKEN": "   ", "WP_TOKEN": TOKEN}, TOKEN),  # first non-empty wins
        ({"WOODPECKER_TOKEN": "", "WP_TOKEN": TOKEN, **VAULT_ENV}, TOKEN),
        ({"WOODPECKER_TOKEN": TOKEN, **VAULT_ENV}, TOKEN),  # env beats Vault
    ],
    # Stable ids, not the random token: pytest-xdist workers must collect the same names.
    ids=[
        "env",
        "padded",
        "alias",
        "env-beats-alias",
        "blank-then-alias",
        "alias-beats-vault",
        "env-beats-vault",
    ],
)
def test_env_precedence(env: dict[str, str], expected: str) -> None:
    got = resolve_token(env, VaultLocation(), vault_client_factory=no_vault)
    assert isinstance(got, Secret) and got.reveal() == expected


def test_os_environ_is_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    monkeypatch.setenv("VAULT_TOKEN", VAULT_TOKEN)
    with pytest.raises(AuthError, match="VAULT_ADDR is not set"):
        resolve_token({}, vault_client_factory=no_vault)


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({}, ["WOODPECKER_TOKEN (or WP_TOKEN) is not set", "VAULT_ADDR is not set"]),
        ({"WOODPECKER_TOKEN": " "}, ["WOODPECKER_TOKEN is set but empty"]),
        ({"WOODPECKER_TOKEN": "", "WP_TOKEN": ""}, ["WOODPECKER_TOKEN and WP_TOKEN are set but"]),
        ({"VAULT_ADDR": "127.0.0.1:8200", "VAULT_TOKEN": "x"}, ["is not an http(s):// URL"]),
        ({"VAULT_ADDR": "http://h:99999", "VAULT_TOKEN": "x"}, ["is not an http(s):// URL"]),
        ({"VAULT_ADDR": "http://127.0.0.1:9"}, ["no Vault token: VAULT_TOKEN is not set"]),
        (
            {"VAULT_ADDR": "user:pw-secret@vault:8200", "VAULT_TOKEN": "x"},
            ["VAULT_ADDR='***@vault:8200' is not an http(s):// URL"],
        ),
        (
            {"VAULT_ADDR": "http://user:pw-secret@127.0.0.1:9"},
            ["(VAULT_ADDR=http://***@127.0.0.1:9)"],
        ),
        (
            {**VAULT_ENV, "VAULT_CACERT": "/nonexistent/ca.pem"},
            ["VAULT_CACERT=/nonexistent/ca.pem does not exist"],
        ),
        ({**VAULT_ENV, "VAULT_CLIENT_TIMEOUT": "soon"}, ["VAULT_CLIENT_TIMEOUT='soon'"]),
        ({**VAULT_ENV, "VAULT_CLIENT_TIMEOUT": "-1"}, ["VAULT_CLIENT_TIMEOUT='-1'"]),
    ],
)
def test_settings_problems_say_why(env: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(AuthError) as info:
        resolve_token(env, vault_client_factory=no_vault)
    text = str(info.value)
    assert text.startswith("no Woodpecker token: ")
    assert "Vault secret/ci/global field woodpecker_api_token: " in text
    assert "\n  next: " in text and info.value.hint
    for fragment in fragments:
        assert fragment in text
    assert VAULT_TOKEN not in text + repr(info.value) and "pw-secret" not in text
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_vault_settings_come_from_the_mapping(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used by the fake")
    env = {
        **VAULT_ENV,
        "VAULT_NAMESPACE": "team",
        "VAULT_CACERT": str(ca),
        "VAULT_CAPATH": str(tmp_path),
        "VAULT_CLIENT_CERT": "/c.pem",
        "VAULT_CLIENT_KEY": "/k.pem",
        "VAULT_CLIENT_TIMEOUT": "2.5s",
    }
    seen: list[VaultConfig] = []
    got = resolve_token(
        env, vault_client_factory=fake_factory(kv2_answer({"woodpecker_api_token": TOKEN}), seen)
    )
    assert got.reveal() == TOKEN
    (config,) = seen
    assert config.addr == "http://127.0.0.1:9" and config.token.reveal() == VAULT_TOKEN
    assert config.namespace == "team" and config.verify == str(ca)  # VAULT_CACERT wins
    assert config.cert == ("/c.pem", "/k.pem") and config.timeout == 2.5
    assert VAULT_TOKEN not in repr(config)


def test_default_timeout_and_capath(tmp_path: Path) -> None:
    seen: list[VaultConfig] = []
    env = {**VAULT_ENV, "VAULT_CAPATH": str(tmp_path)}
    resolve_token(
        env, vault_client_factory=fake_factory(kv2_answer({"woodpecker_api_token": TOKEN}), seen)
    )
    assert seen[0].timeout == 5.0 and seen[0].verify == str(tmp_path) and seen[0].cert is None


@pytest.mark.parametrize(
    ("env", "proxies"),
    [
        ({"HTTPS_PROXY": "http://proxy:3128"}, {"https": "http://proxy:3128"}),
        ({"https_proxy": "http://p:1", "NO_PROXY": "example.test"}, {}),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.test"}, {}),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test,*"}, {}),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "ample.test"}, {"https": "http://p:1"}),
        ({"HTTP_PROXY": "http://p:1"}, {}),  # the https address ignores an http proxy
        ({"ALL_PROXY": "socks5://p:1"}, {"https": "socks5://p:1"}),
    ],
)
def test_proxies_from_the_mapping(env: dict[str, str], proxies: dict[str, str]) -> None:
    seen: list[VaultConfig] = []
    base = {"VAULT_ADDR": "https://vault.example.test:8200", "VAULT_TOKEN": VAULT_TOKEN}
    answer = kv2_answer({"woodpecker_api_token": TOKEN})
    resolve_token({**base, **env}, vault_client_factory=fake_factory(answer, seen))
    assert seen[0].proxies == proxies


def test_loopback_vault_is_never_proxied() -> None:
    seen: list[VaultConfig] = []
    env = {**VAULT_ENV, "HTTP_PROXY": "http://proxy:3128"}
    resolve_token(
        env, vault_client_factory=fake_factory(kv2_answer({"woodpecker_api_token": TOKEN}), seen)
    )
    assert seen[0].proxies == {}


def test_vault_token_file_from_home_in_the_mapping(tmp_path: Path) -> None:
    (tmp_path / ".vault-token").write_text(VAULT_TOKEN + "\n")
    seen: list[VaultConfig] = []
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    answer = kv2_answer({"woodpecker_api_token": TOKEN})
    assert resolve_token(env, vault_client_factory=fake_factory(answer, seen)).reveal() == TOKEN
    assert seen[0].token.reveal() == VAULT_TOKEN
    # VAULT_TOKEN wins over the file
    resolve_token(
        {**env, "VAULT_TOKEN": "env-" + VAULT_TOKEN},
        vault_client_factory=fake_factory(answer, seen),
    )
    assert seen[1].token.reveal() == "env-" + VAULT_TOKEN
    (tmp_path / ".vault-token").write_text("\n")
    with pytest.raises(AuthError, match=r"\.vault-token is empty or unreadable"):
        resolve_token(env, vault_client_factory=no_vault)
    (tmp_path / ".vault-token").unlink()
    with pytest.raises(AuthError, match=r"VAULT_TOKEN is not set and .*\.vault-token does not"):
        resolve_token(env, vault_client_factory=no_vault)


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (
            kv2_answer({"other": "x", "more": "y"}),
            "has no field woodpecker_api_token (fields: more, other)",
        ),
        (kv2_answer({}), "(fields: none)"),
        (kv2_answer({"woodpecker_api_token": 5}), "holds a number, not a string"),
        (kv2_answer({"woodpecker_api_token": True}), "holds a boolean, not a string"),
        (kv2_answer({"woodpecker_api_token": ["a"]}), "holds a list, not a string"),
        (kv2_answer({"woodpecker_api_token": {"a": "b"}}), "holds an object, not a string"),
        (kv2_answer({"woodpecker_api_token": None}), "holds a NoneType, not a string"),
        (kv2_answer({"woodpecker_api_token": " \n"}), "is empty"),
        (
            kv2_answer(None, deletion_time="2026-01-01T00:00:00Z"),
            "(v3) of secret/ci/global was deleted",
        ),
        (kv2_answer(None, destroyed=True), "(v3) of secret/ci/global is destroyed"),
        (kv2_answer(None), "holds no data"),
        ({"data": None}, "has no data"),
        ("not json", "has no data"),
        (kv2_answer("scalar"), "is not a KV v2 secret"),
    ],
)
def test_answer_shapes(answer: Any, fragment: str) -> None:
    with pytest.raises(AuthError) as info:
        resolve_token(VAULT_ENV, vault_client_factory=fake_factory(answer, []))
    assert fragment in str(info.value)
    assert VAULT_TOKEN not in str(info.value)


def test_reads_kv2_at_the_location_and_strips() -> None:
    seen: list[VaultConfig] = []
    factory = fake_factory(kv2_answer({"token": f"\t{TOKEN} \n"}), seen)
    where = VaultLocation("kv", "team/ci", "token")
    assert resolve_token(VAULT_ENV, where, vault_client_factory=factory).reveal() == TOKEN


class Explodes(Exception):
    pass


def test_unexpected_client_errors_never_show_their_text() -> None:
    leaky = Explodes(f"boom {VAULT_TOKEN} {TOKEN}")
    with pytest.raises(AuthError, match="reading Vault failed with Explodes") as info:
        resolve_token(VAULT_ENV, vault_client_factory=fake_factory(leaky, []))
    assert VAULT_TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None

    def broken_factory(config: VaultConfig) -> Any:
        raise Explodes(config.token.reveal())

    with pytest.raises(AuthError, match=r"cannot make a Vault client \(Explodes\)") as info:
        resolve_token(VAULT_ENV, vault_client_factory=broken_factory)
    assert VAULT_TOKEN not in str(info.value)


def test_hvac_errors_are_scrubbed_of_known_secrets() -> None:
    import hvac.exceptions

    Secret(TOKEN)  # known to the process
    error = hvac.exceptions.InvalidRequest(errors=[f"bad value {TOKEN}"], url="http://x")
    with pytest.raises(AuthError, match=r"Vault answered InvalidRequest: bad value \*\*\*") as info:
        resolve_token(VAULT_ENV, vault_client_factory=fake_factory(error, []))
    assert TOKEN not in str(info.value)


def test_token_env_names() -> None:
    assert TOKEN_ENV == ("WOODPECKER_TOKEN", "WP_TOKEN")
