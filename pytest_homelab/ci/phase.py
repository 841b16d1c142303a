"""The ci phase: which repo and commit, a Woodpecker client from settings, and the watch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_homelab.ci.client import WoodpeckerClient
from pytest_homelab.ci.models import Repo
from pytest_homelab.ci.stream import WoodpeckerEventStream
from pytest_homelab.ci.watch import CiResult, PipelineWatch
from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline
from pytest_homelab.core.gitrepo import GitRepo, parse_repo_slug
from pytest_homelab.core.landing import commit_under_test
from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.secrets import Secret, VaultLocation, resolve_token
from pytest_homelab.core.settings import Settings
from pytest_homelab.core.transport import JsonApi, make_http_client


@dataclass(frozen=True)
class CiTarget:
    """The Woodpecker repo and the commit whose pipeline counts."""

    slug: str
    sha: str
    commit_time: int | None
    git: GitRepo | None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        return self.git.is_ancestor(ancestor, descendant) if self.git is not None else None


def resolve_target(settings: Settings) -> CiTarget:
    """Resolve the repo slug and the full sha. Raises BadInput with what to do."""
    commit = commit_under_test(settings, foreign_ok=settings.woodpecker_repo is not None)
    git = commit.git
    if settings.woodpecker_repo is not None:
        slug = settings.woodpecker_repo
    elif git is not None:
        slug = parse_repo_slug(git.remote_url(git.pick_remote(settings.remote)))
    else:
        raise BadInput(
            f"not inside a git repository ({settings.repo_root}): the Woodpecker repo is unknown",
            hint="run inside the repo's checkout, or pass --repo OWNER/NAME and a commit sha",
        )
    return CiTarget(slug, commit.sha, commit.time, git)


def woodpecker_token(settings: Settings) -> Secret:
    location = VaultLocation(settings.vault_mount, settings.vault_path, settings.vault_field)
    return resolve_token(settings.environ, location)


def open_client(
    settings: Settings,
    token: Secret | None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    on_retry: Callable[[str], None] | None = None,
) -> WoodpeckerClient:
    server: str = settings.require("woodpecker_server", "watching Woodpecker CI")
    http = make_http_client(
        server,
        dial=settings.woodpecker_dial,
        ca_bundle=settings.ca_bundle,
        timeout=settings.request_timeout,
    )
    return WoodpeckerClient(
        JsonApi(http, token=token, service="Woodpecker", clock=clock, on_retry=on_retry)
    )


def watch_ci(
    settings: Settings,
    client: WoodpeckerClient,
    repo: Repo,
    target: CiTarget,
    *,
    deadline: Deadline,
    token: Secret | None,
    progress: Callable[[str], None],
    clock: Clock = SYSTEM_CLOCK,
    use_stream: bool = True,
) -> CiResult:
    """Watch the landing's pipeline until a verdict or the deadline."""
    stream: WoodpeckerEventStream | None = None
    if use_stream:
        stream_http = make_http_client(
            client.base_url,
            dial=settings.woodpecker_dial,
            ca_bundle=settings.ca_bundle,
            timeout=settings.request_timeout,
        )
        stream = WoodpeckerEventStream(stream_http, repo, token=token, clock=clock).start()
    try:
        return PipelineWatch(
            client,
            repo,
            target.sha,
            deadline=deadline,
            events=settings.ci_events,
            pages=settings.ci_pages,
            appear_grace=settings.appear_grace,
            poll_interval=settings.ci_poll_interval,
            stream_recheck=settings.ci_stream_recheck,
            not_before=target.commit_time,
            is_ancestor=target.is_ancestor,
            stream=stream,
            progress=progress,
            clock=clock,
        ).run()
    finally:
        if stream is not None:
            stream.close()
            stream.http.close()
