"""The few Woodpecker REST endpoints the landing needs, parsed defensively."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_homelab.ci.models import (
    ANY_BRANCH,
    CREATED_SKEW,
    PER_PAGE,
    Pipeline,
    Repo,
    _int,
    _str,
    commit_matches,
    newest_candidate,
)
from pytest_homelab.core.clock import Deadline, format_duration
from pytest_homelab.core.outcomes import (
    AuthError,
    HomelabError,
    InfraError,
    NotFound,
)
from pytest_homelab.core.transport import HttpNotFound, HttpUnauthorized, JsonApi

# Once the repo lookup worked in this run, a 401 or 404 on the list, detail or log endpoints is
# retried after these delays: the server runs a request anonymously when loading the token's
# user fails (server/router/middleware/session/user.go@v3.17.0:46-56 with
# shared/token/token.go@v3.17.0:47-56) and answers 404 when a permission re-sync from the forge
# fails (server/router/middleware/session/repo.go@v3.17.0:118-142,170-183). Only an answer that
# stays for every retry (five in a row over 11 s) is an AuthError or NotFound.
AUTH_RETRY_DELAYS = (1.0, 2.0, 4.0, 4.0)


class WoodpeckerClient:
    """The few Woodpecker endpoints the landing needs, parsed defensively."""

    def __init__(self, api: JsonApi) -> None:
        self.api = api
        self.repo_seen: Repo | None = None  # the lookup worked: later 401/404s may be transient
        self.transient_auth = 0  # 401/404 answers retried (and then answered) in this run

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
        repo = Repo(
            id=data["id"],
            full_name=_str(data, "full_name") or full_name,
            private=bool(data.get("private")),
            default_branch=_str(data, "default_branch"),
        )
        self.repo_seen = repo
        return repo

    def _repo_get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        deadline: Deadline,
        retry_auth: bool = True,
    ) -> Any:
        """GET a repo-scoped route; a 401/404 after a successful lookup is retried (see
        ``AUTH_RETRY_DELAYS``) while the deadline allows, then reported as persistent."""
        if self.repo_seen is None or not retry_auth:
            return self.api.get(path, params, deadline=deadline)
        clock = self.api.clock
        first = clock.monotonic()
        answers = 0
        for delay in (*AUTH_RETRY_DELAYS, None):
            try:
                data = self.api.get(path, params, deadline=deadline)
            except (HttpUnauthorized, HttpNotFound) as exc:
                answers += 1
                if delay is None or deadline.remaining() <= delay:
                    raise self._persistent(exc, path, answers, clock.monotonic() - first) from None
                self.transient_auth += 1
                if self.api.on_retry is not None:
                    self.api.on_retry(
                        f"GET {path}: {exc.message}; it worked earlier in this run, "
                        f"retrying in {delay:.0f}s"
                    )
                clock.sleep(delay)
                continue
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _persistent(self, exc: HomelabError, path: str, answers: int, span: float) -> HomelabError:
        code = 401 if isinstance(exc, HttpUnauthorized) else 404
        repo = self.repo_seen.full_name if self.repo_seen is not None else "the repo"
        seen = (
            f"Woodpecker GET {path} answered {code} {answers} time{'s' if answers != 1 else ''} "
            f"in a row over {format_duration(span)}, although {repo} was readable earlier in "
            f"this run"
        )
        token = self._token_state()
        if code == 401:
            return AuthError(
                f"{seen}; {token}",
                hint="the token may have been revoked or expired mid-run, or the server cannot "
                "load its user (database trouble); check the token and the server's logs",
            )
        return NotFound(
            f"{seen}; {token}",
            hint="the token's user may have lost access to the repo (Woodpecker re-syncs "
            "permissions from the forge) or the repo was deactivated; check it in Woodpecker",
        )

    def _token_state(self) -> str:
        """Confirm with ``GET /api/user`` (one quick look) whether the token still works."""
        try:
            self.api.get("/api/user", deadline=Deadline.after(5.0, self.api.clock))
        except HttpUnauthorized:
            return "GET /api/user -> 401: the token is no longer accepted"
        except HomelabError as exc:
            return f"GET /api/user could not confirm the token ({exc.message})"
        return "GET /api/user still accepts the token"

    def list_pipelines(
        self,
        repo: Repo,
        page: int,
        *,
        events: Iterable[str] = (),
        branch: str | None = None,
        deadline: Deadline,
    ) -> list[Pipeline]:
        params: dict[str, str | int] = {"page": page, "perPage": PER_PAGE}
        event_list = ",".join(events)
        if event_list:
            params["event"] = event_list  # v3 filters; v2 ignores it, so we filter again
        if branch is not None and branch != ANY_BRANCH:
            # v3 filters (server/api/pipeline.go@v3.17.0:132-135); v2.8.3 ignores it (:117-148),
            # so newest_candidate filters again.
            params["branch"] = branch
        data = self._repo_get(f"/api/repos/{repo.id}/pipelines", params, deadline=deadline)
        if data is None:
            return []
        if not isinstance(data, list):
            raise InfraError(f"Woodpecker's pipeline list is not a list: {str(data)[:80]}")
        return [Pipeline.from_json(item) for item in data]

    def get_pipeline(
        self, repo: Repo, number: int, *, deadline: Deadline, retry_auth: bool = True
    ) -> Pipeline:
        data = self._repo_get(
            f"/api/repos/{repo.id}/pipelines/{number}", deadline=deadline, retry_auth=retry_auth
        )
        return Pipeline.from_json(data)

    def step_log(self, repo: Repo, number: int, step_id: int, *, deadline: Deadline) -> list[str]:
        """The step's log lines in order (``data`` is base64 in JSON; ``null`` means none yet)."""
        data = self._repo_get(f"/api/repos/{repo.id}/logs/{number}/{step_id}", deadline=deadline)
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
        branch: str | None = None,
        elsewhere: dict[int, Pipeline] | None = None,
    ) -> Pipeline | None:
        """Search newest-first pages (bounded) for the landing's pipeline on ``branch``
        (``None`` or ``*``: any). Pipelines of the commit on other branches are never the
        answer; they are added to ``elsewhere`` (by number) so that messages can name them."""
        best: Pipeline | None = None
        for page in range(1, pages + 1):
            items = self.list_pipelines(repo, page, events=events, branch=branch, deadline=deadline)
            if elsewhere is not None:
                for p in newest_other_branches(items, sha, events, branch):
                    elsewhere[p.number] = p
            found = newest_candidate(items, sha, events, branch)
            if found is not None and (best is None or found.number > best.number):
                best = found
            if best is not None or len(items) < PER_PAGE:
                break
            created = [p.created for p in items if p.created]
            if not_before is not None and created and min(created) < not_before - CREATED_SKEW:
                break
        return best


def newest_other_branches(
    pipelines: Iterable[Pipeline], sha: str, events: Iterable[str], branch: str | None
) -> list[Pipeline]:
    """Pipelines of the commit (events that count) on a branch other than ``branch``."""
    if branch is None or branch == ANY_BRANCH:
        return []
    allowed = set(events)
    return [
        p
        for p in pipelines
        if p.event in allowed and commit_matches(p.commit, sha) and p.branch != branch
    ]
