"""The Kubernetes simulator's storage: objects, one resourceVersion counter, watch history.

Like etcd behind a kube-apiserver: every write bumps a global resourceVersion, history is kept
for a bounded window (a watch from before it gets 410 Expired), and ``generation`` counts spec
changes of workloads. Every write is kept in an audit log that tests can read.
"""

from __future__ import annotations

import bisect
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_homelab.sim.clock import ScenarioClock

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceInfo:
    name: str  # plural, as in URLs
    group: str  # "" for the core group
    version: str
    kind: str
    namespaced: bool
    singular: str
    short: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_spec_generation(self) -> bool:
        return self.kind not in {"Pod", "Event", "Namespace"}


CORE = (
    ResourceInfo(
        "namespaces", "", "v1", "Namespace", False, "namespace", ("ns",), subresources=("status",)
    ),
    ResourceInfo(
        "pods",
        "",
        "v1",
        "Pod",
        True,
        "pod",
        ("po",),
        subresources=("log", "status"),
        categories=("all",),
    ),
    ResourceInfo("events", "", "v1", "Event", True, "event", ("ev",)),
)
APPS = (
    ResourceInfo(
        "deployments",
        "apps",
        "v1",
        "Deployment",
        True,
        "deployment",
        ("deploy",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceInfo(
        "replicasets",
        "apps",
        "v1",
        "ReplicaSet",
        True,
        "replicaset",
        ("rs",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceInfo(
        "statefulsets",
        "apps",
        "v1",
        "StatefulSet",
        True,
        "statefulset",
        ("sts",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceInfo(
        "daemonsets",
        "apps",
        "v1",
        "DaemonSet",
        True,
        "daemonset",
        ("ds",),
        subresources=("status",),
        categories=("all",),
    ),
)


class ApiError(Exception):
    """An error the API answers with a Status body."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(info: ResourceInfo, name: str) -> ApiError:
    qualified = f"{info.name}.{info.group}" if info.group else info.name
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        {"name": name, "group": info.group, "kind": info.name},
    )


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    resource: str
    type: str  # ADDED, MODIFIED, DELETED
    namespace: str
    obj: Obj


@dataclass(frozen=True)
class AuditRecord:
    time: float
    actor: str  # "client" for API requests, or the controller's name
    verb: str  # create, update, patch, delete
    resource: str
    namespace: str
    name: str
    rv: int


# -- selectors -----------------------------------------------------------------------------------

_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9._-]*)|\s+(?P<set>in|notin)\s*\((?P<vals>[^)]*)\))?\s*$"
)


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


Labels = Mapping[str, str]


def _requirement(raw: str) -> Callable[[Labels], bool]:
    m = _REQ.match(raw)
    if m is None:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {raw!r}")
    key, op, val = m["key"], m["op"], m["val"]
    if m["set"]:
        values = {v.strip() for v in m["vals"].split(",") if v.strip()}
        inside = m["set"] == "in"

        def in_set(labels: Labels) -> bool:
            return (key in labels and labels[key] in values) == inside

        return in_set
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == val
    if op == "!=":
        return lambda labels: labels.get(key) != val
    if m["neg"]:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_selector(text: str | None) -> Callable[[Labels], bool]:
    """Parse a label selector (``a=b,c!=d,e in (x,y),!f,g``). Raises ApiError(400)."""
    checks = [_requirement(raw) for raw in _split_requirements(text or "")]
    return lambda labels: all(check(labels) for check in checks)


def _field(path: list[str], op: str, value: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        current: Any = obj
        for key in path:
            current = current.get(key) if isinstance(current, dict) else None
        found = "" if current is None else str(current)
        return (found == value) if op != "!=" else (found != value)

    return check


def field_selector(text: str | None) -> Callable[[Obj], bool]:
    """``metadata.name=x``, ``metadata.namespace=y``, ``status.phase!=z`` and the like."""
    checks = []
    for raw in (text or "").split(","):
        if not raw.strip():
            continue
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", raw)
        if m is None:
            raise ApiError(400, "BadRequest", f"invalid field selector: {raw!r}")
        checks.append(_field(m.group(1).split("."), m.group(2), m.group(3)))
    return lambda obj: all(check(obj) for check in checks)


# -- the store -----------------------------------------------------------------------------------


def _spec_view(obj: Obj) -> str:
    return json.dumps(
        {k: v for k, v in obj.items() if k not in ("metadata", "status")}, sort_keys=True
    )


class Store:
    def __init__(self, clock: ScenarioClock, history: int = 5000) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.resources: dict[str, ResourceInfo] = {}
        self.rv = 1000
        self.compacted = self.rv  # watches from an RV below this get 410 Expired
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.history: list[WatchEvent] = []
        self._history_rvs: list[int] = []
        self.history_limit = history
        self.audit: list[AuditRecord] = []
        self._hooks: list[Callable[[WatchEvent], None]] = []
        for info in (*CORE, *APPS):
            self.register(info)

    def register(self, info: ResourceInfo) -> None:
        self.resources[info.name] = info

    def on_change(self, hook: Callable[[WatchEvent], None]) -> None:
        self._hooks.append(hook)

    def info(self, resource: str) -> ResourceInfo:
        try:
            return self.resources[resource]
        except KeyError:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({resource})"
            ) from None

    # -- reads ----------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise not_found(self.info(resource), name)
            return copy.deepcopy(obj)

    def find(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return None if obj is None else obj  # live reference: controllers only

    def select(
        self,
        resource: str,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> tuple[list[Obj], int]:
        match_labels, match_fields = label_selector(labels), field_selector(fields)
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (res, ns, _), obj in sorted(self.objects.items())
                if res == resource
                and (namespace is None or ns == namespace)
                and match_labels(obj.get("metadata", {}).get("labels") or {})
                and match_fields(obj)
            ]
            return items, self.rv

    def live(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Live references for controllers (never hand these to clients)."""
        with self.lock:
            return [
                obj
                for (res, ns, _), obj in self.objects.items()
                if res == resource and (namespace is None or ns == namespace)
            ]

    def events_after(self, rv: int) -> list[WatchEvent]:
        with self.lock:
            if rv < self.compacted:
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted})")
            return self.history[bisect.bisect_right(self._history_rvs, rv) :]

    def compact(self, keep: int = 0) -> None:
        """Forget history (as etcd compaction does): watches from before it get 410 Expired."""
        with self.lock:
            drop = max(0, len(self.history) - keep)
            if drop:
                # A watch from the last forgotten RV still has every later event; one from
                # before it does not.
                self.compacted = self.history[drop - 1].rv
                del self.history[:drop]
                del self._history_rvs[:drop]
            elif keep == 0:
                self.compacted = self.rv

    # -- writes ---------------------------------------------------------------------------------

    def _record(self, resource: str, kind: str, obj: Obj, actor: str, verb: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        event = WatchEvent(self.rv, resource, kind, namespace, copy.deepcopy(obj))
        self.history.append(event)
        self._history_rvs.append(self.rv)
        if len(self.history) > 2 * self.history_limit:
            self.compact(self.history_limit)
        self.audit.append(
            AuditRecord(self.clock.now(), actor, verb, resource, namespace, meta["name"], self.rv)
        )
        for hook in self._hooks:
            hook(event)
        self.changed.notify_all()

    def create(self, resource: str, obj: Obj, actor: str = "client") -> Obj:
        info = self.info(resource)
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"{info.kind} is invalid: metadata.name: "
                        "Required value: name or generateName is required",
                    )
                meta["name"] = prefix + uuid.uuid4().hex[:5]
            namespace = meta.get("namespace", "") if info.namespaced else ""
            if info.namespaced:
                if not namespace:
                    raise ApiError(400, "BadRequest", "the namespace of the object is required")
                if ("namespaces", "", namespace) not in self.objects:
                    raise ApiError(
                        404,
                        "NotFound",
                        f'namespaces "{namespace}" not found',
                        {"name": namespace, "kind": "namespaces"},
                    )
                ns_obj = self.objects[("namespaces", "", namespace)]
                if ns_obj.get("status", {}).get("phase") == "Terminating":
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'{info.name} "{meta["name"]}" is forbidden: '
                        f"unable to create new content in namespace {namespace} "
                        "because it is being terminated",
                    )
            key = (resource, namespace, meta["name"])
            if key in self.objects:
                qualified = f"{info.name}.{info.group}" if info.group else info.name
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{qualified} "{meta["name"]}" already exists',
                    {"name": meta["name"], "group": info.group, "kind": info.name},
                )
            self.rv += 1
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=str(self.rv),
                creationTimestamp=self.clock.iso(self.clock.now()),
            )
            if namespace:
                meta["namespace"] = namespace
            if info.has_spec_generation:
                meta["generation"] = 1
            self.objects[key] = obj
            self._record(resource, "ADDED", obj, actor, "create")
            return copy.deepcopy(obj)

    def update(
        self,
        resource: str,
        obj: Obj,
        actor: str = "client",
        *,
        status: bool = False,
        check_version: bool = True,
    ) -> Obj:
        """Replace an object (or only its status). A stale resourceVersion is a 409 Conflict."""
        info = self.info(resource)
        with self.lock:
            meta = obj.get("metadata", {})
            namespace = meta.get("namespace", "") if info.namespaced else ""
            key = (resource, namespace, meta.get("name", ""))
            current = self.objects.get(key)
            if current is None:
                raise not_found(info, meta.get("name", ""))
            sent = meta.get("resourceVersion")
            if check_version and sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {info.name} "
                    f'"{meta["name"]}": the object has been modified; please apply '
                    "your changes to the latest version and try again",
                )
            new = copy.deepcopy(current)
            if status:
                new["status"] = copy.deepcopy(obj.get("status", {}))
            else:
                keep_status = new.get("status")
                new = copy.deepcopy(obj)
                new["metadata"] = {
                    **current["metadata"],
                    **{
                        k: v
                        for k, v in meta.items()
                        if k
                        in (
                            "labels",
                            "annotations",
                            "finalizers",
                            "ownerReferences",
                            "deletionTimestamp",
                        )
                    },
                }
                if keep_status is not None:
                    new["status"] = keep_status
                if info.has_spec_generation and _spec_view(new) != _spec_view(current):
                    new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            if json.dumps(new, sort_keys=True) == json.dumps(current, sort_keys=True):
                return copy.deepcopy(current)  # a no-op write is not a change
            self.rv += 1
            new["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[key] = new
            self._record(resource, "MODIFIED", new, actor, "update")
            return copy.deepcopy(new)

    def mutate(
        self,
        resource: str,
        namespace: str,
        name: str,
        change: Callable[[Obj], None],
        actor: str = "client",
        *,
        status: bool = False,
    ) -> Obj:
        """Read, change a copy, write back (a merge patch, a controller's status update)."""
        with self.lock:
            current = self.get(resource, namespace, name)
            change(current)
            current["metadata"].pop("resourceVersion", None)
            return self.update(resource, current, actor, status=status)

    def delete(self, resource: str, namespace: str, name: str, actor: str = "client") -> Obj:
        info = self.info(resource)
        with self.lock:
            key = (resource, namespace if info.namespaced else "", name)
            obj = self.objects.pop(key, None)
            if obj is None:
                raise not_found(info, name)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(resource, "DELETED", obj, actor, "delete")
            return copy.deepcopy(obj)

    def writes(
        self, namespace: str | None = None, actors: Iterable[str] | None = None
    ) -> list[AuditRecord]:
        with self.lock:
            wanted = set(actors) if actors is not None else None
            return [
                a
                for a in self.audit
                if (namespace is None or a.namespace == namespace)
                and (wanted is None or a.actor in wanted)
            ]
