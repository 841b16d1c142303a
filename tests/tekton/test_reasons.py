"""The Tekton reason conformance table: every Succeeded-condition reason the controller sets on a
PipelineRun or TaskRun (tektoncd/pipeline v1.15.0, commit 70f730815249a12aa725266fba7f3ff39653aaea),
where the real controller sets it, how the simulator produces it, and how the dev e2e runner
(scripts/ci/dev-e2e.sh) and the e2e check classify it. Each produced row runs its scenario and
finds the reason in the object's history. docs/simulators.md carries the same table."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.tekton import pipeline, succeeded, when

SRC = "tektoncd/pipeline"
PR_TYPES = f"{SRC} pkg/apis/pipeline/v1/pipelinerun_types.go@v1.15.0"
TR_TYPES = f"{SRC} pkg/apis/pipeline/v1/taskrun_types.go@v1.15.0"
STATE = f"{SRC} pkg/reconciler/pipelinerun/resources/pipelinerunstate.go@v1.15.0"
PR_REC = f"{SRC} pkg/reconciler/pipelinerun/pipelinerun.go@v1.15.0"
TR_REC = f"{SRC} pkg/reconciler/taskrun/taskrun.go@v1.15.0"
Scenario = Callable[[KubeSim], tuple[str, str]]  # -> (resource, name) whose history to read


@dataclass(frozen=True)
class Row:
    kind: str  # PipelineRun or TaskRun
    reason: str
    status: str  # True, False or Unknown
    source: str  # where the real controller sets it
    runner: str  # how scripts/ci/dev-e2e.sh and the e2e check classify it
    scenario: Scenario | None  # None: the simulator does not produce it (see `runner`)


# -- scenarios -------------------------------------------------------------------------------------


def _run(sim: KubeSim, pipeline_name: str = "ship", **kwargs: Any) -> tuple[str, str]:
    created = sim.tekton.start(pipeline_name, "ci", **kwargs)
    return "pipelineruns", str(created["metadata"]["name"])


def _taskrun_of(sim: KubeSim, pr: str, task: str) -> str:
    sim.wait_until(lambda: sim.store.find("taskruns", "ci", f"{pr}-{task}") is not None)
    return f"{pr}-{task}"


def plain(sim: KubeSim) -> tuple[str, str]:
    return _run(sim)


def stopping(sim: KubeSim) -> tuple[str, str]:
    sim.tekton.behave("test", exit_code=1)
    sim.tekton.behave("lint", duration=3.0)
    return _run(sim)


def failing(sim: KubeSim) -> tuple[str, str]:
    sim.tekton.behave("test", exit_code=1)
    return _run(sim)


def with_finally(sim: KubeSim) -> None:
    sim.apply(
        pipeline("fin", "ci", ["build", "deploy"], {"deploy": ["build"]}, finally_tasks=["report"])
    )
    sim.tekton.behave("report", duration=2.0)


def gracefully(how: str, build: float) -> Scenario:
    def scenario(sim: KubeSim) -> tuple[str, str]:
        with_finally(sim)
        sim.tekton.behave("build", duration=build)
        _, name = _run(sim, "fin")
        _taskrun_of(sim, name, "build")
        sim.tekton.cancel("ci", name, how)
        return "pipelineruns", name

    return scenario


def tasks_timeout(sim: KubeSim) -> tuple[str, str]:
    with_finally(sim)
    sim.tekton.behave("build", duration=1e9)
    return _run(sim, "fin", timeouts={"pipeline": "1m", "tasks": "2s"})


def pending(sim: KubeSim) -> tuple[str, str]:
    return _run(sim, status="PipelineRunPending")


def refused(cancel: bool) -> Scenario:
    def scenario(sim: KubeSim) -> tuple[str, str]:
        sim.tekton.behave("build", duration=1e9)
        sim.tekton.refuse_taskrun_patches('admission webhook "policy" denied the request')
        _, name = _run(sim, timeout=None if cancel else "2s")
        _taskrun_of(sim, name, "build")
        if cancel:
            sim.tekton.cancel("ci", name)

        def seen() -> bool:
            return any(
                c[1].startswith("PipelineRunCouldnt") for c in history(sim, "pipelineruns", name)
            )

        sim.wait_until(seen)
        sim.tekton.refuse_taskrun_patches(None)  # the next reconcile gets through
        return "pipelineruns", name

    return scenario


def completed(sim: KubeSim) -> tuple[str, str]:
    sim.apply(
        pipeline(
            "maybe",
            "ci",
            ["build", "deploy"],
            {"deploy": ["build"]},
            when_={"deploy": [when("$(params.mode)", "in", ["full"])]},
            params=[{"name": "mode", "type": "string", "default": "quick"}],
        )
    )
    return _run(sim, "maybe")


def timed_out(sim: KubeSim) -> tuple[str, str]:
    sim.tekton.behave("build", duration=1e9)
    return _run(sim, timeout="2s")


def cancelled(sim: KubeSim) -> tuple[str, str]:
    sim.tekton.behave("build", duration=1e9)
    _, name = _run(sim)
    _taskrun_of(sim, name, "build")
    sim.tekton.cancel("ci", name)
    return "pipelineruns", name


def missing_pipeline(sim: KubeSim) -> tuple[str, str]:
    return _run(sim, "nope")


def with_params(sim: KubeSim) -> None:
    sim.apply(
        pipeline(
            "needs",
            "ci",
            ["build"],
            params=[{"name": "revision"}, {"name": "targets", "type": "array", "default": []}],
        )
    )


def missing_param(sim: KubeSim) -> tuple[str, str]:
    with_params(sim)
    return _run(sim, "needs")


def mismatching_param(sim: KubeSim) -> tuple[str, str]:
    with_params(sim)
    return _run(sim, "needs", params={"revision": "abc", "targets": "all"})


def ignored(sim: KubeSim) -> tuple[str, str]:
    sim.apply(pipeline("lenient", "ci", ["lint", "build"], on_error={"lint": "continue"}))
    sim.tekton.behave("lint", exit_code=1)
    _, name = _run(sim, "lenient")
    return "taskruns", _taskrun_of(sim, name, "lint")


def taskrun_of(scenario: Scenario, task: str) -> Scenario:
    def inner(sim: KubeSim) -> tuple[str, str]:
        _, name = scenario(sim)
        return "taskruns", _taskrun_of(sim, name, task)

    return inner


def retried(sim: KubeSim) -> tuple[str, str]:
    sim.apply(pipeline("flaky", "ci", ["build"], retries={"build": 2}))
    sim.tekton.behave("build", exit_code=1, fails_first=1)
    _, name = _run(sim, "flaky")
    return "taskruns", _taskrun_of(sim, name, "build")


def lonely(spec: dict[str, Any]) -> Scenario:
    def scenario(sim: KubeSim) -> tuple[str, str]:
        sim.tekton.behave("lonely", duration=1e9, steps=["sleep"])
        body = {
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": "lonely", "namespace": "ci"},
            "spec": {"taskSpec": {"steps": [{"name": "sleep", "image": "busybox"}]}, **spec},
        }
        sim.store.create("taskruns", body, actor="test")
        return "taskruns", "lonely"

    return scenario


# -- the table -------------------------------------------------------------------------------------

NOT_PRODUCED = "not produced by the simulator; the runner reports any other False as failed"
TABLE = [
    Row("PipelineRun", "Started", "Unknown", f"{PR_TYPES}:349-350,463-479", "waiting", plain),
    Row("PipelineRun", "Running", "Unknown", f"{STATE}:578-579,663-670", "waiting", plain),
    Row("PipelineRun", "PipelineRunStopping", "Unknown", f"{STATE}:656-660", "waiting", stopping),
    Row(
        "PipelineRun",
        "CancelledRunningFinally",
        "Unknown",
        f"{STATE}:651-652",
        "waiting",
        gracefully("CancelledRunFinally", 1e9),
    ),
    Row(
        "PipelineRun",
        "StoppedRunningFinally",
        "Unknown",
        f"{STATE}:654-655",
        "waiting",
        gracefully("StoppedRunFinally", 1.0),
    ),
    Row(
        "PipelineRun",
        "PipelineRunTimeoutRunningFinally",
        "Unknown",
        f"{STATE}:646-649",
        "waiting",
        tasks_timeout,
    ),
    Row("PipelineRun", "PipelineRunPending", "Unknown", f"{PR_REC}:557-559", "waiting", pending),
    Row(
        "PipelineRun",
        "PipelineRunCouldntCancel",
        "Unknown",
        f"{SRC} pkg/reconciler/pipelinerun/cancel.go@v1.15.0:134-146,224-233",
        "waiting (not final: the controller retries)",
        refused(cancel=True),
    ),
    Row(
        "PipelineRun",
        "PipelineRunCouldntTimeOut",
        "Unknown",
        f"{SRC} pkg/reconciler/pipelinerun/timeout.go@v1.15.0:74-103",
        "waiting (not final: the controller retries)",
        refused(cancel=False),
    ),
    Row(
        "PipelineRun",
        "ResolvingPipelineRef",
        "Unknown",
        f"{PR_REC}:564-567",
        "waiting; " + NOT_PRODUCED,
        None,
    ),
    Row("PipelineRun", "Succeeded", "True", f"{STATE}:583-584", "pass", plain),
    Row(
        "PipelineRun",
        "Completed",
        "True",
        f"{STATE}:612-616",
        "pass; skipped tasks become <skipped> testcases with Tekton's reason",
        completed,
    ),
    Row("PipelineRun", "Failed", "False", f"{STATE}:622-625", "failed", failing),
    Row(
        "PipelineRun",
        "PipelineRunTimeout",
        "False",
        f"{PR_TYPES}:176-184; {STATE}:544-566",
        "timeout",
        timed_out,
    ),
    Row(
        "PipelineRun",
        "Cancelled",
        "False",
        f"{SRC} pkg/reconciler/pipelinerun/cancel.go@v1.15.0:111-133; {STATE}:626-634",
        "cancelled",
        cancelled,
    ),
    Row(
        "PipelineRun",
        "CouldntGetPipeline",
        "False",
        f"{PR_REC}:576-582",
        "failed",
        missing_pipeline,
    ),
    Row(
        "PipelineRun",
        "ParameterMissing",
        "False",
        f"{PR_REC}:628-635",
        "failed",
        missing_param,
    ),
    Row(
        "PipelineRun",
        "ParameterTypeMismatch",
        "False",
        f"{PR_REC}:637-645",
        "failed",
        mismatching_param,
    ),
    *(
        Row("PipelineRun", reason, "False", f"{PR_TYPES}:{lines}", "failed; " + NOT_PRODUCED, None)
        for reason, lines in (
            ("PipelineValidationFailed", "406-408"),
            ("CouldntGetTask", "400-402"),
            ("InvalidWorkspaceBindings", "385-387"),
            ("InvalidTaskRunSpecs", "388-390"),
            ("ObjectParameterMissKeys", "395-397"),
            ("ParamArrayIndexingInvalid", "398-399"),
            ("PipelineInvalidGraph", "413-415"),
            ("CouldntGetPipelineResult", "409-412"),
            ("InvalidMatrixParameterTypes", "422-423"),
            ("InvalidTaskResultReference", "424-426"),
            ("InvalidPipelineResultReference", "427-429"),
            ("RequiredWorkspaceMarkedOptional", "430-432"),
            ("ResourceVerificationFailed", "436-438"),
            ("CreateRunFailed", "439-440"),
            ("CELEvaluationFailed", "441-442"),
            ("InvalidParamValue", "443-444"),
        )
    ),
    Row("TaskRun", "Running", "Unknown", f"{SRC} pkg/pod/status.go@v1.15.0:626-628", "-", plain),
    Row(
        "TaskRun",
        "TaskRunPending",
        "Unknown",
        f"{TR_REC}:202-205",
        "-",
        lonely({"status": "TaskRunPending"}),
    ),
    Row("TaskRun", "ToBeRetried", "Unknown", f"{TR_REC}:491-493,1381-1393", "-", retried),
    Row(
        "TaskRun",
        "Succeeded",
        "True",
        f"{SRC} pkg/pod/status.go@v1.15.0:1067-1074",
        "pass",
        taskrun_of(plain, "build"),
    ),
    Row(
        "TaskRun",
        "Failed",
        "False",
        f"{SRC} pkg/pod/status.go@v1.15.0:608-620,938-945",
        "failure naming the TaskRun, with its log tail",
        taskrun_of(failing, "test"),
    ),
    Row(
        "TaskRun",
        "FailureIgnored",
        "False",
        f"{SRC} pkg/pod/status.go@v1.15.0:608-612; {PR_REC}:1400-1402",
        "tolerated: a pass labelled tolerated, with its log tail",
        ignored,
    ),
    Row(
        "TaskRun",
        "TaskRunCancelled",
        "False",
        f"{TR_REC}:195-199; {SRC} pkg/reconciler/pipelinerun/timeout.go@v1.15.0:42-54",
        "failure (cancelled; a PipelineRun timeout says so in the message)",
        taskrun_of(timed_out, "build"),
    ),
    Row(
        "TaskRun",
        "TaskRunTimeout",
        "False",
        f"{TR_REC}:210-219",
        "failure",
        lonely({"timeout": "2s"}),
    ),
    *(
        Row("TaskRun", reason, "False", f"{TR_TYPES}:{lines}", "failure; " + NOT_PRODUCED, None)
        for reason, lines in (
            ("TaskRunImagePullFailed", "216-217"),
            ("CreateContainerConfigError", "218-219"),
            ("PodCreationFailed", "220-221"),
            ("TaskRunValidationFailed", "232-233"),
            ("TaskValidationFailed", "235-236"),
            ("TaskRunResolutionFailed", "229-230"),
            ("PodEvicted", "241-242"),
            ("StepOOM", "244-245"),
        )
    ),
]


def history(sim: KubeSim, resource: str, name: str) -> list[tuple[str, str, str]]:
    """Every (status, reason, message) the object's Succeeded condition went through."""
    seen: list[tuple[str, str, str]] = []
    for event in sim.store.events_after(sim.store.compacted):
        if event.resource != resource or event.obj["metadata"].get("name") != name:
            continue
        cond = succeeded(event.obj)
        if cond is not None:
            entry = (cond["status"], cond["reason"], cond.get("message", ""))
            if not seen or seen[-1] != entry:
                seen.append(entry)
    return seen


PRODUCED = [r for r in TABLE if r.scenario is not None]


@pytest.mark.parametrize("row", PRODUCED, ids=[f"{r.kind}-{r.reason}-{r.status}" for r in PRODUCED])
def test_the_simulator_produces_the_reason(sim: KubeSim, row: Row) -> None:
    assert row.scenario is not None
    resource, name = row.scenario(sim)

    def reached() -> bool:
        return any((s, r) == (row.status, row.reason) for s, r, _ in history(sim, resource, name))

    sim.wait_until(reached, seconds=20)


def test_every_row_cites_the_pinned_source() -> None:
    cite = re.compile(r"^tektoncd/pipeline \S+\.go@v1\.15\.0:\d+(-\d+)?(,\d+(-\d+)?)*$")
    for row in TABLE:
        for part in row.source.split("; "):
            assert cite.match(part), (row.reason, part)
    assert len({(r.kind, r.reason, r.status) for r in TABLE}) == len(TABLE)


def test_the_docs_carry_the_table() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "simulators.md").read_text()
    for row in TABLE:
        assert re.search(rf"\|\s*{row.kind}\s*\|\s*`{row.reason}`\s*\|\s*{row.status}\s*\|", doc), (
            row.kind,
            row.reason,
        )
