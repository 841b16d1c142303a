"""A real OpenSSH ``sshd`` on loopback playing the CI host D601 (session-scoped ``d601`` fixture).

Imported by ``tests/conftest.py``, so every test directory can ask for it. The server gets its
own host key, authorized_keys, pid file and log (``-E``, so no pipe outlives it),
``LoginGraceTime 5`` so dropped pre-auth connections cannot linger, and is stopped by process
group (never by name); connection children left behind (sshd ``setsid``s them) are ended by PID
at teardown.

The D601 side never sees the machine's real home: every authorized key carries
``environment="HOME=<tmp>"`` (allowed by ``PermitUserEnvironment HOME``) and a forced command that
``cd``s there and ``exec``s the login shell on the original command, so ``$HOME``, ``~`` and the
working directory are the temporary home, and the shell reads no real ``~/.bashrc``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.e2e.remote import SSHRemote
from tests.waiting import poll, wait_until

SSHD = "/usr/sbin/sshd"
D601_HOST = "127.0.0.2"
STARTUP_SECONDS = 10.0
# The forced command runs under the login shell with the key's environment already applied.
FORCED_COMMAND = 'cd "$HOME" || exit 255; exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"'


def keygen(path: Path, comment: str = "pytest-homelab") -> Path:
    """A fresh unencrypted ed25519 key pair at ``path`` / ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def key_fingerprint(pub: Path) -> str:
    """``SHA256:…`` as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[1]


def free_port(host: str = D601_HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _proc_start(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has ended already


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children first-level, then theirs)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _parent(int(entry))
            if ppid is not None:
                parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in parents.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def end_processes(pids: list[int], *, grace: float = 3.0) -> None:
    """SIGTERM each PID (if it is still the same process), then SIGKILL what is left."""
    started = {pid: _proc_start(pid) for pid in pids}
    for pid, start in started.items():
        if start is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def alive() -> list[int]:
        return [p for p, s in started.items() if s is not None and _proc_start(p) == s]

    if poll(lambda: not alive(), timeout=grace):
        return
    for pid in alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class D601:
    """The running sshd and everything a client needs to reach it."""

    host: str
    port: int
    user: str
    key_file: Path
    """The authorized ed25519 client key (private; ``.pub`` beside it)."""
    known_hosts: Path
    """Holds the server's host key as ``[127.0.0.2]:PORT``."""
    home: Path
    """The D601 side's temporary HOME (and working directory) in every session."""
    host_key_fingerprint: str
    host_key_pub: str
    client_home: Path
    """An empty HOME for the client side (no ~/.ssh/config, no keys, no agent)."""
    log: Path
    pid: int
    dir: Path
    authorized_keys: Path
    tmp: Path
    """TMPDIR of every session (``SetEnv``): what ``mktemp`` makes on "D601" lands here, in this
    fixture's own directory, not in the machine's /tmp shared with every other test process."""
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- clients ----------------------------------------------------------------------------

    def client_environ(self, **extra: str) -> dict[str, str]:
        """A hermetic client environment: the empty client HOME, PATH, and ``extra``."""
        return {"HOME": str(self.client_home), "PATH": os.environ.get("PATH", ""), **extra}

    def remote_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``SSHRemote``/``open_remote`` that reach this server."""
        kwargs: dict[str, Any] = {
            "port": self.port,
            "user": self.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "environ": self.client_environ(),
            "connect_timeout": 5.0,
        }
        kwargs.update(overrides)
        return kwargs

    def remote(self, **overrides: Any) -> SSHRemote:
        """An ``SSHRemote`` to this server (not yet connected); close it when done."""
        host = overrides.pop("host", self.host)
        return SSHRemote(host, **self.remote_kwargs(**overrides))

    def run_ssh(
        self,
        command: str,
        *,
        input: bytes | None = None,
        key_file: Path | None = None,
        timeout: float = 30.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` with the OpenSSH client (strict host keys, only ``key_file``)."""
        args = [
            "ssh",
            "-F",
            "/dev/null",  # also keeps ssh from creating the real ~/.ssh
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-i",
            str(key_file or self.key_file),
            "-p",
            str(self.port),
            f"{self.user}@{self.host}",
            "--",
            command,
        ]
        return subprocess.run(
            args,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=self.client_environ(),
            check=check,
        )

    def authorize(self, pub: Path) -> None:
        """Let the key ``pub`` log in too (with the temporary HOME)."""
        with self.authorized_keys.open("a") as f:
            f.write(authorized_line(pub.read_text().strip(), self.home) + "\n")

    # -- the server's log -------------------------------------------------------------------

    def log_mark(self) -> int:
        """Where the log ends now; pass to :meth:`log_since`."""
        return self.log.stat().st_size

    def log_since(self, mark: int) -> str:
        with self.log.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def wait_log(self, pattern: str, mark: int, *, timeout: float = 5.0) -> str:
        """The log since ``mark`` once ``pattern`` (a regex) is in it; fails after ``timeout``."""

        def shown() -> str | None:
            text = self.log_since(mark)
            return text if re.search(pattern, text) else None

        return wait_until(
            shown,
            what=f"the sshd log to show {pattern!r}",
            timeout=timeout,
            detail=lambda: "\n" + self.log_since(mark),
        )

    def connections(self, mark: int) -> list[tuple[int, int]]:
        """``(session pid, client port)`` of every connection accepted since ``mark``."""
        found: list[tuple[int, int]] = []
        child: int | None = None
        for line in self.log_since(mark).splitlines():
            forked = re.search(r"Forked child (\d+)\.", line)
            if forked:
                child = int(forked.group(1))
                continue
            accepted = re.search(rf"Connection from \S+ port (\d+) on \S+ port {self.port}\b", line)
            if accepted and child is not None:
                found.append((child, int(accepted.group(1))))
                child = None
        return found

    def session_pid(self, mark: int) -> int:
        """The sshd process serving the one connection opened since ``mark`` (checked)."""
        conns = self.connections(mark)
        assert len(conns) == 1, f"expected one connection since the mark, got {conns}"
        pid = conns[0][0]
        assert _parent(pid) == self.pid, f"{pid} is not a child of the sshd listener {self.pid}"
        assert os.readlink(f"/proc/{pid}/exe") == SSHD
        return pid


def authorized_line(pub: str, home: Path) -> str:
    command = FORCED_COMMAND.replace('"', '\\"')
    return f'environment="HOME={home}",command="{command}" {pub}'


def _sshd_config(d: Path, port: int, home: Path, tmp: Path) -> str:
    return "\n".join(
        [
            f"Port {port}",
            f"ListenAddress {D601_HOST}",
            f"HostKey {d / 'host_ed25519'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            f"PidFile {d / 'sshd.pid'}",
            "StrictModes no",  # temporary dirs are not root-0700-clean
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "PermitUserEnvironment HOME",  # only the HOME= of authorized_keys, nothing else
            f"SetEnv TMPDIR={tmp}",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel DEBUG1",  # shows userauth requests, so tests can prove none happened
            "LoginGraceTime 5",  # pre-auth children of dropped connections go away quickly
            "",
        ]
    )


def _wait_banner(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether sshd greets on ``port`` within the start-up time (False once it has exited)."""

    def state() -> str | None:
        if proc.poll() is not None:
            return "exited"
        try:
            with socket.create_connection((D601_HOST, port), timeout=1) as s:
                return "greeted" if s.recv(4) == b"SSH-" else None
        except OSError:
            return None

    return poll(state, timeout=STARTUP_SECONDS) == "greeted"


def stop_sshd(proc: subprocess.Popen[bytes]) -> None:
    """End connection children left behind (by PID, while the listener can still reap them),
    then SIGTERM the listener's process group and wait."""
    end_processes(descendants(proc.pid))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running_sshd(base: Path) -> Iterator[D601]:
    """Start sshd for the current user on 127.0.0.2 (a free port) and yield its :class:`D601`."""
    if not os.path.exists(SSHD):
        pytest.fail(
            f"{SSHD} is missing: install openssh-server (apt-get install -y openssh-server); "
            "the D601 tests need a real sshd",
            pytrace=False,
        )
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing: install openssh-client", pytrace=False)
    try:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # Debian's privilege separation dir
    except OSError as exc:
        pytest.fail(
            f"cannot create /run/sshd for sshd ({exc}); run the tests as root", pytrace=False
        )
    d = base / "sshd"
    home = base / "d601-home"
    client_home = base / "client-home"
    tmp = base / "d601-tmp"
    for path in (d, home, client_home, tmp):
        path.mkdir(mode=0o700)
    assert not any(c in str(p) for p in (home, tmp) for c in '"\\ ')
    keygen(d / "host_ed25519", "d601-host")
    key = keygen(base / "client_ed25519", "d601-client")
    authorized = d / "authorized_keys"
    authorized.write_text(
        authorized_line((base / "client_ed25519.pub").read_text().strip(), home) + "\n"
    )
    host_pub = (d / "host_ed25519.pub").read_text().split()
    user = pwd.getpwuid(os.getuid()).pw_name

    failures: list[str] = []
    for attempt in range(3):  # a port taken between probing and binding: try another
        port = free_port()
        config = d / "sshd_config"
        config.write_text(_sshd_config(d, port, home, tmp))
        log = d / f"sshd-{attempt}.log"
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
        proc = subprocess.Popen(
            [SSHD, "-D", "-E", str(log), "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            if not _wait_banner(proc, port):
                failures.append(log.read_text() if log.exists() else "(no log)")
                continue
            known_hosts = base / "known_hosts"
            known_hosts.write_text(f"[{D601_HOST}]:{port} {host_pub[0]} {host_pub[1]}\n")
            yield D601(
                host=D601_HOST,
                port=port,
                user=user,
                key_file=key,
                known_hosts=known_hosts,
                home=home,
                host_key_fingerprint=key_fingerprint(d / "host_ed25519.pub"),
                host_key_pub=f"{host_pub[0]} {host_pub[1]}",
                client_home=client_home,
                log=log,
                pid=proc.pid,
                dir=d,
                authorized_keys=authorized,
                tmp=tmp,
            )
            return
        finally:
            stop_sshd(proc)
    pytest.fail(
        "sshd did not start:\n" + "\n---\n".join(f[-2000:] for f in failures), pytrace=False
    )


@pytest.fixture(scope="session")
def d601(tmp_path_factory: pytest.TempPathFactory) -> Iterator[D601]:
    """A real sshd on 127.0.0.2 as the CI host D601, with a temporary HOME on its side."""
    with running_sshd(tmp_path_factory.mktemp("d601")) as server:
        yield server


@dataclass
class SSHAgent:
    """A running ``ssh-agent`` (own socket, stopped by PID)."""

    socket: Path
    pid: int

    def add(self, key: Path) -> None:
        env = {"SSH_AUTH_SOCK": str(self.socket), "PATH": os.environ.get("PATH", "")}
        subprocess.run(["ssh-add", str(key)], env=env, check=True, capture_output=True)


@pytest.fixture
def ssh_agent() -> Iterator[SSHAgent]:
    """A fresh ``ssh-agent -D`` with no keys; its socket lives in a short /tmp dir (108-byte
    limit on socket paths)."""
    if shutil.which("ssh-agent") is None:
        pytest.fail("ssh-agent is missing: install openssh-client", pytrace=False)
    where = Path(tempfile.mkdtemp(prefix="agent-", dir="/tmp"))
    sock = where / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = poll(lambda: sock.exists() or proc.poll() is not None, timeout=STARTUP_SECONDS)
        if not (started and sock.exists()):
            pytest.fail("ssh-agent did not start", pytrace=False)
        yield SSHAgent(sock, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def make_ssh_key(tmp_path: Path) -> Callable[..., Path]:
    """``make_ssh_key(name, passphrase="", kind="ed25519")``: a new key pair under tmp_path."""

    def make(name: str, passphrase: str = "", kind: str = "ed25519") -> Path:
        path = tmp_path / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", name, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        return path

    return make


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.2 where nothing listens."""
    return free_port()
