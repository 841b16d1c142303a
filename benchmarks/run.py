"""``python -m benchmarks``: run the benchmarks against the shipped simulators and print a table.

    python -m benchmarks                 # everything (about 4 minutes on the 2-core machine)
    python -m benchmarks --only P1,P3    # some of them
    python -m benchmarks --quick         # fewer repetitions and smaller sizes (under a minute)
    python -m benchmarks --json          # the results as JSON on stdout

Benchmarks are not tests: a missed goal is reported, not failed. The exit code is 0 when every
selected benchmark ran, 1 when one could not run (its error is printed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.common import (
    REPO_ROOT,
    CertificateAuthority,
    Row,
    Sandbox,
    Section,
    load_average,
    machine,
    progress,
    render_table,
    sandbox,
)

Benchmark = Callable[[CertificateAuthority, Sandbox, bool, random.Random], Section]


def _registry() -> dict[str, Benchmark]:
    from benchmarks import ci, rollout, startup

    return {
        "P1": ci.p1,
        "P2": ci.p2,
        "P3": rollout.p3,
        "P4": startup.p4,
        "P5": ci.p5,
        "P6": rollout.p6,
    }


IDS = ("P1", "P2", "P3", "P4", "P5", "P6")
HEADERS = ("id", "figure", "ours", "baseline (same run)", "ratio", "goal", "met")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Speed, request cost and scale of pytest-homelab against the simulators, "
        "side by side with the baselines users have today.",
    )
    parser.add_argument(
        "--only",
        default=",".join(IDS),
        metavar="IDS",
        help=f"comma-separated benchmark ids (default: all of {','.join(IDS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and smaller sizes (a smoke run)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--large",
        action="store_true",
        help="P3 also at N = 2000, and the kubectl loop at N = 1000 (adds several minutes)",
    )
    parser.add_argument(
        "--plot",
        default=str(REPO_ROOT / "docs" / "benchmarks-growth.png"),
        metavar="PATH",
        help="where a full P3 run draws the cost-growth plot (needs the bench extra; "
        "'' for no plot; default: docs/benchmarks-growth.png)",
    )
    parser.add_argument("--seed", type=int, default=20260101, help="seed of the scenarios")
    args = parser.parse_args(argv)
    chosen = [i.strip().upper() for i in args.only.split(",") if i.strip()]
    unknown = [i for i in chosen if i not in IDS]
    if unknown or not chosen:
        named = ", ".join(unknown) or "(none)"
        parser.error(f"unknown benchmark id {named}; known: {','.join(IDS)}")
    args.ids = [i for i in IDS if i in chosen]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    registry = _registry()
    from benchmarks import rollout

    rollout.OPTIONS = rollout.Options(large=args.large, plot=Path(args.plot) if args.plot else None)
    info = machine()
    progress(
        f"benchmarks {','.join(args.ids)}{' (quick)' if args.quick else ''}: {info['cpu']}, "
        f"{info['nproc']} cores, load {info['load_average']}"
    )
    started = time.monotonic()
    sections: dict[str, Section] = {}
    failures: dict[str, str] = {}
    with sandbox() as box:
        ca = CertificateAuthority(box.root)
        for bench_id in args.ids:
            rng = random.Random(f"{args.seed}-{bench_id}")
            began = time.monotonic()
            try:
                sections[bench_id] = registry[bench_id](ca, box, args.quick, rng)
            except Exception as exc:  # a benchmark that could not run: report, go on, exit 1
                failures[bench_id] = f"{type(exc).__name__}: {exc}"
                progress(f"{bench_id} could not run:\n{traceback.format_exc()}")
            progress(f"{bench_id}: {time.monotonic() - began:.1f} s")
    if args.quick:  # smaller sizes and fewer runs than the goals are stated for: no verdicts
        for section in sections.values():
            for row in section.rows:
                row.met = None
    info["load_average_after"] = load_average()
    info["duration"] = f"{time.monotonic() - started:.0f} s"
    info["mode"] = "quick" if args.quick else "full"
    if args.json:
        print(json.dumps(_document(info, sections, failures), indent=2, ensure_ascii=False))
    else:
        for line in _report(info, sections, failures):
            print(line)
    return 1 if failures else 0


def _rows(sections: dict[str, Section], failures: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    for bench_id in IDS:
        if bench_id in sections:
            rows += sections[bench_id].rows
        elif bench_id in failures:
            rows.append(Row(bench_id, "could not run", failures[bench_id][:100]))
    return rows


def _report(
    info: dict[str, str], sections: dict[str, Section], failures: dict[str, str]
) -> list[str]:
    lines = [
        f"pytest-homelab benchmarks ({info['mode']}), {info['date']}",
        f"machine: {info['cpu']}, {info['nproc']} cores; python {info['python']}",
        f"kubectl: {info['kubectl']}",
        f"load average before: {info['load_average']}, after: {info['load_average_after']}; "
        f"took {info['duration']}",
    ]
    if info["mode"] == "quick":
        lines.append("quick mode: smaller sizes and fewer runs than the goals state; not judged")
    lines.append("")
    rows = _rows(sections, failures)
    lines += render_table(
        HEADERS,
        [[r.id, r.figure, r.ours, r.baseline, r.ratio, r.goal, r.verdict] for r in rows],
    )
    for section in sections.values():
        for title, headers, table in section.tables:
            lines += ["", title, *render_table(headers, table)]
    notes = [note for section in sections.values() for note in section.notes]
    if notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in notes]
    return lines


def _document(
    info: dict[str, str], sections: dict[str, Section], failures: dict[str, str]
) -> dict[str, object]:
    return {
        "machine": info,
        "rows": [
            {
                "id": r.id,
                "figure": r.figure,
                "ours": r.ours,
                "baseline": r.baseline,
                "ratio": r.ratio,
                "goal": r.goal,
                "met": r.met,
                "values": r.values,
            }
            for r in _rows(sections, failures)
        ],
        "tables": [
            {"title": title, "headers": headers, "rows": table}
            for section in sections.values()
            for title, headers, table in section.tables
        ],
        "notes": [note for section in sections.values() for note in section.notes],
        "failures": failures,
    }


if __name__ == "__main__":
    sys.exit(main())
