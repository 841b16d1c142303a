"""Kubernetes access, and the tracker: one LIST+WATCH per namespace and kind, shared by every
service there, feeding the pure rules of :mod:`pytest_homelab.rollout.rules`.

Watches use the official client's ``Watch`` (raw dicts, no model decoding) and handle what a
reflector handles: resume from the last resourceVersion, skip bookmarks, relist after 410 Gone,
re-watch when the server ends the stream (``timeoutSeconds``) or the connection drops.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from pytest_homelab.core.clock import (
    FIRST_CONTACT_SECONDS,
    SYSTEM_CLOCK,
    Backoff,
    Clock,
    Deadline,
    format_duration,
)
from pytest_homelab.core.outcomes import AuthError, BadInput, HomelabError, InfraError
from pytest_homelab.rollout.rules import (
    COMMIT_KEYS,
    POD_CONDITION_TYPES_READ,
    WORKLOAD_CONDITION_READ,
    WORKLOAD_SPEC_READ,
    WORKLOAD_STATUS_READ,
    RolloutPolicy,
    RolloutResult,
    ServiceWait,
    Target,
)

if TYPE_CHECKING:
    from pytest_homelab.rollout.kubeclient import KubeApi

KIND_RESOURCES = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Pod": "pods",
}
LOOK_INTERVAL = 0.05  # seconds (real time) between two looks at the targets, at least
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESOURCE_PATHS = {
    "deployments": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "statefulsets": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    "daemonsets": "/apis/apps/v1/namespaces/{namespace}/daemonsets",
    "pods": "/api/v1/namespaces/{namespace}/pods",
    "events": "/api/v1/namespaces/{namespace}/events",
}
EVENTS_SHOWN = 10
_QUERY_NAMES = {
    "watch": "watch",
    "resource_version": "resourceVersion",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
}


def _event_line(event: dict[str, Any]) -> str:
    """``Warning BackOff (x3): Back-off restarting failed container api in pod …``."""
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    times = f" (x{count})" if isinstance(count, int) and count > 1 else ""
    kind, reason = event.get("type") or "Normal", event.get("reason") or "?"
    return f"{kind} {reason}{times}: {event.get('message') or ''}".rstrip()


def list_request(api: KubeApi, resource: str) -> Callable[..., Any]:
    """A list/watch call for ``resource`` in a namespace, returning the unread urllib3
    response (a watch is read as a stream). A status outside 2xx raises ``ApiException``, as
    the official client's calls do."""
    from kubernetes.client.exceptions import ApiException

    path = RESOURCE_PATHS[resource]

    def request(namespace: str, _request_timeout: Any = None, **params: Any) -> Any:
        query = [
            (_QUERY_NAMES[k], str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in params.items()
            if v is not None
        ]
        response = api.request(
            "GET",
            path.format(namespace=quote(namespace, safe="")),
            query=query,
            timeout=_request_timeout,
        )
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            try:
                error.body = response.data.decode("utf-8", "replace")
            finally:
                response.release_conn()
            error.headers = response.headers
            raise error
        return response

    return request


def connect(
    *,
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str],
    pool: int = 16,
    service_account: Path = SERVICE_ACCOUNT,
) -> KubeApi:
    """A :class:`KubeApi` from a kubeconfig (``--kubeconfig``, then ``KUBECONFIG``, then
    ``~/.kube/config``) or, failing those, the in-cluster service account."""
    from pytest_homelab.rollout.kubeclient import KubeApi, kube_config_modules

    config, configuration_module = kube_config_modules()
    from kubernetes.config.config_exception import ConfigException

    configuration = configuration_module.Configuration()
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
    return KubeApi(configuration, pool=pool)


@dataclass
class WatchStats:
    lists: int = 0
    watches: int = 0
    relists_after_410: int = 0
    errors: int = 0


def _pick(data: Any, keys: Iterable[str]) -> dict[str, Any]:
    return {k: data[k] for k in keys if k in data} if isinstance(data, dict) else {}


def _recorded(meta: Any) -> dict[str, Any]:
    """Metadata a workload's rules read: name, generation, labels, and of the annotations only
    those that record a commit (not, say, kubectl's last-applied-configuration)."""
    kept = _pick(meta, ("name", "namespace", "generation", "labels", "deletionTimestamp"))
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict):
        kept["annotations"] = _pick(annotations, COMMIT_KEYS)
    return kept


def _containers(spec: Any) -> dict[str, Any]:
    return {
        key: [_pick(c, ("name", "image")) for c in spec[key]]
        for key in ("containers", "initContainers")
        if isinstance(spec, dict) and isinstance(spec.get(key), list)
    }


def _container_status(status: Any) -> dict[str, Any]:
    kept = _pick(status, ("name", "image", "imageID", "ready", "restartCount"))
    if not isinstance(status, dict):
        return kept
    waiting = (status.get("state") or {}).get("waiting")
    if isinstance(waiting, dict):
        kept["state"] = {"waiting": _pick(waiting, ("reason", "message"))}
    last = (status.get("lastState") or {}).get("terminated")
    if isinstance(last, dict):  # the crash-loop rule names the last exit
        kept["lastState"] = {"terminated": _pick(last, ("reason", "exitCode"))}
    return kept


def _workload_status(status: Any) -> Any:
    if not isinstance(status, dict):
        return status
    kept = _pick(status, WORKLOAD_STATUS_READ)
    conditions = kept.get("conditions")
    if isinstance(conditions, list):
        kept["conditions"] = [_pick(c, WORKLOAD_CONDITION_READ) for c in conditions]
    return kept


def slim(resource: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of an object that the rollout rules (:mod:`pytest_homelab.rollout.rules`)
    read, and nothing else: a pod keeps its name, labels, deletion mark, containers' names and
    images, its Ready condition, and its containers' image IDs, waiting reasons, restart counts
    and last exits; a workload the spec and status fields that the rules read
    (``WORKLOAD_SPEC_READ``, ``WORKLOAD_STATUS_READ``) and of the pod template its labels,
    commit annotations and containers' names and images. Thousands of pods are held at once,
    so this is most of the tracker's memory. (A rule that reads another field must be kept
    here too; tests/rollout pins the pair.)"""
    meta = obj.get("metadata")
    spec = obj.get("spec")
    status = obj.get("status")
    if resource == "pods":
        kept: dict[str, Any] = {
            "metadata": _pick(meta, ("name", "namespace", "labels", "deletionTimestamp")),
            "spec": _containers(spec),
        }
        if isinstance(status, dict):
            kept["status"] = {
                "conditions": [
                    _pick(c, ("type", "status"))
                    for c in status.get("conditions") or []
                    if isinstance(c, dict)
                    and isinstance(c.get("type"), str)
                    and c["type"] in POD_CONDITION_TYPES_READ
                ],
                **{
                    key: [_container_status(c) for c in status[key]]
                    for key in ("containerStatuses", "initContainerStatuses")
                    if isinstance(status.get(key), list)
                },
            }
        return kept
    kept = _pick(obj, ("apiVersion", "kind"))
    if "status" in obj:
        kept["status"] = _workload_status(status)
    kept["metadata"] = _recorded(meta)
    if not isinstance(spec, dict):
        kept["spec"] = spec
        return kept
    kept["spec"] = _pick(spec, WORKLOAD_SPEC_READ)
    template = spec.get("template")
    if isinstance(template, dict):
        kept["spec"]["template"] = {
            "metadata": _recorded(template.get("metadata") or {}),
            "spec": _containers(template.get("spec")),
        }
    return kept


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int, char: str = "") -> int:
    """Past the whitespace at ``i`` and, when given, the ``char`` that must follow it."""
    match = _SPACE.match(text, i)
    i = match.end() if match is not None else i
    if char:
        if text[i : i + 1] != char:
            raise ValueError(f"expected {char!r} at {i}")
        i = _skip(text, i + 1)
    return i


def decode_list(
    data: bytes | str, keep: Callable[[dict[str, Any]], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A List response as (``keep`` of each item, the list's metadata), decoding one item at a
    time: ``json.loads`` of a namespace's pods holds every full pod at once (ten times the
    body's size), and what survives slimming then pins that memory. Invalid JSON raises
    ``json.JSONDecodeError`` as ``json.loads`` would."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    items: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    try:
        i = _skip(text, 0, "{")
        while text[i : i + 1] != "}":
            key, i = _DECODER.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError(f"a key that is not a string at {i}")
            i = _skip(text, i, ":")
            if key == "items" and text[i : i + 1] == "[":
                i = _skip(text, i + 1)
                while text[i : i + 1] != "]":
                    item, i = _DECODER.raw_decode(text, i)
                    if isinstance(item, dict):
                        items.append(keep(item))
                    i = _skip(text, i)
                    if text[i : i + 1] == ",":
                        i = _skip(text, i + 1)
                        if text[i : i + 1] == "]":
                            raise ValueError(f"a trailing ',' before {i}")
                    elif text[i : i + 1] != "]":
                        raise ValueError(f"expected ',' or ']' at {i}")
                i += 1
            else:
                value, i = _DECODER.raw_decode(text, i)
                if key == "metadata" and isinstance(value, dict):
                    metadata = value
            i = _skip(text, i)
            if text[i : i + 1] == ",":
                i = _skip(text, i + 1)
                if text[i : i + 1] == "}":
                    raise ValueError(f"a trailing ',' before {i}")
            elif text[i : i + 1] != "}":
                raise ValueError(f"expected ',' or '}}' at {i}")
        if _skip(text, i + 1) != len(text):
            raise ValueError("extra data")
    except ValueError:  # anything unexpected (JSONDecodeError is one): the strict parser judges
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError(f"a List response that is not an object: {text[:80]!r}") from None
        items = [keep(x) for x in body.get("items") or [] if isinstance(x, dict)]
        meta = body.get("metadata")
        metadata = meta if isinstance(meta, dict) else {}
    return items, metadata


def _selector_of(workload: dict[str, Any]) -> Any:
    """The workload's ``spec.selector`` ({} when missing, or when spec is not an object: a
    server's answer is not trusted to have the shape)."""
    spec = workload.get("spec")
    return (spec.get("selector") if isinstance(spec, dict) else None) or {}


def _label_pairs(obj: dict[str, Any]) -> list[tuple[str, str]]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return [(str(k), str(v)) for k, v in labels.items()] if isinstance(labels, dict) else []


@dataclass
class Touched:
    """What changed in one namespace since the tracker last looked."""

    everything: bool = False  # a (re)list replaced what was known
    workloads: set[tuple[str, str]] = field(default_factory=set)  # (resource, name)
    pod_labels: set[tuple[str, str]] = field(default_factory=set)  # labels of changed pods
    unlabeled_pod: bool = False

    def concerns(self, resource: str, workload: dict[str, Any] | None, name: str) -> bool:
        """Whether a target's workload, or a pod its selector can match, may have changed."""
        if self.everything or (resource, name) in self.workloads:
            return True
        if workload is None:
            return False
        selector = _selector_of(workload)
        match = selector.get("matchLabels") if isinstance(selector, dict) else None
        if not isinstance(match, dict) or not match:
            return bool(self.pod_labels) or self.unlabeled_pod
        # A pod the selector matches carries every one of these labels.
        return all((str(k), str(v)) in self.pod_labels for k, v in match.items())


class Interest:
    """Which targets a namespace's news may concern: a superset of what
    :meth:`Touched.concerns` accepts, found without asking every target. Targets are indexed by
    their workload's name and by each label pair of the selector their workload had when last
    looked at (a changed workload is news of its own, and is indexed again then); a selector
    without ``matchLabels`` is concerned by any pod."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self._by_object: dict[tuple[str, str, str], set[str]] = {}
        self._by_pair: dict[tuple[str, str, str], set[str]] = {}
        self._any_pod: dict[str, set[str]] = {}
        self._indexed: dict[str, tuple[tuple[str, str], ...] | None] = {}
        for t in targets:
            key = (t.namespace, KIND_RESOURCES[t.kind], t.object_name)
            self._by_object.setdefault(key, set()).add(t.name)

    def index(self, target: Target, workload: dict[str, Any] | None) -> None:
        """Remember the selector of the workload ``target`` was just looked at with."""
        pairs: tuple[tuple[str, str], ...] | None = ()
        if workload is not None:
            selector = _selector_of(workload)
            match = selector.get("matchLabels") if isinstance(selector, dict) else None
            pairs = (
                tuple((str(k), str(v)) for k, v in match.items())
                if isinstance(match, dict) and match
                else None  # concerns() takes any pod news for such a selector
            )
        name, ns = target.name, target.namespace
        if name in self._indexed and self._indexed[name] == pairs:
            return
        old = self._indexed.get(name, ())
        if old is None:
            self._any_pod[ns].discard(name)
        else:
            for k, v in old:
                self._by_pair[(ns, k, v)].discard(name)
        self._indexed[name] = pairs
        if pairs is None:
            self._any_pod.setdefault(ns, set()).add(name)
        else:
            for k, v in pairs:
                self._by_pair.setdefault((ns, k, v), set()).add(name)

    def concerned(self, namespace: str, news: Touched) -> set[str]:
        """Names of the targets ``news`` may concern (never fewer than ``news.concerns``
        accepts among targets indexed since their workload last changed)."""
        names: set[str] = set()
        for resource, name in news.workloads:
            names |= self._by_object.get((namespace, resource, name), set())
        if news.pod_labels or news.unlabeled_pod:
            names |= self._any_pod.get(namespace, set())
            for k, v in news.pod_labels:
                names |= self._by_pair.get((namespace, k, v), set())
        return names


@dataclass
class ClusterView:
    """The objects the watches have seen, per (resource, namespace); shared under one condition.

    Pods are also indexed by label (namespace, key, value), so the pods a selector can match
    are found without scanning the namespace's every pod for each workload; and what changed
    is kept per namespace (``touched``), so the tracker looks only at targets it concerns.
    """

    changed: threading.Condition = field(default_factory=threading.Condition)
    objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    synced: set[tuple[str, str]] = field(default_factory=set)
    touched: dict[str, Touched] = field(default_factory=dict)  # namespaces with news
    fatal: HomelabError | None = None
    answered: bool = False  # has the API server answered anything (a list, an error status)?
    retries: list[str] = field(default_factory=list)  # progress lines of failing watches
    stats: WatchStats = field(default_factory=WatchStats)
    pods_by_label: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )
    released: bool = False  # nothing is kept any more (release())

    def release(self) -> None:
        """Forget every object, and every object a watch still delivers (a watch thread told
        to stop may be applying one event more)."""
        with self.changed:
            self.released = True
            self.objects.clear()
            self.pods_by_label.clear()

    def replace(self, resource: str, namespace: str, items: Iterable[dict[str, Any]]) -> None:
        """What a LIST found, already slimmed (:func:`slim`)."""
        with self.changed:
            if self.released:
                return
            if resource == "pods":
                for pod in self.objects.get((resource, namespace), {}).values():
                    self._unindex(namespace, pod)
            bucket = {i["metadata"]["name"]: i for i in items}
            self.objects[(resource, namespace)] = bucket
            if resource == "pods":
                for pod in bucket.values():
                    self._index(namespace, pod)
            self.synced.add((resource, namespace))
            self.touched.setdefault(namespace, Touched()).everything = True
            self.changed.notify_all()

    def apply(self, resource: str, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        self.apply_kept(resource, namespace, kind, slim(resource, obj))

    def apply_kept(self, resource: str, namespace: str, kind: str, kept: dict[str, Any]) -> None:
        """An event's object, already slimmed (outside the lock: the tracker reads meanwhile)."""
        name = kept["metadata"]["name"]
        with self.changed:
            if self.released:
                return
            bucket = self.objects.setdefault((resource, namespace), {})
            old = bucket.pop(name, None) if kind == "DELETED" else bucket.get(name)
            if kind != "DELETED" and old == kept:
                # Only fields the rules do not read changed (a condition's timestamps, the
                # managed fields): no news. A seventh of a rollout's events at 1000 services.
                return
            if kind != "DELETED":
                bucket[name] = kept
            touched = self.touched.setdefault(namespace, Touched())
            if resource == "pods":
                if old is not None:
                    self._unindex(namespace, old)
                if kind != "DELETED":
                    self._index(namespace, kept)
                pairs = _label_pairs(kept) + (_label_pairs(old) if old is not None else [])
                touched.pod_labels.update(pairs)
                touched.unlabeled_pod = touched.unlabeled_pod or not pairs
            else:
                touched.workloads.add((resource, name))
            self.changed.notify_all()

    def _index(self, namespace: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        for key, value in _label_pairs(pod):
            self.pods_by_label.setdefault((namespace, key, value), {})[name] = pod

    def _unindex(self, namespace: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        for key, value in _label_pairs(pod):
            found = self.pods_by_label.get((namespace, key, value))
            if found is not None:
                found.pop(name, None)
                if not found:
                    del self.pods_by_label[(namespace, key, value)]

    def candidate_pods(
        self, namespace: str, workload: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Every pod of ``namespace`` the workload's selector could match (a superset: the rules
        still apply the whole selector). Call with the lock held."""
        if workload is None:
            return []
        selector = _selector_of(workload)
        match = selector.get("matchLabels") if isinstance(selector, dict) else None
        if not isinstance(match, dict) or not match:
            return list(self.objects.get(("pods", namespace), {}).values())
        groups = [self.pods_by_label.get((namespace, str(k), str(v)), {}) for k, v in match.items()]
        return list(min(groups, key=len).values())

    def fail(self, error: HomelabError) -> None:
        with self.changed:
            if self.fatal is None:
                self.fatal = error
            self.changed.notify_all()


def watch_lines(response: Any) -> Iterator[bytes]:
    """The event lines of a watch response, read from the bytes as they come (the official
    client's ``Watch`` decodes each line to text and copies the rest of its buffer after every
    line: at a thousand services its threads competed with the tracker for the GIL)."""
    rest = b""
    for chunk in response.stream(amt=None, decode_content=False):
        if isinstance(chunk, str):
            chunk = chunk.encode()
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                yield line


def decode_event(line: bytes) -> tuple[str, dict[str, Any]]:
    """(type, object) of one event line, decoded with orjson. An ``ERROR`` event raises
    ``ApiException`` with its code (410: the resourceVersion is too old, relist)."""
    from kubernetes.client.exceptions import ApiException

    event = orjson.loads(line)
    if not isinstance(event, dict):
        raise ValueError(f"a watch event that is not an object: {line[:80]!r}")
    kind = str(event.get("type", ""))
    obj = event.get("object")
    obj = obj if isinstance(obj, dict) else {}
    if kind == "ERROR":
        code = obj.get("code")
        raise ApiException(
            status=code if isinstance(code, int) else 500,
            reason=f"{obj.get('reason', '')}: {obj.get('message', '')}",
        )
    return kind, obj


def kept_events(response: Any, resource: str) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(type, resourceVersion, the object as :func:`slim` keeps it) of each event: decoded
    into the kept fields only (:mod:`pytest_homelab.rollout.events`), or, for a line that does
    not fit them, by :func:`decode_event` and :func:`slim` (the same result)."""
    from pytest_homelab.rollout.events import decode_kept

    for line in watch_lines(response):
        typed = decode_kept(line, resource)
        if typed is not None:
            yield typed
            continue
        kind, obj = decode_event(line)
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        yield kind, str(version) if version else None, slim(resource, obj)


def _connect_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (urllib3's, possibly wrapped) says no connection could be made: refused,
    no such host, no route, connect timeout, TLS handshake."""
    import socket
    import ssl

    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, SSLError

    kinds = (
        NewConnectionError,
        ConnectTimeoutError,
        SSLError,
        ssl.SSLError,
        ConnectionRefusedError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*kinds, socket.gaierror)):
            return True
        reason = getattr(current, "reason", None)
        current = (
            reason
            if isinstance(reason, BaseException)
            else current.__cause__ or current.__context__
        )
    return False


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
        list_gate: threading.Lock | None = None,
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
        self._response: Any = None  # the watch's open response, for stop() to shut down
        self._list = list_request(api_client, resource)
        configuration = getattr(api_client, "configuration", None)
        self.server = str(getattr(configuration, "host", "") or "the Kubernetes API")
        # Watches sharing a gate decode one LIST at a time: a namespace's pods decode to ten
        # times their JSON size until they are slimmed, and all lists arrive at once.
        self._list_gate = list_gate or threading.Lock()
        self.listed: str | None = None  # a resourceVersion when list_first() already listed

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3: unblocks a read
            with contextlib.suppress(Exception):  # racing the reader; moot either way
                (shutdown if callable(shutdown) else response.close)()

    def list_first(self) -> None:
        """LIST now, in the calling thread, so that the thread only watches (from that list's
        resourceVersion). The tracker lists every watch this way, one after the other: big
        responses are then read and decoded in one thread, whose malloc arena reuses the
        memory, instead of in eight threads' arenas that each keep some. A failure is left
        to the thread, which lists again with its backoff."""
        try:
            self.listed = self._list_once()
        except Exception:
            self.listed = None

    def _list_once(self) -> str:
        response = self._list(self.namespace, _request_timeout=self.request_timeout)
        self.view.stats.lists += 1
        self.view.answered = True
        try:
            data = response.data
        finally:
            response.release_conn()  # back to the pool, which closes it with the client
        from pytest_homelab.rollout.events import decode_list_kept

        with self._list_gate:
            kept = decode_list_kept(data, self.resource) if isinstance(data, bytes) else None
            items, metadata = (
                kept
                if kept is not None
                else decode_list(data, lambda item: slim(self.resource, item))
            )
            del data, kept
            self.view.replace(self.resource, self.namespace, items)
            return str(metadata.get("resourceVersion", ""))

    def run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        rv: str | None = self.listed
        delays = Backoff(initial=0.2, maximum=10.0, rng=self.rng).delays()
        failing_since: float | None = None
        while not self._stopping.is_set():
            try:
                if rv is None:
                    rv = self._list_once()
                low, high = self.watch_timeout
                timeout = self.rng.randint(low, high)
                self.view.stats.watches += 1
                self._response = self._list(
                    self.namespace,
                    watch=True,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=timeout,
                    _request_timeout=(min(10.0, self.request_timeout), timeout + 30),
                )
                if self._stopping.is_set():
                    break
                for kind, version, kept in kept_events(self._response, self.resource):
                    if version:
                        rv = version
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.view.apply_kept(self.resource, self.namespace, kind, kept)
                    if self._stopping.is_set():
                        break
                failing_since = None
                delays = Backoff(initial=0.2, maximum=10.0, rng=self.rng).delays()
            except ApiException as exc:
                if self._stopping.is_set():
                    break
                status = _status_of(exc)
                if status is not None:
                    self.view.answered = True
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
                problem = f"{type(exc).__name__}: {exc}"
                if not self.view.answered and _connect_failure(exc):
                    failing_since = self._first_contact(failing_since, problem, delays)
                    continue
                failing_since = self._backoff(failing_since, delays, problem)
            finally:
                response, self._response = self._response, None
                if response is not None:
                    with contextlib.suppress(Exception):
                        # A watch ends mid-stream (stopped, dropped, an ERROR event): its
                        # connection may hold unread bytes, so it is closed, not reused.
                        response.close()
                        response.release_conn()

    def _first_contact(self, since: float | None, problem: str, delays: Any) -> float:
        """Before the API server has answered once, failing to connect for
        FIRST_CONTACT_SECONDS is an infrastructure error, not something to wait out."""
        now = self.clock.monotonic()
        since = now if since is None else since
        if now - since >= FIRST_CONTACT_SECONDS:
            self.view.fail(
                InfraError(
                    f"the Kubernetes API at {self.server} is unreachable: could not connect for "
                    f"{format_duration(now - since)}, and it has not answered once in this run; "
                    f"last: {problem[:300]}",
                    hint="check the kube context's server address (--kubeconfig, "
                    "--kube-context), that the API server runs, and that this machine can "
                    "reach it",
                )
            )
            self._stopping.set()
            return since
        self.view.stats.errors += 1
        self._stopping.wait(min(next(delays), FIRST_CONTACT_SECONDS - (now - since) + 0.05))
        return since

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
        delay = next(delays)
        with self.view.changed:  # shown by the tracker as a progress line
            self.view.retries.append(
                f"rollout: retry {self.resource} in {self.namespace}: {problem[:200]}; "
                f"retrying in {delay:.1f}s"
            )
            self.view.changed.notify_all()
        self._stopping.wait(delay)
        return since


class RolloutTracker:
    """Wait for many targets at once: the wall time is the slowest rollout, not the sum.

    ``progress`` gets the lines of each look at the cluster at once, joined by newlines.
    """

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
        policy: RolloutPolicy | None = None,
    ) -> None:
        self.api_client = api_client
        self.policy = policy or RolloutPolicy()
        self.targets = list(targets)
        self.progress = progress
        self.clock = clock
        self.view = ClusterView()
        self._rng = rng or random.Random()
        self._watches: list[ResourceWatch] = []
        self._list_gate = threading.Lock()
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self.results: dict[str, RolloutResult] = {}  # in the order decided
        self._names = {t.name for t in self.targets}
        self._news = threading.Condition()  # results, progress lines, the end: under it
        self._lines: list[str] = []
        self._error: BaseException | None = None
        self._ended = False
        self._closing = threading.Event()
        self._watch_lock = threading.Lock()  # _watches and _closing change together
        self._looker: threading.Thread | None = None

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
                list_gate=self._list_gate,
            )
            if self._closing.is_set():
                return
            watcher.list_first()
            with self._watch_lock:  # close() may have run during the LIST: no thread then
                if self._closing.is_set():
                    return
                self._watches.append(watcher)
                watcher.start()

    def start(self, deadline: Deadline) -> None:
        """Start watching (once): the looks run in a thread of their own, and each result is
        available as soon as its target is decided (:meth:`result`), while the others still
        roll out."""
        with self._news:
            if self._looker is not None:
                return
            self._looker = threading.Thread(
                target=self._run_looks, args=(deadline,), name="rollout-looks", daemon=True
            )
        self._looker.start()

    def result(self, name: str) -> RolloutResult:
        """The result of target ``name``, waiting for it; progress lines are written here, in
        the waiting thread (under pytest, the one whose output capture they step around).
        Raises what ended the watch for every target (AuthError, InfraError)."""
        if name not in self._names:
            raise KeyError(name)
        while True:
            with self._news:
                while not (self._lines or name in self.results or self._ended):
                    self._news.wait(timeout=0.5)
                lines, self._lines = self._lines, []
                found = self.results.get(name)
                error, ended = self._error, self._ended
            if lines:
                # One write per batch, not per line: under pytest each write suspends and
                # resumes output capturing (four dup2 calls), 0.2 ms that thousands of lines
                # add up.
                self.progress("\n".join(lines))
            if found is not None:
                return found
            if error is not None:
                # A copy for each check: the same exception raised again in a thousand checks
                # would carry all their frames in its traceback (quadratic to format).
                raise copy.copy(error).with_traceback(None)
            if ended:
                raise InfraError(
                    f"the rollout watch stopped before deciding {name}",
                    hint="the session was closing; run the checks again",
                )

    def wait(self, deadline: Deadline) -> dict[str, RolloutResult]:
        """Block until every target is decided or the deadline passes; results by target name."""
        self.start(deadline)
        return {t.name: self.result(t.name) for t in self.targets}

    def _publish(self, results: Mapping[str, RolloutResult], lines: list[str]) -> None:
        with self._news:
            self.results.update(results)
            self._lines.extend(lines)
            self._news.notify_all()

    def _run_looks(self, deadline: Deadline) -> None:
        try:
            self._looks(deadline)
        except BaseException as exc:  # told to every waiting check, never lost in the thread
            error = (
                exc
                if isinstance(exc, HomelabError)
                else InfraError(
                    f"the rollout watch failed: {type(exc).__name__}: {exc}",
                    hint="this is a bug in pytest-homelab; please report it with the output",
                )
            )
            with self._news:
                self._error = error
        finally:
            with self._news:
                self._ended = True
                self._news.notify_all()

    def _looks(self, deadline: Deadline) -> None:
        started = self.clock.monotonic()
        waits = {t.name: ServiceWait(t, started, self.policy) for t in self.targets}
        messages: dict[str, str] = {}
        by_namespace: dict[str, list[Target]] = {}
        for t in self.targets:
            by_namespace.setdefault(t.namespace, []).append(t)
        interest = Interest(self.targets)
        self._start()
        view = self.view
        looked: set[str] = set()  # targets observed at least once
        decided: set[str] = set()
        last_look = -LOOK_INTERVAL
        while not self._closing.is_set():
            # At most one look per LOOK_INTERVAL: while a thousand rollouts stream events, a
            # target's news of the last few milliseconds is judged in one look, not one each.
            # (An interval that grew with the looks' cost saved no CPU measurably and delayed
            # verdicts by a third of a second at 1000 services.)
            pause = LOOK_INTERVAL - (time.monotonic() - last_look)
            if pause > 0 and self._closing.wait(pause):
                return
            last_look = time.monotonic()
            with view.changed:
                if not view.touched and view.fatal is None:
                    view.changed.wait(timeout=min(0.5, max(0.01, deadline.remaining())))
                touched, view.touched = view.touched, {}
                retried, view.retries = view.retries, []
                fatal = view.fatal
                snapshots = []
                for ns, targets in by_namespace.items():
                    news = touched.get(ns, Touched())
                    # A target is looked at when something it depends on changed, before its
                    # first look, and when its verdict waits only for time (the pods' grace,
                    # an image pull's grace). What changed is looked up in the interest index:
                    # asking each of a thousand targets at every look cost CPU in proportion
                    # to the rollout's length rather than to its events.
                    clock_now = self.clock.monotonic()
                    concerned = interest.concerned(ns, news)
                    due = [
                        t
                        for t in targets
                        if t.name not in decided
                        and (
                            news.everything
                            or t.name in concerned
                            or t.name not in looked
                            or waits[t.name].wants_look(clock_now)
                        )
                    ]
                    if due:
                        snapshots.append(
                            self._snapshot(ns, due, news, looked, waits, clock_now, interest)
                        )
            if fatal is not None:
                raise fatal
            now = self.clock.monotonic()
            lines: list[str] = list(retried)
            results: dict[str, RolloutResult] = {}
            for snapshot in snapshots:
                if snapshot is None:
                    continue  # not synced yet: absence means nothing
                for target, (workload, pods) in snapshot.items():
                    if target.name in decided:
                        continue
                    looked.add(target.name)
                    wait = waits[target.name]
                    result = wait.observe(workload, pods, now)
                    if result is not None:
                        if result.stuck_pod:
                            result = replace(result, events=self.pod_events(target, result))
                        results[target.name] = result
                        decided.add(target.name)
                        lines.append(self._report(target, result))
                    elif wait.message != messages.get(target.name):
                        messages[target.name] = wait.message
                        lines.append(
                            f"rollout: {target.ref} {wait.message} "
                            f"({format_duration(now - started)})"
                        )
            if deadline.expired() and len(decided) < len(self.targets):
                for target in self.targets:
                    if target.name not in decided:
                        results[target.name] = waits[target.name].at_deadline(now)
                        decided.add(target.name)
            if len(decided) == len(self.targets):
                # Nothing is left to decide: the watches stop now rather than at the session's
                # end, or the events of pods still settling would keep their threads decoding
                # while the checks run (at 1000 services, a third of the process's CPU then).
                for watcher in self._watches:
                    watcher.stop()
                # Nor is what the watches saw read again (a stuck pod's events are asked of
                # the API): let it go before the checks run, whose reports and JUnit then
                # reuse the memory (at 1000 services, 15 MB of objects).
                view.release()
            if results or lines:
                self._publish(results, lines)
            if len(decided) == len(self.targets):
                return

    def _snapshot(
        self,
        namespace: str,
        targets: list[Target],
        news: Touched,
        looked: set[str],
        waits: Mapping[str, ServiceWait],
        now: float,
        interest: Interest | None = None,
    ) -> dict[Target, tuple[dict[str, Any] | None, list[dict[str, Any]]]] | None:
        """For each of ``targets`` that ``news`` concerns (or not looked at yet, or due for a
        look by time), its workload and the pods its selector could match; None until every watch of
        the namespace has listed. Called with the view's lock held."""
        view = self.view
        resources = {KIND_RESOURCES[t.kind] for t in targets} | {"pods"}
        if not all((r, namespace) in view.synced for r in resources):
            for t in targets:  # the workloads may be listed already: remember what they ran
                resource = KIND_RESOURCES[t.kind]
                if (resource, namespace) in view.synced:
                    workload = view.objects.get((resource, namespace), {}).get(t.object_name)
                    if workload is not None:
                        waits[t.name].note(workload)
            return None
        snapshot = {}
        for t in targets:
            resource = KIND_RESOURCES[t.kind]
            workload = view.objects.get((resource, namespace), {}).get(t.object_name)
            if (
                t.name in looked
                and not waits[t.name].wants_look(now)
                and not news.concerns(resource, workload, t.object_name)
            ):
                continue
            if interest is not None:
                interest.index(t, workload)
            snapshot[t] = (workload, view.candidate_pods(namespace, workload))
        return snapshot

    def pod_events(self, target: Target, result: RolloutResult) -> tuple[str, ...]:
        """The stuck pod's most recent events, as ``kubectl describe pod`` lists them (the
        events whose involvedObject is the pod, kubernetes/kubectl pkg/describe/describe.go
        searchEvents); one line saying why when they cannot be read: never a verdict."""
        pod = result.stuck_pod or ""
        try:
            response = list_request(self.api_client, "events")(
                target.namespace,
                field_selector=f"involvedObject.name={pod}",
                _request_timeout=self._request_timeout,
            )
            try:
                data = response.data
            finally:
                response.release_conn()
            items = json.loads(data or b"{}").get("items") or []
        except Exception as exc:
            return (f"(the events of pod {pod} could not be read: {type(exc).__name__})",)
        mine = [
            e
            for e in items
            if isinstance(e, dict) and (e.get("involvedObject") or {}).get("kind", "Pod") == "Pod"
        ]
        mine.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return tuple(_event_line(e) for e in mine[-EVENTS_SHOWN:])

    def _report(self, target: Target, result: RolloutResult) -> str:
        if result.landed:
            return (
                f"rollout: {target.ref} rolled out {', '.join(result.images)} "
                f"({result.ready_replicas} ready, {format_duration(result.waited)})"
            )
        outcome = result.outcome
        text = outcome.message if outcome is not None else ""
        return f"rollout: {target.ref} {type(outcome).__name__}: {text}"

    def close(self) -> None:
        with self._watch_lock:
            self._closing.set()
            watches = list(self._watches)
        for watcher in watches:
            watcher.stop()
        looker = self._looker
        if looker is not None and looker is not threading.current_thread():
            looker.join(timeout=5)
        for watcher in watches:
            watcher.join(timeout=5)


class RolloutResults(Mapping[str, "RolloutResult"]):
    """Every target's result by name, each waited for when first read: a check reads its own
    service's result as soon as that service is decided, while the others still roll out (one
    watch for all of them, as before). Iterating gives the names in the plan's order; reading
    every value waits for every target."""

    def __init__(self, tracker: RolloutTracker) -> None:
        self.tracker = tracker
        self._names = [t.name for t in tracker.targets]
        self._known = frozenset(self._names)

    def __getitem__(self, name: str) -> RolloutResult:
        return self.tracker.result(name)

    def __contains__(self, name: object) -> bool:  # Mapping's would wait for the result
        return name in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
