"""The doctor's Kubernetes checks: kubeconfig and context, the API, and per namespace of the
environment's services the permissions the rollout phase uses, asked with
``SelfSubjectAccessReview`` (what ``kubectl auth can-i`` asks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytest_homelab.onboarding.doctor import Context, Group, Problem, Skip

WORKLOAD_RESOURCES = {
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
}


def needed_permissions(kinds: set[str]) -> list[tuple[str, str, str, str]]:
    """(verb, group, resource, subresource) the rollout phase uses in a namespace: list and
    watch of the workloads' kinds, pods and events; get of pods/log."""
    wanted: list[tuple[str, str, str, str]] = []
    resources = [WORKLOAD_RESOURCES[k] for k in sorted(kinds) if k in WORKLOAD_RESOURCES]
    for group, resource in [*resources, ("", "pods"), ("", "events")]:
        wanted += [("list", group, resource, ""), ("watch", group, resource, "")]
    wanted.append(("get", "", "pods", "log"))
    return wanted


def _name(verb: str, group: str, resource: str, sub: str) -> str:
    what = f"{resource}.{group}" if group else resource
    return f"{verb} {what}/{sub}" if sub else f"{verb} {what}"


def kubeconfig_source(ctx: Context) -> str:
    s = ctx.settings
    if s.kubeconfig:
        return f"{s.kubeconfig} (kubeconfig from {s.sources.get('kubeconfig', 'default')})"
    env = ctx.environ.get("KUBECONFIG", "").strip()
    if env:
        return f"{env} (env KUBECONFIG)"
    home = Path(ctx.environ.get("HOME", str(Path.home())))
    default = home / ".kube" / "config"
    if default.is_file():
        return f"{default} (the default)"
    return "the in-cluster service account"


def _context_name(ctx: Context) -> str:
    s = ctx.settings
    if s.kube_context:
        return s.kube_context
    from kubernetes.config import kube_config

    source = s.kubeconfig or ctx.environ.get("KUBECONFIG", "").strip()
    if not source:
        home = Path(ctx.environ.get("HOME", str(Path.home())))
        source = str(home / ".kube" / "config")
    path = source.split(os.pathsep)[0]
    try:
        _, active = kube_config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except Exception:
        return "?"
    return str(active.get("name", "?")) if isinstance(active, dict) else "?"


def rollout_group(ctx: Context, group: Group) -> None:
    from pytest_homelab.onboarding.kubeapi import can_i, request
    from pytest_homelab.rollout.tracker import connect

    settings = ctx.settings

    def config(_: float) -> tuple[str, Any]:
        api = connect(
            kubeconfig=settings.kubeconfig, context=settings.kube_context, environ=ctx.environ
        )
        where = kubeconfig_source(ctx)
        context = "" if where.startswith("the in-cluster") else f", context {_context_name(ctx)}"
        return f"{where}{context}, server {api.configuration.host}", api

    api = group.check("kube.config", config)

    def reachable(timeout: float) -> str:
        data = request(api, "GET", "/version", timeout=timeout)
        version = data.get("gitVersion", "?") if isinstance(data, dict) else "?"
        return f"the API at {api.configuration.host} answers: Kubernetes {version}"

    group.check("kube.api", reachable, needs=["kube.config"])

    namespaces: dict[str, set[str]] = {}
    environment = ctx.environment
    if environment is not None:
        for service in environment.services:
            namespace = settings.namespace or service.namespace
            namespaces.setdefault(namespace, set()).add(service.kind)
    if not namespaces:
        why = (
            f"environment {environment.name} of deploy.json has no services"
            if environment is not None
            else "deploy.json is missing or invalid (see deploy.json)"
        )

        def none(_: float) -> str:
            raise Skip(why)

        group.check("kube.permissions", none)
    for namespace, kinds in sorted(namespaces.items()):

        def permissions(timeout: float, namespace: str = namespace, kinds: set[str] = kinds) -> str:
            wanted = needed_permissions(kinds)
            missing = []
            each = max(0.5, timeout / 2)
            for verb, api_group, resource, sub in wanted:
                allowed, _ = can_i(
                    api,
                    verb=verb,
                    resource=resource,
                    namespace=namespace,
                    group=api_group,
                    subresource=sub,
                    timeout=each,
                )
                if not allowed:
                    missing.append(_name(verb, api_group, resource, sub))
            if missing:
                first = missing[0].split(" ", 1)
                raise Problem(
                    f"in namespace {namespace} the kubeconfig's user may not: "
                    f"{', '.join(missing)} (asked with SelfSubjectAccessReview)",
                    f"ask for a Role in {namespace} granting list and watch on the workloads, "
                    f"pods and events, and get on pods/log; check with: kubectl auth can-i "
                    f"{first[0]} {first[1]} -n {namespace}",
                )
            watched = [
                f"{resource}.{api_group}" if api_group else resource
                for verb, api_group, resource, sub in wanted
                if verb == "list"
            ]
            return (
                f"in namespace {namespace} the kubeconfig's user may list and watch "
                f"{', '.join(watched)} and get pods/log"
            )

        group.check(f"kube.rbac.{namespace}", permissions, needs=["kube.api"], timeout=5.0)
    if environment is not None:
        probe_checks(group, environment.services)


PROBE_HINT = "check the probe's url in deploy.json, or give the probe a dial HOST[:PORT]"


def probe_checks(group: Group, services: Any) -> None:
    """Each probe URL of the environment's services resolves (its dial host, when it has one):
    the smoke phase polls them after the rollouts."""
    import ipaddress
    from urllib.parse import urlsplit

    from pytest_homelab.core.transport import parse_dial
    from pytest_homelab.onboarding.doctor_ci import resolve_host

    for service in services:
        probe = service.probe
        if probe is None:
            continue
        parts = urlsplit(probe.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        via = ""
        if probe.dial:
            host, dial_port = parse_dial(probe.dial)
            port, via = dial_port or port, f" (the probe's dial address for {parts.hostname})"

        def resolves(timeout: float, host: str = host, port: int = port, via: str = via) -> str:
            try:
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                addresses = resolve_host(host, port, timeout, PROBE_HINT)
                return f"{host} resolves to {', '.join(addresses[:3])}{via}"
            return f"{host} is an address: nothing to resolve{via}"

        group.check(f"probe.{service.name}", resolves)
