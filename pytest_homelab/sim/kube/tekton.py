"""Tekton in the Kubernetes simulator: ``tekton.dev/v1`` PipelineRuns, TaskRuns and Pipelines,
with a controller that runs them on the scenario clock like tektoncd/pipeline does.

A PipelineRun has no status until the controller has observed it; then ``Succeeded`` is Unknown
(Started, Running or PipelineRunStopping with the "Tasks Completed: …" message), and finally True
(Succeeded, or Completed with skipped tasks) or False (Failed, PipelineRunTimeout, Cancelled,
CouldntGetPipeline). Each pipeline task becomes a TaskRun ``<pr>-<task>`` (``kmeta.ChildName``)
with a pod ``<taskrun>-pod`` whose ``step-<name>`` containers run for a scripted duration, exit
with a scripted code and log scripted lines::

    sim.apply(pipeline("ship", "ci", ["build", "test", "smoke"], run_after={"smoke": ["test"]}))
    sim.tekton.behave("smoke", exit_code=1, logs=["smoke test failed: 502"])
    sim.tekton.behave("test", duration=1e9)  # never finishes
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_homelab.sim.kube.controllers import NODES, Controllers, Key
from pytest_homelab.sim.kube.objects import image_id, owner_reference
from pytest_homelab.sim.kube.openapi import tekton_crds
from pytest_homelab.sim.kube.store import ApiError, Obj, ResourceInfo, Store

GROUP, VERSION = "tekton.dev", "v1"
API_VERSION = f"{GROUP}/{VERSION}"
ACTOR = "tekton-pipelines-controller"
DEFAULT_IMAGE = "registry.example.test/tekton/step:latest"
DEFAULT_TIMEOUT = 3600.0  # config-defaults default-timeout-minutes: 60
CANCEL_STATES = ("Cancelled", "CancelledRunFinally", "StoppedRunFinally")
CANCELLED_BY_PIPELINE = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
TIMED_OUT_BY_PIPELINE = "TaskRun cancelled as the PipelineRun it belongs to has timed out."
RUNNING_MESSAGE = "Not all Steps in the Task have finished executing"


def _resource(kind: str, fallback_plural: str) -> ResourceInfo:
    crd = tekton_crds()["kinds"].get(kind)
    if crd is None:  # Pipeline: no CRD shipped, so no schema; the real names
        return ResourceInfo(
            fallback_plural,
            GROUP,
            VERSION,
            kind,
            True,
            kind.lower(),
            subresources=("status",),
            categories=("tekton", "tekton-pipelines"),
        )
    return ResourceInfo(
        crd["plural"],
        GROUP,
        VERSION,
        kind,
        crd["scope"] == "Namespaced",
        crd["singular"],
        tuple(crd["shortNames"]),
        subresources=tuple(crd["subresources"]),
        categories=tuple(crd["categories"]),
    )


RESOURCES = (
    _resource("PipelineRun", "pipelineruns"),
    _resource("TaskRun", "taskruns"),
    _resource("Pipeline", "pipelines"),
)


# -- names and durations -------------------------------------------------------------------------


def child_name(parent: str, suffix: str) -> str:
    """knative.dev/pkg ``kmeta.ChildName``: ``parent + suffix``, hashed to fit 63 characters."""
    longest, head = 63, 63 - 32
    if len(parent) <= longest - len(suffix):
        return parent + suffix
    if head - len(suffix) <= 0:
        digest = hashlib.md5((parent + suffix).encode()).hexdigest()
        name = parent[:head] + digest
        if longest - len(name) > 0:
            name += suffix[: longest - len(name)]
        return re.sub(r"[^a-zA-Z0-9]+$", "", name)
    return parent[: head - len(suffix)] + hashlib.md5(parent.encode()).hexdigest() + suffix


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration (``1h0m0s``, ``30m``, ``90s``, ``0``) in seconds. Raises ValueError."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"time: invalid duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: ``1h0m0s``, ``1m30s``, ``500ms``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{_trim(ns / size)}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{text}{_trim(rest / 1e9)}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


# -- builders ------------------------------------------------------------------------------------


def pipeline(
    name: str,
    namespace: str,
    tasks: Sequence[str],
    run_after: Mapping[str, Sequence[str]] | None = None,
) -> Obj:
    """A Pipeline whose tasks reference Tasks of the same name (``taskRef``), with ``runAfter``."""
    after = run_after or {}
    unknown = set(after) - set(tasks) | {p for ps in after.values() for p in ps} - set(tasks)
    if unknown:
        raise ValueError(f"runAfter names unknown tasks: {sorted(unknown)}")
    spec_tasks: list[Obj] = []
    for task in tasks:
        entry: Obj = {"name": task, "taskRef": {"kind": "Task", "name": task}}
        if after.get(task):
            entry["runAfter"] = list(after[task])
        spec_tasks.append(entry)
    return {
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"tasks": spec_tasks},
    }


def pipeline_run(
    pipeline_name: str,
    namespace: str,
    *,
    name: str | None = None,
    generate_name: str | None = None,
    timeout: str | None = None,
    status: str | None = None,
    params: Mapping[str, str] | None = None,
) -> Obj:
    """A PipelineRun of ``pipeline_name`` (``generateName: <pipeline>-run-`` unless named)."""
    meta: Obj = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{pipeline_name}-run-"
    spec: Obj = {"pipelineRef": {"name": pipeline_name}}
    if params:
        spec["params"] = [{"name": k, "value": v} for k, v in params.items()]
    if timeout is not None:
        spec["timeouts"] = {"pipeline": timeout}
    if status is not None:
        spec["status"] = status
    return {"apiVersion": API_VERSION, "kind": "PipelineRun", "metadata": meta, "spec": spec}


@dataclass(frozen=True)
class TaskBehavior:
    """How a pipeline task runs: its steps share ``duration`` scenario seconds in order; the
    ``failing_step`` (default: the last) exits with ``exit_code``; ``logs`` per step."""

    duration: float = 0.3
    steps: tuple[str, ...] = ("run",)
    exit_code: int = 0
    failing_step: str | None = None
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE

    @property
    def failing_index(self) -> int | None:
        if self.exit_code == 0:
            return None
        return self.steps.index(self.failing_step) if self.failing_step else len(self.steps) - 1

    def lines(self, task: str, step: str) -> list[str]:
        if step in self.logs:
            return list(self.logs[step])
        if self.failing_index is not None and self.steps[self.failing_index] == step:
            return [f"task {task} step {step} failed with exit code {self.exit_code}"]
        return [f"task {task} ok"] if len(self.steps) == 1 else [f"task {task} step {step} ok"]


# -- status helpers ------------------------------------------------------------------------------


def succeeded(obj: Obj) -> Obj | None:
    """The ``Succeeded`` condition, looked up by type."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Succeeded":
            return dict(cond)
    return None


def _done(obj: Obj) -> bool:
    cond = succeeded(obj)
    return cond is not None and cond.get("status") in ("True", "False")


def _with_condition(status: Obj, state: str, reason: str, message: str, iso: str) -> Obj:
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "Succeeded"), None)
    cond: Obj = {"type": "Succeeded", "status": state, "reason": reason, "message": message}
    same = old is not None and all(old.get(k) == cond[k] for k in ("status", "reason", "message"))
    cond["lastTransitionTime"] = old["lastTransitionTime"] if same and old else iso
    return {**status, "conditions": [cond]}


@dataclass
class _Step:
    name: str
    image: str
    start: float
    end: float
    exit_code: int = 0
    skipped: bool = False  # after a failed step: never runs


@dataclass
class _TaskRun:
    uid: str
    started: float
    task: str
    behavior: TaskBehavior
    steps: list[_Step]
    pod: str
    logged: set[str] = field(default_factory=set)

    @property
    def ends(self) -> float:
        failed = next((s for s in self.steps if s.exit_code != 0), None)
        return failed.end if failed is not None else self.steps[-1].end


@dataclass
class _PipelineRun:
    uid: str
    seen: float
    started: float | None = None


class Tekton:
    """The Tekton controller and the scripting API for tests (``KubeSim.tekton``)."""

    def __init__(
        self,
        store: Store,
        controllers: Controllers,
        set_log: Callable[[str, str, str, list[str]], None],
    ) -> None:
        self.store = store
        self.controllers = controllers
        self._set_log = set_log
        self.default = TaskBehavior()
        self._behaviors: dict[tuple[str | None, str], TaskBehavior] = {}
        self._prs: dict[Key, _PipelineRun] = {}
        self._trs: dict[Key, _TaskRun] = {}
        for info in RESOURCES:
            store.register(info)
        controllers.reconcilers["pipelineruns"] = self._pipelinerun
        controllers.reconcilers["taskruns"] = self._taskrun
        controllers.pod_runners.append(self._claim_pod)

    # -- scripting --------------------------------------------------------------------------------

    def behave(
        self,
        task: str,
        *,
        pipeline: str | None = None,
        duration: float | None = None,
        steps: Sequence[str] | None = None,
        exit_code: int = 0,
        failing_step: str | None = None,
        logs: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        image: str | None = None,
    ) -> TaskBehavior:
        """Script pipeline task ``task`` (of ``pipeline``, or of any pipeline). ``logs`` is a
        list for the deciding step (the failing one, else the last) or a mapping per step."""
        names = tuple(steps or self.default.steps)
        if failing_step is not None and failing_step not in names:
            raise ValueError(f"failing_step {failing_step!r} is not one of the steps {names}")
        if isinstance(logs, Mapping):
            per_step = {step: tuple(lines) for step, lines in logs.items()}
        elif logs is not None:
            decider = failing_step or names[-1]
            per_step = {decider: tuple(logs)}
        else:
            per_step = {}
        behavior = TaskBehavior(
            duration=self.default.duration if duration is None else duration,
            steps=names,
            exit_code=exit_code,
            failing_step=failing_step,
            logs=per_step,
            image=image or self.default.image,
        )
        with self.store.lock:
            self._behaviors[(pipeline, task)] = behavior
        return behavior

    def behavior(self, task: str, pipeline: str | None = None) -> TaskBehavior:
        return (
            self._behaviors.get((pipeline, task))
            or self._behaviors.get((None, task))
            or self.default
        )

    def start(self, pipeline_name: str, namespace: str, **kwargs: Any) -> Obj:
        """Create a PipelineRun of ``pipeline_name`` as the test script (see ``pipeline_run``)."""
        return self.store.create(
            "pipelineruns", pipeline_run(pipeline_name, namespace, **kwargs), actor="test"
        )

    def cancel(self, namespace: str, name: str) -> Obj:
        """What ``tkn pr cancel`` does: set ``spec.status: Cancelled``."""

        def change(obj: Obj) -> None:
            obj["spec"]["status"] = "Cancelled"

        return self.store.mutate("pipelineruns", namespace, name, change, actor="test")

    # -- helpers ----------------------------------------------------------------------------------

    def _iso(self, now: float) -> str:
        return self.store.clock.iso(now)

    def _write_status(self, resource: str, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        meta = obj["metadata"]
        self.store.mutate(
            resource,
            meta["namespace"],
            meta["name"],
            lambda o: o.__setitem__("status", copy.deepcopy(status)),
            actor=ACTOR,
            status=True,
        )

    def _children(self, pr: Obj) -> dict[str, Obj]:
        uid = pr["metadata"]["uid"]
        return {
            tr["metadata"].get("labels", {}).get("tekton.dev/pipelineTask", ""): tr
            for tr in self.store.live("taskruns", pr["metadata"]["namespace"])
            if any(r.get("uid") == uid for r in tr["metadata"].get("ownerReferences") or [])
        }

    # -- PipelineRuns -----------------------------------------------------------------------------

    def _pipelinerun(self, key: Key, now: float) -> None:
        pr = self.store.find(*key)
        if pr is None:
            self._prs.pop(key, None)
            return
        meta, spec = pr["metadata"], pr.get("spec") or {}
        state = self._prs.get(key)
        if state is None or state.uid != meta["uid"]:
            state = self._prs[key] = _PipelineRun(meta["uid"], now)
        if _done(pr):
            return
        observe = self.controllers.timing.observe
        if now - state.seen < observe:  # the controller has not picked it up yet
            self.controllers.wake(key, state.seen + observe)
            return
        iso, name = self._iso(now), meta["name"]
        status: Obj = {**(pr.get("status") or {}), "observedGeneration": meta.get("generation", 1)}
        if "startTime" not in status:
            if spec.get("status") == "PipelineRunPending":
                pending = f'PipelineRun "{name}" is pending'
                self._write_status(
                    "pipelineruns",
                    pr,
                    _with_condition(status, "Unknown", "PipelineRunPending", pending, iso),
                )
                return
            state.started = now
            status["startTime"] = iso
            self._write_status(
                "pipelineruns", pr, _with_condition(status, "Unknown", "Started", "", iso)
            )
            return  # the write makes the key dirty again: the next pass runs the tasks
        started = now if state.started is None else state.started
        children = self._children(pr)
        if spec.get("status") in CANCEL_STATES:
            self._stop_children(children, CANCELLED_BY_PIPELINE)
            self._finish(pr, status, "Cancelled", f'PipelineRun "{name}" was cancelled', now)
            return
        try:
            timeout = parse_duration(str((spec.get("timeouts") or {}).get("pipeline", "1h")))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        if timeout > 0 and now >= started + timeout:
            self._stop_children(children, TIMED_OUT_BY_PIPELINE)
            tasks = [t["name"] for t in (status.get("pipelineSpec") or {}).get("tasks", [])]
            skipped = [
                {"name": t, "reason": "PipelineRun timeout has been reached"}
                for t in tasks
                if t not in children
                and t not in {s["name"] for s in status.get("skippedTasks") or []}
            ]
            if skipped:
                status["skippedTasks"] = [*(status.get("skippedTasks") or []), *skipped]
            message = f'PipelineRun "{name}" failed to finish within "{format_duration(timeout)}"'
            self._finish(pr, status, "PipelineRunTimeout", message, now)
            return
        if timeout > 0:
            self.controllers.wake(key, started + timeout)
        pipeline_spec = status.get("pipelineSpec") or self._resolve(pr)
        if pipeline_spec is None:
            ref = (spec.get("pipelineRef") or {}).get("name", "")
            message = (
                f"Error retrieving pipeline for pipelinerun {meta['namespace']}/{name}: "
                f"error when listing pipelines for pipelineRun {name}: "
                f'pipelines.tekton.dev "{ref}" not found'
            )
            self._finish(pr, status, "CouldntGetPipeline", message, now)
            return
        status["pipelineSpec"] = pipeline_spec
        self._schedule(pr, pipeline_spec, status, children, now)

    def _resolve(self, pr: Obj) -> Obj | None:
        spec = pr.get("spec") or {}
        inline = spec.get("pipelineSpec")
        if isinstance(inline, dict):
            return copy.deepcopy(inline)
        ref = (spec.get("pipelineRef") or {}).get("name")
        found = self.store.find("pipelines", pr["metadata"]["namespace"], ref) if ref else None
        if found is None:
            return None
        meta = pr["metadata"]
        if (meta.get("labels") or {}).get("tekton.dev/pipeline") != ref:

            def label(o: Obj) -> None:
                o["metadata"].setdefault("labels", {})["tekton.dev/pipeline"] = ref

            self.store.mutate("pipelineruns", meta["namespace"], meta["name"], label, actor=ACTOR)
        return copy.deepcopy(found.get("spec") or {})

    def _schedule(
        self, pr: Obj, pipeline_spec: Obj, status: Obj, children: dict[str, Obj], now: float
    ) -> None:
        tasks: list[Obj] = [t for t in pipeline_spec.get("tasks") or [] if t.get("name")]
        outcome: dict[str, str] = {}
        for task_name, tr in children.items():
            cond = succeeded(tr)
            if cond is None or cond.get("status") == "Unknown":
                outcome[task_name] = "running"
            elif cond["status"] == "True":
                outcome[task_name] = "succeeded"
            elif cond.get("reason") == "TaskRunCancelled":
                outcome[task_name] = "cancelled"
            else:
                outcome[task_name] = "failed"
        skipped = {s["name"]: s for s in status.get("skippedTasks") or []}
        stopping = any(o in ("failed", "cancelled") for o in outcome.values())
        for task in tasks:
            name = task["name"]
            if name in outcome or name in skipped:
                continue
            if stopping:
                skipped[name] = {"name": name, "reason": "PipelineRun was stopping"}
                continue
            parents = task.get("runAfter") or []
            if any(p in skipped for p in parents):
                skipped[name] = {"name": name, "reason": "Parent Tasks were skipped"}
            elif all(outcome.get(p) == "succeeded" for p in parents):
                children[name] = self._create_taskrun(pr, task)
                outcome[name] = "running"
        counts = {k: sum(1 for o in outcome.values() if o == k) for k in ("failed", "cancelled")}
        done = sum(1 for o in outcome.values() if o != "running")
        incomplete = len(tasks) - done - len(skipped)
        if skipped:
            status["skippedTasks"] = list(skipped.values())
        status["childReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "name": children[t["name"]]["metadata"]["name"],
                "pipelineTaskName": t["name"],
            }
            for t in tasks
            if t["name"] in children
        ]
        summary = (
            f"Tasks Completed: {done} (Failed: {counts['failed']}, Cancelled {counts['cancelled']})"
        )
        name, iso = pr["metadata"]["name"], self._iso(now)
        if incomplete > 0:
            reason = "PipelineRunStopping" if stopping else "Running"
            message = f"{summary}, Incomplete: {incomplete}, Skipped: {len(skipped)}"
            self._write_status(
                "pipelineruns", pr, _with_condition(status, "Unknown", reason, message, iso)
            )
            return
        message = f"{summary}, Skipped: {len(skipped)}"
        if counts["failed"] or counts["cancelled"]:
            reason = "Failed" if counts["failed"] else "Cancelled"
            self._finish(pr, status, reason, message, now)
            return
        status["completionTime"] = iso
        reason = "Completed" if skipped else "Succeeded"
        self._write_status(
            "pipelineruns", pr, _with_condition(status, "True", reason, message, iso)
        )

    def _finish(self, pr: Obj, status: Obj, reason: str, message: str, now: float) -> None:
        iso = self._iso(now)
        status = {**status, "completionTime": iso}
        self._write_status(
            "pipelineruns", pr, _with_condition(status, "False", reason, message, iso)
        )

    def _stop_children(self, children: dict[str, Obj], message: str) -> None:
        """Cancel running TaskRuns as the PipelineRun controller does: patch their spec."""
        for tr in children.values():
            if _done(tr) or (tr.get("spec") or {}).get("status") == "TaskRunCancelled":
                continue

            def cancel(o: Obj) -> None:
                o["spec"]["status"] = "TaskRunCancelled"
                o["spec"]["statusMessage"] = message

            meta = tr["metadata"]
            self.store.mutate("taskruns", meta["namespace"], meta["name"], cancel, actor=ACTOR)

    def _create_taskrun(self, pr: Obj, task: Obj) -> Obj:
        meta = pr["metadata"]
        ref = (pr.get("spec") or {}).get("pipelineRef") or {}
        labels = {
            **(meta.get("labels") or {}),
            "tekton.dev/pipelineRun": meta["name"],
            "tekton.dev/pipelineRunUID": meta["uid"],
            "tekton.dev/pipelineTask": task["name"],
            "tekton.dev/memberOf": "tasks",
        }
        labels["tekton.dev/pipeline"] = ref.get("name") or meta["name"]
        spec: Obj = {"serviceAccountName": "default"}
        if isinstance(task.get("taskSpec"), dict):
            spec["taskSpec"] = copy.deepcopy(task["taskSpec"])
        else:
            spec["taskRef"] = {"kind": "Task", **(task.get("taskRef") or {"name": task["name"]})}
        if task.get("params"):
            spec["params"] = copy.deepcopy(task["params"])
        timeout = ((pr.get("spec") or {}).get("timeouts") or {}).get("pipeline")
        spec["timeout"] = format_duration(parse_duration(timeout)) if timeout else "1h0m0s"
        taskrun: Obj = {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {
                "name": child_name(meta["name"], f"-{task['name']}"),
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [owner_reference(pr)],
            },
            "spec": spec,
        }
        try:
            return self.store.create("taskruns", taskrun, actor=ACTOR)
        except ApiError as err:
            if err.code != 409:
                raise
            return self.store.get("taskruns", meta["namespace"], taskrun["metadata"]["name"])

    # -- TaskRuns ---------------------------------------------------------------------------------

    def _taskrun(self, key: Key, now: float) -> None:
        tr = self.store.find(*key)
        if tr is None:
            self._trs.pop(key, None)
            return
        if _done(tr):
            return
        meta, spec = tr["metadata"], tr.get("spec") or {}
        run = self._trs.get(key)
        if run is not None and run.uid != meta["uid"]:
            run = None
        name = meta["name"]
        if spec.get("status") == "TaskRunCancelled":
            message = spec.get("statusMessage", "")
            reason = "TaskRunTimeout" if message == TIMED_OUT_BY_PIPELINE else "TaskRunCancelled"
            self._fail(tr, run, now, reason, f'TaskRun "{name}" was cancelled. {message}')
            return
        if run is None:
            if spec.get("status") == "TaskRunPending":
                status = _with_condition(
                    dict(tr.get("status") or {}),
                    "Unknown",
                    "TaskRunPending",
                    f'TaskRun "{name}" is pending',
                    self._iso(now),
                )
                self._write_status("taskruns", tr, status)
                return
            run = self._trs[key] = self._start(tr, now)
        try:
            timeout = parse_duration(str(spec.get("timeout", "1h")))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        if timeout > 0 and now >= run.started + timeout:
            message = f'TaskRun "{name}" failed to finish within "{format_duration(timeout)}"'
            self._fail(tr, run, now, "TaskRunTimeout", message)
            return
        if timeout > 0:
            self.controllers.wake(key, run.started + timeout)
        self._sync(tr, run, now)

    def _start(self, tr: Obj, now: float) -> _TaskRun:
        meta, spec = tr["metadata"], tr.get("spec") or {}
        labels = meta.get("labels") or {}
        task = (
            labels.get("tekton.dev/pipelineTask")
            or (spec.get("taskRef") or {}).get("name")
            or meta["name"]
        )
        behavior = self.behavior(task, labels.get("tekton.dev/pipeline"))
        inline = [s for s in (spec.get("taskSpec") or {}).get("steps") or [] if s.get("name")]
        if inline and not any(s in behavior.steps for s in (x["name"] for x in inline)):
            behavior = TaskBehavior(
                duration=behavior.duration,
                steps=tuple(s["name"] for s in inline),
                exit_code=behavior.exit_code,
                logs=behavior.logs,
                image=behavior.image,
            )
        images = {s["name"]: s.get("image", behavior.image) for s in inline}
        share = behavior.duration / len(behavior.steps)
        failing = behavior.failing_index
        steps: list[_Step] = []
        for n, step in enumerate(behavior.steps):
            begin = now + n * share
            item = _Step(step, images.get(step, behavior.image), begin, begin + share)
            if failing is not None and n == failing:
                item.exit_code = behavior.exit_code
            elif failing is not None and n > failing:
                item.skipped, item.start, item.end = True, steps[failing].end, steps[failing].end
            steps.append(item)
        pod_name = child_name(meta["name"], "-pod")
        pod_labels = {
            **labels,
            "app.kubernetes.io/managed-by": "tekton-pipelines",
            "tekton.dev/taskRun": meta["name"],
            "tekton.dev/taskRunUID": meta["uid"],
        }
        if "tekton.dev/task" not in pod_labels and spec.get("taskRef"):
            pod_labels["tekton.dev/task"] = spec["taskRef"].get("name", "")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": meta["namespace"],
                "labels": pod_labels,
                "annotations": {
                    "pipeline.tekton.dev/release": "v1-sim",
                    "tekton.dev/ready": "READY",
                },
                "ownerReferences": [owner_reference(tr)],
            },
            "spec": {
                "containers": [
                    {
                        "name": f"step-{s.name}",
                        "image": s.image,
                        "command": ["/tekton/bin/entrypoint"],
                        "args": ["-post_file", f"/tekton/run/{n}/out", "-entrypoint", "/bin/sh"],
                        "workingDir": "/workspace",
                        "terminationMessagePath": "/tekton/termination",
                        "terminationMessagePolicy": "File",
                    }
                    for n, s in enumerate(steps)
                ],
                "restartPolicy": "Never",
                "serviceAccountName": spec.get("serviceAccountName", "default"),
                "nodeName": NODES[
                    int(hashlib.sha1(pod_name.encode()).hexdigest(), 16) % len(NODES)
                ],
                "schedulerName": "default-scheduler",
                "enableServiceLinks": False,
            },
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
        with self.store.lock:
            if self.store.find("pods", meta["namespace"], pod_name) is None:
                self.store.create("pods", pod, actor=ACTOR)
        for s in steps:
            self._set_log(meta["namespace"], pod_name, f"step-{s.name}", [])
        return _TaskRun(meta["uid"], now, task, behavior, steps, pod_name)

    def _claim_pod(self, pod: Obj, now: float) -> bool:
        """TaskRun pods are run by the TaskRun reconciler, not by the simulator's kubelet."""
        labels = pod["metadata"].get("labels") or {}
        return labels.get("app.kubernetes.io/managed-by") == "tekton-pipelines"

    def _step_state(self, step: _Step, now: float, reason: str | None = None) -> tuple[Obj, str]:
        """(container state, terminationReason) of a step at ``now`` (``reason``: stopped)."""
        started, finished = self._iso(step.start), self._iso(min(now, step.end))
        if now >= step.end:
            if step.skipped:
                terminated = {"exitCode": 1, "reason": "Error", "startedAt": started}
                return {"terminated": {**terminated, "finishedAt": finished}}, "Skipped"
            code = step.exit_code
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": finished,
            }
            return {"terminated": terminated}, "Completed" if code == 0 else "Error"
        if reason is not None:
            begun = self._iso(min(now, step.start))
            terminated = {
                "exitCode": 1,
                "reason": reason,
                "startedAt": begun,
                "finishedAt": finished,
            }
            return {"terminated": terminated}, reason
        if now >= step.start:
            return {"running": {"startedAt": started}}, ""
        return {"waiting": {"reason": "PodInitializing"}}, ""

    def _steps(self, run: _TaskRun, now: float, reason: str | None = None) -> list[Obj]:
        out = []
        for step in run.steps:
            state, why = self._step_state(step, now, reason)
            entry: Obj = {
                "name": step.name,
                "container": f"step-{step.name}",
                "imageID": image_id(step.image),
                **state,
            }
            if why:
                entry["terminationReason"] = why
            out.append(entry)
        return out

    def _sync(self, tr: Obj, run: _TaskRun, now: float) -> None:
        meta = tr["metadata"]
        namespace = meta["namespace"]
        for step in run.steps:
            if now >= step.start and not step.skipped and step.name not in run.logged:
                run.logged.add(step.name)
                lines = run.behavior.lines(run.task, step.name)
                self._set_log(namespace, run.pod, f"step-{step.name}", lines)
        steps = self._steps(run, now)
        done = now >= run.ends
        failed = next((s for s in run.steps if s.exit_code != 0), None)
        pod = self.store.find("pods", namespace, run.pod)
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            self._pod_status(pod, run, steps, now, done, failed is not None)
        iso = self._iso(now)
        status: Obj = {
            **(tr.get("status") or {}),
            "podName": run.pod,
            "startTime": self._iso(run.started),
            "steps": steps,
            "observedGeneration": meta.get("generation", 1),
            "taskSpec": {"steps": [{"name": s.name, "image": s.image} for s in run.steps]},
        }
        if not done:
            status = _with_condition(status, "Unknown", "Running", RUNNING_MESSAGE, iso)
            upcoming = [t for s in run.steps for t in (s.start, s.end) if t > now]
            if upcoming:
                self.controllers.wake(("taskruns", namespace, meta["name"]), min(upcoming))
        elif failed is not None:
            message = (
                f'"step-{failed.name}" exited with code {failed.exit_code} '
                f'(image: "{image_id(failed.image)}"); for logs run: '
                f"kubectl -n {namespace} logs {run.pod} -c step-{failed.name}\n"
            )
            status = _with_condition(status, "False", "Failed", message, iso)
            status["completionTime"] = iso
        else:
            message = "All Steps have completed executing"
            status = _with_condition(status, "True", "Succeeded", message, iso)
            status["completionTime"] = iso
        self._write_status("taskruns", tr, status)

    def _pod_status(
        self, pod: Obj, run: _TaskRun, steps: list[Obj], now: float, done: bool, failed: bool
    ) -> None:
        iso = self._iso(now)
        statuses = []
        for step, state in zip(run.steps, steps, strict=True):
            status: Obj = {
                "name": f"step-{step.name}",
                "image": step.image,
                "imageID": image_id(step.image),
                "ready": "running" in state,
                "restartCount": 0,
                "started": "running" in state,
                "state": {k: state[k] for k in ("running", "terminated", "waiting") if k in state},
            }
            if "waiting" not in state:
                digest = hashlib.sha256(f"{pod['metadata']['uid']}/{step.name}".encode())
                status["containerID"] = f"containerd://{digest.hexdigest()}"
            statuses.append(status)
        phase = ("Failed" if failed else "Succeeded") if done else "Running"
        ready = "True" if not done and all(s["ready"] for s in statuses) else "False"
        previous = pod.get("status") or {}
        new = {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": iso},
                {"type": "Ready", "status": ready, "lastTransitionTime": iso},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": iso},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": iso},
            ],
            "hostIP": "127.0.1.10",
            "podIP": "127.0.2.10",
            "startTime": previous.get("startTime", self._iso(run.started)),
            "qosClass": "BestEffort",
            "containerStatuses": statuses,
        }
        if {k: v for k, v in previous.items() if k != "conditions"} == {
            k: v for k, v in new.items() if k != "conditions"
        }:
            return
        meta = pod["metadata"]
        self.store.mutate(
            "pods",
            meta["namespace"],
            meta["name"],
            lambda o: o.__setitem__("status", new),
            actor="kubelet",
            status=True,
        )

    def _fail(self, tr: Obj, run: _TaskRun | None, now: float, reason: str, message: str) -> None:
        """End a TaskRun early (cancelled, timed out): stop its steps and delete its pod."""
        meta = tr["metadata"]
        iso = self._iso(now)
        status: Obj = {**(tr.get("status") or {}), "observedGeneration": meta.get("generation", 1)}
        if run is not None:
            status["steps"] = self._steps(run, now, reason)
            status.setdefault("startTime", self._iso(run.started))
            pod = self.store.find("pods", meta["namespace"], run.pod)
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):

                def mark(o: Obj) -> None:
                    o["metadata"]["deletionTimestamp"] = iso
                    o["metadata"]["deletionGracePeriodSeconds"] = 30

                self.store.mutate("pods", meta["namespace"], run.pod, mark, actor=ACTOR)
        status = _with_condition(status, "False", reason, message, iso)
        status["completionTime"] = iso
        self._write_status("taskruns", tr, status)
