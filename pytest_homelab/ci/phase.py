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
    # The branch whose pipeline counts; None: the Woodpecker repo's default branch (known once
    # the repo is looked up). ``branch_from`` says where it came from, for messages.
    branch: str | None = None
    branch_from: str = "the Woodpecker repo's default branch"

    def branch_for(self, repo: Repo) -> str | None:
        """The branch for the watch: ours, else the repo's ``default_branch`` (None: any)."""
        return self.branch if self.branch is not None else (repo.default_branch or None)

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
    branch, branch_from = resolve_branch(settings, git, commit.sha)
    return CiTarget(slug, commit.sha, commit.time, git, branch, branch_from)


def resolve_branch(settings: Settings, git: GitRepo | None, sha: str) -> tuple[str | None, str]:
    """The branch whose pipeline counts, and where that came from.

    ``ci_branch`` when set (``work land`` sets it to its target; ``*`` is any branch); else the
    checked-out branch's upstream when it contains the commit; else the remote's default branch
    as the clone records it (``refs/remotes/<remote>/HEAD``); else None, meaning the Woodpecker
    repo's ``default_branch``. Nothing here asks the network.
    """
    if settings.ci_branch is not None:
        return settings.ci_branch, f"ci_branch ({settings.sources.get('ci_branch', 'set')})"
    if git is None:
        return None, "the Woodpecker repo's default branch"
    current = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    if current:
        merge = git.run("config", "--get", f"branch.{current}.merge", check=False).strip()
        upstream = git.run(
            "rev-parse", "--symbolic-full-name", f"{current}@{{upstream}}", check=False
        ).strip()
        if (
            merge.startswith("refs/heads/")
            and upstream.startswith("refs/remotes/")
            and git.is_ancestor(sha, upstream) is True
        ):
            return merge.removeprefix("refs/heads/"), f"the upstream of {current} ({upstream})"
    try:
        remote = git.pick_remote(settings.remote)
    except BadInput:
        return None, "the Woodpecker repo's default branch"
    prefix = f"refs/remotes/{remote}/"
    head = git.run("symbolic-ref", "--quiet", f"{prefix}HEAD", check=False).strip()
    if head.startswith(prefix):
        return head.removeprefix(prefix), f"{remote}/HEAD"
    return None, "the Woodpecker repo's default branch"


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
            branch=target.branch_for(repo),
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
