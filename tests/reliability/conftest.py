"""The reliability suite's setup: CI or soak mode, figures, the leak guard, resource hygiene.

Soak mode runs the long version (the counts the issue asks for): ``HOMELAB_SOAK=1`` works however
pytest is started; ``--soak`` works when tests/reliability (or a file in it) is named on the
command line, since pytest only reads options from the conftests of the paths it is given.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import figures, hygiene, leakguard
from tests.reliability.leakguard import LeakGuard, leak_guard, pytest_runtest_makereport
from tests.waiting import poll

__all__ = ["leak_guard", "pytest_runtest_makereport"]  # fixture and hook of the leak guard

SOAK_ENV = "HOMELAB_SOAK"
FIGURES_ENV = "HOMELAB_FIGURES"
HYGIENE = "Resource hygiene"

_long_lived: set[hygiene.Proc] = set()
_state: dict[str, object] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="reliability suite: run the long version (also HOMELAB_SOAK=1)",
    )


def soak_enabled(config: pytest.Config) -> bool:
    env = os.environ.get(SOAK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return env or bool(config.getoption("soak", default=False))


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> bool:
    """True in soak mode: the full counts instead of the CI sample."""
    enabled = soak_enabled(pytestconfig)
    _state["mode"] = "soak" if enabled else "ci"
    _state["json"] = Path(
        os.environ.get(FIGURES_ENV) or tmp_path_factory.getbasetemp() / "reliability-figures.json"
    )
    return enabled


@pytest.fixture(scope="session")
def mode(soak: bool) -> str:
    """``soak`` or ``ci``: the label on this session's figures."""
    return "soak" if soak else "ci"


@pytest.fixture(autouse=True)
def _hygiene(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
) -> Iterator[None]:
    """Fail a test that leaves threads, sockets, processes or temp dirs behind."""
    base = tmp_path_factory.getbasetemp()  # before TMPDIR moves: pytest's own temp stays put
    key = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    snapshot = hygiene.Snapshot.take(hygiene.session_mark(), base, base / "hygiene-tmp" / key)
    remote = request.getfixturevalue("d601").tmp if "d601" in request.fixturenames else None
    with hygiene.private_tmpdir(snapshot.tmpdir):
        yield
    leaks = snapshot.leaks(_long_lived, remote=remote)
    _long_lived.update(snapshot.long_lived())
    fig = figures.figure(HYGIENE, mode)
    lines = leaks.lines()
    fig.run(
        outcome="clean" if not lines else "leaked",
        wrong=f"{request.node.nodeid}: {'; '.join(lines)}" if lines else None,
    )
    if lines:
        pytest.fail("resources leaked by this test:\n  " + "\n  ".join(lines), pytrace=False)


@pytest.fixture(autouse=True)
def _leak_guard(leak_guard: LeakGuard) -> LeakGuard:
    """The leak guard, for every test of the reliability suite."""
    return leak_guard


def _machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is gone: nothing the suite started may still run; write figures."""
    if "mode" not in _state:
        return  # no reliability test ran
    poll(lambda: not any(hygiene.alive(p) for p in _long_lived), timeout=hygiene.GRACE)
    left = {p for p in _long_lived if hygiene.alive(p)}
    fig = figures.figure(HYGIENE, str(_state["mode"]))
    fig.note("session_end_processes_left", len(left))
    guard = figures.figure("R4 secret leak guard", str(_state["mode"]))
    totals = leakguard.TOTALS
    guard.runs = totals["tests_guarded"]
    guard.outcomes.update({k: totals[k] for k in ("tests_clean", "tests_leaking") if totals[k]})
    for key in ("texts_scanned", "files_scanned", "leaks_found"):
        guard.note(key, totals[key])
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        fig.note("session_end_leaks", [f"pid {pid}" for pid, _ in sorted(left)])
    workerinput = getattr(session.config, "workerinput", None)  # a pytest-xdist worker
    argv = workerinput["mainargv"] if workerinput else sys.argv
    meta = {
        **_machine(),
        "mode": _state["mode"],
        "command": " ".join([_program(argv[0]), *argv[1:]]),
        "git": _git_head(),
    }
    figures.write_json(Path(str(_state["json"])), figures.all_figures(), meta)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # the controller prints the figures and fails the run (conftest)
        workeroutput[figures.WORKER_OUTPUT] = {
            "lines": figures.render(figures.all_figures()),
            "json": str(_state["json"]),
            "failed": bool(left),
        }


def _program(arg0: str) -> str:
    name = Path(arg0).name
    return "python -m pytest" if name == "__main__.py" else name


def _git_head() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = figures.all_figures()
    if not found:
        return
    terminalreporter.section("reliability figures")
    for line in figures.render(found):
        terminalreporter.write_line(line)
    if "json" in _state:
        terminalreporter.write_line(f"figures JSON: {_state['json']}")
