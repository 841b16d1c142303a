"""The shipped suite's session in ``homelab`` runs without pytest's logging plugin (its handlers
cost 40 ms per 1000 checks and collect records the verdict never shows), unless a log option is
asked for; and a library's log record still never reaches the user's terminal, as when that
plugin captured it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_homelab.report.session import PACKAGED_SUITE, logging_plugin_off, pytest_args
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim
from tests.cli.child import Child, environ

SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
POOL_FULL = "Connection pool is full, discarding connection: 127.0.0.1"


def test_only_the_shipped_suite_runs_without_the_logging_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    junit = tmp_path / "r.xml"
    shipped = pytest_args(PACKAGED_SUITE, "ci", junit, {})
    assert "no:logging" in shipped
    own = tmp_path / "checks"
    own.mkdir()
    # A repository's own checks may use caplog or log records: pytest's plugin stays on.
    assert "no:logging" not in pytest_args([PACKAGED_SUITE, own], "ci", junit, {})


def test_quiet_library_logs_stops_pythons_last_resort_printing() -> None:
    # Python prints a record no handler takes on stderr (logging.lastResort, WARNING and up:
    # cpython Lib/logging/__init__.py@v3.11.7:1711-1714, in Logger.callHandlers); the context drops
    # it. Run in a child: this test session's own logging plugin holds handlers of its own.
    code = (
        "import logging, sys\n"
        "from pytest_homelab.report.session import quiet_library_logs\n"
        "with quiet_library_logs(sys.argv[1] == 'on'):\n"
        f"    logging.getLogger('urllib3.connectionpool').warning({POOL_FULL!r})\n"
        "print(logging.getLogger().handlers)\n"
    )
    for mode, printed in (("off", True), ("on", False)):
        done = subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
        )
        assert (POOL_FULL in done.stderr) is printed, done.stderr
        assert done.stdout.strip() == "[]"  # the handler is gone afterwards


NOISY_PLUGIN = f"""
import logging, threading
from pathlib import Path

def pytest_runtest_call(item):
    Path(__file__).with_name("ran").write_text(item.name)
    other = threading.Thread(
        target=lambda: logging.getLogger("paramiko.transport").error("Socket exception: reset")
    )
    other.start()
    other.join()

def pytest_runtest_logreport(report):
    # Between a check's phases pytest's output capture is suspended: only the missing handler
    # keeps Python's last resort from printing this on the terminal.
    logging.getLogger("urllib3.connectionpool").warning({POOL_FULL!r})
"""


@pytest.mark.parametrize(
    ("addopts", "off"),
    [
        ("", True),
        ("-rA --tb=long", True),
        ("--log-level=INFO", False),
        ("-o log_cli=true --log-cli-level WARNING", False),
        ("--override-ini=log_file_level=DEBUG", False),
        ("'unbalanced", False),  # pytest says what is wrong; the plugin is not in the way
    ],
)
def test_a_log_option_in_pytest_addopts_keeps_the_plugin(
    addopts: str, off: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest registers --log-level and the other log options in the logging plugin's
    # pytest_addoption (pytest-dev/pytest src/_pytest/logging.py@9.2.0:234-245): without the
    # plugin, `--log-level=INFO` in PYTEST_ADDOPTS is a usage error (exit 4).
    monkeypatch.setenv("PYTEST_ADDOPTS", addopts)
    assert logging_plugin_off([PACKAGED_SUITE]) is off
    assert logging_plugin_off([PACKAGED_SUITE], ["--log-format=%(message)s"]) is False


@pytest.mark.parametrize(
    "addopts", ["", "--log-level=INFO", "-o log_cli=true --log-cli-level=WARNING"]
)
def test_a_library_warning_during_a_check_is_not_printed(tmp_path: Path, addopts: str) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "noisy_library.py").write_text(NOISY_PLUGIN)
    sim = WoodpeckerSim().start()
    try:
        sim.add_repo("homelab/app")
        sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("test", 0.1)])
        env = environ(WOODPECKER_TOKEN="sim-token")
        env["PYTHONPATH"] = f"{plugins}:{env.get('PYTHONPATH', '')}".rstrip(":")
        env["PYTEST_PLUGINS"] = "noisy_library"  # loaded even with plugin autoload off
        env["PYTEST_ADDOPTS"] = addopts  # pytest refuses a --log option without its plugin
        child = Child.homelab(
            *("ci", "watch", SHA, "--repo", "homelab/app", "--woodpecker-server", sim.base_url),
            cwd=tmp_path,
            env=env,
        )
        code, out, err = child.finish(timeout=120)
    finally:
        sim.stop()
    assert (plugins / "ran").read_text().startswith("test_")  # the records were logged
    assert code == 0, out + err
    assert "verdict: PASSED (exit 0)" in out
    assert "Connection pool" not in err + out and "Socket exception" not in err + out
