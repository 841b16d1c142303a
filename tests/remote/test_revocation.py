"""Revoked host keys are refused, as OpenSSH refuses them (issue 19, finding 7).

The review's shape: with ``RevokedHostKeys`` (and ``@revoked`` in the global known hosts file)
naming D601's key, OpenSSH refuses to connect; ``SSHRemote`` connected. Here a real sshd plays
D601 and OpenSSH's own client is the referee for every case.
openssh-portable sshconnect.c@V_9_9_P2:1517-1535 (RevokedHostKeys, checked first; a file that
cannot be read refuses too), hostfile.c:316-331,399-400 (``@revoked`` in any known_hosts file).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_homelab.core.outcomes import AuthError, BadInput
from tests.d601 import D601


def openssh_connects(d601: D601, config: Path) -> bool:
    done = subprocess.run(
        [
            "ssh",
            "-F",
            str(config),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-i",
            str(d601.key_file),
            "-p",
            str(d601.port),
            f"{d601.user}@{d601.host}",
            "true",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def write_config(tmp_path: Path, d601: D601, *lines: str) -> Path:
    config = tmp_path / "ssh_config"
    body = "\n".join(
        [
            "Host *",
            f"  UserKnownHostsFile {d601.known_hosts}",
            *(f"  {line}" for line in lines),
        ]
    )
    config.write_text(body + "\n")
    return config


def connect(d601: D601, config: Path, **overrides: object) -> None:
    with d601.remote(ssh_config=str(config), **overrides) as remote:
        assert remote.run("true", timeout=20).returncode == 0


def other_key(tmp_path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
    )
    return (tmp_path / "other.pub").read_text().strip()


@pytest.mark.parametrize("form", ["list", "krl"])
def test_revoked_host_keys_refuses_d601s_key(d601: D601, tmp_path: Path, form: str) -> None:
    pub = tmp_path / "d601.pub"
    pub.write_text(d601.host_key_pub + "\n")
    revoked = tmp_path / "revoked"
    if form == "list":
        revoked.write_text(other_key(tmp_path) + "\n" + d601.host_key_pub + "\n")
    else:
        subprocess.run(["ssh-keygen", "-q", "-k", "-f", str(revoked), str(pub)], check=True)
    config = write_config(
        tmp_path, d601, f"RevokedHostKeys {revoked}", "GlobalKnownHostsFile /dev/null"
    )
    assert not openssh_connects(d601, config)  # the referee
    with pytest.raises(AuthError, match="REVOKED"):
        connect(d601, config)


def test_a_revocation_list_without_d601s_key_lets_it_through(d601: D601, tmp_path: Path) -> None:
    revoked = tmp_path / "revoked"
    revoked.write_text(other_key(tmp_path) + "\n")
    config = write_config(
        tmp_path, d601, f"RevokedHostKeys {revoked}", "GlobalKnownHostsFile /dev/null"
    )
    assert openssh_connects(d601, config)
    connect(d601, config)


@pytest.mark.parametrize("content", [None, "this is not a key\n"])
def test_a_revocation_file_that_cannot_be_checked_refuses(
    d601: D601, tmp_path: Path, content: str | None
) -> None:
    revoked = tmp_path / "revoked"
    if content is not None:
        revoked.write_text(content)
    config = write_config(
        tmp_path, d601, f"RevokedHostKeys {revoked}", "GlobalKnownHostsFile /dev/null"
    )
    assert not openssh_connects(d601, config)
    with pytest.raises(AuthError, match="RevokedHostKeys"):
        connect(d601, config)


@pytest.mark.parametrize("pattern", ["*", "[127.0.0.2]:*", "[127.0.0.?]:*,!*.example.test"])
def test_revoked_in_the_global_known_hosts_file_refuses(
    d601: D601, tmp_path: Path, pattern: str
) -> None:
    global_file = tmp_path / "ssh_known_hosts"
    global_file.write_text(f"@revoked {pattern} {d601.host_key_pub}\n")
    config = write_config(tmp_path, d601, f"GlobalKnownHostsFile {global_file}")
    assert not openssh_connects(d601, config)
    with pytest.raises(AuthError, match=r"REVOKED \(@revoked in"):
        connect(d601, config)
    # the default global files are read too (here given as the test's own)
    plain = write_config(tmp_path, d601)
    with pytest.raises(AuthError, match="REVOKED"):
        connect(d601, plain, global_known_hosts=(str(global_file),))


def test_a_key_known_only_globally_is_accepted(d601: D601, tmp_path: Path) -> None:
    global_file = tmp_path / "ssh_known_hosts"
    global_file.write_text(d601.known_hosts.read_text())
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host *\n  UserKnownHostsFile {empty}\n  GlobalKnownHostsFile {global_file}\n"
    )
    assert openssh_connects(d601, config)
    connect(d601, config, known_hosts=str(empty))


def test_revoked_host_keys_with_tokens_it_cannot_expand_refuses(d601: D601, tmp_path: Path) -> None:
    config = write_config(tmp_path, d601, "RevokedHostKeys /etc/ssh/revoked-%h")
    with pytest.raises(BadInput, match="could not be enforced"):
        connect(d601, config)


def test_revoked_host_keys_in_the_system_config_is_honoured(d601: D601, tmp_path: Path) -> None:
    """OpenSSH reads /etc/ssh/ssh_config after ~/.ssh/config: an administrator's
    RevokedHostKeys there counts (here a system file of the test's own)."""
    revoked = tmp_path / "revoked"
    revoked.write_text(d601.host_key_pub + "\n")
    system = tmp_path / "etc-ssh_config"
    system.write_text(f"Host *\n  RevokedHostKeys {revoked}\n")
    with pytest.raises(AuthError, match="REVOKED"), d601.remote(system_config=str(system)) as r:
        r.run("true", timeout=20)
    with d601.remote(system_config=None) as remote:  # without it: connects
        assert remote.run("true", timeout=20).returncode == 0
