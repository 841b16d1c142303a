"""docs/junit.md lists exactly the properties the checks write, and the outcomes' real elements.

Each result type is built with every optional part filled in, so ``properties()`` emits every
name it can; the plugin adds ``phase`` and ``outcome``; TaskRuns come from ``merge_taskruns``.
Names are read without their per-check key.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_homelab.ci.models import Pipeline, Repo
from pytest_homelab.ci.watch import CiResult, FailedStep
from pytest_homelab.core.outcomes import OUTCOME_TYPES, CheckFailed
from pytest_homelab.e2e.launcher import LaunchParams, RunFiles
from pytest_homelab.e2e.phase import DevRunResult
from pytest_homelab.report.annotate import merge_taskruns
from pytest_homelab.rollout.rules import RolloutResult, Target
from tests.docs.blocks import DOCS, blocks, section, table_column

SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
PAGE = DOCS / "junit.md"
PLUGIN = {"phase", "outcome"}


def documented(title: str) -> set[str]:
    cells = table_column(section(PAGE, title))
    return {re.sub(r"^`([^`]*)`$", r"\1", cell) for cell in cells}


def normalized(names: list[str], placeholder: str) -> set[str]:
    return {
        f"log_tail:{placeholder}"
        if n.startswith("log_tail:")
        else "events:<pod>"
        if n.startswith("events:")
        else n
        for n in names
    }


def ci_properties() -> list[str]:
    pipeline = Pipeline(7, "killed", "push", SHA, started=100, finished=130, superseded_by=8)
    newer = Pipeline(8, "success", "push", "1" * 40, started=120, finished=170)
    result = CiResult(
        Repo(1, "homelab/app"),
        SHA,
        ("push",),
        CheckFailed("red"),
        pipeline=pipeline,
        url="https://ci.example.test/repos/1/pipeline/7",
        verified_by=newer,
        failed_steps=(FailedStep("test", "failure", 1, ("1 failed",)),),
        waited=3.0,
        branch="main",  # written whenever one branch's pipeline counts (the default)
    )
    return [name for name, _ in result.properties()]


def rollout_properties() -> list[str]:
    result = RolloutResult(
        Target("web", "apps", "web", SHA, repository="registry.example.test/web"),
        None,
        images=("registry.example.test/web:9f3c2a1b",),
        generation=2,
        replicas=3,
        ready_replicas=3,
        image_ids=("registry.example.test/web@sha256:" + "a" * 64,),
        pods=("web-1", "web-2", "web-3"),
        waited=4.0,
        time_to_ready=3.5,
        stuck_pod="web-4",
        events=("Warning BackOff: Back-off restarting failed container web in pod web-4",),
    )
    return [name for name, _ in result.properties()]


def e2e_properties() -> list[str]:
    params = LaunchParams(
        repo="https://git.example.test/homelab/app",
        commit=SHA,
        script_path="scripts/ci/dev-e2e.sh",
        run_id="e2e-9f3c2a1b-20261123101500-9f3e",
        environment="dev",
        timeout_ms=1_800_000,
    )
    result = {
        "ok": True,
        "status": "succeeded",
        "temporaryNamespace": "unidesk-e2e-x",
        "skippedTasks": [{"name": "notify", "reason": "When Expressions evaluated to false"}],
        "toleratedFailures": [{"name": "lint", "reason": "FailureIgnored"}],
    }
    files = RunFiles(
        params.run_id,
        exists=True,
        files={"result.json": json.dumps(result).encode(), "pipelinerun.txt": b"pr-1\n"},
    )
    waited = DevRunResult(params, "origin/master:deploy.json", "local", None, files)
    dispatched = DevRunResult(params, "origin/master:deploy.json", "local", None)
    return [n for r in (waited, dispatched) for n, _ in r.properties()]


def taskrun_properties() -> list[str]:
    root = ET.Element("testsuites")
    runner = (
        b'<testsuite name="dev-e2e"><testcase classname="dev-e2e.pr-1" name="smoke" time="1">'
        b'<failure message="TaskRun pr-1-smoke Failed: step-run exited 1">502</failure>'
        b"</testcase>"
        b'<testcase classname="e2e" name="notify"><skipped message="When Expressions evaluated'
        b' to false"/></testcase>'
        b'<testcase classname="e2e" name="lint"><system-out>tolerated failure (onError: '
        b"continue): TaskRun pr-lint FailureIgnored: 1</system-out></testcase></testsuite>"
    )
    merge_taskruns(root, runner, check_properties=[("run_id", "e2e-1"), ("pipeline_run", "pr-1")])
    return [
        unkeyed(p.get("name", ""))
        for p in root.iter("property")
        if p.get("name", "").startswith("dev-e2e::")
    ]


def unkeyed(name: str) -> str:
    """A property's name without its ``<classname>::<testcase name>::`` key."""
    return name.split("::", 2)[-1]


@pytest.mark.parametrize(
    ("title", "emitted", "placeholder"),
    [
        ("The ci check", lambda: [*ci_properties(), *PLUGIN], "<step>"),
        ("A rollout check", lambda: [*rollout_properties(), *PLUGIN], "<step>"),
        ("The dev e2e check", lambda: [*e2e_properties(), *PLUGIN], "<step>"),
        ("TaskRun testcases", taskrun_properties, "<task>"),
    ],
)
def test_documented_properties_are_exactly_the_written_ones(
    title: str, emitted: object, placeholder: str
) -> None:
    assert callable(emitted)
    assert documented(title) == normalized(emitted(), placeholder)


def test_the_outcome_table_matches_the_outcomes() -> None:
    rows = section(PAGE, "Outcomes").splitlines()
    for cls in OUTCOME_TYPES.values():
        if cls.__name__ == "HomelabError":
            continue
        row = next(line for line in rows if line.startswith(f"| `{cls.outcome}` |"))
        element = "error" if cls.exit_code == 2 else cls.junit
        assert row == f"| `{cls.outcome}` | `<{element}>` | {cls.exit_code} |"


def test_the_xml_example_uses_real_property_names() -> None:
    [example] = [b for b in blocks(PAGE) if b.lang == "xml"]
    names = {unkeyed(p.get("name", "")) for p in ET.fromstring(example.text).iter("property")}
    assert names <= normalized([*ci_properties(), *PLUGIN], "<step>") | {"log_tail:test"}
