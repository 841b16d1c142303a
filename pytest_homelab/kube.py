"""Kubernetes access, and the tracker: one LIST+WATCH per namespace and kind, shared by every
service there, feeding the pure rules of :mod:`pytest_homelab.rollout`.

Watches use the official client's ``Watch`` (raw dicts, no model decoding) and handle what a
reflector handles: resume from the last resourceVersion, skip bookmarks, relist after 410 Gone,
re-watch when the server ends the stream (``timeoutSeconds``) or the connection drops.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_homelab.clock import SYSTEM_CLOCK, Backoff, Clock, Deadline, format_duration
from pytest_homelab.outcomes import AuthError, BadInput, HomelabError, InfraError
from pytest_homelab.rollout import RolloutResult, ServiceWait, Target

KIND_RESOURCES = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Pod": "pods",
}
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESOURCE_PATHS = {
    "deployments": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "statefulsets": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    "daemonsets": "/apis/apps/v1/namespaces/{namespace}/daemonsets",
    "pods": "/api/v1/namespaces/{namespace}/pods",
}
_QUERY_NAMES = {
    "watch": "watch",
    "resource_version": "resourceVersion",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
}


def list_request(api_client: Any, resource: str) -> Callable[..., Any]:
    """A list/watch call for ``resource`` through the official ApiClient (its configuration,
    auth and TLS), returning the raw urllib3 response the official ``Watch`` reads.

    The generated AppsV1Api/CoreV1Api would do the same, but building their pydantic
    validators costs over a second per process on first use.
    """
    from kubernetes.client.exceptions import ApiException

    path = RESOURCE_PATHS[resource]

    def request(
        namespace: str, _request_timeout: Any = None, _preload_content: bool = False, **params: Any
    ) -> Any:
        query = [
            (_QUERY_NAMES[k], str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in params.items()
            if v is not None
        ]
        method, url, headers, body, post = api_client.param_serialize(
            "GET",
            path,
            path_params={"namespace": namespace},
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = api_client.call_api(
            method, url, headers, body, post, _request_timeout=_request_timeout
        )
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(http_resp=response)
        return response.response

    return request


def connect(
    *,
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str],
    pool: int = 16,
    service_account: Path = SERVICE_ACCOUNT,
) -> Any:
    """An ``ApiClient`` from a kubeconfig (``--kubeconfig``, then ``KUBECONFIG``, then
    ``~/.kube/config``) or, failing those, the in-cluster service account."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    candidates = kubeconfig or environ.get("KUBECONFIG", "").strip()
    home = Path(environ.get("HOME", str(Path.home())))
    default = home / ".kube" / "config"
    tried: list[str] = []
    if candidates or default.is_file():
        source = candidates or str(default)
        paths = [p for p in source.split(os.pathsep) if p]
        missing = [p for p in paths if not Path(p).expanduser().is_file()]
        if missing and len(missing) == len(paths):
            raise BadInput(
                f"kubeconfig {', '.join(missing)} does not exist",
                hint="point --kubeconfig (or KUBECONFIG) at a kubeconfig file",
            )
        try:
            config.load_kube_config(
                config_file=source,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except ConfigException as exc:
            text = str(exc)
            if context and "context" in text.lower():
                raise BadInput(
                    f"kube context {context!r}: {text}",
                    hint="pass an existing context with --kube-context",
                ) from None
            raise BadInput(f"kubeconfig {source}: {text}") from None
    elif environ.get("KUBERNETES_SERVICE_HOST") and (service_account / "token").is_file():
        from kubernetes.config.incluster_config import InClusterConfigLoader

        try:
            InClusterConfigLoader(
                token_filename=str(service_account / "token"),
                cert_filename=str(service_account / "ca.crt"),
                environ=dict(environ),
            ).load_and_set(client_configuration=configuration)
        except ConfigException as exc:
            raise BadInput(f"in-cluster Kubernetes config: {exc}") from None
    else:
        tried = [
            "--kubeconfig (not given)",
            "KUBECONFIG (not set)",
            f"{default} (missing)",
            "in-cluster service account (KUBERNETES_SERVICE_HOST not set)",
        ]
        raise BadInput(
            "no Kubernetes configuration found; tried: " + "; ".join(tried),
            hint="pass --kubeconfig, set KUBECONFIG, or run inside the cluster",
        )
    configuration.connection_pool_maxsize = pool
    configuration.retries = 0  # retries are ours, bounded by the deadline
    return client.ApiClient(configuration)


@dataclass
class WatchStats:
    lists: int = 0
    watches: int = 0
    relists_after_410: int = 0
    errors: int = 0


@dataclass
class ClusterView:
    """The objects the watches have seen, per (resource, namespace); shared under one condition."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    synced: set[tuple[str, str]] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)  # namespaces with news since the last look
    fatal: HomelabError | None = None
    stats: WatchStats = field(default_factory=WatchStats)

    def replace(self, resource: str, namespace: str, items: Iterable[dict[str, Any]]) -> None:
        with self.changed:
            self.objects[(resource, namespace)] = {i["metadata"]["name"]: i for i in items}
            self.synced.add((resource, namespace))
            self.dirty.add(namespace)
            self.changed.notify_all()

    def apply(self, resource: str, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        with self.changed:
            bucket = self.objects.setdefault((resource, namespace), {})
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                bucket.pop(name, None)
            else:
                bucket[name] = obj
            self.dirty.add(namespace)
            self.changed.notify_all()

    def fail(self, error: HomelabError) -> None:
        with self.changed:
            if self.fatal is None:
                self.fatal = error
            self.changed.notify_all()


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class ResourceWatch(threading.Thread):
    """LIST, then WATCH from the list's resourceVersion, one resource in one namespace."""

    def __init__(
        self,
        api_client: Any,
        resource: str,
        namespace: str,
        view: ClusterView,
        *,
        watch_timeout: tuple[int, int] = (300, 600),
        request_timeout: float = 20.0,
        retry_budget: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name=f"kube-watch-{namespace}-{resource}", daemon=True)
        self.resource = resource
        self.namespace = namespace
        self.view = view
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.retry_budget = retry_budget
        self.clock = clock
        self.rng = rng or random.Random()
        self._stopping = threading.Event()
        self._watch: Any = None
        self._list = list_request(api_client, resource)

    def stop(self) -> None:
        self._stopping.set()
        current = self._watch
        if current is not None:
            current.stop()
            response = getattr(current, "_resp", None)  # Watch keeps no public handle on it
            shutdown = getattr(response, "shutdown", None)
            if callable(shutdown):
                with contextlib.suppress(Exception):  # racing the reader; moot either way
                    shutdown()

    def _list_once(self) -> str:
        response = self._list(
            self.namespace, _preload_content=False, _request_timeout=self.request_timeout
        )
        self.view.stats.lists += 1
        body = json.loads(response.data)
        self.view.replace(self.resource, self.namespace, body.get("items") or [])
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    def _stream(self, namespace: str, **kwargs: Any) -> Any:
        # A plain wrapper: without the generated docstring the Watch yields raw dicts.
        return self._list(namespace, **kwargs)

    def run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        rv: str | None = None
        delays = Backoff(initial=0.2, maximum=10.0, rng=self.rng).delays()
        failing_since: float | None = None
        while not self._stopping.is_set():
            try:
                if rv is None:
                    rv = self._list_once()
                low, high = self.watch_timeout
                timeout = self.rng.randint(low, high)
                self._watch = watch.Watch()
                self.view.stats.watches += 1
                for event in self._watch.stream(
                    self._stream,
                    self.namespace,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=timeout,
                    _request_timeout=(min(10.0, self.request_timeout), timeout + 30),
                ):
                    kind = event.get("type")
                    obj = event.get("raw_object") or event.get("object") or {}
                    version = obj.get("metadata", {}).get("resourceVersion")
                    if version:
                        rv = str(version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.view.apply(self.resource, self.namespace, kind, obj)
                    if self._stopping.is_set():
                        break
                failing_since = None
                delays = Backoff(initial=0.2, maximum=10.0, rng=self.rng).delays()
            except ApiException as exc:
                if self._stopping.is_set():
                    break
                status = _status_of(exc)
                if status == 410:  # our resourceVersion is too old: relist
                    self.view.stats.relists_after_410 += 1
                    rv = None
                    continue
                if status in (401, 403):
                    self.view.fail(
                        AuthError(
                            f"Kubernetes refused {self.resource} in namespace {self.namespace}: "
                            f"{status} {exc.reason}",
                            hint="check the kube context's credentials and RBAC (list and watch "
                            f"{self.resource})",
                        )
                    )
                    return
                failing_since = self._backoff(failing_since, delays, f"{status} {exc.reason}")
            except Exception as exc:
                if self._stopping.is_set():
                    break
                failing_since = self._backoff(failing_since, delays, f"{type(exc).__name__}: {exc}")
            finally:
                self._watch = None

    def _backoff(self, since: float | None, delays: Any, problem: str) -> float:
        now = self.clock.monotonic()
        since = now if since is None else since
        self.view.stats.errors += 1
        if now - since > self.retry_budget:
            self.view.fail(
                InfraError(
                    f"Kubernetes API unreachable for {format_duration(now - since)} while watching "
                    f"{self.resource} in {self.namespace}; last: {problem[:300]}",
                    hint="check the kube context's server and the network to it",
                )
            )
            self._stopping.set()
            return since
        self._stopping.wait(next(delays))
        return since


class RolloutTracker:
    """Wait for many targets at once: the wall time is the slowest rollout, not the sum."""

    def __init__(
        self,
        api_client: Any,
        targets: Iterable[Target],
        *,
        progress: Callable[[str], None] = lambda line: None,
        clock: Clock = SYSTEM_CLOCK,
        watch_timeout: tuple[int, int] = (300, 600),
        request_timeout: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self.api_client = api_client
        self.targets = list(targets)
        self.progress = progress
        self.clock = clock
        self.view = ClusterView()
        self._rng = rng or random.Random()
        self._watches: list[ResourceWatch] = []
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self.results: dict[str, RolloutResult] = {}

    def _start(self) -> None:
        wanted = sorted(
            {(KIND_RESOURCES[t.kind], t.namespace) for t in self.targets}
            | {("pods", t.namespace) for t in self.targets}
        )
        for resource, namespace in wanted:
            watcher = ResourceWatch(
                self.api_client,
                resource,
                namespace,
                self.view,
                watch_timeout=self._watch_timeout,
                request_timeout=self._request_timeout,
                clock=self.clock,
                rng=random.Random(self._rng.random()),
            )
            self._watches.append(watcher)
            watcher.start()

    def wait(self, deadline: Deadline) -> dict[str, RolloutResult]:
        """Block until every target is decided or the deadline passes; results by target name."""
        started = self.clock.monotonic()
        waits = {t.name: ServiceWait(t, started) for t in self.targets}
        messages: dict[str, str] = {}
        by_namespace: dict[str, list[Target]] = {}
        for t in self.targets:
            by_namespace.setdefault(t.namespace, []).append(t)
        self._start()
        view = self.view
        while True:
            with view.changed:
                if not view.dirty and view.fatal is None:
                    view.changed.wait(timeout=min(0.5, max(0.01, deadline.remaining())))
                dirty, view.dirty = view.dirty, set()
                fatal = view.fatal
                snapshot = {
                    ns: self._snapshot(ns, by_namespace[ns]) for ns in dirty if ns in by_namespace
                }
            if fatal is not None:
                raise fatal
            now = self.clock.monotonic()
            for namespace, (objects, pods) in snapshot.items():
                if objects is None:
                    continue  # not synced yet: absence means nothing
                for target in by_namespace[namespace]:
                    if target.name in self.results:
                        continue
                    wait = waits[target.name]
                    result = wait.observe(objects.get(target), pods, now)
                    if result is not None:
                        self.results[target.name] = result
                        self._report(target, result)
                    elif wait.message != messages.get(target.name):
                        messages[target.name] = wait.message
                        self.progress(
                            f"rollout: {target.ref} {wait.message} "
                            f"({format_duration(now - started)})"
                        )
            if len(self.results) == len(self.targets):
                return self.results
            if deadline.expired():
                for target in self.targets:
                    if target.name not in self.results:
                        self.results[target.name] = waits[target.name].at_deadline(now)
                return self.results

    def _snapshot(
        self, namespace: str, targets: list[Target]
    ) -> tuple[dict[Target, dict[str, Any] | None] | None, list[dict[str, Any]]]:
        view = self.view
        resources = {KIND_RESOURCES[t.kind] for t in targets} | {"pods"}
        if not all((r, namespace) in view.synced for r in resources):
            return None, []
        objects = {
            t: view.objects.get((KIND_RESOURCES[t.kind], namespace), {}).get(t.object_name)
            for t in targets
        }
        pods = list(view.objects.get(("pods", namespace), {}).values())
        return objects, pods

    def _report(self, target: Target, result: RolloutResult) -> None:
        if result.landed:
            self.progress(
                f"rollout: {target.ref} rolled out {', '.join(result.images)} "
                f"({result.ready_replicas} ready, {format_duration(result.waited)})"
            )
        else:
            outcome = result.outcome
            text = outcome.message if outcome is not None else ""
            self.progress(f"rollout: {target.ref} {type(outcome).__name__}: {text}")

    def close(self) -> None:
        for watcher in self._watches:
            watcher.stop()
        for watcher in self._watches:
            watcher.join(timeout=5)
