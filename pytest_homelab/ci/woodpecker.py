"""The Woodpecker API, the rules for which pipeline counts, and the pipeline watch.

Facts about the real server are in ``shared/reference/woodpecker.md``; the ones leaned on here:
the list endpoint (newest first, 50 a page, no commit filter) is the reliable source of a
pipeline's status, so the verdict comes from it; the detail and log endpoints are best-effort
extras; ``/api/stream/events`` carries full pipeline snapshots but no ordering and no replay, so it
is only a wake-up signal; v2 and v3 name timestamps differently.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from pytest_homelab.core.clock import SYSTEM_CLOCK, Backoff, Clock, Deadline, format_duration
from pytest_homelab.core.outcomes import (
    BadInput,
    Blocked,
    CheckFailed,
    DeadlineExceeded,
    HomelabError,
    InfraError,
    NotFound,
    Superseded,
)
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.transport import HttpNotFound, JsonApi

PER_PAGE = 50  # the server's hard cap
LOG_TAIL_LINES = 50
# A pipeline cannot be created before its commit exists; allow this much clock skew between the
# machine that made the commit and the CI server before paging stops.
CREATED_SKEW = 600

RUNNING = frozenset({"created", "pending", "running"})
RED = frozenset({"failure", "error", "killed", "canceled", "declined"})
KNOWN_STATUSES = RUNNING | RED | {"success", "skipped", "blocked"}

Verdict = Literal["green", "red", "skipped", "running", "blocked"]


def classify(status: str) -> Verdict:
    """Map a Woodpecker status to what a watcher does with it. Unknown strings keep waiting."""
    if status == "success":
        return "green"
    if status in RED:
        return "red"
    if status == "skipped":
        return "skipped"
    if status == "blocked":
        return "blocked"
    return "running"


def _int(data: dict[str, Any], *names: str) -> int:
    for name in names:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Step:
    id: int
    pid: int
    name: str
    state: str
    exit_code: int
    started: int
    finished: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls(
            id=_int(data, "id"),
            pid=_int(data, "pid"),
            name=_str(data, "name"),
            state=_str(data, "state"),
            exit_code=_int(data, "exit_code"),
            started=_int(data, "started", "start_time"),
            finished=_int(data, "finished", "end_time"),
        )

    @property
    def done(self) -> bool:
        return self.state not in RUNNING and self.state != "blocked"

    @property
    def failed(self) -> bool:
        return self.state in RED or (self.state not in RUNNING and self.exit_code != 0)


@dataclass(frozen=True)
class Pipeline:
    number: int
    status: str
    event: str
    commit: str
    branch: str = ""
    created: int = 0
    started: int = 0
    finished: int = 0
    parent: int = 0
    superseded_by: int = 0
    forge_url: str = ""
    steps: tuple[Step, ...] | None = None  # None when the payload had no workflows

    @classmethod
    def from_json(cls, data: object) -> Pipeline:
        if not isinstance(data, dict):
            raise InfraError(f"Woodpecker sent a pipeline that is not an object: {data!r:.80}")
        cancel = data.get("cancel_info")
        steps: tuple[Step, ...] | None = None
        workflows = data.get("workflows")
        if isinstance(workflows, list):
            steps = tuple(
                Step.from_json(child)
                for workflow in workflows
                if isinstance(workflow, dict)
                for child in (workflow.get("children") or [])
                if isinstance(child, dict)
            )
        return cls(
            number=_int(data, "number"),
            status=_str(data, "status"),
            event=_str(data, "event"),
            commit=_str(data, "commit").lower(),
            branch=_str(data, "branch"),
            created=_int(data, "created", "created_at"),
            started=_int(data, "started", "started_at"),
            finished=_int(data, "finished", "finished_at"),
            parent=_int(data, "parent"),
            superseded_by=_int(cancel, "superseded_by") if isinstance(cancel, dict) else 0,
            forge_url=_str(data, "forge_url"),
            steps=steps,
        )

    @property
    def duration(self) -> int | None:
        if self.started and self.finished >= self.started:
            return self.finished - self.started
        return None

    def step_counts(self) -> tuple[int, int] | None:
        if not self.steps:
            return None
        return sum(1 for s in self.steps if s.done), len(self.steps)


@dataclass(frozen=True)
class Repo:
    id: int
    full_name: str
    private: bool = False
    default_branch: str = ""


def commit_matches(candidate: str, wanted: str) -> bool:
    """A full sha must be equal; a short one (≥ 7 hex) must be a prefix."""
    candidate, wanted = candidate.lower(), wanted.lower()
    return candidate == wanted if len(wanted) == 40 else candidate.startswith(wanted)


def newest_candidate(
    pipelines: Iterable[Pipeline], sha: str, events: Iterable[str]
) -> Pipeline | None:
    """The landing's pipeline: commit matches, event counts; the newest by number wins."""
    allowed = set(events)
    matching = [p for p in pipelines if p.event in allowed and commit_matches(p.commit, sha)]
    commits = {p.commit for p in matching}
    if len(commits) > 1:
        raise BadInput(
            f"short sha {sha} matches pipelines of {len(commits)} different commits: "
            + ", ".join(sorted(c[:12] for c in commits)),
            hint="give the full 40-character sha",
        )
    return max(matching, key=lambda p: p.number, default=None)


# -- the API -------------------------------------------------------------------------------------


class WoodpeckerClient:
    """The few Woodpecker endpoints the landing needs, parsed defensively."""

    def __init__(self, api: JsonApi) -> None:
        self.api = api

    def close(self) -> None:
        self.api.http.close()

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def pipeline_url(self, repo: Repo, number: int) -> str:
        return f"{self.base_url}/repos/{repo.id}/pipeline/{number}"

    def lookup_repo(self, full_name: str, *, deadline: Deadline) -> Repo:
        try:
            data = self.api.get(f"/api/repos/lookup/{full_name}", deadline=deadline)
        except HttpNotFound:
            raise NotFound(
                f"Woodpecker has no repo {full_name} that this token can see (404)",
                hint="check the name (--repo OWNER/NAME), that the repo is activated in "
                "Woodpecker, and that the token's user has access to it",
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("id"), int) or not data["id"]:
            raise InfraError(f"Woodpecker's lookup of {full_name} returned no repo id")
        return Repo(
            id=data["id"],
            full_name=_str(data, "full_name") or full_name,
            private=bool(data.get("private")),
            default_branch=_str(data, "default_branch"),
        )

    def list_pipelines(
        self, repo: Repo, page: int, *, events: Iterable[str] = (), deadline: Deadline
    ) -> list[Pipeline]:
        params: dict[str, str | int] = {"page": page, "perPage": PER_PAGE}
        event_list = ",".join(events)
        if event_list:
            params["event"] = event_list  # v3 filters; v2 ignores it, so we filter again
        data = self.api.get(f"/api/repos/{repo.id}/pipelines", params, deadline=deadline)
        if data is None:
            return []
        if not isinstance(data, list):
            raise InfraError(f"Woodpecker's pipeline list is not a list: {str(data)[:80]}")
        return [Pipeline.from_json(item) for item in data]

    def get_pipeline(self, repo: Repo, number: int, *, deadline: Deadline) -> Pipeline:
        data = self.api.get(f"/api/repos/{repo.id}/pipelines/{number}", deadline=deadline)
        return Pipeline.from_json(data)

    def step_log(self, repo: Repo, number: int, step_id: int, *, deadline: Deadline) -> list[str]:
        """The step's log lines in order (``data`` is base64 in JSON; ``null`` means none yet)."""
        data = self.api.get(f"/api/repos/{repo.id}/logs/{number}/{step_id}", deadline=deadline)
        if not isinstance(data, list):
            return []
        entries: list[tuple[int, str]] = []
        for entry in data:
            if not isinstance(entry, dict) or entry.get("type", 0) not in (0, 1):
                continue
            raw = entry.get("data")
            try:
                text = base64.b64decode(raw or "", validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError, TypeError):
                text = str(raw)
            entries.append((_int(entry, "line"), text.rstrip("\n")))
        entries.sort(key=lambda item: item[0])
        return [text for _, text in entries]

    def find_pipeline(
        self,
        repo: Repo,
        sha: str,
        *,
        events: tuple[str, ...],
        pages: int,
        not_before: int | None,
        deadline: Deadline,
    ) -> Pipeline | None:
        """Search newest-first pages (bounded) for the landing's pipeline."""
        best: Pipeline | None = None
        for page in range(1, pages + 1):
            items = self.list_pipelines(repo, page, events=events, deadline=deadline)
            found = newest_candidate(items, sha, events)
            if found is not None and (best is None or found.number > best.number):
                best = found
            if best is not None or len(items) < PER_PAGE:
                break
            created = [p.created for p in items if p.created]
            if not_before is not None and created and min(created) < not_before - CREATED_SKEW:
                break
        return best


# -- the event stream: a wake-up signal only -----------------------------------------------------


class EventSource(Protocol):
    wake: threading.Event

    @property
    def connected(self) -> bool: ...

    @property
    def generation(self) -> int:
        """Increments on every (re)connect: events may have been lost, so re-list."""
        ...

    def drain(self) -> list[Pipeline]: ...

    def close(self) -> None: ...


class WoodpeckerEventStream:
    """Reads ``/api/stream/events`` in a thread and keeps the snapshots of one repo's pipelines."""

    def __init__(
        self,
        http: httpx.Client,
        repo: Repo,
        *,
        token: Secret | None,
        clock: Clock = SYSTEM_CLOCK,
        read_timeout: float = 75.0,  # the server pings every 30 s
        backoff: Backoff | None = None,
    ) -> None:
        self.http = http
        self.repo = repo
        self.wake = threading.Event()
        self._token = token
        self._clock = clock
        self._read_timeout = read_timeout
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._lock = threading.Lock()
        self._queue: list[Pipeline] = []
        self._connected = False
        self._generation = 0
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name="woodpecker-events", daemon=True)
        self.last_error: str | None = None

    def start(self) -> WoodpeckerEventStream:
        self._thread.start()
        return self

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        return self._generation

    def drain(self) -> list[Pipeline]:
        with self._lock:
            items, self._queue = self._queue, []
        return items

    def close(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _shutdown_stream(response)
        self._thread.join(timeout=5)
        self.wake.set()

    def _run(self) -> None:
        from httpx_sse import SSEError, connect_sse

        delays = self._backoff.delays()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        while not self._stop.is_set():
            try:
                with connect_sse(
                    self.http,
                    "GET",
                    "/api/stream/events",
                    headers=headers,
                    timeout=httpx.Timeout(8.0, read=self._read_timeout),
                ) as source:
                    self._response = source.response
                    if self._stop.is_set():
                        break
                    if source.response.status_code != 200:
                        raise _StreamUnavailable(f"HTTP {source.response.status_code}")
                    with self._lock:
                        self._connected = True
                        self._generation += 1
                    self.wake.set()
                    delays = self._backoff.delays()
                    for sse in source.iter_sse():
                        self._handle(sse.data)
                    self.last_error = "stream ended"
            except (
                httpx.HTTPError,
                httpx.StreamError,
                SSEError,
                _StreamUnavailable,
                OSError,
            ) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._response = None
                if self._connected:
                    self._connected = False
                    self.wake.set()
            self._clock.wait(self._stop, next(delays))  # the injected clock, like every wait

    def _handle(self, data: str) -> None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        repo = payload.get("repo")
        pipeline = payload.get("pipeline")
        if not isinstance(repo, dict) or repo.get("id") != self.repo.id:
            return
        if not isinstance(pipeline, dict):
            return
        try:
            snapshot = Pipeline.from_json(pipeline)
        except HomelabError:
            return
        with self._lock:
            self._queue.append(snapshot)
        self.wake.set()


class _StreamUnavailable(Exception):
    pass


def _shutdown_stream(response: httpx.Response) -> None:
    """Wake a thread blocked reading ``response``: close() alone does not interrupt recv()."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        # Only shut the socket down: the reader sees EOF and closes the response itself. Closing
        # it here would free the descriptor under the reader (which could then poll a reused fd)
        # or make it raise StreamClosed.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):  # no socket to shut down: closing is all there is
        response.close()


# -- the watch -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedStep:
    name: str
    state: str
    exit_code: int
    log_tail: tuple[str, ...] = ()
    log_error: str | None = None


@dataclass(frozen=True)
class CiResult:
    """What the watch saw. ``outcome`` is None when the landing's CI is green."""

    repo: Repo
    commit: str
    events: tuple[str, ...]
    outcome: HomelabError | None
    pipeline: Pipeline | None = None
    url: str | None = None
    verified_by: Pipeline | None = None
    failed_steps: tuple[FailedStep, ...] = ()
    waited: float = 0.0

    @property
    def green(self) -> bool:
        return self.outcome is None

    def properties(self) -> list[tuple[str, str]]:
        props = [("repo", self.repo.full_name), ("commit", self.commit)]
        p = self.pipeline
        if p is not None:
            props += [("pipeline_number", str(p.number))]
        if self.url:
            props.append(("pipeline_url", self.url))
        if p is not None:
            props += [("status", p.status), ("event", p.event)]
            if p.duration is not None:
                props.append(("duration", f"{p.duration}s"))
        if self.verified_by is not None:
            v = self.verified_by
            props += [
                ("verified_by_pipeline", str(v.number)),
                ("verified_by_commit", v.commit),
                ("verified_by_status", v.status),
            ]
            if v.duration is not None:
                props.append(("verified_by_duration", f"{v.duration}s"))
        props.append(("waited", f"{self.waited:.1f}s"))
        if self.failed_steps:
            props.append(("failing_steps", ", ".join(s.name for s in self.failed_steps)))
            for step in self.failed_steps:
                text = "\n".join(step.log_tail) if step.log_tail else f"({step.log_error})"
                props.append((f"log_tail:{step.name}", text))
        return props

    def check(self) -> None:
        """Raise the outcome unless green."""
        __tracebackhide__ = True
        if self.outcome is not None:
            raise self.outcome


@dataclass
class _State:
    started: float = 0.0
    current: Pipeline | None = None
    following: Pipeline | None = None  # a descendant that superseded ours
    line: str = ""
    counts: tuple[int, tuple[int, int]] | None = None  # (pipeline number, (done, total))
    blocked_reported: bool = False
    unknown_reported: set[str] = field(default_factory=set)


class PipelineWatch:
    """Wait for the landing's pipeline to appear and finish; pure apart from the injected parts."""

    def __init__(
        self,
        client: WoodpeckerClient,
        repo: Repo,
        sha: str,
        *,
        deadline: Deadline,
        events: tuple[str, ...] = ("push", "manual"),
        pages: int = 5,
        appear_grace: float = 600.0,
        poll_interval: float = 5.0,
        stream_recheck: float = 300.0,
        not_before: int | None = None,
        is_ancestor: Callable[[str, str], bool | None] = lambda a, b: None,
        stream: EventSource | None = None,
        progress: Callable[[str], None] = lambda line: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client = client
        self.repo = repo
        self.sha = sha.lower()
        self.deadline = deadline
        self.events = events
        self.pages = pages
        self.appear_grace = appear_grace
        self.poll_interval = poll_interval
        self.stream_recheck = stream_recheck
        self.not_before = not_before
        self.is_ancestor = is_ancestor
        self.stream = stream
        self.progress = progress
        self.clock = clock
        self._wake = stream.wake if stream is not None else threading.Event()

    # The loop: re-list when due or when an event hints at something the list must confirm;
    # otherwise report progress from event snapshots and sleep until the next wake-up.
    def run(self) -> CiResult:
        start = self.clock.monotonic()
        appear_by = self.deadline.sub(self.appear_grace)
        state = _State(started=start)
        generation = -1
        next_check = start
        while True:
            now = self.clock.monotonic()
            due = now >= next_check
            if self.stream is not None:
                if self.stream.generation != generation:
                    generation = self.stream.generation
                    due = True
                for hint in self.stream.drain():
                    due = self._hint(state, hint) or due
            if due:
                try:
                    result = self._check(state, start)
                except DeadlineExceeded:
                    if state.current is None:
                        raise  # nothing seen yet: the API's own message says why
                    # The API cannot answer again before the deadline (e.g. a long Retry-After):
                    # the verdict is what was last seen, given at the deadline.
                    self.clock.sleep(self.deadline.remaining())
                    return self._deadline_result(state, start)
                if result is not None:
                    return result
                interval = self._interval(state)
                next_check = self.clock.monotonic() + interval
            if self.deadline.expired():
                return self._deadline_result(state, start)
            if state.current is None and appear_by.expired():
                return self._not_found(start)
            limit = self.deadline if state.current is not None else appear_by
            timeout = min(max(0.0, next_check - self.clock.monotonic()), limit.remaining())
            self.clock.wait(self._wake, timeout)
            self._wake.clear()

    def _interval(self, state: _State) -> float:
        if self.stream is None or not self.stream.connected:
            return self.poll_interval
        if state.current is None:  # the creation event may be missed: look more often
            return min(self.stream_recheck, max(self.poll_interval, 30.0))
        return self.stream_recheck

    def _target_sha(self, state: _State) -> str:
        return state.following.commit if state.following is not None else self.sha

    def _hint(self, state: _State, hint: Pipeline) -> bool:
        """Use an event snapshot for progress; return True when the list must be consulted."""
        if hint.event not in self.events or not commit_matches(
            hint.commit, self._target_sha(state)
        ):
            return False
        current = state.following or state.current
        if current is None or hint.number > current.number:
            return True  # it appeared, or a restart
        if hint.number != current.number:
            return False
        self._report(state, hint)
        return classify(hint.status) != "running" or hint.superseded_by != 0

    def _check(self, state: _State, start: float) -> CiResult | None:
        target = self._target_sha(state)
        found = self.client.find_pipeline(
            self.repo,
            target,
            events=self.events,
            pages=self.pages,
            not_before=self.not_before,
            deadline=self.deadline,
        )
        if found is None:
            if state.current is None and not state.line:
                state.line = "waiting"
                self.progress(
                    f"ci: waiting for a pipeline of {self.sha[:8]} in {self.repo.full_name} "
                    f"(events {','.join(self.events)}; up to {format_duration(self.appear_grace)})"
                )
            return None
        if state.following is not None:
            state.following = found
        else:
            state.current = found
        self._report(state, found)
        verdict = classify(found.status)
        if found.status not in KNOWN_STATUSES and found.status not in state.unknown_reported:
            state.unknown_reported.add(found.status)
            self.progress(f"ci: #{found.number} has unknown status {found.status!r}; waiting")
        if verdict == "running":
            return None
        if verdict == "blocked":
            if not state.blocked_reported:
                state.blocked_reported = True
                self.progress(
                    f"ci: #{found.number} is blocked, waiting for approval in Woodpecker "
                    f"({self.client.pipeline_url(self.repo, found.number)})"
                )
            return None
        if verdict == "red" and found.superseded_by:
            return self._superseded(state, found, start)
        return self._finish(state, found, verdict, start)

    def _superseded(self, state: _State, ours: Pipeline, start: float) -> CiResult | None:
        newer_number = ours.superseded_by
        try:
            newer = self.client.get_pipeline(self.repo, newer_number, deadline=self.deadline)
        except HomelabError as exc:
            return self._result(
                state,
                start,
                Superseded(
                    f"pipeline #{ours.number} of {self.sha[:8]} was cancelled, superseded by "
                    f"#{newer_number}, which could not be read ({exc.message})",
                    hint="open the pipeline in Woodpecker and check the newer run",
                ),
                ours,
            )
        descends = self.is_ancestor(self._target_sha(state), newer.commit) if newer.commit else None
        if descends:
            self.progress(
                f"ci: #{ours.number} was superseded by #{newer.number} ({newer.commit[:8]}, which "
                f"contains {self.sha[:8]}); following it"
            )
            state.following = newer
            self._wake.set()
            return None
        why = (
            "which does not contain it"
            if descends is False
            else "whose commit is not in the local repo, so ancestry is unknown"
        )
        return self._result(
            state,
            start,
            Superseded(
                f"pipeline #{ours.number} of {self.sha[:8]} was cancelled, superseded by "
                f"#{newer.number} of {newer.commit[:8] or '?'}, {why}",
                hint="the landing was not verified by CI; land again or restart the pipeline"
                + ("" if descends is False else " (or git fetch, then check again)"),
            ),
            ours,
        )

    def _finish(self, state: _State, found: Pipeline, verdict: Verdict, start: float) -> CiResult:
        url = self.client.pipeline_url(self.repo, found.number)
        if verdict == "green":
            return self._result(state, start, None, found)
        if verdict == "skipped":
            outcome: HomelabError = CheckFailed(
                f"pipeline #{found.number} of {self.sha[:8]} was skipped, which is not green",
                hint=f"a when/status condition skipped it; see {url}",
            )
            return self._result(state, start, outcome, found)
        failed = self._failed_steps(found)
        names = ", ".join(s.name for s in failed) or "unknown step"
        outcome = CheckFailed(
            f"expected pipeline #{found.number} of {self.sha[:8]} to succeed, but it ended "
            f"{found.status}" + (f" (failing: {names})" if failed else ""),
            hint=f"read the failing step's log below or at {url}",
        )
        return self._result(state, start, outcome, found, failed)

    def _failed_steps(self, found: Pipeline) -> tuple[FailedStep, ...]:
        """Best effort: the detail and log endpoints never change the verdict."""
        try:
            detail = self.client.get_pipeline(self.repo, found.number, deadline=self.deadline)
        except HomelabError:
            return ()
        failed = []
        for step in detail.steps or ():
            if not step.failed:
                continue
            try:
                lines = self.client.step_log(
                    self.repo, found.number, step.id, deadline=self.deadline
                )
                failed.append(
                    FailedStep(
                        step.name, step.state, step.exit_code, tuple(lines[-LOG_TAIL_LINES:])
                    )
                )
            except HomelabError as exc:
                failed.append(
                    FailedStep(step.name, step.state, step.exit_code, (), f"log unavailable: {exc}")
                )
        return tuple(failed)

    def _report(self, state: _State, pipeline: Pipeline) -> None:
        counts = pipeline.step_counts()
        if counts is None and state.counts is not None and state.counts[0] == pipeline.number:
            counts = state.counts[1]  # list items carry no steps: keep the last known counts
        elif counts is not None:
            state.counts = (pipeline.number, counts)
        steps = f" {counts[0]}/{counts[1]} steps" if counts else ""
        line = f"ci: #{pipeline.number} {pipeline.status}{steps}"
        if line != state.line:
            state.line = line
            elapsed = self.clock.monotonic() - state.started
            self.progress(f"{line} ({format_duration(elapsed)})")

    def _result(
        self,
        state: _State,
        start: float,
        outcome: HomelabError | None,
        pipeline: Pipeline | None,
        failed: tuple[FailedStep, ...] = (),
    ) -> CiResult:
        origin = state.current or pipeline
        final = state.following or pipeline
        return CiResult(
            repo=self.repo,
            commit=self.sha,
            events=self.events,
            outcome=outcome,
            pipeline=origin,
            url=self.client.pipeline_url(self.repo, final.number) if final else None,
            verified_by=state.following if outcome is None else None,
            failed_steps=failed,
            waited=self.clock.monotonic() - start,
        )

    def _not_found(self, start: float) -> CiResult:
        outcome = NotFound(
            f"no Woodpecker pipeline for {self.sha[:8]} (events {','.join(self.events)}) appeared "
            f"in {self.repo.full_name} within {format_duration(self.appear_grace)}",
            hint="check that the commit was pushed and the repo's webhook fired; pull-request "
            "pipelines do not count (see --ci-events); --appear-grace waits longer",
        )
        return CiResult(
            self.repo,
            self.sha,
            self.events,
            outcome,
            waited=self.clock.monotonic() - start,
        )

    def _deadline_result(self, state: _State, start: float) -> CiResult:
        current = state.following or state.current
        waited = format_duration(self.clock.monotonic() - start)
        if current is None:
            return self._not_found(start)
        url = self.client.pipeline_url(self.repo, current.number)
        outcome: HomelabError
        if classify(current.status) == "blocked":
            outcome = Blocked(
                f"pipeline #{current.number} of {self.sha[:8]} was still waiting for approval "
                f"after {waited}",
                hint=f"approve it in Woodpecker ({url}), then run the check again",
            )
        else:
            outcome = DeadlineExceeded(
                f"expected pipeline #{current.number} of {self.sha[:8]} to finish, but it was "
                f"still {current.status} after {waited}",
                hint=f"it may be stuck (see {url}); raise --ci-timeout if it is just slow",
            )
        return self._result(state, start, outcome, current)
