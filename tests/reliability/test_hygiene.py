"""The resource hygiene check itself: a session of its own where each test leaks one thing."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

INNER_CONFTEST = """
from tests.reliability.conftest import _hygiene, mode, pytest_addoption, soak
"""

INNER_TESTS = """
import os, socket, subprocess, tempfile, threading, time

HOLD = []

def test_clean():
    threading.Thread(target=time.sleep, args=(0.05,)).start()  # ends by itself: fine

def test_thread():
    threading.Thread(target=time.sleep, args=(30,), daemon=True, name="left-behind").start()

def test_socket():
    HOLD.append(socket.socket())

def test_process():
    proc = subprocess.Popen(["sleep", "30"])
    HOLD.append(proc)
    with open(os.environ["LEAKED_PIDS"], "a") as f:
        f.write(f"{proc.pid}\\n")

def test_tempdir():
    tempfile.mkdtemp(prefix="left-behind-")
"""


def test_the_hygiene_check_catches_each_kind_of_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Thread, socket, process, temp dir: each fails its test at teardown; a clean test passes."""
    pids = tmp_path / "pids"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    monkeypatch.setenv("HOMELAB_HYGIENE_GRACE", "0.3")
    monkeypatch.setenv("LEAKED_PIDS", str(pids))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)  # the leaked `sleep`, by its PID
    outcomes = result.parseoutcomes()
    text = result.stdout.str()
    assert outcomes.get("passed") == 5 and outcomes.get("errors") == 4, text
    for what in ("thread left-behind", "socket socket:", "process", "temp ", "left-behind-"):
        assert what in text, what
    assert "ERROR at teardown of test_clean" not in text
