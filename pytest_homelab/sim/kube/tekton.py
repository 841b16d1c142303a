"""Tekton in the Kubernetes simulator: ``tekton.dev/v1`` PipelineRuns, TaskRuns and Pipelines,
with a controller that runs them on the scenario clock like tektoncd/pipeline v1.15.0 does.

A PipelineRun has no status until the controller has observed it; then ``Succeeded`` is Unknown
(Started, Running, PipelineRunStopping, CancelledRunningFinally, StoppedRunningFinally,
PipelineRunTimeoutRunningFinally, PipelineRunCouldntCancel, … with the "Tasks Completed: …"
message), and finally True (Succeeded, or Completed with skipped tasks) or False (Failed,
PipelineRunTimeout, Cancelled, CouldntGetPipeline, ParameterMissing, ParameterTypeMismatch).
Each pipeline task becomes a TaskRun ``<pr>-<task>`` (``kmeta.ChildName``) with a pod
``<taskrun>-pod`` (``-pod-retryN`` for retries) whose ``step-<name>`` containers run for a
scripted duration, exit with a scripted code and log scripted lines. ``finally`` tasks, ``when``
expressions, ``onError: continue``, ``retries``, ``timeouts.tasks``/``timeouts.finally``,
graceful cancel and stop behave as the real controller's (see docs/simulators.md)::

    sim.apply(pipeline("ship", "ci", ["build", "test", "smoke"], run_after={"smoke": ["test"]}))
    sim.tekton.behave("smoke", exit_code=1, logs=["smoke test failed: 502"])
    sim.tekton.behave("test", duration=1e9)  # never finishes

The controller never writes ``status.observedGeneration`` on PipelineRuns or TaskRuns: Tekton's
generated reconcilers do not call knative's PostProcessReconcile (which would), so ``kubectl
wait --for=condition=Succeeded`` has no generation to compare and never hangs on a patched run.
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
# spec.status values a user writes (pkg/apis/pipeline/v1/pipelinerun_types.go@v1.15.0:321-334)
CANCELLED, CANCELLED_RUN_FINALLY, STOPPED_RUN_FINALLY = (
    "Cancelled",
    "CancelledRunFinally",
    "StoppedRunFinally",
)
CANCEL_STATES = (CANCELLED, CANCELLED_RUN_FINALLY, STOPPED_RUN_FINALLY)
# TaskRun spec.statusMessage the PipelineRun controller patches in (taskrun_types.go:112-116)
CANCELLED_BY_PIPELINE = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
TIMED_OUT_BY_PIPELINE = "TaskRun cancelled as the PipelineRun it belongs to has timed out."
RUNNING_MESSAGE = "Not all Steps in the Task have finished executing"
ON_ERROR_ANNOTATION = "pipeline.tekton.dev/pipeline-task-on-error"  # pipelinerun_types.go:448
USER_ERROR = "[User error] "  # pkg/apis/pipeline/errors/errors.go@v1.15.0:23

# status.skippedTasks[].reason (pipelinerun_types.go@v1.15.0:583-604)
WHEN_SKIP = "When Expressions evaluated to false"
PARENT_SKIP = "Parent Tasks were skipped"
STOPPING_SKIP = "PipelineRun was stopping"
GRACEFULLY_CANCELLED_SKIP = "PipelineRun was gracefully cancelled"
GRACEFULLY_STOPPED_SKIP = "PipelineRun was gracefully stopped"
PIPELINE_TIMEOUT_SKIP = "PipelineRun timeout has been reached"
TASKS_TIMEOUT_SKIP = "PipelineRun Tasks timeout has been reached"
FINALLY_TIMEOUT_SKIP = "PipelineRun Finally timeout has been reached"
TIMEOUT_SKIPS = (PIPELINE_TIMEOUT_SKIP, TASKS_TIMEOUT_SKIP, FINALLY_TIMEOUT_SKIP)


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


def when(input_: str, operator: str, values: Sequence[str]) -> Obj:
    """One ``when`` expression (``operator``: ``in`` or ``notin``)."""
    if operator not in ("in", "notin"):
        raise ValueError(f"when operator {operator!r} is not in or notin")
    return {"input": input_, "operator": operator, "values": list(values)}


def pipeline(
    name: str,
    namespace: str,
    tasks: Sequence[str],
    run_after: Mapping[str, Sequence[str]] | None = None,
    *,
    finally_tasks: Sequence[str] = (),
    when_: Mapping[str, Sequence[Obj]] | None = None,
    on_error: Mapping[str, str] | None = None,
    retries: Mapping[str, int] | None = None,
    params: Sequence[Obj] = (),
) -> Obj:
    """A Pipeline whose tasks reference Tasks of the same name (``taskRef``), with ``runAfter``,
    ``finally`` tasks, ``when`` expressions, ``onError`` (``continue``), ``retries`` per task and
    the Pipeline's ``params`` (ParamSpecs: name, optional type and default)."""
    after = run_after or {}
    everything = [*tasks, *finally_tasks]
    unknown = set(after) - set(tasks) | {p for ps in after.values() for p in ps} - set(tasks)
    if unknown:
        raise ValueError(f"runAfter names unknown tasks: {sorted(unknown)}")
    for label, mapping in (("when", when_), ("onError", on_error), ("retries", retries)):
        stray = set(mapping or {}) - set(everything)
        if stray:
            raise ValueError(f"{label} names unknown tasks: {sorted(stray)}")
    if set(tasks) & set(finally_tasks) or len(set(everything)) != len(everything):
        raise ValueError("pipeline task names must be unique across tasks and finally")

    def entry(task: str) -> Obj:
        item: Obj = {"name": task, "taskRef": {"kind": "Task", "name": task}}
        if after.get(task):
            item["runAfter"] = list(after[task])
        if (when_ or {}).get(task):
            item["when"] = [dict(w) for w in (when_ or {})[task]]
        if (on_error or {}).get(task):
            item["onError"] = (on_error or {})[task]
        if (retries or {}).get(task):
            item["retries"] = int((retries or {})[task])
        return item

    spec: Obj = {"tasks": [entry(t) for t in tasks]}
    if finally_tasks:
        spec["finally"] = [entry(t) for t in finally_tasks]
    if params:
        spec["params"] = [dict(p) for p in params]
    return {
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def pipeline_run(
    pipeline_name: str,
    namespace: str,
    *,
    name: str | None = None,
    generate_name: str | None = None,
    timeout: str | None = None,
    timeouts: Mapping[str, str] | None = None,
    status: str | None = None,
    params: Mapping[str, str | list[str] | dict[str, str]] | None = None,
) -> Obj:
    """A PipelineRun of ``pipeline_name`` (``generateName: <pipeline>-run-`` unless named);
    ``timeout`` is ``timeouts.pipeline``, ``timeouts`` the whole block."""
    meta: Obj = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{pipeline_name}-run-"
    spec: Obj = {"pipelineRef": {"name": pipeline_name}}
    if params:
        spec["params"] = [{"name": k, "value": v} for k, v in params.items()]
    block = dict(timeouts or {})
    if timeout is not None:
        block["pipeline"] = timeout
    if block:
        spec["timeouts"] = block
    if status is not None:
        spec["status"] = status
    return {"apiVersion": API_VERSION, "kind": "PipelineRun", "metadata": meta, "spec": spec}


@dataclass(frozen=True)
class TaskBehavior:
    """How a pipeline task runs: its steps share ``duration`` scenario seconds in order; the
    ``failing_step`` (default: the last) exits with ``exit_code``; ``logs`` per step. With
    ``fails_first`` set, only the first that many attempts fail (the retries then pass)."""

    duration: float = 0.3
    steps: tuple[str, ...] = ("run",)
    exit_code: int = 0
    failing_step: str | None = None
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE
    fails_first: int | None = None

    @property
    def failing_index(self) -> int | None:
        if self.exit_code == 0:
            return None
        return self.steps.index(self.failing_step) if self.failing_step else len(self.steps) - 1

    def attempt(self, number: int) -> TaskBehavior:
        """The behaviour of attempt ``number`` (0 = the first run, 1 = the first retry, …)."""
        if self.fails_first is not None and number >= self.fails_first:
            return TaskBehavior(self.duration, self.steps, 0, None, self.logs, self.image)
        return self

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


def _go_list(names: Sequence[str]) -> str:
    """Go's ``%s`` of a []string: ``[a b]``."""
    return "[" + " ".join(names) + "]"


def _param_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


_PARAM_REF = re.compile(r"\$\(params\.([A-Za-z0-9_.-]+)\)|\$\(params\[['\"]([^'\"]+)['\"]\]\)")
_TASK_STATUS_REF = re.compile(r"\$\(tasks\.([A-Za-z0-9_-]+)\.status\)|\$\(tasks\.status\)")


def _substitute(text: str, params: Mapping[str, Any], task_status: Mapping[str, str]) -> str:
    def param(match: re.Match[str]) -> str:
        value = params.get(match.group(1) or match.group(2))
        return value if isinstance(value, str) else match.group(0)

    def status(match: re.Match[str]) -> str:
        key = f"tasks.{match.group(1)}.status" if match.group(1) else "tasks.status"
        return task_status.get(key, match.group(0))

    return _TASK_STATUS_REF.sub(status, _PARAM_REF.sub(param, text))


def _when_allows(
    expressions: Sequence[Obj], params: Mapping[str, Any], task_status: Mapping[str, str]
) -> bool:
    """WhenExpressions.AllowsExecution: every expression holds (``in``/``notin``)."""
    for expr in expressions:
        value = _substitute(str(expr.get("input", "")), params, task_status)
        values = [_substitute(str(v), params, task_status) for v in expr.get("values") or []]
        inside = value in values
        if (expr.get("operator") == "notin") == inside:
            return False
    return True


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
    attempt: int = 0
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
    finally_started: float | None = None


@dataclass
class _Facts:
    """What one reconcile of a PipelineRun knows (resources.PipelineRunFacts)."""

    tasks: list[Obj]
    finals: list[Obj]
    outcome: dict[str, str]  # pipeline task -> running|succeeded|failed|cancelled|timed-out
    params: dict[str, Any]
    spec_status: str
    elapsed: float
    pipeline_timeout: float | None
    tasks_timeout: float | None
    finally_elapsed: float | None
    finally_timeout: float | None
    continue_on_error: set[str]
    skips: dict[str, str | None] = field(default_factory=dict)

    @property
    def dag(self) -> dict[str, Obj]:
        return {t["name"]: t for t in self.tasks}

    def failure(self, name: str) -> bool:
        return self.outcome.get(name) in ("failed", "cancelled", "timed-out")

    def stopping(self) -> bool:
        """IsStopping (pipelinerunstate.go@v1.15.0:420-430)."""
        return any(
            self.failure(t["name"]) and t["name"] not in self.continue_on_error for t in self.tasks
        )

    def pipeline_timed_out(self) -> bool:
        return bool(self.pipeline_timeout) and self.elapsed >= (self.pipeline_timeout or 0)

    def tasks_timed_out(self) -> bool:
        return bool(self.tasks_timeout) and self.elapsed >= (self.tasks_timeout or 0)

    def finally_timed_out(self) -> bool:
        return (
            bool(self.finally_timeout)
            and self.finally_elapsed is not None
            and self.finally_elapsed >= (self.finally_timeout or 0)
        )

    def done(self, name: str) -> bool:
        """isDone: skipped, succeeded or failed (pipelinerunresolution.go@v1.15.0:161-163)."""
        return self.skip(name) is not None or self.outcome.get(name) in (
            "succeeded",
            "failed",
            "cancelled",
            "timed-out",
        )

    def parents_done(self, task: Obj) -> bool:
        return all(self.done(p) for p in task.get("runAfter") or [])

    def dag_done(self) -> bool:
        return all(self.done(t["name"]) for t in self.tasks)

    def task_status(self) -> dict[str, str]:
        """$(tasks.<t>.status) and $(tasks.status) (pipelinerunstate.go@v1.15.0:704-763)."""
        out: dict[str, str] = {}
        for t in self.tasks:
            state = self.outcome.get(t["name"])
            value = "Succeeded" if state == "succeeded" else "None"
            out[f"tasks.{t['name']}.status"] = "Failed" if self.failure(t["name"]) else value
        aggregate = "None"
        if self.dag_done():
            aggregate = "Succeeded"
            for t in self.tasks:
                if self.failure(t["name"]):
                    aggregate = "Failed"
                    break
                if self.skip(t["name"]) is not None:
                    aggregate = "Completed"
        out["tasks.status"] = aggregate
        return out

    def skip(self, name: str) -> str | None:
        """Why a DAG task is skipped, or None (pipelinerunresolution.go@v1.15.0:459-497)."""
        if name in self.skips:
            return self.skips[name]
        self.skips[name] = None  # no cycles in a valid graph; guards recursion anyway
        task = self.dag.get(name)
        reason: str | None = None
        if task is not None and name not in self.outcome:
            parents = task.get("runAfter") or []
            if self.stopping():
                reason = STOPPING_SKIP
            elif self.spec_status == CANCELLED_RUN_FINALLY:
                reason = GRACEFULLY_CANCELLED_SKIP
            elif self.spec_status == STOPPED_RUN_FINALLY:
                reason = GRACEFULLY_STOPPED_SKIP
            elif self.parents_done(task) and not _when_allows(
                task.get("when") or [], self.params, {}
            ):
                reason = WHEN_SKIP
            elif any(self.skip(p) not in (None, WHEN_SKIP) for p in parents):
                reason = PARENT_SKIP
            elif self.parents_done(task) and self.pipeline_timed_out():
                reason = PIPELINE_TIMEOUT_SKIP
            elif self.parents_done(task) and self.tasks_timed_out():
                reason = TASKS_TIMEOUT_SKIP
        self.skips[name] = reason
        return reason

    def final_skip(self, task: Obj) -> str | None:
        """IsFinallySkipped (pipelinerunresolution.go@v1.15.0:620-650)."""
        if task["name"] in self.outcome or not self.dag_done():
            return None
        if not _when_allows(task.get("when") or [], self.params, self.task_status()):
            return WHEN_SKIP
        if self.pipeline_timed_out():
            return PIPELINE_TIMEOUT_SKIP
        if self.finally_timed_out():
            return FINALLY_TIMEOUT_SKIP
        return None

    def counts(self) -> dict[str, int]:
        """getPipelineTasksCount (pipelinerunstate.go@v1.15.0:831-880)."""
        c = dict.fromkeys(
            (
                "succeeded",
                "failed",
                "cancelled",
                "ignored",
                "skipped",
                "timeout_skips",
                "incomplete",
            ),
            0,
        )
        for task in [*self.tasks, *self.finals]:
            name = task["name"]
            state = self.outcome.get(name)
            why = self.skip(name) if name in self.dag else self.final_skip(task)
            if state == "succeeded":
                c["succeeded"] += 1
            elif state == "timed-out":
                c["failed"] += 1
            elif state == "cancelled":
                c["cancelled"] += 1
            elif state == "failed":
                c["ignored" if name in self.continue_on_error else "failed"] += 1
            elif why in TIMEOUT_SKIPS:
                c["skipped"] += 1
                c["timeout_skips"] += 1
            elif why is not None:
                c["skipped"] += 1
            else:
                c["incomplete"] += 1
        return c

    def skipped_tasks(self) -> list[Obj]:
        """status.skippedTasks (GetSkippedTasks, pipelinerunstate.go@v1.15.0:674-700)."""
        out: list[Obj] = []
        for task in self.tasks:
            why = self.skip(task["name"])
            if why is not None:
                entry: Obj = {"name": task["name"], "reason": why}
                if task.get("when"):
                    entry["whenExpressions"] = copy.deepcopy(task["when"])
                out.append(entry)
        for task in self.finals:
            why = self.final_skip(task)
            if why is not None:
                entry = {"name": task["name"], "reason": why}
                if why == WHEN_SKIP and task.get("when"):
                    entry["whenExpressions"] = copy.deepcopy(task["when"])
                out.append(entry)
        return out


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
        self._patch_error: str | None = None
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
        fails_first: int | None = None,
    ) -> TaskBehavior:
        """Script pipeline task ``task`` (of ``pipeline``, or of any pipeline). ``logs`` is a
        list for the deciding step (the failing one, else the last) or a mapping per step;
        ``fails_first``: only that many attempts fail (with ``retries`` on the pipeline task)."""
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
            fails_first=fails_first,
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

    def cancel(self, namespace: str, name: str, how: str = CANCELLED) -> Obj:
        """What ``tkn pr cancel`` does: set ``spec.status: Cancelled``; ``how`` may also be
        ``CancelledRunFinally`` (graceful cancel) or ``StoppedRunFinally`` (graceful stop)."""
        if how not in CANCEL_STATES:
            raise ValueError(f"{how!r} is not one of {CANCEL_STATES}")

        def change(obj: Obj) -> None:
            obj["spec"]["status"] = how

        return self.store.mutate("pipelineruns", namespace, name, change, actor="test")

    def refuse_taskrun_patches(self, message: str | None) -> None:
        """While set, the controller's patches cancelling TaskRuns fail with ``message`` (an
        admission webhook or RBAC refusing them): PipelineRunCouldntCancel/CouldntTimeOut."""
        with self.store.lock:
            self._patch_error = message

    # -- helpers ----------------------------------------------------------------------------------

    def _iso(self, now: float) -> str:
        return self.store.clock.iso(now)

    def _write_status(self, resource: str, obj: Obj, status: Obj) -> None:
        if resource == "taskruns" and "podName" not in status:
            # TaskRunStatusFields.PodName has no omitempty (pkg/apis/pipeline/v1/
            # taskrun_types.go@01444f4): "" while the TaskRun has no pod (pending, cancelled
            # before it started, reset by a retry: taskrun.go@v1.15.0:1381-1393).
            status = {**status, "podName": ""}
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
        if _done(pr):  # pipelinerun.go@v1.15.0:229-235: nothing but cleanup once done
            return
        observe = self.controllers.timing.observe
        if now - state.seen < observe:  # the controller has not picked it up yet
            self.controllers.wake(key, state.seen + observe)
            return
        iso, name = self._iso(now), meta["name"]
        status: Obj = dict(pr.get("status") or {})
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
        if spec.get("status") == CANCELLED:  # cancel.go@v1.15.0:111-146
            if self._cancel_children(key, pr, status, children, name, now):
                return
            self._finish(pr, status, "Cancelled", f'PipelineRun "{name}" was cancelled', now)
            return
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
        invalid = self._validate_params(pr, pipeline_spec)
        if invalid is not None:
            self._finish(pr, status, *invalid, now)
            return
        status["pipelineSpec"] = pipeline_spec
        self._run_pipeline(key, pr, state, pipeline_spec, status, children, started, now)

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

    def _validate_params(self, pr: Obj, pipeline_spec: Obj) -> tuple[str, str] | None:
        """ParameterMissing / ParameterTypeMismatch (pipelinerun.go@v1.15.0:628-645,
        resources/validate_params.go@v1.15.0:30-77); None when the params are fine."""
        meta, spec = pr["metadata"], pr.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        pipeline_name = (spec.get("pipelineRef") or {}).get("name") or name
        given = {p.get("name"): p.get("value") for p in spec.get("params") or []}
        specs = [p for p in pipeline_spec.get("params") or [] if p.get("name")]
        missing = [p["name"] for p in specs if "default" not in p and p["name"] not in given]
        if missing:
            return "ParameterMissing", (
                f"{USER_ERROR}PipelineRun {ns}/{name} is missing some parameters required by "
                f"Pipeline {ns}/{pipeline_name}: pipelineRun missing parameters: "
                f"{_go_list(missing)}"
            )
        wrong = [
            p["name"]
            for p in specs
            if p["name"] in given
            and _param_type(given[p["name"]])
            != (p.get("type") or _param_type(p.get("default", "")))
        ]
        if wrong:
            return "ParameterTypeMismatch", (
                f"{USER_ERROR}PipelineRun {ns}/{name} parameters have mismatching types with "
                f"Pipeline {ns}/{pipeline_name}'s parameters: parameters have inconsistent "
                f"types : {_go_list(wrong)}"
            )
        return None

    def _facts(
        self, pr: Obj, state: _PipelineRun, pipeline_spec: Obj, children: dict[str, Obj], now: float
    ) -> _Facts:
        spec = pr.get("spec") or {}
        tasks = [t for t in pipeline_spec.get("tasks") or [] if t.get("name")]
        finals = [t for t in pipeline_spec.get("finally") or [] if t.get("name")]
        outcome: dict[str, str] = {}
        for task_name, tr in children.items():
            cond = succeeded(tr)
            if cond is None or cond.get("status") == "Unknown":
                outcome[task_name] = "running"
            elif cond["status"] == "True":
                outcome[task_name] = "succeeded"
            elif cond.get("reason") == "TaskRunCancelled":
                # isCancelledForTimeOut (pipelinerunresolution.go@v1.15.0:329-362)
                by_timeout = (tr.get("spec") or {}).get("statusMessage") == TIMED_OUT_BY_PIPELINE
                outcome[task_name] = "timed-out" if by_timeout else "cancelled"
            else:
                outcome[task_name] = "failed"
        params: dict[str, Any] = {
            p["name"]: p["default"]
            for p in pipeline_spec.get("params") or []
            if p.get("name") and "default" in p
        }
        params.update({p.get("name"): p.get("value") for p in spec.get("params") or []})
        pipeline_t, tasks_t, finally_t = self._timeouts(spec)
        started = state.started if state.started is not None else now
        return _Facts(
            tasks=tasks,
            finals=finals,
            outcome=outcome,
            params=params,
            spec_status=str(spec.get("status") or ""),
            elapsed=now - started,
            pipeline_timeout=pipeline_t,
            tasks_timeout=tasks_t,
            finally_elapsed=None if state.finally_started is None else now - state.finally_started,
            finally_timeout=finally_t,
            continue_on_error={
                t["name"] for t in [*tasks, *finals] if t.get("onError") == "continue"
            },
        )

    @staticmethod
    def _timeouts(spec: Obj) -> tuple[float | None, float | None, float | None]:
        """(pipeline, tasks, finally) seconds; 0 = none. PipelineTimeout/TasksTimeout/
        FinallyTimeout (pipelinerun_types.go@v1.15.0:114-156)."""
        block = spec.get("timeouts") or {}

        def seconds(key: str) -> float | None:
            if block.get(key) is None:
                return None
            try:
                return parse_duration(str(block[key]))
            except ValueError:
                return None

        pipeline_t, tasks_t, finally_t = seconds("pipeline"), seconds("tasks"), seconds("finally")
        if pipeline_t is None:
            pipeline_t = DEFAULT_TIMEOUT
        # the defaulting webhook always sets timeouts.pipeline (pipelinerun_defaults.go:56-62)
        if tasks_t is None and finally_t is not None:
            tasks_t = None if not pipeline_t or not finally_t else pipeline_t - finally_t
        elif finally_t is None and tasks_t is not None:
            finally_t = None if not pipeline_t or not tasks_t else pipeline_t - tasks_t
        return pipeline_t, tasks_t, finally_t

    def _run_pipeline(
        self,
        key: Key,
        pr: Obj,
        state: _PipelineRun,
        pipeline_spec: Obj,
        status: Obj,
        children: dict[str, Obj],
        started: float,
        now: float,
    ) -> None:
        """One reconcile of a resolved, valid PipelineRun (pipelinerun.go@v1.15.0:844-989)."""
        name = pr["metadata"]["name"]
        facts = self._facts(pr, state, pipeline_spec, children, now)
        dag, finals = facts.dag, {t["name"] for t in facts.finals}
        # graceful cancel: cancel the running TaskRuns, finally still runs (cancel.go:212-236)
        tasks_running = any(facts.outcome.get(t) == "running" for t in dag)
        if (
            facts.spec_status == CANCELLED_RUN_FINALLY
            and tasks_running
            and self._cancel_children(key, pr, status, children, name, now)
        ):
            return
        # timeouts.tasks / timeouts.finally: cancel the running ones (pipelinerun.go:902-937)
        if state.finally_started is None and facts.tasks_timed_out():
            running = {t: tr for t, tr in children.items() if t in dag}
            self._patch_children(running, TIMED_OUT_BY_PIPELINE, "timeout")
        elif facts.finally_timed_out():
            running = {t: tr for t, tr in children.items() if t in finals}
            self._patch_children(running, TIMED_OUT_BY_PIPELINE, "timeout")
        # schedule (runNextSchedulableTask, pipelinerun.go:994-1127)
        blocked = facts.spec_status in (CANCELLED_RUN_FINALLY, STOPPED_RUN_FINALLY)
        if not blocked and not facts.stopping():
            for task in facts.tasks:
                if (
                    task["name"] not in facts.outcome
                    and facts.parents_done(task)
                    and facts.skip(task["name"]) is None
                ):
                    children[task["name"]] = self._create_taskrun(pr, task, facts, final=False)
                    facts.outcome[task["name"]] = "running"
        if facts.finals and facts.dag_done():
            if state.finally_started is None:
                state.finally_started = now
                status["finallyStartTime"] = self._iso(now)
                facts.finally_elapsed = 0.0
            for task in facts.finals:
                if task["name"] not in facts.outcome and facts.final_skip(task) is None:
                    children[task["name"]] = self._create_taskrun(pr, task, facts, final=True)
                    facts.outcome[task["name"]] = "running"
        facts.skips.clear()
        # the pipeline timeout patches every child (timeout.go@v1.15.0:74-103)
        if facts.pipeline_timed_out():
            errors = self._patch_children(children, TIMED_OUT_BY_PIPELINE, "timeout")
            if errors:
                message = (
                    f'PipelineRun "{name}" was timed out but had errors trying to time out '
                    f"TaskRuns and/or Runs: {errors}"
                )
                self._retry(key, pr, status, "PipelineRunCouldntTimeOut", message, now)
                return
        for limit in (facts.pipeline_timeout, facts.tasks_timeout):
            if limit:
                self.controllers.wake(key, started + limit)
        if facts.finally_timeout and state.finally_started is not None:
            self.controllers.wake(key, state.finally_started + facts.finally_timeout)
        state_, reason, message = self._condition(pr, facts)
        skipped = facts.skipped_tasks()
        if skipped:
            status["skippedTasks"] = skipped
        else:
            status.pop("skippedTasks", None)
        status["childReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "TaskRun",
                "name": children[t["name"]]["metadata"]["name"],
                "pipelineTaskName": t["name"],
                **({"whenExpressions": copy.deepcopy(t["when"])} if t.get("when") else {}),
            }
            for t in [*facts.tasks, *facts.finals]
            if t["name"] in children
        ]
        if state_ == "Unknown":
            self._write_status(
                "pipelineruns",
                pr,
                _with_condition(status, "Unknown", reason, message, self._iso(now)),
            )
        elif state_ == "True":
            status["completionTime"] = self._iso(now)
            self._write_status(
                "pipelineruns", pr, _with_condition(status, "True", reason, message, self._iso(now))
            )
        else:
            self._finish(pr, status, reason, message, now)

    def _condition(self, pr: Obj, facts: _Facts) -> tuple[str, str, str]:
        """GetPipelineConditionStatus (pipelinerunstate.go@v1.15.0:539-671)."""
        name = pr["metadata"]["name"]
        if facts.pipeline_timed_out():
            limit = format_duration(facts.pipeline_timeout or 0)
            return (
                "False",
                "PipelineRunTimeout",
                (f'PipelineRun "{name}" failed to finish within "{limit}"'),
            )
        finals_done = all(
            facts.final_skip(t) is not None
            or facts.outcome.get(t["name"]) in ("succeeded", "failed", "cancelled", "timed-out")
            for t in facts.finals
        )
        if facts.tasks_timed_out() and (not facts.finals or finals_done):
            limit = format_duration(facts.tasks_timeout or 0)
            return (
                "False",
                "PipelineRunTimeout",
                (f'PipelineRun "{name}" failed due to tasks failed to finish within "{limit}"'),
            )
        c = facts.counts()
        completed = c["succeeded"] + c["failed"] + c["cancelled"] + c["ignored"]
        if c["incomplete"] == 0:
            if c["ignored"]:
                failed = f"Failed: {c['failed'] + c['ignored']} (Ignored: {c['ignored']})"
            else:
                failed = f"Failed: {c['failed']}"
            message = (
                f"Tasks Completed: {completed} ({failed}, Cancelled {c['cancelled']}), "
                f"Skipped: {c['skipped']}"
            )
            if c["failed"] or c["timeout_skips"]:
                return "False", "Failed", message
            if facts.spec_status in (CANCELLED_RUN_FINALLY, STOPPED_RUN_FINALLY):
                return "False", "Cancelled", f'PipelineRun "{name}" was cancelled'
            if c["cancelled"]:
                return "False", "Cancelled", message
            return "True", "Completed" if c["skipped"] else "Succeeded", message
        if facts.tasks_timed_out() and facts.finals and not finals_done:
            reason = "PipelineRunTimeoutRunningFinally"
        elif facts.spec_status == CANCELLED_RUN_FINALLY:
            reason = "CancelledRunningFinally"
        elif facts.spec_status == STOPPED_RUN_FINALLY:
            reason = "StoppedRunningFinally"
        elif c["cancelled"] or (c["failed"] and finals_done):
            reason = "PipelineRunStopping"
        else:
            reason = "Running"
        return (
            "Unknown",
            reason,
            (
                f"Tasks Completed: {completed} (Failed: {c['failed']}, "
                f"Cancelled {c['cancelled']}), Incomplete: {c['incomplete']}, "
                f"Skipped: {c['skipped']}"
            ),
        )

    def _finish(self, pr: Obj, status: Obj, reason: str, message: str, now: float) -> None:
        iso = self._iso(now)
        status = {**status, "completionTime": iso}
        self._write_status(
            "pipelineruns", pr, _with_condition(status, "False", reason, message, iso)
        )

    def _retry(self, key: Key, pr: Obj, status: Obj, reason: str, message: str, now: float) -> None:
        """A reconcile that returned an error: Unknown with ``reason``, requeued."""
        self._write_status(
            "pipelineruns", pr, _with_condition(status, "Unknown", reason, message, self._iso(now))
        )
        self.controllers.wake(key, now + 1.0)

    def _cancel_children(
        self, key: Key, pr: Obj, status: Obj, children: dict[str, Obj], name: str, now: float
    ) -> bool:
        """Cancel the running TaskRuns; True when a patch failed and the run retries with
        ``PipelineRunCouldntCancel`` (cancel.go@v1.15.0:111-146)."""
        errors = self._patch_children(children, CANCELLED_BY_PIPELINE, "cancellation")
        if not errors:
            return False
        message = (
            f'PipelineRun "{name}" was cancelled but had errors trying to cancel '
            f"TaskRuns and/or Runs: {errors}"
        )
        self._retry(key, pr, status, "PipelineRunCouldntCancel", message, now)
        return True

    def _patch_children(self, children: dict[str, Obj], message: str, what: str) -> str:
        """Cancel TaskRuns as the PipelineRun controller does: a patch of ``spec.status`` and
        ``spec.statusMessage`` (cancel.go@v1.15.0:45-56, timeout.go@v1.15.0:42-54). Returns
        the joined errors ("" when every patch went through)."""
        errors: list[str] = []
        for tr in children.values():
            spec = tr.get("spec") or {}
            if _done(tr) or spec.get("status") == "TaskRunCancelled":
                continue
            meta = tr["metadata"]
            if self._patch_error is not None:
                errors.append(
                    f"failed to patch TaskRun `{meta['name']}` with {what}: {self._patch_error}"
                )
                continue

            def cancel(o: Obj) -> None:
                o["spec"]["status"] = "TaskRunCancelled"
                o["spec"]["statusMessage"] = message

            self.store.mutate("taskruns", meta["namespace"], meta["name"], cancel, actor=ACTOR)
        return "\n".join(errors)

    def _create_taskrun(self, pr: Obj, task: Obj, facts: _Facts, *, final: bool) -> Obj:
        meta = pr["metadata"]
        ref = (pr.get("spec") or {}).get("pipelineRef") or {}
        labels = {
            **(meta.get("labels") or {}),
            "tekton.dev/pipelineRun": meta["name"],
            "tekton.dev/pipelineRunUID": meta["uid"],
            "tekton.dev/pipelineTask": task["name"],
            "tekton.dev/memberOf": "finally" if final else "tasks",
        }
        labels["tekton.dev/pipeline"] = ref.get("name") or meta["name"]
        annotations = dict(meta.get("annotations") or {})
        if task.get("onError") == "continue":  # pipelinerun.go@v1.15.0:1400-1402
            annotations[ON_ERROR_ANNOTATION] = "continue"
        spec: Obj = {"serviceAccountName": "default"}
        if isinstance(task.get("taskSpec"), dict):
            spec["taskSpec"] = copy.deepcopy(task["taskSpec"])
        else:
            spec["taskRef"] = {"kind": "Task", **(task.get("taskRef") or {"name": task["name"]})}
        if task.get("params"):
            spec["params"] = copy.deepcopy(task["params"])
        if task.get("retries"):
            spec["retries"] = int(task["retries"])
        spec["timeout"] = format_duration(self._taskrun_timeout(task, facts, final))
        taskrun: Obj = {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {
                "name": child_name(meta["name"], f"-{task['name']}"),
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
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

    @staticmethod
    def _taskrun_timeout(task: Obj, facts: _Facts, final: bool) -> float:
        """The TaskRun's spec.timeout: the pipeline task's own, else timeouts.tasks/finally
        when 0 or above the default, else the default 1h (pipelinerun.go@v1.15.0:1404-1408,
        1759-1783; TaskRun defaulting taskrun_defaults.go@v1.15.0:70-71). The pipeline timeout
        itself is enforced by the PipelineRun, which cancels the TaskRuns."""
        if task.get("timeout"):
            try:
                return parse_duration(str(task["timeout"]))
            except ValueError:
                pass
        limit = facts.finally_timeout if final else facts.tasks_timeout
        if limit is not None and (limit == 0 or limit > DEFAULT_TIMEOUT):
            return limit
        return DEFAULT_TIMEOUT

    # -- TaskRuns ---------------------------------------------------------------------------------

    def _taskrun(self, key: Key, now: float) -> None:
        tr = self.store.find(*key)
        if tr is None:
            self._trs.pop(key, None)
            return
        if _done(tr):
            return
        meta, spec = tr["metadata"], tr.get("spec") or {}
        status = tr.get("status") or {}
        attempt = len(status.get("retriesStatus") or [])
        run = self._trs.get(key)
        if run is not None and (run.uid != meta["uid"] or run.attempt != attempt):
            run = None
        name = meta["name"]
        before = succeeded(tr)
        if spec.get("status") == "TaskRunCancelled":  # taskrun.go@v1.15.0:195-199
            message = f'TaskRun "{name}" was cancelled. {spec.get("statusMessage", "")}'
            self._fail(tr, run, now, "TaskRunCancelled", _with_previous(before, message))
            return
        if run is None:
            if spec.get("status") == "TaskRunPending":
                status = _with_condition(
                    dict(status),
                    "Unknown",
                    "TaskRunPending",
                    f'TaskRun "{name}" is pending',
                    self._iso(now),
                )
                self._write_status("taskruns", tr, status)
                return
            run = self._trs[key] = self._start(tr, now, attempt)
        try:
            timeout = parse_duration(str(spec.get("timeout", "1h")))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        if timeout > 0 and now >= run.started + timeout:  # taskrun.go@v1.15.0:210-219
            message = f'TaskRun "{name}" failed to finish within "{format_duration(timeout)}"'
            self._fail(tr, run, now, "TaskRunTimeout", _with_previous(before, message))
            return
        if timeout > 0:
            self.controllers.wake(key, run.started + timeout)
        self._sync(tr, run, now)

    def _start(self, tr: Obj, now: float, attempt: int) -> _TaskRun:
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
                fails_first=behavior.fails_first,
            )
        behavior = behavior.attempt(attempt)
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
        # pod.go@v1.15.0:515-523: "-pod", then "-pod-retryN" for the Nth retry
        pod_name = child_name(meta["name"], f"-pod-retry{attempt}" if attempt else "-pod")
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
        return _TaskRun(meta["uid"], now, task, behavior, steps, pod_name, attempt)

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
            "taskSpec": {"steps": [{"name": s.name, "image": s.image} for s in run.steps]},
        }
        if not done:
            status = _with_condition(status, "Unknown", "Running", RUNNING_MESSAGE, iso)
            upcoming = [t for s in run.steps for t in (s.start, s.end) if t > now]
            if upcoming:
                self.controllers.wake(("taskruns", namespace, meta["name"]), min(upcoming))
        elif failed is not None:
            # pod/status.go@v1.15.0:608-620 (FailureIgnored under onError: continue), 938-945
            message = f'"step-{failed.name}" exited with code {failed.exit_code}: Error'
            annotations = meta.get("annotations") or {}
            ignored = annotations.get(ON_ERROR_ANNOTATION) == "continue"
            reason = "FailureIgnored" if ignored else "Failed"
            status = _with_condition(status, "False", reason, message, iso)
            status["completionTime"] = iso
            status = self._maybe_retry(tr, status, message)
        else:
            message = "All Steps have completed executing"
            status = _with_condition(status, "True", "Succeeded", message, iso)
            status["completionTime"] = iso
        self._write_status("taskruns", tr, status)

    def _maybe_retry(self, tr: Obj, status: Obj, message: str) -> Obj:
        """A failed TaskRun with retries left goes back to Unknown/ToBeRetried, its status
        archived in retriesStatus (taskrun.go@v1.15.0:491-493, 1381-1393)."""
        spec = tr.get("spec") or {}
        done = list(status.get("retriesStatus") or [])
        if spec.get("status") == "TaskRunCancelled" or len(done) >= int(spec.get("retries") or 0):
            return status
        archived = {k: copy.deepcopy(v) for k, v in status.items() if k != "retriesStatus"}
        fresh = {
            k: v
            for k, v in status.items()
            if k not in ("startTime", "completionTime", "podName", "results")
        }
        fresh["retriesStatus"] = [*done, archived]
        cond = next(c for c in status["conditions"] if c.get("type") == "Succeeded")
        return _with_condition(
            fresh, "Unknown", "ToBeRetried", message, str(cond.get("lastTransitionTime"))
        )

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
        """End a TaskRun early (cancelled, timed out): stop its steps and delete its pod
        (failTaskRun, taskrun.go@v1.15.0:942-984; terminateStepsInPod 1034-1066)."""
        meta = tr["metadata"]
        iso = self._iso(now)
        status: Obj = dict(tr.get("status") or {})
        if run is not None:
            status["steps"] = self._steps(run, now, reason)
            status.setdefault("startTime", self._iso(run.started))
            if not status.get("podName"):  # "" while pending (see _write_status)
                status["podName"] = run.pod
            pod = self.store.find("pods", meta["namespace"], run.pod)
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):

                def mark(o: Obj) -> None:
                    o["metadata"]["deletionTimestamp"] = iso
                    o["metadata"]["deletionGracePeriodSeconds"] = 30

                self.store.mutate("pods", meta["namespace"], run.pod, mark, actor=ACTOR)
        status = _with_condition(status, "False", reason, message, iso)
        status["completionTime"] = iso
        if reason != "TaskRunCancelled":
            status = self._maybe_retry(tr, status, message)
        self._write_status("taskruns", tr, status)


def _with_previous(before: Obj | None, message: str) -> str:
    """appendPreviousConditionContext (taskrun.go@v1.15.0:986-1000)."""
    if before is None or before.get("reason") in ("Started", "Running", "TaskRunPending"):
        return message
    if before.get("message"):
        return f"{message}\nPrevious status: [{before.get('reason')}] {before['message']}"
    return message
