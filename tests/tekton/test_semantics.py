"""finally, when, onError: continue, retries, graceful cancel and stop, timeouts.tasks and
parameter validation, as tektoncd/pipeline v1.15.0 does them (the citations name the code)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.openapi import admit
from pytest_homelab.sim.kube.tekton import RESOURCES, pipeline, succeeded, when
from tests.tekton.test_controller import assert_schema_valid
from tests.tekton.test_reasons import history, lonely, retried

STATE = "pkg/reconciler/pipelinerun/resources/pipelinerunstate.go@v1.15.0"


@pytest.fixture(autouse=True)
def schema_valid(sim: KubeSim) -> Iterator[None]:
    """Whatever the controller wrote in each scenario passes the CRDs' schemas, strictly."""
    yield
    assert_schema_valid(sim)


def finished(sim: KubeSim, name: str, resource: str = "pipelineruns") -> dict[str, Any]:
    def done() -> bool:
        cond = succeeded(sim.get(resource, "ci", name))
        return cond is not None and cond["status"] in ("True", "False")

    sim.wait_until(done, seconds=20)
    return sim.get(resource, "ci", name)


def cond_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    cond = succeeded(obj)
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


def run(sim: KubeSim, pipeline_name: str, **kwargs: Any) -> str:
    return str(sim.tekton.start(pipeline_name, "ci", **kwargs)["metadata"]["name"])


def taskrun(sim: KubeSim, pr: str, task: str) -> dict[str, Any]:
    return sim.get("taskruns", "ci", f"{pr}-{task}")


def test_when_false_skips_and_the_run_is_completed(sim: KubeSim) -> None:
    guard = [when("$(params.mode)", "in", ["full"])]
    sim.apply(
        pipeline(
            "maybe",
            "ci",
            ["build", "deploy", "notify"],
            {"deploy": ["build"], "notify": ["deploy"]},
            when_={"deploy": guard},
            params=[{"name": "mode", "default": "quick"}],
        )
    )
    name = run(sim, "maybe")
    pr = finished(sim, name)
    # pipelinerunstate.go@v1.15.0:612-616; a task skipped by `when` does not skip its children
    # (pipelinerunresolution.go@v1.15.0:526-543)
    assert cond_of(pr) == (
        "True",
        "Completed",
        "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 1",
    )
    assert pr["status"]["skippedTasks"] == [
        {
            "name": "deploy",
            "reason": "When Expressions evaluated to false",
            "whenExpressions": guard,
        }
    ]
    assert [c["pipelineTaskName"] for c in pr["status"]["childReferences"]] == ["build", "notify"]
    full = finished(sim, run(sim, "maybe", params={"mode": "full"}))
    assert cond_of(full)[:2] == ("True", "Succeeded") and "skippedTasks" not in full["status"]
    refs = {c["pipelineTaskName"]: c for c in full["status"]["childReferences"]}
    assert refs["deploy"]["whenExpressions"] == guard


def test_on_error_continue_is_a_tolerated_failure(sim: KubeSim) -> None:
    sim.apply(
        pipeline(
            "lenient", "ci", ["lint", "build"], {"build": ["lint"]}, on_error={"lint": "continue"}
        )
    )
    sim.tekton.behave("lint", exit_code=3)
    name = run(sim, "lenient")
    pr = finished(sim, name)
    # pipelinerunstate.go@v1.15.0:586-588: the ignored failure is in the message, the run passes
    assert cond_of(pr) == (
        "True",
        "Succeeded",
        "Tasks Completed: 2 (Failed: 1 (Ignored: 1), Cancelled 0), Skipped: 0",
    )
    lint = taskrun(sim, name, "lint")
    assert (
        lint["metadata"]["annotations"]["pipeline.tekton.dev/pipeline-task-on-error"] == "continue"
    )
    # pod/status.go@v1.15.0:608-612, 938-945
    assert cond_of(lint) == ("False", "FailureIgnored", '"step-run" exited with code 3: Error')
    assert cond_of(taskrun(sim, name, "build"))[:2] == ("True", "Succeeded")


def test_finally_runs_after_a_failure_and_the_run_fails(sim: KubeSim) -> None:
    sim.apply(
        pipeline("fin", "ci", ["build", "deploy"], {"deploy": ["build"]}, finally_tasks=["report"])
    )
    sim.tekton.behave("build", exit_code=1)
    sim.tekton.behave("report", duration=1.0)
    name = run(sim, "fin")
    pr = finished(sim, name)
    assert cond_of(pr) == (
        "False",
        "Failed",
        "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1",
    )
    assert pr["status"]["skippedTasks"] == [
        {"name": "deploy", "reason": "PipelineRun was stopping"}
    ]
    assert pr["status"]["finallyStartTime"]
    report = taskrun(sim, name, "report")
    assert report["metadata"]["labels"]["tekton.dev/memberOf"] == "finally"
    assert cond_of(report)[:2] == ("True", "Succeeded")
    # with finally tasks pending a failure keeps the run Running, not Stopping (STATE:656-660)
    assert "PipelineRunStopping" not in {r for _, r, _ in history(sim, "pipelineruns", name)}


def graceful(sim: KubeSim, how: str, build: float) -> tuple[str, dict[str, Any]]:
    sim.apply(
        pipeline("fin", "ci", ["build", "deploy"], {"deploy": ["build"]}, finally_tasks=["report"])
    )
    sim.tekton.behave("build", duration=build)
    sim.tekton.behave("report", duration=1.0)
    name = run(sim, "fin")
    sim.wait_until(lambda: sim.store.find("taskruns", "ci", f"{name}-build") is not None)
    sim.tekton.cancel("ci", name, how)
    return name, finished(sim, name)


def test_graceful_cancel_cancels_tasks_and_runs_finally(sim: KubeSim) -> None:
    name, pr = graceful(sim, "CancelledRunFinally", 1e9)
    # pipelinerunstate.go@v1.15.0:626-630 and the interim reason at 651-652
    assert cond_of(pr) == ("False", "Cancelled", f'PipelineRun "{name}" was cancelled')
    assert "CancelledRunningFinally" in {r for _, r, _ in history(sim, "pipelineruns", name)}
    assert cond_of(taskrun(sim, name, "build"))[:2] == ("False", "TaskRunCancelled")
    assert cond_of(taskrun(sim, name, "report"))[:2] == ("True", "Succeeded")
    # once build is a cancelled (False) TaskRun, the run is stopping
    # (pipelinerunresolution.go@v1.15.0:463-468)
    assert pr["status"]["skippedTasks"] == [
        {"name": "deploy", "reason": "PipelineRun was stopping"}
    ]


def test_graceful_stop_lets_running_tasks_finish(sim: KubeSim) -> None:
    name, pr = graceful(sim, "StoppedRunFinally", 1.0)
    assert cond_of(pr) == ("False", "Cancelled", f'PipelineRun "{name}" was cancelled')
    assert "StoppedRunningFinally" in {r for _, r, _ in history(sim, "pipelineruns", name)}
    assert cond_of(taskrun(sim, name, "build"))[:2] == ("True", "Succeeded")
    assert pr["status"]["skippedTasks"] == [
        {"name": "deploy", "reason": "PipelineRun was gracefully stopped"}
    ]
    assert cond_of(taskrun(sim, name, "report"))[:2] == ("True", "Succeeded")


def test_tasks_timeout_cancels_tasks_then_runs_finally(sim: KubeSim) -> None:
    sim.apply(
        pipeline("fin", "ci", ["build", "deploy"], {"deploy": ["build"]}, finally_tasks=["report"])
    )
    sim.tekton.behave("build", duration=1e9)
    sim.tekton.behave("report", duration=1.0)
    name = run(sim, "fin", timeouts={"pipeline": "1m", "tasks": "2s"})
    pr = finished(sim, name)
    # pipelinerunstate.go@v1.15.0:554-566, 646-649; pipelinerun.go@v1.15.0:902-919
    assert cond_of(pr) == (
        "False",
        "PipelineRunTimeout",
        f'PipelineRun "{name}" failed due to tasks failed to finish within "2s"',
    )
    assert "PipelineRunTimeoutRunningFinally" in {
        r for _, r, _ in history(sim, "pipelineruns", name)
    }
    build = taskrun(sim, name, "build")
    assert cond_of(build) == (
        "False",
        "TaskRunCancelled",
        f'TaskRun "{name}-build" was cancelled. '
        "TaskRun cancelled as the PipelineRun it belongs to has timed out.",
    )
    assert cond_of(taskrun(sim, name, "report"))[:2] == ("True", "Succeeded")


def test_retries_archive_the_failed_attempt_and_use_a_new_pod(sim: KubeSim) -> None:
    sim.apply(pipeline("flaky", "ci", ["build"], retries={"build": 2}))
    sim.tekton.behave("build", exit_code=1, fails_first=1, logs=["boom"])
    name = run(sim, "flaky")
    pr = finished(sim, name)
    assert cond_of(pr)[:2] == ("True", "Succeeded")
    build = taskrun(sim, name, "build")
    assert build["spec"]["retries"] == 2
    # taskrun.go@v1.15.0:1381-1393, pod/pod.go@v1.15.0:519-522
    [first] = build["status"]["retriesStatus"]
    assert first["podName"] == f"{name}-build-pod"
    assert (succeeded({"status": first}) or {}).get("reason") == "Failed"
    assert build["status"]["podName"] == f"{name}-build-pod-retry1"
    assert "ToBeRetried" in {r for _, r, _ in history(sim, "taskruns", f"{name}-build")}
    sim.tekton.behave("build", exit_code=1)
    exhausted = finished(sim, run(sim, "flaky"))
    assert cond_of(exhausted)[:2] == ("False", "Failed")


def test_parameter_validation(sim: KubeSim) -> None:
    sim.apply(
        pipeline(
            "needs",
            "ci",
            ["build"],
            params=[
                {"name": "revision"},
                {"name": "branch"},
                {"name": "targets", "type": "array", "default": []},
            ],
        )
    )
    name = run(sim, "needs")
    # pipelinerun.go@v1.15.0:628-635, resources/validate_params.go@v1.15.0:56-77, errors.go:23,61-67
    assert cond_of(finished(sim, name)) == (
        "False",
        "ParameterMissing",
        f"[User error] PipelineRun ci/{name} is missing some parameters required by Pipeline "
        "ci/needs: pipelineRun missing parameters: [revision branch]",
    )
    name = run(sim, "needs", params={"revision": "a", "branch": "b", "targets": "all"})
    assert cond_of(finished(sim, name)) == (
        "False",
        "ParameterTypeMismatch",
        f"[User error] PipelineRun ci/{name} parameters have mismatching types with Pipeline "
        "ci/needs's parameters: parameters have inconsistent types : [targets]",
    )
    assert sim.store.find("taskruns", "ci", f"{name}-build") is None


def test_a_refused_cancel_is_retried(sim: KubeSim) -> None:
    sim.tekton.behave("build", duration=1e9)
    sim.tekton.refuse_taskrun_patches("denied")
    name = run(sim, "ship")
    sim.wait_until(lambda: sim.store.find("taskruns", "ci", f"{name}-build") is not None)
    sim.tekton.cancel("ci", name)
    sim.wait_until(
        lambda: cond_of(sim.get("pipelineruns", "ci", name))[1] == "PipelineRunCouldntCancel"
    )
    status, _, message = cond_of(sim.get("pipelineruns", "ci", name))
    # cancel.go@v1.15.0:134-146: Unknown, so a waiter keeps waiting
    assert status == "Unknown"
    assert message.startswith(
        f'PipelineRun "{name}" was cancelled but had errors trying to cancel TaskRuns and/or Runs: '
    )
    assert f"failed to patch TaskRun `{name}-build` with cancellation: denied" in message
    sim.tekton.refuse_taskrun_patches(None)
    assert cond_of(finished(sim, name))[:2] == ("False", "Cancelled")


def test_finally_timeout_cancels_the_finally_tasks(sim: KubeSim) -> None:
    sim.apply(
        pipeline("fin", "ci", ["build", "deploy"], {"deploy": ["build"]}, finally_tasks=["report"])
    )
    sim.tekton.behave("report", duration=1e9)
    name = run(sim, "fin", timeouts={"pipeline": "1m", "finally": "2s"})
    pr = finished(sim, name)
    # pipelinerun.go@v1.15.0:920-937 cancels the running finally tasks; a TaskRun cancelled for a
    # timeout counts as failed (pipelinerunstate.go@v1.15.0:847-849)
    assert cond_of(pr) == (
        "False",
        "Failed",
        "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 0",
    )
    report = taskrun(sim, name, "report")
    assert cond_of(report)[1] == "TaskRunCancelled"
    assert report["spec"]["statusMessage"] == (
        "TaskRun cancelled as the PipelineRun it belongs to has timed out."
    )
    assert report["spec"]["timeout"] == "1h0m0s"  # 2s is below the default: not copied


def _cancel_pending(sim: KubeSim) -> str:
    """A TaskRun cancelled before it ever started: no pod was made for it."""
    _, name = lonely({"status": "TaskRunPending"})(sim)
    sim.wait_until(lambda: succeeded(sim.get("taskruns", "ci", name)) is not None)  # pending

    def cancel(o: dict[str, Any]) -> None:
        o["spec"]["status"] = "TaskRunCancelled"

    sim.store.mutate("taskruns", "ci", name, cancel, actor="test")
    finished(sim, name, "taskruns")
    return name


def _retried(sim: KubeSim) -> str:
    _, name = retried(sim)
    finished(sim, name, "taskruns")
    return name


@pytest.mark.parametrize("scenario", [_cancel_pending, _retried])
def test_every_taskrun_status_written_has_its_pod_name(
    sim: KubeSim, scenario: Callable[[KubeSim], str]
) -> None:
    # TaskRunStatusFields.PodName has no omitempty (tektoncd/pipeline pkg/apis/pipeline/v1/
    # taskrun_types.go@01444f4: `PodName string json:"podName"`), so Tekton writes "podName": ""
    # while a TaskRun has no pod (pending, cancelled before it started, reset by a retry,
    # taskrun.go@v1.15.0:1381-1393), and the CRD schema requires it. Every version written is
    # checked, not only the last: a graceful cancel that caught a TaskRun before its pod failed
    # the schema check only now and then, when the teardown saw that version.
    name = scenario(sim)
    versions = [
        e.obj
        for e in sim.store.events_after(sim.store.compacted)
        if e.resource == "taskruns" and e.obj["metadata"].get("name") == name
    ]
    statuses = [v["status"] for v in versions if "status" in v]
    assert statuses and all("podName" in s for s in statuses), statuses
    info = next(i for i in RESOURCES if i.name == "taskruns")
    assert [admit(info, v, "Strict", create=False) for v in versions] == [[]] * len(versions)
    assert "" in {s["podName"] for s in statuses}  # the version without a pod says so
