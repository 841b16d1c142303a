"""SSHRemote authentication (key file, ssh-agent, default keys), ~/.ssh/config, unreachable D601."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_homelab.core.outcomes import AuthError, BadInput, InfraError
from pytest_homelab.e2e.remote import SSHRemote
from pytest_homelab.e2e.ssh_config import resolve_ssh_target

if TYPE_CHECKING:
    from tests.d601 import D601, SSHAgent


def client_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    return home


# -- authentication -------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_that_names_what_was_tried(
    d601: D601, make_ssh_key: Callable[..., Path]
) -> None:
    wrong = make_ssh_key("not-authorized")
    with d601.remote(key_file=str(wrong)) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    message = str(caught.value)
    assert f"{d601.user}@{d601.host}:{d601.port}" in message
    assert f"key file {wrong} (rejected)" in message and "no ssh-agent" in message
    secret_body = "".join(wrong.read_text().splitlines()[1:-1])
    assert secret_body[:40] not in message and "PRIVATE KEY" not in message


def test_encrypted_key_without_agent_says_to_use_ssh_add(
    d601: D601, make_ssh_key: Callable[..., Path]
) -> None:
    locked = make_ssh_key("locked", passphrase="hunter2-passphrase")
    d601.authorize(locked.with_suffix(".pub"))
    with d601.remote(key_file=str(locked)) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    message = str(caught.value)
    assert "encrypted" in message and f"ssh-add {locked}" in message
    assert "hunter2" not in message


def test_unknown_user_is_an_auth_error(d601: D601) -> None:
    with d601.remote(user="no-such-user-x") as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    assert f"no-such-user-x@{d601.host}:{d601.port}" in str(caught.value)


def test_missing_key_file_is_bad_input_before_connecting(d601: D601, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        d601.remote(key_file=str(tmp_path / "nope"))


def test_agent_key_authenticates(
    d601: D601, ssh_agent: SSHAgent, make_ssh_key: Callable[..., Path], tmp_path: Path
) -> None:
    key = make_ssh_key("agent-only")
    d601.authorize(key.with_suffix(".pub"))
    ssh_agent.add(key)
    key.unlink()  # only the agent holds it now
    wrong = make_ssh_key("wrong")
    environ = {"HOME": str(client_home(tmp_path)), "SSH_AUTH_SOCK": str(ssh_agent.socket)}
    mark = d601.log_mark()
    # a rejected key file first, then the agent: the agent key still gets its turn
    with d601.remote(key_file=str(wrong), environ=environ) as remote:
        assert remote.run("echo via agent").stdout == b"via agent\n"
    listed = subprocess.run(
        ["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], capture_output=True, text=True
    )
    accepted = (
        f"Accepted publickey for {d601.user} .* ED25519 {re.escape(listed.stdout.split()[1])}"
    )
    assert re.search(accepted, d601.log_since(mark))
    with d601.remote(key_file=None, environ=environ) as remote:
        assert remote.run("echo agent alone").stdout == b"agent alone\n"


def test_agent_is_only_used_when_environ_names_it(
    d601: D601, ssh_agent: SSHAgent, make_ssh_key: Callable[..., Path], tmp_path: Path
) -> None:
    key = make_ssh_key("agent-unused")
    d601.authorize(key.with_suffix(".pub"))
    ssh_agent.add(key)
    environ = {"HOME": str(client_home(tmp_path))}
    with d601.remote(key_file=None, environ=environ) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    assert "no ssh-agent" in str(caught.value) and "no default keys" in str(caught.value)


def test_empty_or_dead_agent_is_reported(d601: D601, ssh_agent: SSHAgent, tmp_path: Path) -> None:
    home = str(client_home(tmp_path))
    environ = {"HOME": home, "SSH_AUTH_SOCK": str(ssh_agent.socket)}
    with d601.remote(key_file=None, environ=environ) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    assert "holds no keys" in str(caught.value)
    environ["SSH_AUTH_SOCK"] = str(tmp_path / "no-agent.sock")
    with d601.remote(key_file=None, environ=environ) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    assert "unreachable" in str(caught.value)


def test_default_key_in_environ_home(d601: D601, tmp_path: Path) -> None:
    home = client_home(tmp_path)
    shutil.copy(d601.key_file, home / ".ssh" / "id_ed25519")
    with d601.remote(key_file=None, environ={"HOME": str(home)}) as remote:
        assert remote.run("echo default").stdout == b"default\n"


# -- ~/.ssh/config -------------------------------------------------------------------------------


@pytest.fixture
def configured_home(d601: D601, tmp_path: Path) -> Path:
    """A client HOME whose ~/.ssh/config defines the alias ``d601`` (and nothing is explicit)."""
    home = client_home(tmp_path)
    shutil.copy(d601.key_file, home / ".ssh" / "d601_key")
    shutil.copy(d601.known_hosts, home / ".ssh" / "d601_known_hosts")
    (home / ".ssh" / "config").write_text(
        f"""# a comment
Host other
    HostName 192.0.2.1

Host d601 ci-host
    HostName {d601.host}
    Port {d601.port}
    User {d601.user}
    IdentityFile ~/.ssh/missing_key
    IdentityFile ~/.ssh/d601_key
    UserKnownHostsFile ~/.ssh/d601_known_hosts
    ConnectTimeout 4

Host *
    User someone-else
    Port 2
"""
    )
    return home


def alias_remote(home: Path, **kwargs: Any) -> SSHRemote:
    return SSHRemote("d601", environ={"HOME": str(home)}, **kwargs)


def test_config_alias_resolves_everything(d601: D601, configured_home: Path) -> None:
    remote = alias_remote(configured_home)
    t = remote.target
    assert (t.hostname, t.port, t.user) == (d601.host, d601.port, d601.user)
    assert t.key_file == str(configured_home / ".ssh" / "d601_key")
    assert t.known_hosts[-1] == str(configured_home / ".ssh" / "d601_known_hosts")
    assert t.connect_timeout == 4.0
    assert remote.description == f"ssh {d601.user}@{d601.host}:{d601.port} (d601)"
    with remote:
        assert remote.run("echo aliased").stdout == b"aliased\n"


def test_explicit_arguments_beat_the_config(
    d601: D601, configured_home: Path, closed_port: int, make_ssh_key: Callable[..., Path]
) -> None:
    with alias_remote(configured_home, port=closed_port) as remote:
        with pytest.raises(InfraError) as caught:
            remote.run("true")
        assert f"{d601.host}:{closed_port}" in str(caught.value)
    with (
        alias_remote(configured_home, user="nobody-x") as remote,
        pytest.raises(AuthError, match=f"nobody-x@{d601.host}:{d601.port}"),
    ):
        remote.run("true")
    wrong = make_ssh_key("explicit-wrong")
    with (
        alias_remote(configured_home, key_file=str(wrong)) as remote,
        pytest.raises(AuthError) as auth,
    ):
        remote.run("true")
    assert str(wrong) in str(auth.value) and "d601_key" not in str(auth.value)
    empty = configured_home / "empty_known_hosts"
    empty.write_text("")
    with (
        alias_remote(configured_home, known_hosts=str(empty)) as remote,
        pytest.raises(AuthError, match="unknown"),
    ):
        remote.run("true")
    assert alias_remote(configured_home, connect_timeout=1.5).target.connect_timeout == 1.5


def test_explicit_config_path_and_include(d601: D601, configured_home: Path) -> None:
    ssh = configured_home / ".ssh"
    (ssh / "conf.d").mkdir()
    (ssh / "config").rename(ssh / "conf.d" / "d601.conf")
    (ssh / "main_config").write_text("Include conf.d/*.conf\n")
    environ = {"HOME": str(configured_home)}
    with pytest.raises(BadInput, match="does not exist"):
        SSHRemote("d601", ssh_config=str(ssh / "missing"), environ=environ)
    with SSHRemote("d601", ssh_config=str(ssh / "main_config"), environ=environ) as remote:
        assert remote.target.port == d601.port
        assert remote.run("echo included").stdout == b"included\n"


def test_proxy_jump_is_refused_not_bypassed(tmp_path: Path) -> None:
    home = client_home(tmp_path)
    (home / ".ssh" / "config").write_text("Host d601\n  HostName 127.0.0.9\n  ProxyJump bastion\n")
    with pytest.raises(BadInput, match="ProxyJump"):
        SSHRemote("d601", environ={"HOME": str(home)})


def test_resolution_rules_without_a_server(tmp_path: Path) -> None:
    home = client_home(tmp_path)
    env = {"HOME": str(home), "SSH_AUTH_SOCK": "/run/agent.sock"}
    plain = resolve_ssh_target("d601.example", environ=env)
    assert (plain.hostname, plain.port, plain.connect_timeout) == ("d601.example", 22, 10.0)
    assert plain.known_hosts_name == "d601.example"
    assert plain.known_hosts == (str(home / ".ssh" / "known_hosts"),)
    assert plain.agent_socket == "/run/agent.sock" and plain.look_for_keys
    key = home / ".ssh" / "k"
    key.write_text("x")
    (home / ".ssh" / "config").write_text(
        "Host d601\n  IdentityFile ~/.ssh/k\n  IdentitiesOnly yes\n  HostKeyAlias d601-key\n"
        "Host agentless\n  IdentityAgent none\n"
    )
    only = resolve_ssh_target("d601", environ=env)
    assert only.key_file == str(key) and only.agent_socket is None and not only.look_for_keys
    assert only.known_hosts_name == "d601-key"
    assert resolve_ssh_target("agentless", environ=env).agent_socket is None
    assert resolve_ssh_target("h", port=2222, environ=env).known_hosts_name == "[h]:2222"
    for bad in ({"port": 0}, {"connect_timeout": 0.0}):
        with pytest.raises(BadInput):
            resolve_ssh_target("h", environ=env, **bad)
    for host in ("", "-oProxyCommand=x", "a b"):
        with pytest.raises(BadInput):
            resolve_ssh_target(host, environ=env)


# -- unreachable ----------------------------------------------------------------------------------


def test_connection_refused_is_infra(d601: D601, closed_port: int) -> None:
    with d601.remote(port=closed_port) as remote, pytest.raises(InfraError) as caught:
        remote.run("true")
    assert f"{d601.host}:{closed_port}" in str(caught.value)
    assert "refused" in str(caught.value).lower() and caught.value.hint


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP (the kernel's backlog) but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_server_that_never_speaks_ssh_times_out(d601: D601, silent_port: int) -> None:
    start = time.monotonic()
    with (
        d601.remote(port=silent_port, connect_timeout=0.5) as remote,
        pytest.raises(InfraError) as caught,
    ):
        remote.run("true")
    assert time.monotonic() - start < 5
    assert f"127.0.0.2:{silent_port}" in str(caught.value) and "handshake" in str(caught.value)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve D601 host"),
        (TimeoutError(), "did not answer within 5 s"),
    ],
)
def test_dns_failure_and_connect_timeout(
    d601: D601, monkeypatch: pytest.MonkeyPatch, failure: OSError, expected: str
) -> None:
    def fail(*args: object, **kwargs: object) -> socket.socket:
        raise failure

    monkeypatch.setattr(socket, "create_connection", fail)
    with d601.remote() as remote, pytest.raises(InfraError, match=expected) as caught:
        remote.run("true")
    assert caught.value.hint
