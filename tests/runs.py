"""A launched dev e2e run, read from its result directory (``~/.unidesk/runs/<run id>`` on the
D601 side of a test): done once ``result.json`` is written and the launcher has exited."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.waiting import wait_until


def finished_result(run: Path) -> dict[str, Any] | None:
    """The run's ``result.json`` once it is written and the launcher has exited, else None."""
    result, pid = run / "result.json", run / "launcher.pid"
    if not (result.is_file() and result.stat().st_size and pid.is_file()):
        return None
    text = pid.read_text().strip()
    if not text:
        return None
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        data: dict[str, Any] = json.loads(result.read_text())
        return data
    return None


def wait_run_result(run: Path, seconds: float = 20) -> dict[str, Any]:
    """The run's result; fails the test with the launcher's log after ``seconds``."""

    def log() -> str:
        path = run / "launcher.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "no launcher.log"

    return wait_until(
        lambda: finished_result(run), what=f"run {run.name} to end", timeout=seconds, detail=log
    )
