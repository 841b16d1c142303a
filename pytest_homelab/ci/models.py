"""Woodpecker's pipelines, steps and repos as its API returns them, and the rules for which
pipeline counts.

Facts about the real server are in ``shared/reference/woodpecker.md``; the ones leaned on here:
the list endpoint (newest first, 50 a page, no commit filter) is the reliable source of a
pipeline's status, so the verdict comes from it; the detail and log endpoints are best-effort
extras; v2 and v3 name timestamps differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pytest_homelab.core.outcomes import (
    BadInput,
    InfraError,
)

PER_PAGE = 50  # the server's hard cap
LOG_TAIL_LINES = 50
# A pipeline cannot be created before its commit exists; allow this much clock skew between the
# machine that made the commit and the CI server before paging stops.
CREATED_SKEW = 600

RUNNING = frozenset({"created", "pending", "running"})
RED = frozenset({"failure", "error", "killed", "canceled", "declined"})
KNOWN_STATUSES = RUNNING | RED | {"success", "skipped", "blocked"}

Verdict = Literal["green", "red", "skipped", "running", "blocked"]
ANY_BRANCH = "*"  # the ci_branch value that accepts a pipeline of any branch
REASON_CHARS = 300  # one reason in a verdict line is cut to this many characters


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
class PipelineError:
    """One entry of a pipeline's ``errors[]``: a config, lint or compile problem.

    woodpecker-ci/woodpecker pipeline/errors/pipeline.go@v3.17.0:23-38 (v2.8.3
    pipeline/errors/types/errors.go:5-20): ``{type, message, is_warning, data}``.
    """

    type: str
    message: str
    is_warning: bool = False

    @classmethod
    def from_json(cls, data: object) -> PipelineError | None:
        if not isinstance(data, dict):
            return None
        message = _str(data, "message").strip()
        if not message:
            return None
        return cls(_str(data, "type") or "error", message, data.get("is_warning") is True)

    def render(self) -> str:
        return _cut(f"[{self.type}] {self.message}")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


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
    # ``errors`` is JSON null when there are none (a nil Go slice):
    # server/model/pipeline.go@v3.17.0:34
    errors: tuple[PipelineError, ...] = ()
    workflow_errors: tuple[tuple[str, str], ...] = ()  # (workflow name, its ``error``)

    @classmethod
    def from_json(cls, data: object) -> Pipeline:
        if not isinstance(data, dict):
            raise InfraError(f"Woodpecker sent a pipeline that is not an object: {data!r:.80}")
        cancel = data.get("cancel_info")
        steps: tuple[Step, ...] | None = None
        workflow_errors: tuple[tuple[str, str], ...] = ()
        workflows = data.get("workflows")
        if isinstance(workflows, list):
            workflow_errors = tuple(
                (_str(w, "name"), _str(w, "error").strip())
                for w in workflows
                if isinstance(w, dict) and _str(w, "error").strip()
            )
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
            errors=_errors(data.get("errors")),
            workflow_errors=workflow_errors,
        )

    def reasons(self) -> tuple[str, ...]:
        """Why it ended red, from the server: ``errors[]`` (warnings only when nothing else)
        and the workflows' ``error``. Config errors leave no workflows at all
        (server/pipeline/create.go@v3.17.0:116-118, pipeline_status.go@v3.17.0:65-71)."""
        blocking = [e.render() for e in self.errors if not e.is_warning]
        warnings = [e.render() for e in self.errors if e.is_warning]
        flows = [_cut(f"workflow {name or '?'}: {error}") for name, error in self.workflow_errors]
        return tuple(blocking + flows) or tuple(warnings)

    @property
    def duration(self) -> int | None:
        if self.started and self.finished >= self.started:
            return self.finished - self.started
        return None

    def step_counts(self) -> tuple[int, int] | None:
        if not self.steps:
            return None
        return sum(1 for s in self.steps if s.done), len(self.steps)


def _errors(data: object) -> tuple[PipelineError, ...]:
    if not isinstance(data, list):
        return ()
    parsed = (PipelineError.from_json(item) for item in data)
    return tuple(e for e in parsed if e is not None)


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


def branch_matches(pipeline: Pipeline, branch: str | None) -> bool:
    """``None`` or ``*`` accept any branch; otherwise the pipeline's ``branch`` must be equal
    (the server's filter is an exact match: server/store/datastore/pipeline.go@v3.17.0:83-85)."""
    return branch is None or branch == ANY_BRANCH or pipeline.branch == branch


def newest_candidate(
    pipelines: Iterable[Pipeline],
    sha: str,
    events: Iterable[str],
    branch: str | None = None,
) -> Pipeline | None:
    """The landing's pipeline: commit matches, event counts, on the landing's branch; the
    newest by number wins. Pipelines of the commit on other branches never count."""
    allowed = set(events)
    matching = [
        p
        for p in pipelines
        if p.event in allowed and commit_matches(p.commit, sha) and branch_matches(p, branch)
    ]
    commits = {p.commit for p in matching}
    if len(commits) > 1:
        raise BadInput(
            f"short sha {sha} matches pipelines of {len(commits)} different commits: "
            + ", ".join(sorted(c[:12] for c in commits)),
            hint="give the full 40-character sha",
        )
    return max(matching, key=lambda p: p.number, default=None)


# -- the API -------------------------------------------------------------------------------------
