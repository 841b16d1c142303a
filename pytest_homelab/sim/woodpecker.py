"""A Woodpecker CI server simulator: the API surface a pipeline watcher uses, on loopback.

Shapes follow the real server (``shared/reference/woodpecker.md`` and its OpenAPI spec): unix-second
timestamps (v2 names with ``naming="v2"``), steps under ``workflows[].children[]`` only on the
single-pipeline GET, base64 log ``data``, empty bodies for 401/404, anonymous fallback for bad
tokens, and an SSE stream of full pipeline snapshots. Scenarios run on a scenario clock that can
be sped up or advanced; faults come from a seeded :class:`FaultPlan`.

Typical use in a test::

    with WoodpeckerSim(host="127.0.0.2", ssl_context=ctx, public_host="ci.example.test") as sim:
        sim.add_repo("homelab/app")
        sim.add_pipeline("homelab/app", commit=sha, steps=[StepSpec("test", duration=0.2)])
        ...  # point the client at sim.base_url, dialing 127.0.0.2:sim.port
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_homelab.sim.faults import FaultPlan, no_faults
from pytest_homelab.sim.server import SimHTTPServer, reset_connection

Naming = Literal["v2", "v3"]
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
VERSIONS = {"v2": "2.8.3", "v3": "3.17.0"}
JSON_ROUTE_FAULTS = ("empty200", "5xx", "429", "reset", "stall", "truncated")


@dataclass(frozen=True)
class StepSpec:
    """One step of a scripted pipeline: runs ``duration`` scenario seconds, exits ``exit_code``."""

    name: str
    duration: float = 0.1
    exit_code: int = 0
    log: list[str] | None = None
    type: str = "commands"


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    fault: str | None
    time: float


@dataclass
class SimRepo:
    id: int
    full_name: str
    private: bool
    default_branch: str

    @property
    def owner(self) -> str:
        return self.full_name.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[1]


@dataclass
class _Step:
    id: int
    pid: int
    spec: StepSpec


@dataclass
class _Pipeline:
    id: int
    number: int
    repo: SimRepo
    commit: str
    event: str
    branch: str
    added_at: float  # scenario seconds
    appear_after: float
    pending_for: float
    steps: list[_Step]
    final_status: str | None
    blocked: bool
    created: int | None
    parent: int = 0
    approved_at: float | None = None
    declined_at: float | None = None
    cancelled_at: float | None = None
    superseded_by: int = 0
    message: str = "change"
    workflow_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def appear_at(self) -> float:
        return self.added_at + self.appear_after


@dataclass
class _StepState:
    state: str
    started: float | None = None
    finished: float | None = None
    exit_code: int = 0


@dataclass
class _State:
    visible: bool
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    steps: list[_StepState] = field(default_factory=list)


class ScenarioClock:
    """Scenario seconds since start: real time × ``speed`` plus whatever was advanced by hand."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = time.monotonic()
        self._offset = 0.0
        self.epoch = time.time()
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return (time.monotonic() - self._origin) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def unix(self, scenario_seconds: float) -> int:
        return int(self.epoch + scenario_seconds)


def evaluate(p: _Pipeline, t: float) -> _State:
    """The pipeline's state at scenario time ``t``: a pure function of its script and actions."""
    if t < p.appear_at:
        return _State(visible=False)
    n = len(p.steps)
    pending = [_StepState("pending") for _ in range(n)]
    if p.declined_at is not None and t >= p.declined_at:
        return _State(True, "declined", None, p.declined_at, [_StepState("skipped")] * n)
    if p.blocked and (p.approved_at is None or t < p.approved_at):
        return _State(True, "blocked", None, None, pending)
    run_from = max(p.appear_at, p.approved_at or 0.0) + p.pending_for
    cancel = p.cancelled_at if p.cancelled_at is not None and t >= p.cancelled_at else None
    now = t if cancel is None else cancel
    if now < run_from:
        if cancel is not None:
            return _State(True, "canceled", None, cancel, [_StepState("skipped")] * n)
        return _State(True, "pending", None, None, pending)
    states: list[_StepState] = []
    cursor = run_from
    failed = False
    for step in p.steps:
        if failed:
            states.append(_StepState("skipped"))
            continue
        end = cursor + step.spec.duration
        if now < cursor:
            states.append(_StepState("pending"))
        elif now < end:
            states.append(_StepState("running", cursor))
        else:
            ok = step.spec.exit_code == 0
            states.append(
                _StepState("success" if ok else "failure", cursor, end, step.spec.exit_code)
            )
            failed = not ok
        cursor = end
    if cancel is not None:
        for s in states:
            if s.state == "running":
                s.state, s.finished, s.exit_code = "killed", cancel, 137
            elif s.state == "pending":
                s.state = "skipped"
        return _State(True, "killed", run_from, cancel, states)
    done = all(s.state not in ("pending", "running") for s in states)
    if not done:
        return _State(True, "running", run_from, None, states)
    finished = max([s.finished for s in states if s.finished is not None], default=run_from)
    status = "failure" if failed else "success"
    if p.final_status is not None:
        status = p.final_status
    return _State(True, status, run_from, finished, states)


class WoodpeckerSim:
    """The simulator. Thread-safe; start with ``with`` or :meth:`start`/:meth:`stop`."""

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
    ) -> None:
        if naming not in ("v2", "v3"):
            raise ValueError("naming must be 'v2' or 'v3'")
        self.host = host
        self.naming: Naming = naming
        self.token = token
        self.faults = faults or no_faults()
        self.clock = ScenarioClock(speed)
        self.ping_interval = ping_interval
        self.user = user
        self.requests: list[RequestRecord] = []
        self._ssl = ssl_context
        self._public_host = public_host or host
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._repos: dict[int, SimRepo] = {}
        self._pipelines: dict[int, list[_Pipeline]] = {}
        self._ids = {"pipeline": 0, "step": 0, "workflow": 0, "log": 0}
        self._signatures: dict[int, tuple[Any, ...]] = {}
        self._subscribers: list[_Subscriber] = []
        self._server = SimHTTPServer((host, port), _make_handler(self), ssl_context)
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

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
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._server.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def __enter__(self) -> WoodpeckerSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------

    def add_repo(
        self, full_name: str, *, private: bool = True, default_branch: str = "main"
    ) -> SimRepo:
        if full_name.count("/") < 1 or not all(full_name.split("/")):
            raise ValueError("full_name must be OWNER/NAME")
        with self._lock:
            repo = SimRepo(len(self._repos) + 1, full_name, private, default_branch)
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
        parent: int = 0,
        message: str = "change",
    ) -> int:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        if final_status is not None and final_status not in STATUSES:
            raise ValueError(f"unknown status {final_status!r}")
        with self._lock:
            r = self.repo(repo)
            number = len(self._pipelines[r.id]) + 1
            self._ids["pipeline"] += 1
            self._ids["workflow"] += 1
            made = []
            for pid, spec in enumerate(steps, start=2):  # pid 1 is the workflow
                self._ids["step"] += 1
                made.append(_Step(self._ids["step"] + 1000, pid, spec))
            pipeline = _Pipeline(
                id=self._ids["pipeline"],
                number=number,
                repo=r,
                commit=commit.lower(),
                event=event,
                branch=branch or r.default_branch,
                added_at=self.clock.now(),
                appear_after=appear_after,
                pending_for=pending_for,
                steps=made,
                final_status=final_status,
                blocked=blocked,
                created=created,
                parent=parent,
                message=message,
                workflow_id=self._ids["workflow"],
            )
            self._pipelines[r.id].append(pipeline)
            self._publish_changes()
            return number

    def _find(self, repo: str | int, number: int) -> _Pipeline:
        with self._lock:
            rid = repo if isinstance(repo, int) else self.repo(repo).id
            for p in self._pipelines.get(rid, []):
                if p.number == number:
                    return p
        raise KeyError(f"{repo}#{number}")

    def approve(self, repo: str, number: int) -> None:
        with self._lock:
            self._find(repo, number).approved_at = self.clock.now()
            self._publish_changes()

    def decline(self, repo: str, number: int) -> None:
        with self._lock:
            self._find(repo, number).declined_at = self.clock.now()
            self._publish_changes()

    def cancel(self, repo: str, number: int, superseded_by: int | None = None) -> None:
        with self._lock:
            p = self._find(repo, number)
            p.cancelled_at = self.clock.now()
            p.superseded_by = superseded_by or 0
            self._publish_changes()

    def restart(self, repo: str, number: int) -> int:
        with self._lock:
            old = self._find(repo, number)
            return self.add_pipeline(
                old.repo.full_name,
                commit=old.commit,
                event=old.event,
                branch=old.branch,
                steps=[s.spec for s in old.steps],
                parent=old.number,
                message=old.message,
            )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        with self._lock:
            self._publish_changes()

    def pipeline_json(self, repo: str, number: int, *, with_steps: bool = True) -> dict[str, Any]:
        with self._lock:
            p = self._find(repo, number)
            return self._pipeline_json(p, evaluate(p, self.clock.now()), with_steps)

    def repo_json(self, repo: str) -> dict[str, Any]:
        return self._repo_json(self.repo(repo))

    # -- JSON rendering -------------------------------------------------------------------------

    def _ts(self, name: str) -> str:
        return f"{name}_at" if self.naming == "v2" else name

    def _repo_json(self, r: SimRepo) -> dict[str, Any]:
        forge = f"https://git.example.test/{r.full_name}"
        data: dict[str, Any] = {
            "id": r.id,
            "forge_id": 1,
            "forge_remote_id": str(1000 + r.id),
            "org_id": 1,
            "owner": r.owner,
            "name": r.name,
            "full_name": r.full_name,
            "avatar_url": "",
            "forge_url": forge,
            "clone_url": f"{forge}.git",
            "clone_url_ssh": f"git@git.example.test:{r.full_name}.git",
            "default_branch": r.default_branch,
            "pr_enabled": True,
            "timeout": 60,
            "visibility": "private" if r.private else "public",
            "private": r.private,
            "require_approval": "forks",
            "active": True,
            "allow_pr": True,
            "allow_deploy": False,
            "config_file": "",
            "netrc_trusted": [],
            "cancel_previous_pipeline_events": ["push", "pull_request"],
        }
        if self.naming == "v3":
            data["trusted"] = {"network": False, "volumes": False, "security": False}
            data["approval_allowed_users"] = []
        else:
            data["trusted"] = False
        return data

    def _pipeline_json(self, p: _Pipeline, s: _State, with_steps: bool) -> dict[str, Any]:
        unix = self.clock.unix
        created = p.created if p.created is not None else unix(p.appear_at)
        updated = unix(
            max([x for x in (s.finished, s.started) if x is not None], default=p.appear_at)
        )
        data: dict[str, Any] = {
            "id": p.id,
            "number": p.number,
            "parent": p.parent,
            "event": p.event,
            "event_reason": [],
            "status": s.status,
            "errors": [],
            self._ts("created"): created,
            self._ts("updated"): updated,
            self._ts("started"): unix(s.started) if s.started is not None else 0,
            self._ts("finished"): unix(s.finished) if s.finished is not None else 0,
            "deploy_to": "",
            "deploy_task": "",
            "commit": p.commit,
            "branch": p.branch,
            "ref": f"refs/heads/{p.branch}",
            "refspec": "",
            "rerun_count": 0,
            "author": "dev",
            "author_avatar": "",
            "author_email": "dev@example.test",
            "sender": "dev",
            "forge_url": f"https://git.example.test/{p.repo.full_name}/commit/{p.commit}",
            "reviewed_by": "",
            self._ts("reviewed"): 0,
            "title": "",
            "message": p.message,
            "timestamp": created,
        }
        if self.naming == "v3":
            data["version"] = VERSIONS["v3"]
        if p.superseded_by:
            data["cancel_info"] = {"superseded_by": p.superseded_by}
        if with_steps:
            data["workflows"] = [self._workflow_json(p, s)]
        return data

    def _workflow_json(self, p: _Pipeline, s: _State) -> dict[str, Any]:
        unix = self.clock.unix
        start, end = ("start_time", "end_time") if self.naming == "v2" else ("started", "finished")
        children = []
        for step, st in zip(p.steps, s.steps, strict=True):
            child: dict[str, Any] = {
                "id": step.id,
                "uuid": f"00000000-0000-4000-8000-{step.id:012d}",
                "pipeline_id": p.id,
                "pid": step.pid,
                "ppid": 1,
                "name": step.spec.name,
                "state": st.state,
                "exit_code": st.exit_code,
                "type": step.spec.type,
            }
            if st.started is not None:
                child[start] = unix(st.started)
            if st.finished is not None:
                child[end] = unix(st.finished)
            children.append(child)
        workflow: dict[str, Any] = {
            "id": p.workflow_id,
            "pipeline_id": p.id,
            "pid": 1,
            "name": "woodpecker",
            "state": s.status if s.status != "blocked" else "pending",
            "agent_id": 1,
            "platform": "linux/amd64",
            "environ": {},
            "children": children,
        }
        if s.started is not None:
            workflow[start] = unix(s.started)
        if s.finished is not None:
            workflow[end] = unix(s.finished)
        return workflow

    def _log_json(self, p: _Pipeline, step: _Step, t: float) -> list[dict[str, Any]] | None:
        state = evaluate(p, t)
        index = p.steps.index(step)
        st = state.steps[index] if state.visible else _StepState("pending")
        lines = step.spec.log if step.spec.log is not None else [f"+ {step.spec.name}"]
        if st.started is None:
            return None
        if st.finished is not None:
            released = len(lines)
        else:
            elapsed = max(0.0, t - st.started)
            released = int(len(lines) * min(1.0, elapsed / max(step.spec.duration, 1e-9)))
        if released == 0:
            return None
        return [
            {
                "id": step.id * 10000 + n,
                "step_id": step.id,
                "time": n,
                "line": n,
                "data": base64.b64encode(text.encode()).decode("ascii"),
                "type": 0,
            }
            for n, text in enumerate(lines[:released])
        ]

    # -- events ---------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                self._publish_changes()

    def _publish_changes(self) -> None:
        """Publish an SSE event for every pipeline whose state changed since the last look."""
        t = self.clock.now()
        for pipelines in self._pipelines.values():
            for p in pipelines:
                state = evaluate(p, t)
                if not state.visible:
                    continue
                signature = (state.status, tuple(s.state for s in state.steps), p.superseded_by)
                if self._signatures.get(p.id) == signature:
                    continue
                self._signatures[p.id] = signature
                payload = {
                    "repo": self._repo_json(p.repo),
                    "pipeline": self._pipeline_json(p, state, True),
                }
                message = json.dumps(payload, separators=(",", ":"))
                for sub in self._subscribers:
                    if sub.authed or not p.repo.private:
                        sub.queue.append(message)
        self._changed.notify_all()

    # -- request handling -------------------------------------------------------------------------

    def _authed(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        header = handler.headers.get("Authorization", "")
        if header == f"Bearer {self.token}":
            return True
        return query.get("access_token", [""])[0] == self.token

    def _visible_repo(self, rid: int, authed: bool) -> tuple[int, SimRepo | None]:
        repo = self._repos.get(rid)
        if repo is None:
            return 404, None
        if repo.private and not authed:
            return 401, None
        return 200, repo


class _Subscriber:
    def __init__(self, authed: bool) -> None:
        self.authed = authed
        self.queue: list[str] = []


class _Reply(Exception):
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json(data: object) -> _Reply:
    return _Reply(200, json.dumps(data).encode(), "application/json")


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _make_handler(sim: WoodpeckerSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "woodpecker-sim"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._serve("POST")

        def _record(
            self, path: str, query: dict[str, list[str]], status: int, fault: str | None
        ) -> None:
            with sim._lock:
                sim.requests.append(
                    RequestRecord(self.command, path, query, status, fault, time.monotonic())
                )

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            if path == "/api/stream/events" and method == "GET":
                self._stream(path, query)
                return
            fault = sim.faults.decide(path, JSON_ROUTE_FAULTS) if path.startswith("/api/") else None
            if fault == "reset":
                self._record(path, query, 0, fault)
                self.close_connection = True
                reset_connection(self.connection)
                return
            if fault == "stall":
                sim._server.stopping.wait(sim.faults.stall_seconds)
            try:
                reply = self._route(method, path, query)
            except _Reply as r:
                reply = r
            except Exception:
                reply = _Reply(500, b"internal error")
            if fault == "empty200":
                reply = _Reply(200, b"", "application/json")
            elif fault == "5xx":
                reply = _Reply((500, 502, 503)[sim.faults.draw(0, 2)])
            elif fault == "429":
                reply = _Reply(429, b"", headers={"Retry-After": str(sim.faults.retry_after)})
            self._record(path, query, reply.status, fault)
            self._send(reply, truncate=fault == "truncated" and len(reply.body) > 1)

        def _send(self, reply: _Reply, truncate: bool = False) -> None:
            self.send_response(reply.status)
            if reply.body or reply.status not in (204,):
                self.send_header("Content-Type", reply.content_type)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if truncate:
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(reply.body)

        def _route(self, method: str, path: str, query: dict[str, list[str]]) -> _Reply:
            authed = sim._authed(self, query)
            if path == "/healthz":
                return _Reply(204)
            if path == "/version":
                return _json(
                    {
                        "source": "https://github.com/woodpecker-ci/woodpecker",
                        "version": VERSIONS[sim.naming],
                    }
                )
            if path == "/api/user":
                if not authed:
                    return _Reply(401)
                return _json(
                    {
                        "id": 1,
                        "forge_id": 1,
                        "login": sim.user,
                        "email": f"{sim.user}@example.test",
                        "avatar_url": "",
                        "admin": False,
                        "org_id": 1,
                    }
                )
            if path.startswith("/api/repos/lookup/"):
                full_name = path.removeprefix("/api/repos/lookup/").strip("/")
                with sim._lock:
                    matches = [
                        r for r in sim._repos.values() if r.full_name.lower() == full_name.lower()
                    ]
                if not matches:
                    return _Reply(404)
                if matches[0].private and not authed:
                    return _Reply(401)
                return _json(sim._repo_json(matches[0]))
            segments = path.strip("/").split("/")
            if len(segments) >= 3 and segments[:2] == ["api", "repos"]:
                return self._repo_route(method, segments[2:], query, authed)
            return _Reply(404)

        def _repo_route(
            self, method: str, seg: list[str], query: dict[str, list[str]], authed: bool
        ) -> _Reply:
            if not seg[0].isdigit():
                return _Reply(404)
            with sim._lock:
                status, repo = sim._visible_repo(int(seg[0]), authed)
                if repo is None:
                    return _Reply(status)
                t = sim.clock.now()
                rest = seg[1:]
                if not rest and method == "GET":
                    return _json(sim._repo_json(repo))
                if rest == ["pipelines"] and method == "GET":
                    return self._list(repo, query, t)
                if len(rest) >= 2 and rest[0] == "pipelines":
                    return self._pipeline_route(method, repo, rest[1:], query, t, authed)
                if len(rest) == 3 and rest[0] == "logs" and method == "GET":
                    return self._logs(repo, rest[1], rest[2], t)
            return _Reply(404)

        def _list(self, repo: SimRepo, query: dict[str, list[str]], t: float) -> _Reply:
            def one(name: str) -> str | None:
                values = query.get(name)
                return values[0] if values else None

            page_text, per_text = one("page") or "1", one("perPage") or "50"
            page = int(page_text) if page_text.isdigit() and int(page_text) >= 1 else 1
            per = int(per_text) if per_text.isdigit() and 1 <= int(per_text) <= 50 else 50
            items = [(p, evaluate(p, t)) for p in sim._pipelines[repo.id]]
            items = [(p, s) for p, s in items if s.visible]
            for name, cmp in (("before", -1), ("after", 1)):
                value = one(name)
                if value is None:
                    continue
                try:
                    limit = _parse_time(value)
                except ValueError:
                    return _Reply(400, b"invalid time filter")
                items = [(p, s) for p, s in items if (self._created(p) - limit) * cmp > 0]
            if sim.naming == "v3":
                events = one("event")
                if events:
                    wanted = {e for e in events.split(",") if e}
                    if wanted - EVENTS:
                        return _Reply(400, b"invalid event filter")
                    items = [(p, s) for p, s in items if p.event in wanted]
                branch = one("branch")
                if branch:
                    items = [(p, s) for p, s in items if p.branch == branch]
                ref = one("ref")
                if ref:
                    items = [(p, s) for p, s in items if ref in f"refs/heads/{p.branch}"]
                status_filter = one("status")
                if status_filter:
                    if status_filter not in STATUSES:
                        return _Reply(400, b"invalid status filter")
                    items = [(p, s) for p, s in items if s.status == status_filter]
            items.sort(key=lambda ps: -ps[0].number)
            chunk = items[(page - 1) * per : page * per]
            return _json([sim._pipeline_json(p, s, False) for p, s in chunk])

        def _created(self, p: _Pipeline) -> float:
            return float(p.created if p.created is not None else sim.clock.unix(p.appear_at))

        def _pipeline_route(
            self,
            method: str,
            repo: SimRepo,
            rest: list[str],
            query: dict[str, list[str]],
            t: float,
            authed: bool,
        ) -> _Reply:
            if rest == ["latest"] and method == "GET":
                branch = (query.get("branch") or [repo.default_branch])[0]
                found = [
                    p
                    for p in sim._pipelines[repo.id]
                    if p.event == "push" and p.branch == branch and evaluate(p, t).visible
                ]
                if not found:
                    return _Reply(404)
                p = max(found, key=lambda x: x.number)
                return _json(sim._pipeline_json(p, evaluate(p, t), True))
            if not rest[0].isdigit():
                return _Reply(404)
            try:
                p = sim._find(repo.id, int(rest[0]))
            except KeyError:
                return _Reply(404)
            state = evaluate(p, t)
            if not state.visible:
                return _Reply(404)
            action = rest[1] if len(rest) > 1 else None
            if method == "GET" and action is None:
                return _json(sim._pipeline_json(p, state, True))
            if method != "POST" or not authed:
                return _Reply(404 if method != "POST" else 401)
            if action is None:
                number = sim.restart(repo.full_name, p.number)
                new = sim._find(repo.id, number)
                return _json(sim._pipeline_json(new, evaluate(new, sim.clock.now()), True))
            if action == "cancel":
                sim.cancel(repo.full_name, p.number)
                return _Reply(204)
            if action in ("approve", "decline"):
                (sim.approve if action == "approve" else sim.decline)(repo.full_name, p.number)
                return _json(sim._pipeline_json(p, evaluate(p, sim.clock.now()), True))
            return _Reply(404)

        def _logs(self, repo: SimRepo, number: str, step_id: str, t: float) -> _Reply:
            if not (number.isdigit() and step_id.isdigit()):
                return _Reply(400, b"invalid id")
            try:
                p = sim._find(repo.id, int(number))
            except KeyError:
                return _Reply(404)
            for step in p.steps:
                if step.id == int(step_id):
                    return _json(sim._log_json(p, step, t))
            return _Reply(404)

        def _stream(self, path: str, query: dict[str, list[str]]) -> None:
            fault = sim.faults.decide(path, ("stream_drop", "reset", "5xx"))
            if fault == "reset":
                self._record(path, query, 0, fault)
                self.close_connection = True
                reset_connection(self.connection)
                return
            if fault == "5xx":
                self._record(path, query, 502, fault)
                self._send(_Reply(502))
                return
            drop_after = sim.faults.draw(0, 3) if fault == "stream_drop" else None
            self._record(path, query, 200, fault)
            sub = _Subscriber(sim._authed(self, query))
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with sim._lock:
                sim._subscribers.append(sub)
            sent = 0
            try:
                self._chunk(b": ping\n\n")
                last = time.monotonic()
                while not sim._stop.is_set() and not sim._server.stopping.is_set():
                    with sim._changed:
                        if not sub.queue:
                            sim._changed.wait(timeout=0.2)
                        batch, sub.queue = sub.queue, []
                    for message in batch:
                        self._chunk(f"data: {message}\n\n".encode())
                        sent += 1
                        last = time.monotonic()
                        if drop_after is not None and sent >= drop_after:
                            return
                    if time.monotonic() - last >= sim.ping_interval:
                        self._chunk(b": ping\n\n")
                        sent += 1  # an idle stream drops too: pings count
                        last = time.monotonic()
                        if drop_after is not None and sent >= drop_after:
                            return
            except OSError:
                return
            finally:
                with sim._lock:
                    if sub in sim._subscribers:
                        sim._subscribers.remove(sub)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
