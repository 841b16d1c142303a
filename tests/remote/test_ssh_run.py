"""SSHRemote against a real sshd: commands, streams, stdin, one connection, timeouts, drops."""

from __future__ import annotations

import os
import pwd
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_homelab.core.outcomes import InfraError
from pytest_homelab.e2e.remote import Remote, RemoteResult, SSHRemote, open_remote
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.d601 import D601


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    """The file's text, once it has some."""
    return wait_until(
        lambda: path.read_text() if path.exists() else "", what=f"{path} written", timeout=timeout
    )


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def kill(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def remote(d601: D601) -> Iterator[SSHRemote]:
    with d601.remote() as r:
        yield r


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_codes(remote: SSHRemote, code: int) -> None:
    assert remote.run(f"exit {code}").returncode == code


def test_stdout_and_stderr_apart_and_binary(remote: SSHRemote) -> None:
    result = remote.run(r"echo out; echo err >&2; printf '\000\377\n'; exit 3")
    assert result == RemoteResult(3, b"out\n\x00\xff\n", b"err\n")
    assert remote.description.startswith("ssh ") and ":" in remote.description


def test_stdin_script_through_bash_s(remote: SSHRemote) -> None:
    script = b"""set -eu
first=$1 second="$2"
cat <<'EOT'
quoted $first stays literal
EOT
echo "args: $first|$second|$#"
printf '%s\\n' "$(( 6 * 7 ))"
echo "to stderr" >&2
exit 7
"""
    result = remote.run("bash -s -- 'a b' c", stdin=script)
    assert result.stdout == b"quoted $first stays literal\nargs: a b|c|2\n42\n"
    assert result.stderr == b"to stderr\n"
    assert result.returncode == 7


def test_no_stdin_means_eof_at_once(remote: SSHRemote) -> None:
    start = time.monotonic()
    assert remote.run("cat; echo done", timeout=10).stdout == b"done\n"
    assert time.monotonic() - start < 5


def test_megabytes_both_ways_without_deadlock(remote: SSHRemote) -> None:
    # stderr first: a reader that waited on stdout alone would stall the server's stderr window
    result = remote.run(
        r"head -c 3000000 /dev/zero | tr '\0' e >&2; head -c 8000000 /dev/zero | tr '\0' o",
        timeout=60,
    )
    assert (len(result.stdout), len(result.stderr)) == (8_000_000, 3_000_000)
    assert set(result.stdout) == {ord("o")} and set(result.stderr) == {ord("e")}
    data = os.urandom(5_000_000)
    echoed = remote.run("cat; cat /dev/null >&2", stdin=data, timeout=60)
    assert echoed.returncode == 0 and echoed.stdout == data


def test_one_connection_for_many_commands(d601: D601) -> None:
    mark = d601.log_mark()
    with d601.remote() as remote:
        assert d601.connections(mark) == [], "connecting is lazy"
        for i in range(25):
            assert remote.run(f"echo {i}").stdout == f"{i}\n".encode()
        assert remote.run("echo in; exit 9", stdin=b"x").returncode == 9
    log = d601.log_since(mark)
    assert len(d601.connections(mark)) == 1
    assert log.count("Accepted publickey") == 1
    assert log.count("Starting session") == 26


def test_open_remote_builds_a_working_ssh_remote(d601: D601) -> None:
    remote = open_remote("ssh", d601.host, **d601.remote_kwargs())
    try:
        assert isinstance(remote, SSHRemote) and isinstance(remote, Remote)
        assert remote.description == f"ssh {d601.user}@{d601.host}:{d601.port}"
        assert remote.run("echo hi").stdout == b"hi\n"
    finally:
        remote.close()
    remote.close()  # idempotent


def test_remote_home_is_the_temporary_one(remote: SSHRemote, d601: D601) -> None:
    marker = f"homelab-marker-{os.getpid()}"
    result = remote.run(f'echo "$HOME"; pwd; cd ~ && pwd; touch {marker}; echo ~')
    lines = result.stdout.decode().splitlines()
    assert lines == [str(d601.home)] * 4
    assert (d601.home / marker).exists()
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert real_home != d601.home and not (real_home / marker).exists()


def test_timeout_closes_the_channel_and_keeps_the_connection(d601: D601, tmp_path: Path) -> None:
    pidfile = d601.home / f"timeout-{os.getpid()}.pid"
    pidfile.unlink(missing_ok=True)
    mark = d601.log_mark()
    with d601.remote() as remote:
        start = time.monotonic()
        with pytest.raises(InfraError) as caught:
            remote.run(f"echo $$ > {pidfile}; exec sleep 30", timeout=1)
        assert time.monotonic() - start < 5
        pid = int(wait_for_file(pidfile))
        try:
            message = str(caught.value)
            assert "timed out on D601" in message and "after 1 s" in message
            assert "may still be running" in message
            assert remote.run("echo still here").stdout == b"still here\n"
        finally:
            kill(pid)
    assert len(d601.connections(mark)) == 1


def test_dropped_connection_then_reconnect(d601: D601) -> None:
    pidfile = d601.home / f"drop-{os.getpid()}.pid"
    pidfile.unlink(missing_ok=True)
    with d601.remote() as remote:
        mark = d601.log_mark()
        assert remote.run("true").returncode == 0
        session = d601.session_pid(mark)  # the sshd child serving exactly this connection
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(
                remote.run, f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; sleep 30"
            )
            command = int(wait_for_file(pidfile))
            try:
                os.kill(session, signal.SIGKILL)
                with pytest.raises(InfraError) as caught:
                    running.result(timeout=15)
                message = str(caught.value)
                assert "dropped" in message and "may still be running" in message
                assert alive(command), "the remote command outlives the connection, as said"
            finally:
                kill(command)
        mark = d601.log_mark()
        assert remote.run("echo again").stdout == b"again\n"
        assert remote.run("echo and again").stdout == b"and again\n"
        assert len(d601.connections(mark)) == 1


def test_killed_by_a_signal_is_a_negative_status(remote: SSHRemote) -> None:
    result = remote.run("echo before; kill -KILL $$")
    assert result.returncode < 0 and result.stdout == b"before\n"
    assert remote.run("echo alive").stdout == b"alive\n"


def test_closed_remote_connects_again(d601: D601) -> None:
    mark = d601.log_mark()
    remote = d601.remote()
    assert remote.run("echo 1").stdout == b"1\n"
    remote.close()
    assert remote.run("echo 2").stdout == b"2\n"
    remote.close()
    assert len(d601.connections(mark)) == 2


def test_connection_lost_between_commands_is_reopened_quietly(d601: D601) -> None:
    with d601.remote() as remote:
        mark = d601.log_mark()
        assert remote.run("echo first").stdout == b"first\n"
        os.kill(d601.session_pid(mark), signal.SIGKILL)
        mark = d601.log_mark()
        assert remote.run("echo second").stdout == b"second\n"  # nothing had started: no error
        assert len(d601.connections(mark)) == 1
