"""The pipeline watch: follows the pipeline that counts until its verdict, a ``CiResult``."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_homelab.ci.client import WoodpeckerClient
from pytest_homelab.ci.models import (
    ANY_BRANCH,
    KNOWN_STATUSES,
    LOG_TAIL_LINES,
    Pipeline,
    Repo,
    Verdict,
    classify,
    commit_matches,
)
from pytest_homelab.ci.stream import EventSource
from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline, format_duration
from pytest_homelab.core.outcomes import (
    Blocked,
    CheckFailed,
    DeadlineExceeded,
    HomelabError,
    NotFound,
    Superseded,
)
from pytest_homelab.core.transport import HttpNotFound

# How long the last look at the list may take once the deadline has passed (no deadline verdict
# is given from a stale snapshot); short, so that the verdict stays on time when the API hangs.
FINAL_LOOK = 1.5
# While nothing has appeared yet, or the pipeline is still ``created`` (the server may delete it:
# server/pipeline/create.go@v3.17.0:80-86,124-131, and never publishes that), the list is
# consulted at least this often even when the stream carries the repo.
CREATED_RECHECK = 30.0
# At the start, wait this long for the event stream's first connection before the first list:
# the list after connecting must be made anyway (events before it are lost), so one list serves.
STREAM_CONNECT_WAIT = 2.0

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
    branch: str | None = None
    reasons: tuple[str, ...] = ()  # the server's errors[] and workflow errors, for a red end
    ignored: tuple[Pipeline, ...] = ()  # pipelines of the commit on other branches

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
        if self.branch:
            props.append(("branch", self.branch))
        if self.ignored:
            props.append(("ignored_pipelines", ignored_text(self.ignored)))
        if self.reasons:
            props.append(("errors", "\n".join(self.reasons)))
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
    elsewhere: dict[int, Pipeline] = field(default_factory=dict)  # other branches, by number
    elsewhere_reported: set[int] = field(default_factory=set)


def ignored_text(pipelines: tuple[Pipeline, ...] | list[Pipeline]) -> str:
    return ", ".join(f"#{p.number} on {p.branch or '?'} ({p.status})" for p in pipelines)


class PipelineWatch:
    """Wait for the landing's pipeline to appear and finish; pure apart from the injected parts.

    ``branch`` is the branch that landed (``None`` or ``*``: any branch). The list is consulted
    every ``poll_interval`` unless the event stream has proven, on its current connection, that it
    carries this repo; then every ``stream_recheck`` (at most ``CREATED_RECHECK`` while nothing
    has appeared or the pipeline is still ``created``). Every deadline verdict comes after a
    final look at the list.
    """

    def __init__(
        self,
        client: WoodpeckerClient,
        repo: Repo,
        sha: str,
        *,
        deadline: Deadline,
        events: tuple[str, ...] = ("push", "manual"),
        branch: str | None = None,
        pages: int = 5,
        appear_grace: float = 600.0,
        poll_interval: float = 5.0,
        stream_recheck: float = 300.0,
        not_before: int | None = None,
        is_ancestor: Callable[[str, str], bool | None] = lambda a, b: None,
        stream: EventSource | None = None,
        progress: Callable[[str], None] = lambda line: None,
        clock: Clock = SYSTEM_CLOCK,
        final_look: float = FINAL_LOOK,
    ) -> None:
        self.client = client
        self.repo = repo
        self.sha = sha.lower()
        self.deadline = deadline
        self.events = events
        self.branch = None if branch in (None, "", ANY_BRANCH) else branch
        self.pages = pages
        self.appear_grace = appear_grace
        self.poll_interval = poll_interval
        self.stream_recheck = stream_recheck
        self.not_before = not_before
        self.is_ancestor = is_ancestor
        self.stream = stream
        self.progress = progress
        self.clock = clock
        self.final_look = final_look
        self._calls = deadline  # the deadline API calls run under (the final look extends it)
        self._listed_at = -math.inf  # when the list last answered
        self._wake = stream.wake if stream is not None else threading.Event()

    # The loop: re-list when due or when an event hints at something the list must confirm;
    # otherwise report progress from event snapshots and sleep until the next wake-up.
    def run(self) -> CiResult:
        start = self.clock.monotonic()
        appear_by = self.deadline.sub(self.appear_grace)
        state = _State(started=start)
        generation = -1
        next_check = start
        if self.stream is not None and self.stream.generation == 0:
            self.clock.wait(self._wake, min(STREAM_CONNECT_WAIT, self.deadline.remaining()))
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
                    if state.current is None and not self.deadline.expired():
                        raise  # nothing seen yet: the API's own message says why
                    # The API could not answer before the deadline (e.g. a long Retry-After):
                    # the verdict comes at the deadline, after one last look.
                    self.clock.sleep(self.deadline.remaining())
                    return self._final(state, start)
                self._listed_at = self.clock.monotonic()
                if result is not None:
                    return result
                interval = self._interval(state)
                next_check = self.clock.monotonic() + interval
            if self.deadline.expired():
                return self._final(state, start)
            if state.current is None and appear_by.expired():
                result = self._last_look(state, start, appear_by)
                if result is not None:
                    return result
                if not _appeared(state):  # (the last look may have set state.current)
                    return self._not_found(state, start)
                self._calls = self.deadline  # it appeared at the last look: watch it to the end
                next_check = self.clock.monotonic() + self._interval(state)
                continue
            limit = self.deadline if state.current is not None else appear_by
            timeout = min(max(0.0, next_check - self.clock.monotonic()), limit.remaining())
            self.clock.wait(self._wake, timeout)
            self._wake.clear()

    def _interval(self, state: _State) -> float:
        stream = self.stream
        if stream is None or not stream.connected or not stream.proven:
            return self.poll_interval  # no stream, or one not (yet) seen to carry this repo
        current = state.following or state.current
        if current is None or current.status == "created":
            return min(self.stream_recheck, max(self.poll_interval, CREATED_RECHECK))
        return self.stream_recheck

    def _target_sha(self, state: _State) -> str:
        return state.following.commit if state.following is not None else self.sha

    def _on_branch(self, pipeline: Pipeline) -> bool:
        return self.branch is None or pipeline.branch == self.branch

    def _note_elsewhere(self, state: _State, pipelines: list[Pipeline]) -> None:
        """Say once per pipeline that one of the commit on another branch was ignored."""
        for p in pipelines:
            state.elsewhere[p.number] = p
            if p.number in state.elsewhere_reported:
                continue
            state.elsewhere_reported.add(p.number)
            self.progress(
                f"ci: #{p.number} of {self.sha[:8]} runs on branch {p.branch or '?'}, not "
                f"{self.branch}: ignored (see --ci-branch)"
            )

    def _hint(self, state: _State, hint: Pipeline) -> bool:
        """Use an event snapshot for progress; return True when the list must be consulted."""
        if hint.event not in self.events or not commit_matches(
            hint.commit, self._target_sha(state)
        ):
            return False
        if not self._on_branch(hint):
            self._note_elsewhere(state, [hint])
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
        elsewhere: dict[int, Pipeline] = {}
        found = self.client.find_pipeline(
            self.repo,
            target,
            events=self.events,
            pages=self.pages,
            not_before=self.not_before,
            deadline=self._calls,
            branch=self.branch,
            elsewhere=elsewhere,
        )
        self._note_elsewhere(state, sorted(elsewhere.values(), key=lambda p: p.number))
        followed = state.following or state.current
        if followed is not None and (found is None or found.number < followed.number):
            # The one we follow is no longer in the list: ask for it by number.
            try:
                found = self.client.get_pipeline(
                    self.repo, followed.number, deadline=self._calls, retry_auth=False
                )  # still there, only beyond the pages searched
            except HttpNotFound:
                if found is None:
                    return self._deleted(state, followed, start)
                self.progress(
                    f"ci: #{followed.number} was deleted by the server; #{found.number} of "
                    f"{target[:8]} takes its place"
                )
            except HomelabError:
                return None  # cannot tell now; the next look asks again
        if found is None:
            if state.current is None and not state.line:
                state.line = "waiting"
                on = f" on {self.branch}" if self.branch else ""
                self.progress(
                    f"ci: waiting for a pipeline of {self.sha[:8]}{on} in {self.repo.full_name} "
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

    def _deleted(self, state: _State, followed: Pipeline, start: float) -> CiResult:
        """A 404 for the followed pipeline right after a list that answered without it: the
        server deleted it (no config matched, or every workflow was filtered out:
        server/pipeline/create.go@v3.17.0:80-86,124-131) and nothing took its place."""
        return self._result(
            state,
            start,
            NotFound(
                f"pipeline #{followed.number} of {self._target_sha(state)[:8]} was deleted by the "
                f"server (no matching config, or all workflows filtered); it was last "
                f"{followed.status}",
                hint="check the repo's pipeline config and its when: filters for this "
                f"{followed.event} event"
                + (f" on {followed.branch}" if followed.branch else "")
                + "; a commit that runs no pipeline cannot be verified by CI",
            ),
            followed,
        )

    def _superseded(self, state: _State, ours: Pipeline, start: float) -> CiResult | None:
        newer_number = ours.superseded_by
        try:
            newer = self.client.get_pipeline(self.repo, newer_number, deadline=self._calls)
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
        detail = self._detail(found)
        failed = self._failed_steps(found, detail)
        reasons = _merge(found.reasons(), detail.reasons() if detail is not None else ())
        names = ", ".join(s.name for s in failed) or "unknown step"
        why = f": {'; '.join(reasons)}" if reasons else ""
        outcome = CheckFailed(
            f"expected pipeline #{found.number} of {self.sha[:8]} to succeed, but it ended "
            f"{found.status}{why}" + (f" (failing: {names})" if failed else ""),
            hint=(
                f"read the failing step's log below or at {url}"
                if failed
                else f"fix what the server reports above; see {url}"
                if reasons
                else f"see {url}"
            ),
        )
        return self._result(state, start, outcome, found, failed, reasons)

    def _detail(self, found: Pipeline) -> Pipeline | None:
        """Best effort: the detail endpoint never changes the verdict."""
        try:
            return self.client.get_pipeline(self.repo, found.number, deadline=self._calls)
        except HomelabError:
            return None

    def _failed_steps(self, found: Pipeline, detail: Pipeline | None) -> tuple[FailedStep, ...]:
        """Best effort: the log endpoint never changes the verdict."""
        failed = []
        for step in (detail.steps if detail is not None else None) or ():
            if not step.failed:
                continue
            try:
                lines = self.client.step_log(self.repo, found.number, step.id, deadline=self._calls)
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
        reasons: tuple[str, ...] = (),
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
            branch=self.branch,
            reasons=reasons,
            ignored=tuple(sorted(state.elsewhere.values(), key=lambda p: p.number)),
        )

    def _last_look(self, state: _State, start: float, limit: Deadline) -> CiResult | None:
        """One more look at the list under a short deadline of its own (none when the list
        already answered once ``limit`` had passed); its verdict, if any."""
        if self._listed_at >= limit.at:
            return None
        self._calls = Deadline.after(self.final_look, self.clock)
        try:
            return self._check(state, start)
        except HomelabError:
            return None  # the verdict is what was last seen

    def _final(self, state: _State, start: float) -> CiResult:
        """The deadline passed: one last look at the list, then the verdict from what it shows."""
        result = self._last_look(state, start, self.deadline)
        if result is not None:
            return result
        if state.current is None and state.following is None:
            return self._not_found(state, start)
        return self._deadline_result(state, start)

    def _not_found(self, state: _State, start: float) -> CiResult:
        if self.branch is not None and not state.elsewhere:
            self._look_elsewhere(state)
        on = f" on branch {self.branch}" if self.branch else ""
        ignored = ""
        if state.elsewhere:
            others = sorted(state.elsewhere.values(), key=lambda p: p.number)
            ignored = f"; seen and ignored, on other branches: {ignored_text(others)}"
        outcome = NotFound(
            f"no Woodpecker pipeline for {self.sha[:8]}{on} (events {','.join(self.events)}) "
            f"appeared in {self.repo.full_name} within {format_duration(self.appear_grace)}"
            + ignored,
            hint="check that the commit was pushed and the repo's webhook fired; pull-request "
            "pipelines do not count (see --ci-events); --appear-grace waits longer"
            + ("; --ci-branch names the branch that counts ('*': any)" if self.branch else ""),
        )
        return self._result(state, start, outcome, None)

    def _look_elsewhere(self, state: _State) -> None:
        """One unfiltered list page, so that a not-found can name the commit's pipelines on
        other branches (a v3 server filtered them out). Best effort."""
        from pytest_homelab.ci.client import newest_other_branches

        try:
            items = self.client.list_pipelines(
                self.repo,
                1,
                events=self.events,
                deadline=Deadline.after(self.final_look, self.clock),
            )
        except (HomelabError, AttributeError):
            return
        self._note_elsewhere(
            state, newest_other_branches(items, self.sha, self.events, self.branch)
        )

    def _deadline_result(self, state: _State, start: float) -> CiResult:
        current = state.following or state.current
        waited = format_duration(self.clock.monotonic() - start)
        if current is None:
            return self._not_found(state, start)
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


def _appeared(state: _State) -> bool:
    return state.current is not None


def _merge(*groups: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return tuple(seen)
