"""What the rollout phase will verify: targets from deploy.json (or NS/NAME), with their shas."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_homelab.core.landing import commit_under_test
from pytest_homelab.core.manifest import Service, load_manifest
from pytest_homelab.core.settings import Settings
from pytest_homelab.rollout.rules import Target, targets_for


@dataclass(frozen=True)
class RolloutPlan:
    targets: tuple[Target, ...]
    environment: str | None  # None when only explicit targets without a deploy.json


def rollout_plan(settings: Settings) -> RolloutPlan:
    """Resolve the environment (the named one, or the only one), the commit under test and the
    targets. Raises BadInput (invalid deploy.json, unknown environment, unknown commit)."""
    services: list[Service] = []
    env_name = settings.env
    if not settings.targets or settings.deploy_json_path.exists():
        environment = load_manifest(settings.deploy_json_path).environment(settings.env)
        env_name, services = environment.name, list(environment.services)
    scoped = settings.for_env(env_name) if env_name else settings
    sha = commit_under_test(settings).sha
    targets = targets_for(services, sha, explicit=settings.targets, namespace=scoped.namespace)
    return RolloutPlan(tuple(targets), env_name)


def listed_services(settings: Settings) -> list[Service]:
    """The services whose checks a listing shows (``pytest --collect-only``): no git, no
    network, no credentials. The named or only environment's services; when several
    environments exist and none is named, every environment's services once by name (a run must
    then name one). Raises BadInput (deploy.json)."""
    manifest = load_manifest(settings.deploy_json_path)
    if settings.env is not None or len(manifest.environments) <= 1:
        return list(manifest.environment(settings.env).services)
    seen: dict[str, Service] = {}
    for environment in manifest.environments.values():
        for service in environment.services:
            seen.setdefault(service.name, service)
    return list(seen.values())


def listed_targets(settings: Settings) -> tuple[Target, ...]:
    """The rollout checks to list, as :func:`listed_services` finds them, or the explicit
    targets. Their sha is left empty: a listed target is never checked."""
    services: list[Service] = []
    if not settings.targets or settings.deploy_json_path.exists():
        services = listed_services(settings)
    return tuple(targets_for(services, "", explicit=settings.targets))
