"""``homelab init``: a starting deploy.json from what the cluster runs.

It lists Deployments, StatefulSets and DaemonSets in the given namespaces (default: every
namespace the kubeconfig's user may list), keeps those with a container whose image comes from
one of the given registry prefixes (default: images whose repository path has the git repo's
name as one of its parts), and proposes one service per workload and matching container. The
result is validated against the schema before anything is written, and an existing file is
never replaced without ``--force``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_homelab.core.outcomes import (
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_SUCCESS,
    BadInput,
)
from pytest_homelab.core.settings import Settings

KINDS = (
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
)
RUNNER = "scripts/ci/dev-e2e.sh"
E2E_TIMEOUT_MS = 1_800_000
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Found:
    """A container of a workload whose image matched."""

    namespace: str
    kind: str
    workload: str
    container: str
    containers: int  # how many containers the pod template has
    repository: str  # the image without tag or digest


def image_repository(image: str) -> str:
    """The image without tag or digest: ``reg.example.org:5000/team/web:1.2@sha256:…`` ->
    ``reg.example.org:5000/team/web``."""
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    return ref


def _path_parts(repository: str) -> list[str]:
    parts = repository.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # the registry host
    return parts


def matches(repository: str, registries: Sequence[str], repo_name: str | None) -> bool:
    if registries:
        return any(
            repository == prefix.rstrip("/") or repository.startswith(prefix.rstrip("/") + "/")
            for prefix in registries
        )
    return repo_name is not None and repo_name.lower() in _path_parts(repository)


def _label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "service"


def propose_services(found: Sequence[Found]) -> list[dict[str, Any]]:
    """One service per matched container; names unique within the environment."""
    per_workload: dict[tuple[str, str, str], int] = {}
    for item in found:
        key = (item.namespace, item.kind, item.workload)
        per_workload[key] = per_workload.get(key, 0) + 1
    services: list[dict[str, Any]] = []
    used: set[str] = set()
    for item in sorted(found, key=lambda f: (f.namespace, f.kind, f.workload, f.container)):
        several = per_workload[(item.namespace, item.kind, item.workload)] > 1
        base = _label(f"{item.workload}-{item.container}" if several else item.workload)
        name = base
        if name in used:
            name = _label(f"{base}-{item.namespace}")
        number = 2
        while name in used:
            name = _label(f"{base}-{number}")
            number += 1
        used.add(name)
        service: dict[str, Any] = {"name": name, "namespace": item.namespace}
        if name != item.workload:
            service["deployment"] = item.workload
        if item.kind != "Deployment":
            service["kind"] = item.kind
        if item.containers > 1:
            service["container"] = item.container
        service["image"] = item.repository
        services.append(service)
    return services


def _repo_url_for_ci(url: str) -> str:
    """The remote URL without credentials (the schema refuses them in ci.repo)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", url) if "://" in url else url


def build_document(
    services: list[dict[str, Any]], *, env: str, e2e_repo: str | None
) -> dict[str, Any]:
    environment: dict[str, Any] = {}
    if e2e_repo is not None:
        environment["ci"] = {"repo": e2e_repo, "scriptPath": RUNNER, "timeoutMs": E2E_TIMEOUT_MS}
    environment["services"] = services
    return {"schemaVersion": 2, "environments": {env: environment}}


def scan_cluster(
    api: Any,
    namespaces: Sequence[str],
    *,
    registries: Sequence[str],
    repo_name: str | None,
    timeout: float,
    say: Callable[[str], None],
) -> tuple[list[Found], set[str]]:
    """The matching containers, and every image repository seen (for the hint when none match)."""
    from pytest_homelab.core.outcomes import AuthError
    from pytest_homelab.onboarding.kubeapi import request

    if not namespaces:
        try:
            listing = request(api, "GET", "/api/v1/namespaces", timeout=timeout)
        except AuthError as exc:
            raise BadInput(
                f"the kubeconfig's user may not list namespaces ({exc.message})",
                hint="name the namespaces to look in: homelab init --namespace NS [--namespace NS]",
            ) from None
        namespaces = sorted(item["metadata"]["name"] for item in listing.get("items", []))
    found: list[Found] = []
    seen: set[str] = set()
    for namespace in namespaces:
        for kind, resource in KINDS:
            path = f"/apis/apps/v1/namespaces/{namespace}/{resource}"
            try:
                listing = request(api, "GET", path, timeout=timeout)
            except AuthError as exc:
                say(f"init: skipped {resource} in {namespace}: {exc.message}")
                continue
            for item in listing.get("items", []) or []:
                name = item.get("metadata", {}).get("name", "")
                template = item.get("spec", {}).get("template", {}).get("spec", {})
                containers = template.get("containers", []) or []
                for container in containers:
                    repository = image_repository(str(container.get("image", "")))
                    seen.add(repository)
                    if matches(repository, registries, repo_name):
                        found.append(
                            Found(
                                namespace,
                                kind,
                                name,
                                str(container.get("name", "")),
                                len(containers),
                                repository,
                            )
                        )
    return found, seen


def _repo_name(settings: Settings) -> tuple[str | None, str | None]:
    """(the repo's name for matching, the remote URL) from the git checkout, when there is one."""
    from pytest_homelab.core.gitrepo import GitRepo, parse_repo_slug

    try:
        git = GitRepo.discover(settings.repo_root)
        url = git.remote_url(git.pick_remote(settings.remote))
    except Exception:
        return (settings.woodpecker_repo or "").rsplit("/", 1)[-1] or None, None
    slug = settings.woodpecker_repo or parse_repo_slug(url)
    return slug.rsplit("/", 1)[-1], url


def run_init(
    settings: Settings,
    *,
    namespaces: Sequence[str],
    registries: Sequence[str],
    env: str,
    e2e: bool,
    force: bool,
    dry_run: bool,
    out: Callable[[str], None] = print,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> int:
    from pytest_homelab.core.manifest import validate_document
    from pytest_homelab.rollout.tracker import connect

    path = settings.deploy_json_path
    if path.exists() and not force and not dry_run:
        say(
            f"init: {path} exists and was kept; --force replaces it, --dry-run shows what "
            "init would write"
        )
        return EXIT_BAD_INPUT
    repo_name, remote_url = _repo_name(settings)
    if not registries and repo_name is None:
        raise BadInput(
            "no --registry given and no git repository to take a name from",
            hint="pass the registry prefix of your images: --registry registry.example.org/team",
        )
    e2e_repo = None
    if e2e:
        if remote_url is None:
            raise BadInput(
                "--e2e needs the repository's git remote (the URL D601 fetches)",
                hint="run homelab init in a checkout with a remote (git remote add origin URL)",
            )
        e2e_repo = _repo_url_for_ci(remote_url)
    api = connect(
        kubeconfig=settings.kubeconfig, context=settings.kube_context, environ=settings.environ
    )
    try:
        found, seen = scan_cluster(
            api,
            namespaces,
            registries=registries,
            repo_name=repo_name,
            timeout=min(settings.request_timeout, 10.0),
            say=say,
        )
    finally:
        api.close()
    rule = f"from {', '.join(registries)}" if registries else f"with {repo_name!r} in their path"
    if not found:
        prefixes = sorted({repo.rsplit("/", 1)[0] for repo in seen if "/" in repo})
        listed = ", ".join(prefixes[:12]) + (", ..." if len(prefixes) > 12 else "")
        say(f"init: no workload runs an image {rule}; image prefixes seen: {listed or 'none'}")
        say("  next: pass the registry prefix of your images with --registry PREFIX")
        return EXIT_NOT_FOUND
    services = propose_services(found)
    doc = build_document(services, env=env, e2e_repo=e2e_repo)
    issues = validate_document(doc)
    refused = _refused_services(issues, env)
    if refused:  # e.g. an image path with capitals: leave those out, say why, keep the rest
        for index in sorted(refused, reverse=True):
            dropped = services.pop(index)
            workload = dropped.get("deployment", dropped["name"])
            say(f"init: left out {dropped['namespace']}/{workload}: {refused[index]}")
        if not services:
            say("init: no proposed service fits deploy.json's rules; nothing written")
            return EXIT_NOT_FOUND
        doc = build_document(services, env=env, e2e_repo=e2e_repo)
        issues = validate_document(doc)
    if issues:
        raise BadInput(
            "the proposed deploy.json is not valid: " + "; ".join(str(i) for i in issues[:5]),
            hint="narrow it with --namespace and --registry, or write it by hand "
            "(docs/deploy-json.md)",
        )
    text = json.dumps(doc, indent=2) + "\n"
    for service in services:
        kind = service.get("kind", "Deployment")
        workload = service.get("deployment", service["name"])
        container = f" container {service['container']}" if "container" in service else ""
        say(
            f"init: service {service['name']}: {kind} {service['namespace']}/{workload}"
            f"{container}, image {service['image']}"
        )
    if dry_run:
        out(text.rstrip("\n"))
        say(f"init: --dry-run: {path} not written")
    else:
        _write(path, text, force=force)
        say(f"init: wrote {path} ({len(services)} services in environment {env})")
        if e2e:
            _runner(settings, say)
    for line in still_needed(settings, e2e=e2e):
        say(line)
    return EXIT_SUCCESS


def _refused_services(issues: Sequence[Any], env: str) -> dict[int, str]:
    """Which proposed services (by index) the schema refuses, and the first reason each."""
    prefix = f"environments.{env}.services["
    found: dict[int, str] = {}
    for issue in issues:
        path = str(issue.path)
        if path.startswith(prefix):
            index = path[len(prefix) :].split("]", 1)[0]
            if index.isdigit():
                found.setdefault(int(index), str(issue))
    return found


def _write(path: Path, text: str, *, force: bool) -> None:
    if force:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return
    try:
        with path.open("x", encoding="utf-8") as handle:  # never over a file that appeared since
            handle.write(text)
    except FileExistsError:
        raise BadInput(
            f"{path} appeared meanwhile and was kept", hint="--force replaces it"
        ) from None


def _runner(settings: Settings, say: Callable[[str], None]) -> None:
    from pytest_homelab.e2e.launcher import reference_runner

    target = settings.repo_root / RUNNER
    if target.exists():
        say(f"init: the dev e2e runner {RUNNER} is already in the repository (kept)")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(reference_runner().read_text(encoding="utf-8"), encoding="utf-8")
    target.chmod(0o755)
    say(
        f"init: copied the reference dev e2e runner to {RUNNER}; review it, then commit it with "
        "deploy.json (D601 runs it from the landed commit)"
    )


def still_needed(settings: Settings, *, e2e: bool) -> list[str]:
    """The settings a landing still needs, and where to put them."""
    from pytest_homelab.core.secrets import TOKEN_ENV
    from pytest_homelab.core.settings import user_config_path

    lines = []
    env = settings.environ
    user = user_config_path(env) or "~/.config/homelab/config.toml"
    if settings.woodpecker_server is None:
        lines.append(
            "init: still needed: woodpecker_server (the Woodpecker URL): "
            f'woodpecker_server = "https://ci.example.org" in {user} (yours, not the '
            "repository's), or export WOODPECKER_SERVER"
        )
    if not any(env.get(n, "").strip() for n in TOKEN_ENV) and not env.get("VAULT_ADDR"):
        lines.append(
            "init: still needed: the Woodpecker token: export WOODPECKER_TOKEN=..., or VAULT_ADDR "
            f"and VAULT_TOKEN with the token at {settings.vault_mount}/{settings.vault_path} "
            f"field {settings.vault_field} (never in a file of the repository)"
        )
    if e2e and settings.d601_transport == "ssh" and settings.d601_host is None:
        lines.append(
            f'init: still needed: d601_host (the CI host D601): d601_host = "d601" in {user}, '
            "or export HOMELAB_D601_HOST (a host name or an alias from ~/.ssh/config)"
        )
    if lines:
        lines.append("init: then check everything with: homelab doctor")
    else:
        lines.append("init: next: homelab doctor checks the whole chain")
    return lines
