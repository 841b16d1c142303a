"""The few Woodpecker REST endpoints the landing needs, parsed defensively."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from pytest_homelab.ci.models import (
    CREATED_SKEW,
    PER_PAGE,
    Pipeline,
    Repo,
    _int,
    _str,
    newest_candidate,
)
from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import (
    InfraError,
    NotFound,
)
from pytest_homelab.core.transport import HttpNotFound, JsonApi


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
