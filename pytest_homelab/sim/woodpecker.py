"""A Woodpecker CI server simulator: the REST API and event stream a pipeline watcher uses.

It answers like the real server (``shared/reference/woodpecker.md``, checked against the v2.8.3
and v3.17.0 sources): unix-second timestamps with the v2 or v3 field names, steps under
``workflows[].children[]`` only on the single-pipeline GET and in events, base64 log ``data``,
bad tokens that silently fall back to anonymous, empty-bodied 400/401/404s, unknown routes that
get the web UI's ``index.html`` with a 200, and an SSE stream of full pipeline snapshots.
Pipelines follow a script on a scenario clock that can run faster than real time or be advanced
by hand; a seeded :class:`~pytest_homelab.sim.faults.FaultPlan` breaks requests on purpose.

Scenario parts for what the real server does and a watcher must survive (issue 16, each from the
v3.17.0 source): permission rows (``add_repo(perm_row=False)``, ``WoodpeckerSim(admin=True)``) and
an event stream that carries only repos with a row; ``stream_silent=True`` for a stream served by
another replica (connected, pinging, never an event); ``answer_anonymously(n)`` (the token's user
could not be loaded) and ``deny_pull(n)`` (a failed permission re-sync); pipelines deleted after
creation (``add_pipeline(deleted_after=…)``); ``error`` pipelines with ``config_errors`` and no
workflows, and ``errors: null`` when there are none; a pipeline is never ``skipped``.

Typical use in a test::

    with WoodpeckerSim(host="127.0.0.2", ssl_context=ctx, public_host="ci.example.test") as sim:
        sim.add_repo("homelab/app")
        sim.add_pipeline("homelab/app", commit=sha, steps=[StepSpec("test", duration=0.2)])
        ...  # point the client at sim.base_url, dialing 127.0.0.2:sim.port
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_homelab.sim.clock import ScenarioClock
from pytest_homelab.sim.faults import FaultPlan, no_faults
from pytest_homelab.sim.server import SimHandler, SimHTTPServer, reset_connection

Naming = Literal["v2", "v3"]
Json = dict[str, Any]

EVENTS = frozenset(
    {
        "push",
        "pull_request",
        "pull_request_closed",
        "pull_request_metadata",
        "tag",
        "release",
        "deployment",
        "cron",
        "manual",
    }
)
STATUSES = frozenset(
    {
        "created",
        "pending",
        "running",
        "blocked",
        "success",
        "failure",
        "error",
        "killed",
        "canceled",
        "declined",
        "skipped",
    }
)
ACTIVE_STATUSES = frozenset({"created", "pending", "running", "blocked"})
VERSIONS: dict[Naming, str] = {"v2": "2.8.3", "v3": "3.17.0"}
JSON_ROUTE_FAULTS = ("empty200", "5xx", "429", "reset", "stall", "truncated")
STREAM_FAULTS = ("stream_drop", "empty200", "5xx", "429", "reset", "stall")
SOURCE_URL = "https://github.com/woodpecker-ci/woodpecker"
FORGE = "git.example.test"
WORKFLOW_NAME = "woodpecker"  # what a lone .woodpecker.yaml is called
KILLED_EXIT_CODE = 137
CORS_HEADERS = "authorization, origin, content-type, accept"
INDEX_HTML = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8" />\n'
    b"<title>Woodpecker</title>\n"
    b'</head>\n<body>\n<div id="app"></div>\n</body>\n</html>\n'
)


@dataclass(frozen=True)
class StepSpec:
    """One scripted step: runs ``duration`` scenario seconds, then exits with ``exit_code``.

    ``log`` lines are released evenly over the run (default: one ``+ <name>`` line). ``type``
    defaults to ``clone`` for a step named clone and to ``commands`` otherwise.
    """

    name: str
    duration: float = 0.1
    exit_code: int = 0
    log: Sequence[str] | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError("a step's duration cannot be negative")

    @property
    def step_type(self) -> str:
        return self.type or ("clone" if self.name == "clone" else "commands")

    @property
    def lines(self) -> Sequence[str]:
        return self.log if self.log is not None else (f"+ {self.name}",)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it. ``status`` 0 means no response was sent (a reset);
    ``time`` is ``time.monotonic()`` when the answer was decided."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    fault: str | None
    time: float
    authenticated: bool = False


@dataclass
class SimRepo:
    id: int
    full_name: str
    private: bool
    default_branch: str
    perm_row: bool = True  # the sim's user has a permission row for it (synced from the forge)

    @property
    def owner(self) -> str:
        return self.full_name.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[1]


class ActionRefused(ValueError):
    """The real server would refuse this action in the pipeline's current state."""


@dataclass
class _Step:
    id: int
    pid: int
    uuid: str
    spec: StepSpec


@dataclass
class _Pipeline:
    id: int
    number: int
    repo: SimRepo
    commit: str
    event: str
    branch: str
    ref: str
    message: str
    added_at: float  # scenario seconds
    appear_after: float
    pending_for: float
    steps: list[_Step]
    final_status: str | None
    blocked: bool
    created: int | None
    parent: int
    rerun_count: int
    workflow_id: int
    approved_at: float | None = None
    declined_at: float | None = None
    reviewed_by: str = ""
    cancelled_at: float | None = None
    cancel_info: Json | None = None
    deleted_after: float | None = None  # stored as created, then deleted (create.go ErrFiltered)
    config_errors: list[Json] = field(default_factory=list)  # blocking: ends ``error`` at once
    warnings: list[Json] = field(default_factory=list)  # non-blocking entries of ``errors``

    @property
    def appear_at(self) -> float:
        return self.added_at + self.appear_after


@dataclass
class _StepState:
    state: str
    started: float | None = None
    finished: float | None = None
    exit_code: int = 0
    error: str = ""


@dataclass
class _State:
    visible: bool
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    updated: float = 0.0
    workflow: str = "pending"
    workflow_error: str = ""
    steps: list[_StepState] = field(default_factory=list)
    has_workflows: bool = True  # False while created, and for a config error


def _evaluate(p: _Pipeline, t: float, naming: Naming) -> _State:
    """The pipeline at scenario time ``t``: a pure function of its script and the actions on it.

    Cancel outcomes follow ``server/pipeline/cancel.go``: before any workflow started, v3 says
    ``canceled`` (steps ``canceled``, workflow ``skipped``) and v2 ``killed`` (steps ``skipped``);
    once running, ``killed`` with the running step killed and the pending ones canceled/skipped.
    """
    if t < p.appear_at:
        return _State(visible=False)
    if p.deleted_after is not None:
        # server/pipeline/create.go@v3.17.0:64-69 stores it as created (no workflows yet), and
        # :80-86 / :124-131 delete it when no config matches or every workflow is filtered out.
        if t >= p.appear_at + p.deleted_after:
            return _State(visible=False)
        return _State(True, "created", updated=p.appear_at, workflow="", has_workflows=False)
    if p.config_errors:
        # create.go@v3.17.0:116-118 -> pipeline_status.go@v3.17.0:65-71: error, started =
        # finished = now, the errors recorded, no workflows created.
        at = p.appear_at
        return _State(True, "error", at, at, at, "", has_workflows=False)

    def uniform(state: str) -> list[_StepState]:
        return [_StepState(state) for _ in p.steps]

    cancel = p.cancelled_at if p.cancelled_at is not None and p.cancelled_at <= t else None
    queued_at = p.appear_at
    if p.blocked:
        if p.declined_at is not None and p.declined_at <= t:
            declined = uniform("declined")
            return _State(
                True, "declined", updated=p.declined_at, workflow="declined", steps=declined
            )
        if p.approved_at is None or p.approved_at > t:
            if cancel is not None:  # the real server leaves a gated workflow's steps blocked
                return _State(
                    True,
                    "killed",
                    finished=cancel,
                    updated=cancel,
                    workflow="blocked",
                    steps=uniform("blocked"),
                )
            return _State(
                True, "blocked", updated=p.appear_at, workflow="blocked", steps=uniform("blocked")
            )
        queued_at = p.approved_at
    run_from = queued_at + p.pending_for
    now = t if cancel is None else cancel
    if now < run_from:
        if cancel is None:
            return _State(True, "pending", updated=queued_at, steps=uniform("pending"))
        v3 = naming == "v3"
        return _State(
            True,
            "canceled" if v3 else "killed",
            finished=cancel,
            updated=cancel,
            workflow="skipped",
            steps=uniform("canceled" if v3 else "skipped"),
        )

    steps: list[_StepState] = []
    cursor = run_from
    failed: _Step | None = None
    for step in p.steps:
        end = cursor + step.spec.duration
        if failed is not None:
            steps.append(_StepState("skipped"))
        elif now < cursor:
            steps.append(_StepState("pending"))
        elif now < end:
            steps.append(_StepState("running", cursor))
        else:
            code = step.spec.exit_code
            steps.append(_StepState("success" if code == 0 else "failure", cursor, end, code))
            if code != 0:
                failed = step
        cursor = end
    times = [x for s in steps for x in (s.started, s.finished) if x is not None]
    last = max(times, default=run_from)
    if cancel is not None:
        for s in steps:
            if s.state == "running":
                s.state, s.finished, s.error = "killed", cancel, "Canceled"
                s.exit_code = KILLED_EXIT_CODE
            elif s.state == "pending":
                s.state = "canceled" if naming == "v3" else "skipped"
        return _State(
            True,
            "killed",
            started=run_from,
            finished=cancel,
            updated=cancel,
            workflow="killed",
            workflow_error="Canceled",
            steps=steps,
        )
    if any(s.state in ("pending", "running") for s in steps):
        return _State(
            True, "running", started=run_from, updated=last, workflow="running", steps=steps
        )
    status = workflow = "failure" if failed is not None else "success"
    error = "" if failed is None else f"uuid={failed.uuid}: exit code {failed.spec.exit_code}"
    if p.final_status is not None:
        status = workflow = p.final_status
        if status == "skipped":
            # The server never sets skipped on a pipeline: v3 merges workflow states from
            # ``success`` and skipped ranks lowest (server/pipeline/pipeline_status.go@v3.17.0:
            # 27-35, status.go@v3.17.0:19-44); v2 changes it only for a failing workflow
            # (server/model/workflow.go@v2.8.3:62-72). An all-skipped pipeline is ``success``.
            status = "success"
    finished = None if status in ACTIVE_STATUSES else last
    return _State(True, status, run_from, finished, last, workflow, error, steps)


class WoodpeckerSim:
    """The simulator. Thread-safe; start with ``with`` or :meth:`start`/:meth:`stop`.

    ``token=None`` disables auth: every request acts as the one user. ``speed`` is scenario
    seconds per real second; :meth:`advance` jumps ahead. ``ping_interval`` is the SSE idle ping.
    ``requests`` logs every request; ``errors`` keeps exceptions the simulator itself raised
    while answering (the client saw a bare 500), so a test can assert there were none.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        public_host: str | None = None,
        naming: Naming = "v3",
        token: str | None = "sim-token",
        faults: FaultPlan | None = None,
        speed: float = 1.0,
        ping_interval: float = 30.0,
        user: str = "homelab",
        admin: bool = False,
        stream_silent: bool = False,
    ) -> None:
        if naming not in ("v2", "v3"):
            raise ValueError("naming must be 'v2' or 'v3'")
        if ping_interval <= 0:
            raise ValueError("ping_interval must be positive")
        self.host = host
        self.naming: Naming = naming
        self.token = token
        self.faults = faults or no_faults()
        self.clock = ScenarioClock(speed)
        self.ping_interval = ping_interval
        self.user = user
        self.admin = admin  # reaches every repo, row or not (session/repo.go@v3.17.0:148-152)
        self.stream_silent = stream_silent  # the stream is served by a replica that sees nothing
        self._anonymous: list[tuple[str, int]] = []  # (path prefix, requests left)
        self._deny_pull: list[tuple[str, int]] = []
        self.requests: list[RequestRecord] = []
        self.errors: list[Exception] = []
        self._ssl = ssl_context
        self._public_host = public_host or host
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._repos: dict[int, SimRepo] = {}
        self._pipelines: dict[int, list[_Pipeline]] = {}
        self._ids = {"pipeline": 0, "workflow": 0, "step": 0}
        self._signatures: dict[int, tuple[object, ...]] = {}
        self._subscribers: list[_Subscriber] = []
        self._handlers: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._api = _Api(self)
        self._server = SimHTTPServer((host, port), _WoodpeckerHandler, ssl_context, app=self)
        self._ticker: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._public_host}:{self.port}"

    def start(self) -> WoodpeckerSim:
        self._server.start()
        self._ticker = threading.Thread(
            target=self._tick, name="woodpecker-sim-ticker", daemon=True
        )
        self._ticker.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open streams and stalls, and join every thread the sim started."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._ticker is None:  # never started: nothing serves, only the socket to close
            self._server.server_close()
            return
        self._server.stop()
        self._ticker.join(timeout=5)
        with self._lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(timeout=5)

    def __enter__(self) -> WoodpeckerSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = True,
        default_branch: str = "main",
        perm_row: bool = True,
    ) -> SimRepo:
        """Activate a repo; ``full_name`` may have subgroups (``group/sub/name``).

        ``perm_row=False``: the user has no permission row for it, so it cannot read it unless
        the sim's user is ``admin``, and the event stream never carries it (when private).
        """
        if full_name.count("/") < 1 or not all(full_name.split("/")):
            raise ValueError("full_name must be OWNER/NAME")
        with self._lock:
            if any(r.full_name.lower() == full_name.lower() for r in self._repos.values()):
                raise ValueError(f"repo {full_name} exists already")
            repo = SimRepo(len(self._repos) + 1, full_name, private, default_branch, perm_row)
            self._repos[repo.id] = repo
            self._pipelines[repo.id] = []
            return repo

    def repo(self, full_name: str) -> SimRepo:
        with self._lock:
            for repo in self._repos.values():
                if repo.full_name.lower() == full_name.lower():
                    return repo
        raise KeyError(full_name)

    def add_pipeline(
        self,
        repo: str,
        *,
        commit: str,
        event: str = "push",
        branch: str | None = None,
        steps: Iterable[StepSpec] = (StepSpec("test"),),
        appear_after: float = 0.0,
        pending_for: float = 0.0,
        final_status: str | None = None,
        blocked: bool = False,
        created: int | None = None,
        ref: str | None = None,
        message: str = "change",
        parent: int = 0,
        deleted_after: float | None = None,
        config_errors: Sequence[str] = (),
        warnings: Sequence[str] = (),
    ) -> int:
        """Script a pipeline and return its number (assigned now, visible after ``appear_after``).

        ``final_status`` replaces the end status; a non-final one (``running``) makes a pipeline
        that never ends (``skipped`` ends ``success`` with its workflow skipped: the server never
        sets skipped on a pipeline). ``created`` overrides the creation time (unix seconds).
        ``ref`` defaults to what the forge would send for ``event`` (``refs/pull/1/head`` for
        pull requests).
        ``deleted_after``: shown as ``created`` for that many seconds, then deleted, never
        announced on the stream. ``config_errors``: it ends ``error`` at once with these
        ``linter`` messages and no workflows. ``warnings``: non-blocking entries of ``errors``.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        if final_status is not None and final_status not in STATUSES:
            raise ValueError(f"unknown status {final_status!r}")
        if appear_after < 0 or pending_for < 0:
            raise ValueError("appear_after and pending_for cannot be negative")
        if deleted_after is not None and deleted_after < 0:
            raise ValueError("deleted_after cannot be negative")
        with self._lock:
            pipeline = self._add(
                self.repo(repo),
                commit=commit.lower(),
                event=event,
                branch=branch,
                ref=ref,
                message=message,
                steps=list(steps),
                appear_after=appear_after,
                pending_for=pending_for,
                final_status=final_status,
                blocked=blocked,
                created=created,
                parent=parent,
                rerun_count=0,
                extra={
                    "deleted_after": deleted_after,
                    "config_errors": [_error_json("linter", m, False) for m in config_errors],
                    "warnings": [_error_json("linter", m, True) for m in warnings],
                },
            )
            return pipeline.number

    def _add(
        self,
        r: SimRepo,
        *,
        commit: str,
        event: str,
        branch: str | None,
        ref: str | None,
        message: str,
        steps: list[StepSpec],
        appear_after: float,
        pending_for: float,
        final_status: str | None,
        blocked: bool,
        created: int | None,
        parent: int,
        rerun_count: int,
        extra: dict[str, Any] | None = None,
    ) -> _Pipeline:
        branch = branch or r.default_branch
        self._ids["pipeline"] += 1
        self._ids["workflow"] += 1
        made = []
        for pid, spec in enumerate(steps, start=2):  # pid 1 is the workflow
            self._ids["step"] += 1
            made.append(_Step(self._ids["step"] + 1000, pid, str(uuid.uuid4()), spec))
        pipeline = _Pipeline(
            id=self._ids["pipeline"],
            number=len(self._pipelines[r.id]) + 1,
            repo=r,
            commit=commit,
            event=event,
            branch=branch,
            ref=ref or _default_ref(event, branch),
            message=message,
            added_at=self.clock.now(),
            appear_after=appear_after,
            pending_for=pending_for,
            steps=made,
            final_status=final_status,
            blocked=blocked,
            created=created,
            parent=parent,
            rerun_count=rerun_count,
            workflow_id=self._ids["workflow"],
            **(extra or {}),
        )
        self._pipelines[r.id].append(pipeline)
        self._publish_changes()
        return pipeline

    def _find(self, repo: str | int, number: int) -> _Pipeline:
        """A pipeline the API can see now; KeyError otherwise."""
        with self._lock:
            rid = repo if isinstance(repo, int) else self.repo(repo).id
            for p in self._pipelines.get(rid, []):
                if p.number == number and self._state(p).visible:
                    return p
        raise KeyError(f"{repo}#{number}")

    def _state(self, p: _Pipeline) -> _State:
        return _evaluate(p, self.clock.now(), self.naming)

    def finished_at(self, repo: str, number: int) -> float | None:
        """The scenario time at which the pipeline's script ends (its last step, or the first
        failing one, finishes; or it was cancelled), visible yet or not; None while it waits
        for approval. For measuring how long a watcher takes to notice."""
        with self._lock:
            rid = self.repo(repo).id
            p = next((x for x in self._pipelines[rid] if x.number == number), None)
            if p is None:
                raise KeyError(f"{repo}#{number}")
            if p.blocked and (p.approved_at is None or p.declined_at is not None):
                return p.declined_at
            start = (p.approved_at if p.blocked else p.appear_at) or 0.0
            end = start + p.pending_for
            for step in p.steps:
                end += step.spec.duration
                if step.spec.exit_code != 0:
                    break
            return end if p.cancelled_at is None else min(end, p.cancelled_at)

    def approve(self, repo: str, number: int) -> None:
        with self._lock:
            self._approve(self._find(repo, number))

    def _approve(self, p: _Pipeline) -> None:
        status = self._state(p).status
        if status != "blocked":
            raise ActionRefused(f"cannot approve a pipeline with status {status}")
        p.approved_at, p.reviewed_by = self.clock.now(), self.user
        self._publish_changes()

    def decline(self, repo: str, number: int) -> None:
        with self._lock:
            self._decline(self._find(repo, number))

    def _decline(self, p: _Pipeline) -> None:
        status = self._state(p).status
        if status != "blocked":
            raise ActionRefused(f"cannot decline a pipeline with status {status}")
        p.declined_at, p.reviewed_by = self.clock.now(), self.user
        self._publish_changes()

    def cancel(self, repo: str, number: int, superseded_by: int | None = None) -> None:
        """Cancel by the user, or as auto-cancel by a newer pipeline when ``superseded_by``."""
        with self._lock:
            self._cancel(self._find(repo, number), superseded_by)

    def _cancel(self, p: _Pipeline, superseded_by: int | None) -> None:
        if self._state(p).status not in ("running", "pending", "blocked"):
            raise ActionRefused(
                "Cannot cancel a non-running or non-pending or non-blocked pipeline"
            )
        p.cancelled_at = self.clock.now()
        if superseded_by:
            p.cancel_info = {"superseded_by": superseded_by}
        else:
            p.cancel_info = {"canceled_by_user": self.user}
        self._publish_changes()

    def restart(self, repo: str, number: int) -> int:
        """Like ``POST …/pipelines/{n}``: a new pipeline (new number, ``parent`` = n)."""
        with self._lock:
            return self._restart(self._find(repo, number)).number

    def _restart(self, old: _Pipeline) -> _Pipeline:
        if self._state(old).status == "blocked":
            raise ActionRefused("cannot restart a pipeline with status blocked")
        return self._add(
            old.repo,
            commit=old.commit,
            event=old.event,
            branch=old.branch,
            ref=old.ref,
            message=old.message,
            steps=[s.spec for s in old.steps],
            appear_after=0.0,
            pending_for=old.pending_for,
            final_status=None,
            blocked=False,
            created=None,
            parent=old.number,
            rerun_count=old.rerun_count + 1,
        )

    def advance(self, seconds: float) -> None:
        """Move scenario time forward now; events for the changes go out at once."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.clock.advance(seconds)
        with self._lock:
            self._publish_changes()

    def inject(self, kind: str, count: int = 1, path_prefix: str = "/") -> None:
        """Fail the next ``count`` requests under ``path_prefix`` with ``kind``."""
        self.faults.inject(kind, count=count, path_prefix=path_prefix)

    def answer_anonymously(self, count: int, path_prefix: str = "/api/") -> None:
        """Run the next ``count`` requests under ``path_prefix`` as anonymous, whatever token
        they carry: the server could not load the token's user (a database error) and goes on
        without one (server/router/middleware/session/user.go@v3.17.0:46-56)."""
        with self._lock:
            self._anonymous.append((path_prefix, count))

    def deny_pull(self, count: int, path_prefix: str = "/api/repos/") -> None:
        """Answer the next ``count`` repo requests of an authenticated user with 404, as when
        the hourly permission re-sync from the forge fails
        (server/router/middleware/session/repo.go@v3.17.0:118-142,170-183)."""
        with self._lock:
            self._deny_pull.append((path_prefix, count))

    def _take(self, queue: list[tuple[str, int]], path: str) -> bool:
        with self._lock:
            for n, (prefix, left) in enumerate(queue):
                if path.startswith(prefix) and left > 0:
                    queue[n] = (prefix, left - 1)
                    return True
        return False

    def can_pull(self, repo: SimRepo, user: str | None) -> bool:
        """``SetPerm`` + ``MustPull``: public repos for all, else a row or admin."""
        if not repo.private:
            return True
        return user is not None and (repo.perm_row or self.admin)

    def pipeline_json(self, repo: str, number: int, *, with_steps: bool = True) -> Json:
        """What ``GET …/pipelines/{number}`` returns now (KeyError while it is invisible)."""
        with self._lock:
            p = self._find(repo, number)
            return self._pipeline_json(p, self._state(p), with_steps)

    def repo_json(self, repo: str) -> Json:
        return self._repo_json(self.repo(repo))

    # -- JSON, in the servers' field order ------------------------------------------------------

    def _repo_json(self, r: SimRepo) -> Json:
        v2 = self.naming == "v2"
        forge = f"https://{FORGE}/{r.full_name}"
        data: Json = {
            "id": r.id,
            "forge_id": 1,
            "forge_remote_id": str(1000 + r.id),
            "org_id": 1,
            "owner": r.owner,
            "name": r.name,
            "full_name": r.full_name,
            "avatar_url": f"https://{FORGE}/avatars/{r.owner}",
            "forge_url": forge,
            "clone_url": f"{forge}.git",
            "clone_url_ssh": f"git@{FORGE}:{r.full_name}.git",
            "default_branch": r.default_branch,
            **({"scm": "git"} if v2 else {}),
            "pr_enabled": True,
            "timeout": 60,
            "visibility": "private" if r.private else "public",
            "private": r.private,
            "trusted": False if v2 else {"network": False, "volumes": False, "security": False},
            "require_approval": "forks",
            **({} if v2 else {"approval_allowed_users": []}),
            "active": True,
            "allow_pr": True,
            "allow_deploy": False,
            "config_file": "",
            "cancel_previous_pipeline_events": [],
        }
        if v2:
            return data | {"netrc_only_trusted": True}
        data["netrc_trusted"] = []
        for extension in ("config", "registry", "secret"):
            data[f"{extension}_extension_endpoint"] = ""
            if extension == "config":
                data["config_extension_exclusive"] = False
            data[f"{extension}_extension_netrc"] = False
        return data

    def _user_json(self) -> Json:
        data: Json = {"id": 1, "forge_id": 1}
        if self.naming == "v3":
            data["forge_remote_id"] = "1"
        return data | {
            "login": self.user,
            "email": f"{self.user}@example.test",
            "avatar_url": f"https://{FORGE}/avatars/{self.user}",
            "org_id": 1,
        }

    def _pipeline_json(self, p: _Pipeline, s: _State, with_workflows: bool) -> Json:
        """Fields in the order of the Go structs (v3.17.0 or v2.8.3 ``Pipeline``)."""
        unix = self.clock.unix
        v3 = self.naming == "v3"

        def stamp(name: str) -> str:
            return name if v3 else f"{name}_at"

        created = p.created if p.created is not None else unix(p.appear_at)
        reviewed_at = p.declined_at if p.declined_at is not None else p.approved_at
        if p.event.startswith("pull_request"):
            forge_url = f"https://{FORGE}/{p.repo.full_name}/pulls/1"
        else:
            forge_url = f"https://{FORGE}/{p.repo.full_name}/commit/{p.commit}"
        data: Json = {
            "id": p.id,
            "number": p.number,
            "author": "dev",
            "parent": p.parent,
            "event": p.event,
            **({"event_reason": []} if v3 else {}),
            "status": s.status,
            # a nil Go slice is JSON null (server/model/pipeline.go@v3.17.0:34, no omitempty)
            "errors": (p.config_errors + p.warnings) or None,
            stamp("created"): created,
            stamp("updated"): unix(s.updated),
            stamp("started"): unix(s.started) if s.started is not None else 0,
            stamp("finished"): unix(s.finished) if s.finished is not None else 0,
            "deploy_to": "",
            "deploy_task": "",
            "commit": p.commit,
            "branch": p.branch,
        }
        review = {
            "reviewed_by": p.reviewed_by,
            stamp("reviewed"): unix(reviewed_at) if reviewed_at is not None else 0,
        }
        deprecated = {"title": "", "message": p.message, "timestamp": created, "sender": "dev"}
        email = {"author_email": "dev@example.test"}
        if v3:
            data |= {"rerun_count": p.rerun_count, "ref": p.ref, "refspec": ""}
            data |= {"author_avatar": "", "forge_url": forge_url, **review}
            if p.cancel_info is not None and s.status in ("killed", "canceled"):
                data["cancel_info"] = dict(p.cancel_info)
        else:
            data |= {"ref": p.ref, "refspec": "", **deprecated, "author_avatar": "", **email}
            data |= {"forge_url": forge_url, **review}
        if with_workflows and s.has_workflows:  # ``workflows,omitempty``
            data["workflows"] = [self._workflow_json(p, s)]
        if v3:
            data |= {"version": VERSIONS["v3"], **deprecated, **email}
        return data

    def _workflow_json(self, p: _Pipeline, s: _State) -> Json:
        unix = self.clock.unix
        start, end = ("start_time", "end_time") if self.naming == "v2" else ("started", "finished")
        children = []
        for step, st in zip(p.steps, s.steps, strict=True):
            child: Json = {
                "id": step.id,
                "uuid": step.uuid,
                "pipeline_id": p.id,
                "pid": step.pid,
                "ppid": 1,
                "name": step.spec.name,
                "state": st.state,
            }
            if st.error:
                child["error"] = st.error
            child["exit_code"] = st.exit_code
            if st.started is not None:
                child[start] = unix(st.started)
            if st.finished is not None:
                child[end] = unix(st.finished)
            child["type"] = step.spec.step_type
            children.append(child)
        workflow: Json = {
            "id": p.workflow_id,
            "pipeline_id": p.id,
            "pid": 1,
            "name": WORKFLOW_NAME,
            "state": s.workflow,
        }
        if s.workflow_error:
            workflow["error"] = s.workflow_error
        if s.started is not None:
            workflow[start] = unix(s.started)
            if s.finished is not None:
                workflow[end] = unix(s.finished)
            workflow["agent_id"] = 1
            workflow["platform"] = "linux/amd64"
        if children:
            workflow["children"] = children
        return workflow

    def _log_json(self, p: _Pipeline, step: _Step, t: float) -> list[Json] | None:
        """Lines come out evenly over the step's run; ``None`` (JSON null) before the first."""
        st = _evaluate(p, t, self.naming).steps[p.steps.index(step)]
        if st.started is None:
            return None
        until = (st.finished if st.finished is not None else t) - st.started
        lines = step.spec.lines
        entries = []
        for n, text in enumerate(lines):
            offset = step.spec.duration * n / len(lines)
            if offset > until:
                break
            entries.append(
                {
                    "id": step.id * 100_000 + n + 1,
                    "step_id": step.id,
                    "time": int(offset),
                    "line": n,
                    "data": base64.b64encode(text.encode()).decode("ascii"),
                    "type": 0,
                }
            )
        return entries or None

    def _perm_json(self, r: SimRepo, user: str | None) -> Json:
        """``GET …/permissions``: the Perm that ``SetPerm`` computed
        (server/model/perm.go@v3.17.0:19-28, session/repo.go@v3.17.0:104-168): the row,
        all-true for an admin, pull for a public repo."""
        row = user is not None and r.perm_row
        stamp = self.clock.unix(0.0) if row else 0
        admin = user is not None and self.admin
        return {
            "pull": row or admin or not r.private,
            "push": row or admin,
            "admin": admin,
            "synced": stamp,
            "created": stamp,
            "updated": stamp,
        }

    def _branches(self, r: SimRepo) -> list[str]:
        """The forge's branch names (server/api/repo.go@v3.17.0:415-443)."""
        return sorted({r.default_branch} | {p.branch for p in self._pipelines[r.id]})

    def _config_json(self, p: _Pipeline) -> list[Json]:
        """``GET …/pipelines/{n}/config``: the persisted config files, ``data`` base64 and
        ``hash`` its sha256 (server/model/config.go@v3.17.0:19-25,
        server/store/datastore/config.go@v3.17.0:49)."""
        lines = ["steps:"]
        for step in p.steps:
            lines += [f"  - name: {step.spec.name}", "    image: alpine", "    commands: [true]"]
        data = ("\n".join(lines) + "\n").encode()
        return [
            {
                "hash": hashlib.sha256(data).hexdigest(),
                "name": WORKFLOW_NAME,
                "data": base64.b64encode(data).decode("ascii"),
            }
        ]

    def _task_json(self, p: _Pipeline, s: _State) -> Json:
        """A queue task (server/model/task.go@v3.17.0:26-45, server/model/queue.go@v3.17.0:18-22;
        v2.8.3 server/model/task.go:24-30)."""
        v3 = self.naming == "v3"
        task: Json = {"id": str(p.workflow_id)}
        task |= {"pid": 1, "name": WORKFLOW_NAME} if v3 else {"data": None}
        task |= {
            "labels": {"repo": p.repo.full_name, "platform": "linux/amd64"},
            "dependencies": None,
            "run_on": None,
            "dep_status": {},
            "agent_id": 1 if s.status == "running" else 0,
        }
        if v3:
            task |= {
                "pipeline_id": p.id,
                "repo_id": p.repo.id,
                "concurrency_limit": 0,
                "concurrency_group": "",
                "created": self.clock.unix(p.appear_at),
                "pipeline_number": p.number,
                "agent_name": "agent-1" if s.status == "running" else "",
            }
        return task

    # -- events ---------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                self._publish_changes()

    def _publish_changes(self) -> None:
        """Queue an SSE event for every pipeline whose state changed since the last look."""
        for pipelines in self._pipelines.values():
            for p in pipelines:
                state = self._state(p)
                if not state.visible or p.deleted_after is not None:
                    continue  # nothing is published before the delete (create.go@v3.17.0:133)
                signature = (
                    state.status,
                    state.workflow,
                    tuple(s.state for s in state.steps),
                    p.reviewed_by,
                )
                if self._signatures.get(p.id) == signature:
                    continue
                self._signatures[p.id] = signature
                receivers = [s for s in self._subscribers if s.receives(p.repo)]
                if not receivers:
                    continue
                payload = {
                    "repo": self._repo_json(p.repo),
                    "pipeline": self._pipeline_json(p, state, True),
                }
                message = b"data: " + _go_json(payload) + b"\n\n"
                for sub in receivers:
                    sub.queue.append(message)
        self._changed.notify_all()

    # -- request handling helpers ---------------------------------------------------------------

    def _user_for(self, headers: Any, query: dict[str, list[str]]) -> str | None:
        """The request's user, or None for anonymous (``session.SetUser``: never a rejection).

        The first credential found decides, in the server's order: Authorization header
        (must be ``Bearer <t>``), ``X-Gitlab-Token``, ``access_token=``, the ``user_sess`` cookie.
        """
        if self.token is None:
            return self.user
        presented: str | None = None
        authorization = headers.get("Authorization")
        if authorization:
            parts = authorization.split()
            presented = parts[1] if len(parts) >= 2 and parts[0] == "Bearer" else ""
        elif headers.get("X-Gitlab-Token"):
            presented = headers.get("X-Gitlab-Token")
        elif query.get("access_token", [""])[0]:
            presented = query["access_token"][0]
        else:
            cookies = headers.get("Cookie") or ""
            for part in cookies.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "user_sess" and value:
                    presented = value
                    break
        return self.user if presented == self.token else None

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        status: int,
        fault: str | None,
        authenticated: bool,
    ) -> None:
        record = RequestRecord(method, path, query, status, fault, time.monotonic(), authenticated)
        with self._lock:
            self.requests.append(record)


def _error_json(kind: str, message: str, warning: bool) -> Json:
    """One ``errors[]`` entry (pipeline/errors/pipeline.go@v3.17.0:33-38)."""
    return {"type": kind, "message": message, "is_warning": warning, "data": None}


def _default_ref(event: str, branch: str) -> str:
    if event.startswith("pull_request"):
        return "refs/pull/1/head"
    if event in ("tag", "release"):
        return "refs/tags/v1.0.0"
    return f"refs/heads/{branch}"


def _go_json(data: object) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8", "replace")


_GO_INT = re.compile(r"[+-]?[0-9]+")


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``, or None where Go returns an error."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(Z|([+-])([0-9]{2}):([0-9]{2}))"
)


def _parse_rfc3339(text: str) -> int | None:
    """``time.Parse(time.RFC3339, text).Unix()``, or None where Go returns an error."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    tz = UTC
    if m.group(7) != "Z":
        tz_hours, tz_minutes = int(m.group(9)), int(m.group(10))
        if tz_hours > 23 or tz_minutes > 59:
            return None
        sign = 1 if m.group(8) == "+" else -1
        tz = timezone(sign * timedelta(hours=tz_hours, minutes=tz_minutes))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return int(moment.timestamp())


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(data: object) -> _Reply:
    return _Reply(200, _go_json(data), "application/json; charset=utf-8")


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), "text/plain; charset=utf-8")


def _index_reply() -> _Reply:
    """Any route the server does not know: the web UI's index.html, with a 200."""
    return _Reply(200, INDEX_HTML, "text/html; charset=UTF-8", {"Cache-Control": "no-cache"})


class _Subscriber:
    """One open event stream. Its private repos are fixed at connect time, as on the server:
    those with a permission row (server/api/stream.go@v3.17.0:81-85 with
    server/store/datastore/repo.go@v3.17.0:145-161); public repos come through the public topic
    (server/scheduler/impl.go@v3.17.0:129-135). ``silent``: served by a replica whose in-memory
    pubsub never sees this server's events."""

    def __init__(self, repo_ids: frozenset[int], silent: bool = False) -> None:
        self.repo_ids = repo_ids
        self.silent = silent
        self.queue: deque[bytes] = deque()

    def receives(self, repo: SimRepo) -> bool:
        if self.silent:
            return False
        return not repo.private or repo.id in self.repo_ids


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    user: str | None

    def arg(self, name: str) -> str:
        """Gin's ``c.Query``: the first value, or empty."""
        return self.query.get(name, [""])[0]


_ROUTES: dict[tuple[str, str], str] = {
    ("GET", ""): "repo",
    ("GET", "pipelines"): "list",
    ("POST", "pipelines"): "create",
    ("GET", "pipelines/*"): "pipeline",
    ("POST", "pipelines/*"): "restart",
    ("POST", "pipelines/*/cancel"): "cancel",
    ("POST", "pipelines/*/approve"): "approve",
    ("POST", "pipelines/*/decline"): "decline",
    ("GET", "logs/*/*"): "logs",
    ("GET", "permissions"): "permissions",
    ("GET", "branches"): "branches",
    ("GET", "pipelines/*/config"): "config",
}
_PUSH_ROUTES = frozenset({"create", "restart", "cancel", "approve", "decline"})


def _shape(segments: list[str]) -> str:
    """``pipelines/7/cancel`` → ``pipelines/*/cancel``: the route pattern, parameters starred."""
    literal = {0} | ({2} if segments[:1] == ["pipelines"] else set())
    return "/".join(s if n in literal else "*" for n, s in enumerate(segments))


class _Api:
    """The routes, as ``server/router/api.go`` wires them (middleware order included)."""

    def __init__(self, sim: WoodpeckerSim) -> None:
        self.sim = sim

    def route(self, req: _Request) -> _Reply:
        sim, path = self.sim, req.path
        if req.method == "GET":
            if path == "/healthz":
                return _Reply(204)
            if path == "/version":
                return _json_reply({"source": SOURCE_URL, "version": VERSIONS[sim.naming]})
            if path == "/api/user":
                if req.user is None:
                    return _text_reply(401, "User not authorized")
                return _json_reply(sim._user_json())
            if path == "/api/user/repos":
                if req.user is None:  # session.MustUser (session/user.go@v3.17.0:110-121)
                    return _text_reply(401, "User not authorized")
                with sim._lock:
                    return self.user_repos()
            if path == "/api/queue/info":
                if req.user is None:  # session.MustAdmin (session/user.go@v3.17.0:77-91)
                    return _text_reply(401, "User not authorized")
                if not sim.admin:
                    return _text_reply(403, "User not authorized")
                with sim._lock:
                    return self.queue_info()
            if path.startswith("/api/repos/lookup/"):
                return self.lookup(req, path.removeprefix("/api/repos/lookup/").lstrip("/"))
        if path == "/stream/events" and sim.naming == "v2":
            return _text_reply(410, "use /api/stream/events")
        if path.startswith("/api/repos/"):
            repo_id, _, rest = path.removeprefix("/api/repos/").partition("/")
            segments = rest.split("/") if rest else []
            kind = _ROUTES.get((req.method, _shape(segments)))
            if kind is not None:
                with sim._lock:
                    return self.repo_route(req, kind, repo_id, segments[1:])
        return _index_reply()

    def lookup(self, req: _Request, full_name: str) -> _Reply:
        with self.sim._lock:
            repo = next(
                (r for r in self.sim._repos.values() if r.full_name.lower() == full_name.lower()),
                None,
            )
            if repo is None:
                return _Reply(401 if req.user is None else 404)
            if req.user is not None and self.sim._take(self.sim._deny_pull, req.path):
                return _Reply(404)
            if not self.sim.can_pull(repo, req.user):  # MustPull: guest 401, user 404
                return _Reply(401 if req.user is None else 404)
            return _json_reply(self.sim._repo_json(repo))

    def repo_route(self, req: _Request, kind: str, repo_text: str, args: list[str]) -> _Reply:
        sim = self.sim
        repo_id = _go_int(repo_text)
        if repo_id is None:
            return _Reply(400)
        repo = sim._repos.get(repo_id)
        if repo is None:  # session.SetRepo: guests learn nothing, users get a 404
            return _Reply(401 if req.user is None else 404)
        if kind == "permissions":  # after SetPerm, before MustPull (router/api.go@v3.17.0:103)
            return _json_reply(sim._perm_json(repo, req.user))
        if req.user is not None and sim._take(sim._deny_pull, req.path):
            return _Reply(404)  # the permission re-sync failed: MustPull says 404
        if not sim.can_pull(repo, req.user):  # MustPull: guest 401, user 404
            return _Reply(401 if req.user is None else 404)
        if kind in _PUSH_ROUTES and req.user is None:  # MustPush
            return _Reply(401)
        if kind == "repo":
            return _json_reply(sim._repo_json(repo))
        if kind == "list":
            return self.pipelines(req, repo)
        if kind == "branches":
            return _json_reply(sim._branches(repo))
        if kind == "create":
            return _text_reply(501, "manual pipelines are not simulated")
        if kind == "pipeline" and args[0] == "latest":
            return self.latest(req, repo)
        number = _go_int(args[0])
        if number is None:
            return _Reply(400)
        try:
            p = sim._find(repo.id, number)
        except KeyError:
            return _Reply(404)
        if kind == "pipeline":
            return _json_reply(sim._pipeline_json(p, sim._state(p), True))
        if kind == "logs":
            return self.logs(p, args[1])
        if kind == "config":
            return _json_reply(sim._config_json(p))
        try:
            if kind == "restart":
                new = sim._restart(p)
                return _json_reply(sim._pipeline_json(new, sim._state(new), True))
            if kind == "cancel":
                sim._cancel(p, None)
                return _Reply(204)
            if kind == "approve":
                sim._approve(p)
            else:
                sim._decline(p)
        except ActionRefused as refused:
            # Decline's refusal is an untyped error on the server, hence a bare 500.
            return _Reply(500) if kind == "decline" else _text_reply(400, str(refused))
        return _json_reply(sim._pipeline_json(p, sim._state(p), True))

    def pipelines(self, req: _Request, repo: SimRepo) -> _Reply:
        sim = self.sim
        v3 = sim.naming == "v3"
        events: set[str] = set()
        status = ""
        if v3:  # v2 servers ignore these parameters
            if req.arg("event"):
                events = set(req.arg("event").split(","))
                if not events <= EVENTS:
                    return _Reply(400)
            status = req.arg("status")
            if status and status not in STATUSES:
                return _Reply(400)
        bounds: dict[str, int] = {}
        for name in ("before", "after"):
            if req.arg(name):
                value = _parse_rfc3339(req.arg(name))
                if value is None:
                    return _Reply(400)
                bounds[name] = value
        page = _go_int(req.arg("page"))
        per_page = _go_int(req.arg("perPage"))
        page = page if page is not None and page >= 1 else 1
        per_page = per_page if per_page is not None and 1 <= per_page <= 50 else 50
        rows = []
        for p in sorted(sim._pipelines[repo.id], key=lambda x: -x.number):
            state = sim._state(p)
            if not state.visible:
                continue
            created = p.created if p.created is not None else sim.clock.unix(p.appear_at)
            if bounds.get("after") and not created > bounds["after"]:
                continue
            if bounds.get("before") and not created < bounds["before"]:
                continue
            if v3 and (
                (req.arg("branch") and p.branch != req.arg("branch"))
                or (events and p.event not in events)
                or (req.arg("ref") and req.arg("ref") not in p.ref)
                or (status and state.status != status)
            ):
                continue
            rows.append((p, state))
        chunk = rows[(page - 1) * per_page : page * per_page]
        return _json_reply([sim._pipeline_json(p, s, False) for p, s in chunk])

    def user_repos(self) -> _Reply:
        """``GET /api/user/repos``: active repos with a row (push or admin), by full name;
        v3 adds each one's newest pipeline as ``last_pipeline``
        (server/api/user.go@v3.17.0:181-217); v2 lists the repos alone
        (server/api/user.go@v2.8.3:137-143)."""
        sim = self.sim
        rows = []
        for r in sorted(sim._repos.values(), key=lambda x: x.full_name):
            if not r.perm_row:
                continue
            data = sim._repo_json(r)
            if sim.naming == "v3":
                seen = [p for p in sim._pipelines[r.id] if sim._state(p).visible]
                if seen:
                    last = max(seen, key=lambda x: x.id)
                    data["last_pipeline"] = sim._pipeline_json(last, sim._state(last), False)
            rows.append(data)
        return _json_reply(rows)

    def queue_info(self) -> _Reply:
        """``GET /api/queue/info`` for an admin: one task per workflow that waits or runs,
        indented as gin's IndentedJSON writes it (server/api/queue.go@v3.17.0:38-84;
        v2.8.3 server/api/hook.go:46-50 with server/queue/queue.go:33-45)."""
        sim = self.sim
        v3 = sim.naming == "v3"
        pending: list[Json] = []
        running: list[Json] = []
        for pipelines in sim._pipelines.values():
            for p in pipelines:
                state = sim._state(p)
                if state.visible and state.status in ("pending", "running"):
                    task = sim._task_json(p, state)
                    (pending if state.status == "pending" else running).append(task)
        info: Json = {
            "pending": pending or ([] if v3 else None),
            "waiting_on_deps": [] if v3 else None,
            "running": running or ([] if v3 else None),
            "stats": {
                "worker_count": 1,
                "pending_count": len(pending),
                "waiting_on_deps_count": 0,
                "running_count": len(running),
            },
            "paused": False,
        }
        body = json.dumps(info, indent=4, ensure_ascii=False).encode()
        return _Reply(200, body, "application/json; charset=utf-8")

    def latest(self, req: _Request, repo: SimRepo) -> _Reply:
        sim = self.sim
        branch = req.query["branch"][0] if "branch" in req.query else repo.default_branch
        found = [
            p
            for p in sim._pipelines[repo.id]
            if p.event == "push" and p.branch == branch and sim._state(p).visible
        ]
        if not found:
            return _Reply(404)
        p = max(found, key=lambda x: x.number)
        return _json_reply(sim._pipeline_json(p, sim._state(p), True))

    def logs(self, p: _Pipeline, step_text: str) -> _Reply:
        step_id = _go_int(step_text)
        if step_id is None:
            return _Reply(400)
        for step in p.steps:
            if step.id == step_id:
                return _json_reply(self.sim._log_json(p, step, self.sim.clock.now()))
        return _Reply(404)


class _WoodpeckerHandler(SimHandler):
    """The server's HTTP side: Go's headers and framing around :class:`_Api`'s routes."""

    @property
    def sim(self) -> WoodpeckerSim:
        return cast(WoodpeckerSim, self.app)

    def handle(self) -> None:
        thread = threading.current_thread()
        with self.sim._lock:
            self.sim._handlers.add(thread)
        try:
            if not self.sim._stop.is_set():
                super().handle()
        finally:
            with self.sim._lock:
                self.sim._handlers.discard(thread)

    def send_response(self, code: int, message: str | None = None) -> None:
        # Go sends a Date but no Server header.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    do_GET = do_POST = SimHandler.dispatch

    def do_OPTIONS(self) -> None:
        self._discard_body()
        self._send(
            _Reply(
                200,
                b"",
                "application/json",
                {
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS",
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Allow": "HEAD,GET,POST,PUT,PATCH,DELETE,OPTIONS",
                },
            )
        )

    def _discard_body(self) -> None:
        length = _go_int(self.headers.get("Content-Length") or "0") or 0
        if length > 0:
            self.rfile.read(length)

    def serve(self, method: str) -> None:
        self._discard_body()
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        user = self.sim._user_for(self.headers, query)
        if user is not None and self.sim._take(self.sim._anonymous, path):
            user = None  # the token's user could not be loaded: the request runs anonymously
        req = _Request(method, path, query, user)
        if method == "GET" and path == "/api/stream/events":
            self._stream(req)
            return
        fault = (
            self.sim.faults.decide(path, JSON_ROUTE_FAULTS) if path.startswith("/api/") else None
        )
        if fault == "reset":
            self.sim._record(method, path, query, 0, fault, req.user is not None)
            self._reset()
            return
        if fault == "stall" and self.sim._server.stopping.wait(self.sim.faults.stall_seconds):
            self.close_connection = True
            return
        reply = self._fault_reply(fault)
        if reply is None:
            try:
                reply = self.sim._api.route(req)
            except Exception as exc:  # a simulator bug: answer like Go's recovery, keep it
                self.sim.errors.append(exc)
                reply = _Reply(500)
        truncate = fault == "truncated" and len(reply.body) >= 2
        if fault == "truncated" and not truncate:
            fault = None  # nothing to cut: the request went through untouched
        self.sim._record(method, path, query, reply.status, fault, req.user is not None)
        self._send(reply, truncate=truncate)

    def _fault_reply(self, fault: str | None) -> _Reply | None:
        """The answer a fault gives instead of the server's; None lets the server answer.

        429 and 5xx come from in front of the server, so the request has no effect there.
        """
        if fault == "empty200":
            return _Reply(200, b"", "application/json; charset=utf-8")
        if fault == "5xx":
            return _Reply((500, 502, 503)[self.sim.faults.draw(0, 2)])
        if fault == "429":
            return _Reply(429, headers={"Retry-After": str(self.sim.faults.retry_after)})
        return None

    def _reset(self) -> None:
        self.close_connection = True
        reset_connection(self.connection)

    def _headers(self, reply: _Reply) -> dict[str, str]:
        headers = {
            "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate, value",
            "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
            "Last-Modified": formatdate(usegmt=True),
            "Access-Control-Allow-Origin": "*",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "X-Xss-Protection": "1; mode=block",
        }
        if isinstance(self.connection, ssl.SSLSocket):
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if reply.content_type is not None:
            headers["Content-Type"] = reply.content_type
        return headers | reply.headers

    def _send(self, reply: _Reply, truncate: bool = False) -> None:
        """Send with a correct Content-Length; ``truncate`` declares and sends only half
        the body, so the client gets a complete response that is not valid JSON."""
        body = reply.body[: len(reply.body) // 2] if truncate else reply.body
        with contextlib.suppress(OSError):
            self.send_response(reply.status)
            for key, value in self._headers(reply).items():
                self.send_header(key, value)
            if reply.status != 204:
                self.send_header("Content-Length", str(len(body)))
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

    def _stream(self, req: _Request) -> None:
        """``GET /api/stream/events``: a ping, then one ``data:`` line per state change."""
        fault = self.sim.faults.decide(req.path, STREAM_FAULTS)
        authenticated = req.user is not None
        if fault == "reset":
            self.sim._record(req.method, req.path, req.query, 0, fault, authenticated)
            self._reset()
            return
        if fault == "stall" and self.sim._server.stopping.wait(self.sim.faults.stall_seconds):
            self.close_connection = True
            return
        refused = self._fault_reply(fault)
        if refused is not None:
            if fault == "empty200":
                refused.content_type = "text/event-stream"
            self.sim._record(req.method, req.path, req.query, refused.status, fault, authenticated)
            self._send(refused)
            return
        drop_after = self.sim.faults.draw(0, 3) if fault == "stream_drop" else None
        self.sim._record(req.method, req.path, req.query, 200, fault, authenticated)
        with self.sim._lock:
            rows = frozenset(r.id for r in self.sim._repos.values() if r.perm_row)
            sub = _Subscriber(rows if authenticated else frozenset(), self.sim.stream_silent)
            self.sim._subscribers.append(sub)
        try:
            self.send_response(200)
            stream = _Reply(
                200,
                content_type="text/event-stream",
                headers={
                    "Cache-Control": "no-store",
                    "Connection": "keep-alive",
                    "X-Accel-Buffering": "no",
                    "Transfer-Encoding": "chunked",
                },
            )
            for key, value in self._headers(stream).items():
                self.send_header(key, value)
            self.end_headers()
            # send_header("Connection", "keep-alive") re-armed keep-alive; a stream is last.
            self.close_connection = True
            self._pump(sub, drop_after)
        except OSError:
            pass
        finally:
            with self.sim._lock:
                if sub in self.sim._subscribers:
                    self.sim._subscribers.remove(sub)

    def _pump(self, sub: _Subscriber, drop_after: int | None) -> None:
        """Write the stream until stop or, for ``stream_drop``, an abrupt end (no last chunk)
        after ``drop_after`` events or pings."""
        self._chunk(b": ping\n\n")
        sent = 0
        last = time.monotonic()
        while not self.sim._stop.is_set():
            if drop_after is not None and sent >= drop_after:
                return
            with self.sim._changed:
                if not sub.queue:
                    idle = time.monotonic() - last
                    self.sim._changed.wait(
                        timeout=max(0.0, min(0.25, self.sim.ping_interval - idle))
                    )
                batch = list(sub.queue)
                sub.queue.clear()
            if self.sim._stop.is_set():
                return
            for message in batch:
                self._chunk(message)
                sent += 1
                last = time.monotonic()
                if drop_after is not None and sent >= drop_after:
                    return
            if not batch and time.monotonic() - last >= self.sim.ping_interval:
                self._chunk(b": ping\n\n")
                sent += 1
                last = time.monotonic()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
