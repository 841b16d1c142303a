"""Resource hygiene: threads, sockets, processes and temp dirs a test leaves behind.

Before each test a snapshot is taken; after its fixtures are torn down, everything new must be
gone (after a short grace for things that end asynchronously):

* threads of this process;
* sockets of this process (``/proc/self/fd``), first without, then with a garbage collection —
  a socket only a collection closes was never closed, and counts as a leak too;
* processes: this process's descendants, and every process carrying this session's marker in
  its environment or a ``HOME`` under pytest's base temp directory (what D601's sessions run
  detached, reparented to init, is found that way). The sshd of the session-scoped ``d601``
  fixture is the one process allowed to outlive a test; it must be gone after the session;
* temp dirs: the test runs with ``TMPDIR`` (and :data:`tempfile.tempdir`) pointing at an empty
  directory that must be empty again; in tests that use D601, the read-back dirs ``mktemp -d``
  makes there (``tmp.*/.alive`` in the TMPDIR of D601's sessions, the ``d601`` fixture's own
  directory) must be removed as well.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.waiting import poll

SESSION_MARK = "HOMELAB_RELIABILITY_SESSION"
SSHD = "/usr/sbin/sshd"
# sshd's LoginGraceTime is 5 s: a dropped pre-auth child may take that long to go
GRACE = float(os.environ.get("HOMELAB_HYGIENE_GRACE", "6"))

Proc = tuple[int, str]  # (pid, start time): a reused pid is another process


def session_mark() -> str:
    """This session's marker, set in the environment every child process inherits."""
    value = os.environ.get(SESSION_MARK)
    if not value:
        value = os.environ[SESSION_MARK] = uuid.uuid4().hex
    return value


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process; None for a gone or zombie one."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def processes(mark: str, base: Path) -> dict[Proc, str]:
    """Processes of this session: descendants, and those with its marker or a HOME under
    ``base``; as (pid, start time) → command line."""
    me = os.getpid()
    marker = f"{SESSION_MARK}={mark}".encode()
    home = f"HOME={base}/".encode()
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    ours: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        children.setdefault(stat[0], []).append(pid)
        starts[pid] = stat[1]
        env = _environ(pid)
        if marker in env or home in env:
            ours.add(pid)
    queue = [me]
    while queue:  # and every descendant of this process, whatever its environment
        for child in children.get(queue.pop(), []):
            ours.add(child)
            queue.append(child)
    return {(pid, starts[pid]): _cmdline(pid) for pid in ours if pid in starts}


def alive(proc: Proc) -> bool:
    stat = _stat(proc[0])
    return stat is not None and stat[1] == proc[1]


def socket_inodes() -> set[str]:
    found: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                found.add(target)
    return found


def readback_dirs(root: Path, since: float) -> set[str]:
    """``mktemp -d`` dirs the run read-back left in D601's TMPDIR ``root`` since ``since``."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for entry in root.glob("tmp.*/.alive"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime >= since - 1:
                    found.add(str(entry.parent))
    return found


def is_session_sshd(cmdline: str, base: Path) -> bool:
    """The listener of the session-scoped ``d601`` fixture (tests/d601.py)."""
    return cmdline.startswith(f"{SSHD} -D -E {base}")


@dataclass
class Leaks:
    threads: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)
    temp: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"thread {t}" for t in self.threads]
        out += [f"socket {s}" for s in self.sockets]
        out += [f"process {p}" for p in self.processes]
        out += [f"temp {t}" for t in self.temp]
        return out


@dataclass
class Snapshot:
    """What existed before a test; :meth:`leaks` says what the test left behind."""

    mark: str
    base: Path
    tmpdir: Path
    started: float = field(default_factory=time.time)
    threads: set[int] = field(default_factory=set)
    sockets: set[str] = field(default_factory=set)
    procs: set[Proc] = field(default_factory=set)

    @classmethod
    def take(cls, mark: str, base: Path, tmpdir: Path) -> Snapshot:
        snap = cls(mark, base, tmpdir)
        snap.threads = {t.ident for t in threading.enumerate() if t.ident is not None}
        snap.sockets = socket_inodes()
        snap.procs = set(processes(mark, base))
        return snap

    def _new_threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.is_alive() and t.ident not in self.threads]

    def _new_procs(self, allowed: set[Proc]) -> dict[Proc, str]:
        now = processes(self.mark, self.base)
        return {
            p: c
            for p, c in now.items()
            if p not in self.procs and p not in allowed and not is_session_sshd(c, self.base)
        }

    def long_lived(self) -> set[Proc]:
        """New processes allowed to outlive the test (the session's sshd)."""
        now = processes(self.mark, self.base)
        return {p for p, c in now.items() if p not in self.procs and is_session_sshd(c, self.base)}

    def leaks(
        self,
        allowed: set[Proc],
        *,
        remote: Path | None = None,
        grace: float = GRACE,
    ) -> Leaks:
        """What the test left. ``remote``: the TMPDIR of D601's sessions, when the test talked to
        D601: the read-back dirs made there count too."""
        threads: list[threading.Thread] = []
        sockets: set[str] = set()
        procs: dict[Proc, str] = {}
        temp: list[str] = []
        readback: set[str] = set()

        def clean() -> bool:
            nonlocal threads, sockets, procs, temp, readback
            threads = self._new_threads()
            sockets = socket_inodes() - self.sockets
            procs = self._new_procs(allowed)
            temp = sorted(str(p) for p in self.tmpdir.iterdir()) if self.tmpdir.is_dir() else []
            readback = readback_dirs(remote, self.started) if remote is not None else set()
            for thread in threads:
                thread.join(timeout=0.05)
            return not (threads or sockets or procs or temp or readback)

        if poll(clean, timeout=grace, interval=0.05):
            return Leaks()
        found = Leaks()
        found.threads = [f"{t.name} (daemon={t.daemon})" for t in threads]
        if sockets:
            gc.collect()
            still = socket_inodes() - self.sockets
            found.sockets = [f"{s} never closed" for s in sorted(still)]
            found.sockets += [
                f"{s} closed only by garbage collection" for s in sorted(sockets - still)
            ]
        found.processes = [f"{pid} {cmd}" for (pid, _), cmd in sorted(procs.items())]
        found.temp = temp + sorted(readback)
        return found


@contextlib.contextmanager
def private_tmpdir(path: Path) -> Iterator[Path]:
    """Run with TMPDIR (and tempfile's default) at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    saved_env, saved_default = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = saved_default
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
