"""What every benchmark shares: result rows, statistics, a sandbox for child processes, the
simulated homelab (Woodpecker over TLS, Kubernetes), simulated time, and process accounting.

Times are measured with ``time.monotonic()``/``perf_counter()``; nothing counts loop iterations.
A figure is either *wall* time (real seconds on this machine) or *sim* time (scenario seconds of
a simulator running faster than real time); every row says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_homelab.sim.faults import FaultPlan
    from pytest_homelab.sim.woodpecker import WoodpeckerSim

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-5b2e"
SLUG = "homelab/app"
CI_HOST = "ci.bench.test"
KUBECTL_CANDIDATES = ("/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "kubectl")


def progress(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the table (or the JSON)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# -- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure, our value, the baseline's, their ratio and the goal."""

    id: str
    figure: str
    ours: str
    baseline: str = "—"
    ratio: str = "—"
    goal: str = "—"
    met: bool | None = None  # None: no goal for this figure
    values: dict[str, Any] = field(default_factory=dict)  # raw numbers for --json

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "—"}[self.met]


@dataclass
class Section:
    """A benchmark's rows, plus optional extra tables (cost growth) and notes."""

    rows: list[Row] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ratio(ours: float, baseline: float | None) -> str:
    if baseline is None or baseline <= 0:
        return "—"
    value = ours / baseline
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, nearest-rank (with 20 values: the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return float(ordered[rank - 1])


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table with padded columns (readable in a terminal and in docs)."""
    widths = [max(len(h), *(len(r[n]) for r in rows)) for n, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(r) for r in rows
    ]


# -- the machine ------------------------------------------------------------------------------


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        info = dict(
            line.split(":", 1)
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if ":" in line
        )
        info = {k.strip(): v.strip() for k, v in info.items()}
        cpu = info.get("model name", cpu)
        if "cpu MHz" in info:
            cpu += f" @ {float(info['cpu MHz']):.0f} MHz"
    kubectl = find_kubectl()
    kubectl_version = "not found"
    if kubectl is not None:
        done = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            kubectl_version = json.loads(done.stdout)["clientVersion"]["gitVersion"]
        except (ValueError, KeyError, TypeError):
            kubectl_version = "unknown"
        kubectl_version = f"{kubectl_version} ({kubectl})"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": str(os.cpu_count() or "?"),
        "cpu": cpu,
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "kubectl": kubectl_version,
        "load_average": load_average(),
    }


def find_kubectl() -> str | None:
    for candidate in KUBECTL_CANDIDATES:
        found = shutil.which(candidate)
        if found is not None:
            return found
    return None


def homelab_command() -> list[str]:
    """The ``homelab`` console script next to this interpreter (same interpreter)."""
    script = Path(sys.executable).parent / "homelab"
    if script.is_file():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from pytest_homelab.cli import main; sys.exit(main())",
    ]


# -- a sandbox for child processes ------------------------------------------------------------


@dataclass
class Sandbox:
    """A temporary HOME and a clean environment: no HOMELAB_/WOODPECKER_/VAULT_/KUBE settings
    from the caller, git identity set, and a bytecode cache (PYTHONPYCACHEPREFIX) so child
    interpreters start like an installed package does (pip writes .pyc files at install time;
    this machine's environment sets PYTHONDONTWRITEBYTECODE, which would recompile every run)."""

    root: Path
    env: dict[str, str]

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


@contextmanager
def sandbox(bytecode_cache: bool = True) -> Iterator[Sandbox]:
    with tempfile.TemporaryDirectory(prefix="homelab-bench-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE", "PYTEST_"))
            and k not in {"WP_TOKEN", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"}
        }
        env.update(
            {
                "HOME": str(home),
                "XDG_STATE_HOME": str(home / ".state"),
                "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "bench",
                "GIT_AUTHOR_EMAIL": "bench@example.test",
                "GIT_COMMITTER_NAME": "bench",
                "GIT_COMMITTER_EMAIL": "bench@example.test",
            }
        )
        if bytecode_cache:
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        yield Sandbox(root, env)


def git(repo: Path, env: Mapping[str, str], *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=dict(env), check=True, capture_output=True, text=True
    ).stdout.strip()


def make_git_repo(path: Path, env: Mapping[str, str]) -> str:
    """A repo whose origin names homelab/app; returns HEAD's sha."""
    path.mkdir(parents=True)
    git(path, env, "init", "-q", "-b", "main")
    (path / "README").write_text("app\n")
    git(path, env, "add", "README")
    git(path, env, "commit", "-q", "-m", "first")
    git(path, env, "remote", "add", "origin", f"https://git.example.test/{SLUG}.git")
    return git(path, env, "rev-parse", "HEAD")


# -- processes --------------------------------------------------------------------------------


@dataclass
class Finished:
    code: int
    started: float  # time.monotonic() just before the spawn
    ended: float  # time.monotonic() right after the process was reaped
    cpu: float  # user + system seconds of the process (and its own children)
    max_rss_mb: float | None  # only for a Child(measured=True)
    stdout: str
    stderr: str

    @property
    def wall(self) -> float:
        return self.ended - self.started


REAP = Path(__file__).with_name("_reap.py")


class Child:
    """A child process; its exit moment and CPU time come from ``wait4``.

    With ``measured``, it runs under ``_reap.py``, which reports the command's own exit moment,
    CPU time and peak RSS: the peak RSS a process reports from the benchmark itself would be
    the benchmark's (Linux keeps the high-water mark across exec).
    """

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, measured: bool = False
    ) -> None:
        # Files, not pipes: a chatty child never blocks on a full pipe while we wait for it.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self._result: Path | None = None
        if measured:
            handle, name = tempfile.mkstemp(prefix="reap-", suffix=".json")
            os.close(handle)
            self._result = Path(name)
            argv = [sys.executable, "-I", "-S", str(REAP), name, *argv]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    def running(self) -> bool:
        """Whether the process is still running (without reaping it)."""
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def wait(self, timeout: float = 600.0) -> Finished:
        """Reap the process; ``wait4`` returns the moment it exits, with its resource usage."""
        watchdog = threading.Timer(timeout, self.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            ended = time.monotonic()
        finally:
            watchdog.cancel()
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # reaped here: keep Popen from waiting again
        cpu, rss = usage.ru_utime + usage.ru_stime, None
        if self._result is not None:
            try:
                report = json.loads(self._result.read_text() or "{}")
            finally:
                self._result.unlink(missing_ok=True)
            if report:
                code, ended, cpu = report["code"], report["ended"], report["cpu"]
                rss = report["max_rss_kb"] / 1024  # kilobytes on Linux
        self._out.seek(0)
        self._err.seek(0)
        stdout = self._out.read().decode("utf-8", "replace")
        stderr = self._err.read().decode("utf-8", "replace")
        self._out.close()
        self._err.close()
        return Finished(code, self.started, ended, cpu, rss, stdout, stderr)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)


def run(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 600
) -> Finished:
    return Child(argv, env=env, cwd=cwd).wait(timeout)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until(predicate: Any, seconds: float, what: str, step: float = 0.005) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f}s waiting for {what}")
        time.sleep(step)


# -- simulated time ---------------------------------------------------------------------------


class SimTime:
    """A :class:`pytest_homelab.core.clock.Clock` on a simulator's scenario clock: ``monotonic`` is
    scenario seconds, and sleeping or waiting ``s`` scenario seconds takes ``s / speed`` real
    ones. Product code given this clock lives in the simulator's (faster) time."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.speed = float(clock.speed)

    def monotonic(self) -> float:
        return float(self._clock.now())

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout) / self.speed)


# -- the simulated Woodpecker, over real TLS through the "internal LB" dial ---------------------


@dataclass
class Woodpecker:
    sim: WoodpeckerSim
    ca_bundle: Path
    client_context: ssl.SSLContext

    def flags(self) -> list[str]:
        return [
            "--woodpecker-server",
            self.sim.base_url,
            "--woodpecker-dial",
            f"127.0.0.1:{self.sim.port}",
            "--ca-bundle",
            str(self.ca_bundle),
        ]

    def settings_flags(self) -> dict[str, object | None]:
        return {
            "woodpecker_server": self.sim.base_url,
            "woodpecker_dial": f"127.0.0.1:{self.sim.port}",
            "ca_bundle": str(self.ca_bundle),
            "woodpecker_repo": SLUG,
        }


class CertificateAuthority:
    """One throw-away CA (trustme) per benchmark run, and a server certificate for CI_HOST."""

    def __init__(self, directory: Path) -> None:
        import trustme

        self._ca = trustme.CA()
        self.bundle = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle))
        self._cert = self._ca.issue_cert(CI_HOST)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


@contextmanager
def woodpecker(
    ca: CertificateAuthority,
    *,
    speed: float = 1.0,
    faults: FaultPlan | None = None,
    stream_silent: bool = False,
) -> Iterator[Woodpecker]:
    from pytest_homelab.sim.woodpecker import WoodpeckerSim

    sim = WoodpeckerSim(
        host="127.0.0.1",
        ssl_context=ca.server_context(),
        public_host=CI_HOST,
        token=TOKEN,
        speed=speed,
        faults=faults,
        stream_silent=stream_silent,
    )
    with sim:
        sim.add_repo(SLUG, private=True, default_branch="main")
        yield Woodpecker(sim, ca.bundle, ca.client_context())
