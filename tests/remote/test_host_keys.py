"""Strict host key checking against a real sshd: unknown or changed keys refuse before any auth."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_homelab.core.outcomes import AuthError

if TYPE_CHECKING:
    from tests.d601 import D601

# A connection that never authenticated: sshd's pre-auth child logs its end like this.
PREAUTH_END = r"(Connection closed by|Disconnected from|Connection reset by) .*\[preauth\]"


def refused(d601: D601, known_hosts: Path) -> tuple[AuthError, str]:
    """Connect with ``known_hosts``; the AuthError and the sshd log of that connection."""
    before = known_hosts.read_bytes() if known_hosts.exists() else None
    mark = d601.log_mark()
    with d601.remote(known_hosts=str(known_hosts)) as remote, pytest.raises(AuthError) as caught:
        remote.run("touch should-never-run")
    log = d601.wait_log(PREAUTH_END, mark)
    assert len(d601.connections(mark)) == 1
    assert "userauth-request" not in log, "authentication was attempted"
    assert "Accepted" not in log and "Starting session" not in log
    after = known_hosts.read_bytes() if known_hosts.exists() else None
    assert after == before, "known_hosts must never be written"
    assert not (d601.home / "should-never-run").exists()
    return caught.value, log


def test_unknown_host_key_is_refused_with_fingerprint_and_fix(d601: D601, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    error, _ = refused(d601, empty)
    text = str(error)
    assert "unknown" in error.message
    assert f"{d601.host}:{d601.port}" in error.message
    assert f"[{d601.host}]:{d601.port}" in error.message
    assert "ssh-ed25519" in error.message and d601.host_key_fingerprint in error.message
    assert str(empty) in error.message
    assert error.hint and f"ssh-keyscan -p {d601.port}" in error.hint and "out of band" in text
    assert not (d601.client_home / ".ssh").exists()


def test_the_suggested_keyscan_command_fixes_it(d601: D601, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    error, _ = refused(d601, known)
    assert error.hint
    command = error.hint.split("then add the key: ", 1)[1]
    subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=30)
    with d601.remote(known_hosts=str(known)) as remote:
        assert remote.run("echo trusted").stdout == b"trusted\n"


def test_default_known_hosts_comes_from_environ_home(d601: D601) -> None:
    mark = d601.log_mark()
    with d601.remote(known_hosts=None) as remote, pytest.raises(AuthError) as caught:
        remote.run("true")
    assert str(d601.client_home / ".ssh" / "known_hosts") in caught.value.message
    assert "userauth-request" not in d601.wait_log(PREAUTH_END, mark)


def test_changed_host_key_is_refused(
    d601: D601, tmp_path: Path, make_ssh_key: Callable[..., Path]
) -> None:
    other = make_ssh_key("impostor")
    other_pub = other.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{d601.host}]:{d601.port} {other_pub[0]} {other_pub[1]}\n")
    error, _ = refused(d601, known)
    other_print = subprocess.run(
        ["ssh-keygen", "-lf", str(other.with_suffix(".pub"))], capture_output=True, text=True
    ).stdout.split()[1]
    assert "CHANGED" in error.message and "man-in-the-middle" in error.message
    assert other_print in error.message and d601.host_key_fingerprint in error.message
    assert str(known) in error.message
    assert error.hint and "ssh-keygen -R" in error.hint


def test_known_key_of_another_type_counts_as_changed(
    d601: D601, tmp_path: Path, make_ssh_key: Callable[..., Path]
) -> None:
    other = make_ssh_key("ecdsa-impostor", kind="ecdsa")
    pub = other.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{d601.host}]:{d601.port} {pub[0]} {pub[1]}\n")
    error, _ = refused(d601, known)
    assert "CHANGED" in error.message and "ecdsa-sha2-nistp256" in error.message


def test_entry_without_the_port_does_not_match_a_non_default_port(
    d601: D601, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"{d601.host} {d601.host_key_pub}\n")
    error, _ = refused(d601, known)
    assert "unknown" in error.message


def test_hashed_known_hosts_entry_is_accepted(d601: D601, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_bytes(d601.known_hosts.read_bytes())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    with d601.remote(known_hosts=str(known)) as remote:
        assert remote.run("echo ok").stdout == b"ok\n"


def test_broken_known_hosts_is_bad_input(d601: D601, tmp_path: Path) -> None:
    from pytest_homelab.core.outcomes import BadInput

    known = tmp_path / "known_hosts"
    known.write_text(f"[{d601.host}]:{d601.port} ssh-ed25519 not*base64\n")
    with d601.remote(known_hosts=str(known)) as remote, pytest.raises(BadInput) as caught:
        remote.run("true")
    assert str(known) in str(caught.value)
