"""The doctor's local checks: the git repository and deploy.json."""

from __future__ import annotations

from pytest_homelab.core.clock import Deadline
from pytest_homelab.onboarding.doctor import Context, Group, Problem, Skip


def settings_group(ctx: Context, deadline: Deadline) -> Group:
    """A value the trust rules refused (the repository may not say where credentials go) was
    left out: each is a problem, since what the user meant is not what runs."""
    group = Group("settings", deadline)
    for key, entries in sorted(ctx.settings.refused.items()):
        for where, reason in entries:
            why, _, hint = reason.partition("; ")

            def refused(
                _: float, said: str = f"{key} from {where}", why: str = why, hint: str = hint
            ) -> str:
                raise Problem(f"{said} was refused: {why}", hint)

            group.check(f"settings.{key}", refused)
    return group


def git_group(ctx: Context, deadline: Deadline) -> Group:
    from pytest_homelab.core.gitrepo import GitRepo, mask_credentials, parse_repo_slug

    group = Group("git", deadline)
    settings = ctx.settings

    def repo(_: float) -> tuple[str, GitRepo]:
        try:
            git = GitRepo.discover(settings.repo_root)
        except Exception as exc:
            raise Problem(
                f"{settings.repo_root} is not inside a git repository ({exc})",
                "run homelab in the checkout of the repository you land",
            ) from None
        return f"repository {git.root}", git

    git: GitRepo | None = group.check("git.repository", repo)

    def remote(_: float) -> tuple[str, str]:
        assert git is not None
        name = git.pick_remote(settings.remote)
        url = git.remote_url(name)
        ctx.remote_url = url
        return f"remote {name} is {mask_credentials(url)}", url

    url: str | None = group.check("git.remote", remote, needs=["git.repository"])

    def slug(_: float) -> str:
        if settings.woodpecker_repo is not None:
            ctx.slug = settings.woodpecker_repo
            where = settings.sources.get("woodpecker_repo", "default")
            return f"Woodpecker repo {ctx.slug} (woodpecker_repo from {where})"
        if url is None:
            raise Skip("git.remote did not pass and woodpecker_repo is not set")
        ctx.slug = parse_repo_slug(url)
        return f"Woodpecker repo {ctx.slug} (derived from the remote's URL)"

    group.check("git.repo-slug", slug)
    return group


def manifest_group(ctx: Context, deadline: Deadline) -> Group:
    from pytest_homelab.core.manifest import ManifestInvalid, load_manifest

    group = Group("deploy.json", deadline)
    settings = ctx.settings
    path = settings.deploy_json_path

    def valid(_: float) -> str:
        if not path.exists():
            raise Problem(
                f"no deploy.json at {path}",
                "write one from what the cluster runs: homelab init (see docs/quickstart.md)",
            )
        try:
            manifest = load_manifest(path)
        except ManifestInvalid as exc:
            first = exc.errors[0] if exc.errors else "invalid"
            more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
            raise Problem(
                f"{path} is not valid: {first}{more}",
                f"homelab manifest check {path} lists every problem",
            ) from None
        ctx.manifest = manifest
        ctx.environment = manifest.environment(settings.env)
        return f"{path}: valid ({manifest.summary()}); rollout checks use {ctx.environment.name}"

    group.check("deploy.json", valid)

    return group
