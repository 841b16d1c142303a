"""LocalRemote (the CLI on D601 itself), open_remote, and the lazy paramiko import."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_homelab.core.outcomes import BadInput, InfraError
from pytest_homelab.e2e.remote import LocalRemote, Remote, RemoteResult, SSHRemote, open_remote
from tests.waiting import poll


def env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def exited(pid: int) -> bool:
    """The process is gone, or a zombie (ended, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True


def gone(pid: int, timeout: float = 5.0) -> bool:
    return poll(lambda: exited(pid), timeout=timeout) is not None


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_codes(code: int) -> None:
    assert LocalRemote(env()).run(f"exit {code}").returncode == code


def test_streams_stdin_and_description() -> None:
    local = LocalRemote(env())
    assert local.description == "local" and isinstance(local, Remote)
    assert local.run(r"echo out; echo err >&2; printf '\000\377'; exit 3") == RemoteResult(
        3, b"out\n\x00\xff", b"err\n"
    )
    script = b"set -eu\necho \"args: $1|$2|$#\"\ncat <<'EOT'\n$literal\nEOT\n"
    assert local.run("bash -s -- 'a b' c", stdin=script).stdout == b"args: a b|c|2\n$literal\n"
    assert local.run("cat; echo done", timeout=10).stdout == b"done\n"  # no stdin: EOF


def test_environment_is_exactly_the_given_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMELAB_ONLY_IN_OS_ENVIRON", "leak")
    given = LocalRemote(env(FOO="bar baz"))
    assert given.run('echo "$FOO|${HOMELAB_ONLY_IN_OS_ENVIRON-unset}"').stdout == b"bar baz|unset\n"
    default = LocalRemote()
    assert default.run('echo "$HOMELAB_ONLY_IN_OS_ENVIRON"').stdout == b"leak\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(InfraError) as caught:
        LocalRemote(env()).run(f"sleep 30 & echo $! > {pidfile}; wait", timeout=0.5)
    assert time.monotonic() - start < 5
    assert "timed out on D601 (local) after 0.5 s" in str(caught.value)
    assert gone(int(pidfile.read_text())), "the background child must die with the group"


def test_detached_grandchild_holding_the_pipe_does_not_hang_a_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "detached.pid"
    start = time.monotonic()
    with pytest.raises(InfraError):
        LocalRemote(env()).run(f"setsid sleep 30 & echo $! > {pidfile}; wait", timeout=0.5)
    try:
        assert time.monotonic() - start < 10
    finally:
        pid = int(pidfile.read_text())
        if not gone(pid, 0):
            os.kill(pid, 9)


def test_killed_by_a_signal_is_negative() -> None:
    assert LocalRemote(env()).run("kill -KILL $$").returncode == -9


def test_megabytes_both_ways() -> None:
    local = LocalRemote(env())
    result = local.run(
        r"head -c 3000000 /dev/zero | tr '\0' e >&2; head -c 8000000 /dev/zero | tr '\0' o"
    )
    assert (len(result.stdout), len(result.stderr)) == (8_000_000, 3_000_000)
    data = os.urandom(5_000_000)
    assert local.run("cat", stdin=data).stdout == data


def test_open_remote_choices(closed_port: int) -> None:
    local = open_remote("local", "ignored", port=22, user="x", key_file=None, environ=env())
    assert isinstance(local, LocalRemote)
    with pytest.raises(BadInput, match="needs a host"):
        open_remote("ssh", None)
    with pytest.raises(BadInput, match="unknown D601 transport 'telnet'"):
        open_remote("telnet", "h")
    lazy = open_remote(
        "ssh", "127.0.0.2", port=closed_port, user="u", environ={"HOME": "/nonexistent"}
    )
    assert isinstance(lazy, SSHRemote)  # nothing connected yet, so no error yet
    assert lazy.description == f"ssh u@127.0.0.2:{closed_port}"
    lazy.close()


def test_importing_remote_does_not_import_paramiko() -> None:
    code = (
        "import sys, pytest_homelab.e2e.remote as r; "
        "r.LocalRemote().run('true'); "
        "assert 'paramiko' not in sys.modules, sorted(m for m in sys.modules if 'paramiko' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
