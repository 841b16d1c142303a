"""The Tekton controller through the HTTP API: status shapes and scenarios (tektoncd/pipeline
semantics as summarised in shared/reference/kubernetes-tekton.md §5)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.openapi import admit
from pytest_homelab.sim.kube.tekton import RESOURCES, pipeline_run, succeeded
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.tekton.conftest import Api

PRS = "/apis/tekton.dev/v1/namespaces/ci/pipelineruns"
TRS = "/apis/tekton.dev/v1/namespaces/ci/taskruns"
MERGE = {"Content-Type": "application/merge-patch+json"}


def watch_events(api: Api, path: str, since: str) -> list[dict[str, Any]]:
    """Every event since resourceVersion ``since`` (the watch ends after a second)."""
    events: list[dict[str, Any]] = []
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    with httpx.stream("GET", api.sim.url + path, params=params, timeout=10) as response:
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
    return events


def assert_schema_valid(sim: KubeSim) -> None:
    """Everything the controller wrote passes the CRD schema, strictly."""
    for info in RESOURCES:
        for obj in sim.store.select(info.name, "ci")[0]:
            assert admit(info, obj, "Strict", create=False) == []


def test_fresh_run_has_no_status_then_succeeds(sim: KubeSim, api: Api) -> None:
    sim.controllers.timing.observe = 3.0  # scenario seconds until the controller picks it up
    created = api.create_run(pipeline_run("ship", "ci"))
    assert created.status_code == 201
    name = created.json()["metadata"]["name"]
    assert name.startswith("ship-run-") and len(name) == len("ship-run-") + 5
    assert "status" not in api.pr(name)  # not reconciled yet: no conditions at all
    pr = api.wait(name)
    status = pr["status"]
    cond = succeeded(pr)
    assert cond is not None and cond["status"] == "True" and cond["reason"] == "Succeeded"
    assert cond["message"] == "Tasks Completed: 4 (Failed: 0, Cancelled 0), Skipped: 0"
    assert status["startTime"] <= status["completionTime"]
    # Tekton never writes it: the generated PipelineRun reconciler has no PostProcessReconcile
    # (tektoncd/pipeline pkg/client/injection/reconciler/pipeline/v1/pipelinerun/reconciler.go
    # @v1.15.0:245-300; knative's reconcile_common.go:75-82 is the only writer)
    assert "observedGeneration" not in status
    assert pr["metadata"]["labels"]["tekton.dev/pipeline"] == "ship"
    assert [(c["pipelineTaskName"], c["name"], c["kind"]) for c in status["childReferences"]] == [
        (task, f"{name}-{task}", "TaskRun") for task in ("build", "lint", "test", "deploy")
    ]
    assert all(c["apiVersion"] == "tekton.dev/v1" for c in status["childReferences"])
    assert "skippedTasks" not in status
    taskruns = api.taskruns(name)
    assert set(taskruns) == {"build", "lint", "test", "deploy"}
    build = taskruns["build"]
    assert build["metadata"]["name"] == f"{name}-build"
    assert build["metadata"]["labels"] == {
        "tekton.dev/pipeline": "ship",
        "tekton.dev/pipelineRun": name,
        "tekton.dev/pipelineRunUID": pr["metadata"]["uid"],
        "tekton.dev/pipelineTask": "build",
        "tekton.dev/memberOf": "tasks",
    }
    owner = build["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "PipelineRun",
        name,
        pr["metadata"]["uid"],
        True,
    )
    tr_status = build["status"]
    assert tr_status["podName"] == f"{name}-build-pod"
    assert succeeded(build) == {
        **succeeded(build),  # type: ignore[dict-item]
        "status": "True",
        "reason": "Succeeded",
        "message": "All Steps have completed executing",
    }
    assert tr_status["startTime"] and tr_status["completionTime"]
    [step] = tr_status["steps"]
    assert (step["name"], step["container"], step["terminationReason"]) == (
        "run",
        "step-run",
        "Completed",
    )
    assert step["imageID"].startswith("registry.example.test/tekton/step@sha256:")
    assert step["terminated"]["exitCode"] == 0 and step["terminated"]["reason"] == "Completed"
    assert {"startedAt", "finishedAt"} <= set(step["terminated"])
    pod = api.obj(f"/api/v1/namespaces/ci/pods/{name}-build-pod")
    assert pod["status"]["phase"] == "Succeeded"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["step-run"]
    assert pod["metadata"]["labels"]["tekton.dev/taskRun"] == f"{name}-build"
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tekton-pipelines"
    assert pod["metadata"]["labels"]["tekton.dev/pipelineRun"] == name
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "TaskRun"
    log = api.log(f"{name}-build-pod", "step-run")
    assert log.status_code == 200 and log.text == "task build ok\n"
    by_selector = api.get(
        "/api/v1/namespaces/ci/pods", labelSelector=f"tekton.dev/pipelineRun={name}"
    )
    assert len(by_selector.json()["items"]) == 4
    assert_schema_valid(sim)


def test_run_after_orders_the_taskruns(sim: KubeSim, api: Api) -> None:
    sim.tekton.behave("lint", duration=2.0)
    created = api.create_run(pipeline_run("ship", "ci")).json()
    name, since = created["metadata"]["name"], created["metadata"]["resourceVersion"]
    api.wait(name)
    events = watch_events(api, TRS, since)
    added = {
        e["object"]["metadata"]["labels"]["tekton.dev/pipelineTask"]: int(
            e["object"]["metadata"]["resourceVersion"]
        )
        for e in events
        if e["type"] == "ADDED"
    }

    def finished(task: str) -> int:
        return min(
            int(e["object"]["metadata"]["resourceVersion"])
            for e in events
            if e["object"]["metadata"]["labels"]["tekton.dev/pipelineTask"] == task
            and (succeeded(e["object"]) or {}).get("status") == "True"
        )

    assert max(added["build"], added["lint"]) < finished("build")  # no runAfter: together
    assert added["test"] > finished("build")
    assert added["deploy"] > max(finished("test"), finished("lint"))
    running = [
        succeeded(e["object"])
        for e in watch_events(api, PRS, since)
        if (succeeded(e["object"]) or {}).get("status") == "Unknown"
    ]
    reasons = [c["reason"] for c in running if c]
    assert reasons[0] == "Started" and "Running" in reasons
    messages = {c["message"] for c in running if c and c["reason"] == "Running"}
    assert "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 4, Skipped: 0" in messages
    assert "Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 3, Skipped: 0" in messages


def test_failing_task_skips_its_dependents(sim: KubeSim, api: Api) -> None:
    sim.tekton.behave(
        "test", exit_code=1, logs=["FAILED tests/test_api.py::test_login", "1 failed"]
    )
    sim.tekton.behave("lint", duration=3.0)
    created = api.create_run(pipeline_run("ship", "ci")).json()
    name = created["metadata"]["name"]
    pr = api.wait(name)
    cond = succeeded(pr)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "Failed")
    assert cond["message"] == "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 1"
    assert pr["status"]["skippedTasks"] == [
        {"name": "deploy", "reason": "PipelineRun was stopping"}
    ]
    assert pr["status"]["completionTime"]
    stopping = [
        succeeded(e["object"])
        for e in watch_events(api, PRS, created["metadata"]["resourceVersion"])
        if (succeeded(e["object"]) or {}).get("reason") == "PipelineRunStopping"
    ]
    assert stopping and stopping[0] is not None
    assert stopping[0]["message"] == (
        "Tasks Completed: 2 (Failed: 1, Cancelled 0), Incomplete: 1, Skipped: 1"
    )
    test = api.taskruns(name)["test"]
    tr_cond = succeeded(test)
    assert tr_cond is not None and (tr_cond["status"], tr_cond["reason"]) == ("False", "Failed")
    pod = test["status"]["podName"]
    # tektoncd/pipeline pkg/pod/status.go@v1.15.0:938-945
    assert tr_cond["message"] == '"step-run" exited with code 1: Error'
    [step] = test["status"]["steps"]
    assert step["terminated"]["exitCode"] == 1 and step["terminationReason"] == "Error"
    assert api.log(pod, "step-run").text == "FAILED tests/test_api.py::test_login\n1 failed\n"
    assert api.obj(f"/api/v1/namespaces/ci/pods/{pod}")["status"]["phase"] == "Failed"
    assert "deploy" not in api.taskruns(name)
    assert_schema_valid(sim)


def test_steps_run_in_order_and_stop_at_the_failing_one(sim: KubeSim, api: Api) -> None:
    sim.tekton.behave(
        "build",
        steps=["fetch", "compile", "push"],
        exit_code=2,
        failing_step="compile",
        logs={"fetch": ["cloned abc1234"], "compile": ["error: missing symbol"]},
    )
    name = api.run(pipeline_run("ship", "ci"))
    api.wait(name)
    build = api.taskruns(name)["build"]
    steps = {s["name"]: s for s in build["status"]["steps"]}
    assert [s["container"] for s in build["status"]["steps"]] == [
        "step-fetch",
        "step-compile",
        "step-push",
    ]
    assert steps["fetch"]["terminated"]["exitCode"] == 0
    assert steps["compile"]["terminated"]["exitCode"] == 2
    assert steps["push"]["terminationReason"] == "Skipped"
    cond = succeeded(build)
    assert cond is not None and cond["message"].startswith('"step-compile" exited with code 2')
    pod = build["status"]["podName"]
    assert api.log(pod, "step-fetch").text == "cloned abc1234\n"
    assert api.log(pod, "step-compile").text == "error: missing symbol\n"
    assert api.log(pod, "step-push").text == ""
    assert api.log(pod, "step-nope").status_code == 400
    pr = api.pr(name)
    assert {s["name"] for s in pr["status"]["skippedTasks"]} == {"test", "deploy"}


def test_pipeline_timeout(sim: KubeSim, api: Api) -> None:
    sim.tekton.behave("build", duration=1e9)  # never finishes
    name = api.run(pipeline_run("ship", "ci", timeout="5s"))
    pr = api.wait(name)
    cond = succeeded(pr)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "PipelineRunTimeout")
    assert cond["message"] == f'PipelineRun "{name}" failed to finish within "5s"'
    # test waits for the running build, deploy for test: their parents are not done, so they
    # are incomplete, not skipped (pipelinerunresolution.go@v1.15.0:564-575 checkParentsDone)
    assert "skippedTasks" not in pr["status"]
    taskruns = api.taskruns(name)
    sim.wait_until(lambda: succeeded(api.taskruns(name)["build"]) is not None)
    build = api.taskruns(name)["build"]
    tr_cond = succeeded(build)
    # cancelled by the PipelineRun's timeout: TaskRunCancelled, the timeout in the message
    # (timeout.go@v1.15.0:42-54, taskrun.go@v1.15.0:195-199)
    assert tr_cond is not None and (tr_cond["status"], tr_cond["reason"]) == (
        "False",
        "TaskRunCancelled",
    )
    assert tr_cond["message"] == (
        f'TaskRun "{name}-build" was cancelled. '
        "TaskRun cancelled as the PipelineRun it belongs to has timed out."
    )
    assert build["spec"]["status"] == "TaskRunCancelled"
    assert build["spec"]["timeout"] == "1h0m0s"  # the default: the PipelineRun enforces its own
    assert build["status"]["steps"][0]["terminated"]["reason"] == "TaskRunCancelled"
    assert (succeeded(taskruns["lint"]) or {}).get("status") == "True"
    pod = build["status"]["podName"]
    sim.wait_until(lambda: api.log(pod, "step-run").status_code == 404)  # the pod was deleted
    assert_schema_valid(sim)


def test_taskrun_own_timeout(sim: KubeSim, api: Api) -> None:
    body = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": "lonely", "namespace": "ci"},
        "spec": {
            "timeout": "2s",
            "taskSpec": {"steps": [{"name": "sleep", "image": "busybox", "script": "sleep 1d"}]},
        },
    }
    sim.tekton.behave("lonely", duration=1e9, steps=["sleep"])
    assert api.client.post(TRS, json=body).status_code == 201
    sim.wait_until(lambda: succeeded(api.obj(f"{TRS}/lonely")) is not None)
    sim.wait_until(lambda: (succeeded(api.obj(f"{TRS}/lonely")) or {}).get("status") == "False")
    cond = succeeded(api.obj(f"{TRS}/lonely"))
    assert cond is not None and cond["reason"] == "TaskRunTimeout"
    assert cond["message"] == 'TaskRun "lonely" failed to finish within "2s"'


def test_cancel_with_a_merge_patch(sim: KubeSim, api: Api) -> None:
    sim.tekton.behave("build", duration=1e9)
    name = api.run(pipeline_run("ship", "ci"))
    api.wait(name, done=False)
    sim.wait_until(lambda: "build" in api.taskruns(name))
    patched = api.client.patch(
        f"{PRS}/{name}", content=json.dumps({"spec": {"status": "Cancelled"}}), headers=MERGE
    )
    assert patched.status_code == 200 and patched.json()["spec"]["status"] == "Cancelled"
    assert patched.json()["metadata"]["generation"] == 2
    pr = api.wait(name)
    cond = succeeded(pr)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "Cancelled")
    assert cond["message"] == f'PipelineRun "{name}" was cancelled'
    assert "observedGeneration" not in pr["status"]
    sim.wait_until(lambda: succeeded(api.taskruns(name)["build"]) is not None)
    build = api.taskruns(name)["build"]
    tr_cond = succeeded(build)
    assert tr_cond is not None and tr_cond["reason"] == "TaskRunCancelled"
    assert tr_cond["message"] == (
        f'TaskRun "{name}-build" was cancelled. '
        "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
    )
    writes = [(w.actor, w.verb, w.resource) for w in sim.store.writes("ci") if w.name == name]
    assert ("client", "update", "pipelineruns") in writes
    assert ("tekton-pipelines-controller", "update", "pipelineruns") in writes


def test_pending_run_starts_when_released(sim: KubeSim, api: Api) -> None:
    name = api.run(pipeline_run("ship", "ci", status="PipelineRunPending"))
    pr = api.wait(name, done=False)
    cond = succeeded(pr)
    assert cond is not None and (cond["status"], cond["reason"]) == (
        "Unknown",
        "PipelineRunPending",
    )
    assert cond["message"] == f'PipelineRun "{name}" is pending'
    assert "startTime" not in pr["status"]
    sim.advance(30)
    assert api.taskruns(name) == {}
    release = api.client.patch(
        f"{PRS}/{name}", content=json.dumps({"spec": {"status": None}}), headers=MERGE
    )
    assert release.status_code == 200 and "status" not in release.json()["spec"]
    pr = api.wait(name)
    assert (succeeded(pr) or {}).get("reason") == "Succeeded" and pr["status"]["startTime"]


def test_missing_pipeline(sim: KubeSim, api: Api) -> None:
    name = api.run(pipeline_run("nope", "ci"))
    pr = api.wait(name)
    cond = succeeded(pr)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "CouldntGetPipeline")
    assert cond["message"] == (
        f"Error retrieving pipeline for pipelinerun ci/{name}: error when listing pipelines for "
        f'pipelineRun {name}: pipelines.tekton.dev "nope" not found'
    )
    assert pr["status"]["startTime"] and pr["status"]["completionTime"]
    assert api.taskruns(name) == {}


def test_deleting_a_run_collects_its_taskruns_and_pods(sim: KubeSim, api: Api) -> None:
    name = api.run(pipeline_run("ship", "ci"))
    api.wait(name)
    assert api.client.delete(f"{PRS}/{name}").status_code == 200
    sim.wait_until(lambda: api.taskruns(name) == {})
    selector = f"tekton.dev/pipelineRun={name}"
    sim.wait_until(
        lambda: api.get("/api/v1/namespaces/ci/pods", labelSelector=selector).json()["items"] == []
    )
    collected = {w.actor for w in sim.store.writes("ci") if w.verb == "delete"}
    assert "garbage-collector" in collected


def test_scripting_api(sim: KubeSim) -> None:
    sim.tekton.behave("deploy", pipeline="ship", exit_code=3)
    sim.tekton.behave("deploy", exit_code=0)  # the pipeline-specific behaviour wins
    run = sim.tekton.start("ship", "ci", name="scripted")
    sim.wait_until(
        lambda: (
            (succeeded(sim.get("pipelineruns", "ci", "scripted")) or {}).get("status")
            in ("True", "False")
        )
    )
    cond = succeeded(sim.get("pipelineruns", "ci", run["metadata"]["name"]))
    assert cond is not None and cond["reason"] == "Failed"
    sim.tekton.behave("build", duration=1e9)
    sim.tekton.start("ship", "ci", name="stopped")
    wait_until(
        lambda: succeeded(sim.get("pipelineruns", "ci", "stopped")),
        what="the PipelineRun to start running",
    )
    sim.tekton.cancel("ci", "stopped")
    sim.wait_until(
        lambda: (
            (succeeded(sim.get("pipelineruns", "ci", "stopped")) or {}).get("reason") == "Cancelled"
        )
    )
