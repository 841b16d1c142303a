"""``homelab ci logs <runId>``: a dev e2e run's status and log tails, read from D601's files.

It needs nothing from the CLI that submitted the run: every fact comes from the run's result
directory, so it works minutes or days later, from any machine that can reach D601.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from typing import Any, TextIO

from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock
from pytest_homelab.core.outcomes import (
    EXIT_FAILED,
    EXIT_STILL_RUNNING,
    EXIT_SUCCESS,
    VERDICTS,
    NotFound,
)
from pytest_homelab.core.settings import Settings
from pytest_homelab.e2e.launcher import RunFiles, check_run_id
from pytest_homelab.e2e.phase import open_d601, read_run

EXIT_BY_STATE = {
    "passed": EXIT_SUCCESS,
    "failed": EXIT_FAILED,
    "died": EXIT_FAILED,
    "running": EXIT_STILL_RUNNING,
}


def taskruns(files: RunFiles) -> list[dict[str, Any]]:
    """The runner's junit.xml as rows: task, passed, seconds, message."""
    raw = files.files.get("junit.xml")
    if not raw:
        return []
    try:
        suite = ET.fromstring(raw)
    except ET.ParseError:
        return []
    rows = []
    for case in suite.iter("testcase"):
        failure = case.find("failure")
        rows.append(
            {
                "task": case.get("name", ""),
                "passed": failure is None,
                "seconds": float(case.get("time") or 0),
                "message": "" if failure is None else failure.get("message", ""),
            }
        )
    return rows


def render(files: RunFiles, lines: int) -> list[str]:
    result = files.result or {}
    out = [
        f"run {files.run_id}: {files.state}"
        + (f" ({result.get('status')}: {result.get('message')})" if result else "")
    ]
    for key in ("manifestCommit", "pipelineRun", "temporaryNamespace", "finishedAt"):
        if result.get(key):
            out.append(f"  {key}: {result[key]}")
    if not result and files.pipeline_run:
        out.append(f"  pipelineRun: {files.pipeline_run}")
    for row in taskruns(files):
        mark = "PASS" if row["passed"] else "FAIL"
        out.append(f"  {mark}  {row['task']} ({row['seconds']:.1f}s) {row['message']}".rstrip())
    names = ["launcher.log", "runner.log", *sorted(n for n in files.files if n.startswith("logs/"))]
    for name in names:
        tail = files.tail(name, lines)
        if tail:
            out.append(f"--- {name} (last {len(tail)} lines) ---")
            out += tail
    return out


def show_run(
    settings: Settings,
    run_id: str,
    *,
    follow: bool = False,
    lines: int = 40,
    as_json: bool = False,
    clock: Clock = SYSTEM_CLOCK,
    out: TextIO | None = None,
    poll: float | None = None,
) -> int:
    stream = out or sys.stdout
    check_run_id(run_id)
    s = settings
    remote = open_d601(s)
    try:
        files = read_run(remote, s.e2e_result_root, run_id)
        if not files.exists:
            raise NotFound(
                f"no run {run_id} on {remote.description} (looked in {s.e2e_result_root}/{run_id})",
                hint="check the run id `homelab ci run-dev-e2e` printed, and the result root "
                "(--homelab-e2e-result-root) it used",
            )
        if follow:
            shown = 0
            while True:
                log = (
                    files.text("runner.log").splitlines() or files.text("launcher.log").splitlines()
                )
                for line in log[shown:]:
                    print(line, file=stream, flush=True)
                shown = max(shown, len(log))
                if files.state != "running":
                    break
                clock.sleep(s.e2e_poll_interval if poll is None else poll)
                files = read_run(remote, s.e2e_result_root, run_id)
        if as_json:
            code = EXIT_BY_STATE[files.state]
            doc = {
                "verdict": VERDICTS[code],
                "exit_code": code,
                "checks": [],
                "runId": run_id,
                "state": files.state,
                "result": files.result,
                "pipelineRun": files.pipeline_run,
                "taskRuns": taskruns(files),
                "logs": {
                    name: files.tail(name, lines)
                    for name in sorted(files.files)
                    if name.endswith(".log")
                },
            }
            print(json.dumps(doc, indent=2), file=stream)
        else:
            for line in render(files, lines):
                print(line, file=stream)
        return EXIT_BY_STATE[files.state]
    finally:
        remote.close()
