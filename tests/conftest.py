"""Fixtures shared across the test suite."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings

from tests.d601 import closed_port, d601, make_ssh_key, ssh_agent
from tests.reliability import figures
from tests.waiting import poll

__all__ = ["closed_port", "d601", "make_ssh_key", "ssh_agent"]  # fixtures from tests/d601.py

# -- hypothesis profiles ------------------------------------------------------------------------
# "ci": every property test draws the same examples on every run (a seed derived from the test),
# so two runs agree and a red one is reproduced by running it again; no deadline (a loaded 2-core
# machine is slow, not wrong); no example database (nothing carried over between runs). It is the
# profile of CI (CI=true, whatever else is set) and the default. "explore" draws new examples on
# every run, more of them: HYPOTHESIS_PROFILE=explore, to hunt for cases worth an @example pin.
# Loaded here, before any test module is imported: @settings(...) decorators inherit from it.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=500)
TRUTHY = frozenset({"1", "true", "yes", "on"})


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile a run uses: "ci" in CI, else HYPOTHESIS_PROFILE, else "ci"."""
    if environ.get("CI", "").strip().lower() in TRUTHY:
        return "ci"
    return environ.get("HYPOTHESIS_PROFILE", "").strip() or "ci"


settings.load_profile(hypothesis_profile(os.environ))


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throw-away certificate authority for real TLS on loopback."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA's certificate as a PEM file, as a user would pass to --ca-bundle."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@dataclass
class Proxy:
    url: str
    log: Path

    def requests(self) -> list[str]:
        """The upstream connections tinyproxy logged."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if "Established connection" in line]


@pytest.fixture
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A real forward proxy (tinyproxy) on loopback, like D601's node-local egress proxy."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.fail("tinyproxy is not installed (apt-get install tinyproxy); CI installs it")
    root = tmp_path_factory.mktemp("proxy")
    for attempt in range(3):  # a port taken between probing and binding: try another
        port = free_port()
        conf = root / f"tinyproxy-{attempt}.conf"
        log = root / f"tinyproxy-{attempt}.log"
        conf.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\n"
            f"LogLevel Connect\nMaxClients 50\nDisableViaHeader Yes\n"
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [binary, "-d", "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if listening("127.0.0.1", port, proc):
                yield Proxy(f"http://127.0.0.1:{port}", log)
                return
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    pytest.fail(f"tinyproxy did not start:\n{log.read_text(errors='replace')[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(host: str, port: int, proc: subprocess.Popen[bytes], seconds: float = 10) -> bool:
    """Whether ``proc`` listens on ``host:port`` within ``seconds`` (False once it has exited)."""

    def state() -> str | None:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
        except OSError:
            return "exited" if proc.poll() is not None else None
        return "listening"

    return poll(state, timeout=seconds) == "listening"


# -- pytest-xdist -------------------------------------------------------------------------------
# scripts/ci/test.sh runs the suite on several workers with `--dist loadgroup`: every test goes to
# any worker, except that the tests of one xdist_group share a worker. Groups:
#   reliability  tests/reliability: one session's figures (a module global, written once as
#                JSON), and the hygiene check's session-end look at every process it started;
#   bao          users of the session-scoped OpenBao servers: one server per run, not per worker;
#   demo-*       tests/demo: tests that share one cached demo run (marked there).
# Every other test is independent: ephemeral ports, its own temp dirs, no shared state.


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group ``item`` belongs to, or None."""
    try:
        parts = item.path.relative_to(item.config.rootpath).parts
    except ValueError:
        parts = ()
    if parts[:2] == ("tests", "reliability"):
        return "reliability"
    if {"bao", "bao_tls", "seeded"} & set(getattr(item, "fixturenames", ())):
        return "bao"
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


_from_workers: list[dict[str, Any]] = []  # on the controller: reliability figures of the workers


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, on the controller: a worker is done; keep its reliability figures."""
    output = getattr(node, "workeroutput", None) or {}
    if figures.WORKER_OUTPUT in output:
        _from_workers.append(output[figures.WORKER_OUTPUT])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker's reliability session that left processes behind fails the run, as it does
    without xdist (tests/reliability/conftest.py)."""
    if any(found["failed"] for found in _from_workers) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for found in _from_workers:
        terminalreporter.section("reliability figures")
        for line in found["lines"]:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"figures JSON: {found['json']}")
        if found["failed"]:
            terminalreporter.write_line(
                "FAILED: processes the reliability tests started still ran after the session "
                "(session_end_leaks above)",
                red=True,
            )
