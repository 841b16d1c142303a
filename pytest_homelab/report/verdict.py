"""How the CLI shows a session's checks: one line each, the root cause once, then the verdict."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pytest_homelab.core.outcomes import TOLERATED, VERDICTS, PrerequisiteFailed
from pytest_homelab.report.junit import CheckRecord

__all__ = ["VERDICTS", "render_json", "render_text", "summary"]

_LABEL = {"passed": "PASS", "failure": "FAIL", "error": "ERROR", "skipped": "SKIP"}
LOG_LINES_SHOWN = 20


def summary(record: CheckRecord) -> str:
    """What the check verified, from its properties."""
    number = record.prop("pipeline_number")
    if number:
        parts = [f"#{number}", record.prop("status"), record.prop("event")]
        if record.prop("duration"):
            parts.append(record.prop("duration"))
        if record.prop("verified_by_pipeline"):
            parts = [
                f"#{number}",
                record.prop("status") + ",",
                "verified by descendant",
                f"#{record.prop('verified_by_pipeline')}",
                record.prop("verified_by_status"),
                record.prop("event"),
                record.prop("verified_by_duration"),
            ]
        parts.append(record.prop("pipeline_url"))
        return " ".join(p for p in parts if p)
    if record.prop("expected_sha") and record.prop("deployment"):
        parts = [
            f"{record.prop('namespace')}/{record.prop('deployment')}",
            f"({record.prop('kind') or 'Deployment'})",
            record.prop("image"),
        ]
        if record.prop("replicas"):
            parts.append(record.prop("replicas"))
        if record.prop("time_to_ready").endswith("s"):  # not "unobserved"
            parts.append(f"in {record.prop('time_to_ready')}")
        return " ".join(p for p in parts if p)
    if record.phase == "smoke" and record.prop("url"):
        found = record.prop("matched_in")
        what = (
            f"serves {record.prop('served_commit')[:12]}"
            if record.prop("expect") != "ok"
            else f"answers {record.prop('status')}"
        )
        where = f" ({found})" if found and found != "status" else ""
        url, waited = record.prop("url"), record.prop("waited")
        return f"{record.prop('service')} {what} at {url}{where} in {waited}"
    run_id = record.prop("run_id")
    if run_id:
        notes = "".join(
            f"; {label}: {record.prop(name)}"
            for name, label in (
                ("skipped_tasks", "skipped by Tekton"),
                ("tolerated", "tolerated failures (onError: continue)"),
            )
            if record.prop(name)
        )
        return (
            f"run {run_id} {record.prop('status')}{notes} ({record.prop('manifest_source')} at "
            f"{record.prop('manifest_commit')[:8]}); results in {record.prop('result_dir')} on "
            f"{record.prop('d601')}"
        )
    if record.prop("task"):
        if record.outcome == TOLERATED:
            first = record.prop("tolerated").splitlines()[:1] or [""]
            return f"TaskRun {record.prop('task')} ({record.time:.1f}s): {first[0]}"
        return f"TaskRun {record.prop('task')} ({record.time:.1f}s)"
    return record.name


def render_text(
    records: list[CheckRecord], junit: Path, code: int, *, commands: bool = True
) -> list[str]:
    """The verdict for people. ``commands=False`` leaves out the ``next:`` commands of the
    dev e2e run (the demo deletes the run before anyone could run them)."""
    lines: list[str] = []
    for record in records:
        label = _LABEL[record.kind]
        if record.kind == "passed":
            lines.append(f"{label:5} {record.phase:8} {summary(record)}")
            continue
        if record.outcome == PrerequisiteFailed.__name__:
            subject = re.sub(r"^test_\w+\[(.*)\]$", r"\1", record.name)
            subject = "dev e2e run" if record.name == "test_dev_e2e" else subject
            lines.append(
                f"{label:5} {record.phase:8} {subject}: not checked, an earlier phase failed"
            )
            continue
        first, *rest = (record.message or record.outcome).splitlines() or [""]
        lines.append(f"{label:5} {record.phase:8} {record.outcome}: {first}")
        lines += [
            f"{'':14} {line.strip()}"
            for line in rest
            if line.strip() and (commands or not line.strip().startswith("next: homelab "))
        ]
        for name, value in record.properties:
            if name.startswith("log_tail:"):
                lines.append(f"{'':14} --- {name.removeprefix('log_tail:')} (last lines) ---")
                lines += [f"{'':14} {text}" for text in value.splitlines()[-LOG_LINES_SHOWN:]]
            elif name.startswith("events:"):
                lines.append(f"{'':14} --- events of pod {name.removeprefix('events:')} ---")
                lines += [f"{'':14} {text}" for text in value.splitlines()[-LOG_LINES_SHOWN:]]
    if commands:
        lines += [f"next: {r.prop('next')}" for r in records if r.prop("next")]
    lines.append(f"verdict: {VERDICTS.get(code, 'ERROR')} (exit {code}) · junit: {junit}")
    return lines


def render_json(records: list[CheckRecord], junit: Path, code: int) -> dict[str, Any]:
    return {
        "verdict": VERDICTS.get(code, "ERROR"),
        "exit_code": code,
        "junit": str(junit),
        "checks": [
            {
                "phase": r.phase,
                "name": r.name,
                "result": r.kind,
                "outcome": r.outcome,
                "message": r.message,
                "seconds": r.time,
                "properties": dict(r.properties),
            }
            for r in records
        ],
    }
