"""P4: CLI start. ``homelab --help`` and ``homelab ci status --help``, wall clock, minus
``python -c pass`` on the same interpreter; ``kubectl version --client`` beside them.

The commands run interleaved (one of each per round) so that drift in the machine's load hits
all of them alike, and each figure is a median. Child interpreters use a bytecode cache, as an
installed package has; the same figures without one are reported too.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from typing import Any

from benchmarks.common import (
    Row,
    Sandbox,
    Section,
    find_kubectl,
    homelab_command,
    progress,
    ratio,
    run,
    sandbox,
)


def _medians(
    commands: dict[str, list[str]], rounds: int, env: dict[str, str], box: Sandbox
) -> dict[str, float]:
    for argv in commands.values():  # warm the bytecode cache and the page cache
        run(argv, env=env, cwd=box.root, timeout=60)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            done = run(argv, env=env, cwd=box.root, timeout=60)
            if done.code != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {done.code}: {done.stderr[-400:]}")
            times[name].append(done.wall)
    return {name: statistics.median(values) for name, values in times.items()}


def p4(ca: Any, box: Sandbox, quick: bool, rng: random.Random) -> Section:
    rounds = 8 if quick else 40
    homelab = homelab_command()
    commands = {
        "pass": [sys.executable, "-c", "pass"],
        "help": [*homelab, "--help"],
        "status_help": [*homelab, "ci", "status", "--help"],
    }
    kubectl = find_kubectl()
    if kubectl is not None:
        commands["kubectl"] = [kubectl, "version", "--client"]
    progress(f"P4: CLI start, {rounds} interleaved rounds")
    began = time.monotonic()
    cached = _medians(commands, rounds, box.env, box)
    with sandbox(bytecode_cache=False) as cold:
        uncached = _medians(
            {k: v for k, v in commands.items() if k != "kubectl"},
            max(4, rounds // 4),
            cold.env,
            cold,
        )
    progress(f"  {time.monotonic() - began:.1f} s")
    base = cached.get("kubectl")
    kubectl_text = (
        f"{base * 1000:.0f} ms (kubectl version --client)" if base else "n/a (kubectl not found)"
    )
    section = Section()
    for key, label in (("help", "`homelab --help`"), ("status_help", "`homelab ci status --help`")):
        net = cached[key] - cached["pass"]
        section.rows.append(
            Row(
                "P4",
                f"{label} wall − `python -c pass` (median of {rounds}; {cached[key] * 1000:.0f} − "
                f"{cached['pass'] * 1000:.0f} ms)",
                f"{net * 1000:.1f} ms",
                kubectl_text,
                ratio(net, base),
                "≤ 25 ms",
                net <= 0.025,
                {
                    "net_s": net,
                    "wall_s": cached[key],
                    "python_s": cached["pass"],
                    "kubectl_s": base,
                },
            )
        )
    for key, label in (("help", "`homelab --help`"), ("status_help", "`homelab ci status --help`")):
        net = uncached[key] - uncached["pass"]
        section.rows.append(
            Row(
                "P4-nocache",
                f"{label} − `python -c pass`, no bytecode cache (PYTHONDONTWRITEBYTECODE=1)",
                f"{net * 1000:.1f} ms",
                kubectl_text,
                ratio(net, base),
                values={"net_s": net, "wall_s": uncached[key], "python_s": uncached["pass"]},
            )
        )
    section.notes.append(
        "P4: same interpreter for `python -c pass` and the `homelab` script; children use a "
        "bytecode cache in a temporary PYTHONPYCACHEPREFIX (pip writes .pyc files at install; "
        "this machine's environment sets PYTHONDONTWRITEBYTECODE=1, whose cost P4-nocache shows)."
    )
    return section
