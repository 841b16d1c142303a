"""A Kubernetes API server simulator that real kubectl and the official Python client accept.

It serves /version, discovery (/api, /apis and group versions), namespaces, pods (with logs),
events, and apps/v1 Deployments, ReplicaSets, StatefulSets and DaemonSets: get, list and watch
with resourceVersion, label and field selectors, bookmarks, ``timeoutSeconds`` and 410 Expired;
create, update, merge/JSON patch and delete with proper Status bodies. Controllers roll workloads
out on a scenario clock tests can speed up; faults come from a seeded FaultPlan. Tekton
PipelineRuns and TaskRuns run too (``sim.tekton``, see ``tekton.py``), and ``/openapi/v3`` (and
``/openapi/v2`` for kubectl 1.27) lets ``kubectl create`` validate server-side. The observed
request shapes of kubectl 1.20–1.33 are in ``shared/reference/kubernetes-tekton.md`` §6.

    with KubeSim() as k8s:
        k8s.create_namespace("apps")
        k8s.apply(deployment("web", "apps", "registry.example.test/web:abc1234"))
        k8s.kubeconfig(tmp / "kubeconfig")  # for kubectl and the official client
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_homelab.sim.clock import ScenarioClock
from pytest_homelab.sim.faults import FaultPlan, no_faults
from pytest_homelab.sim.kube.controllers import Controllers, ImageBehavior, Timing
from pytest_homelab.sim.kube.defaults import apply_defaults, validate
from pytest_homelab.sim.kube.lists import check_field_selector, list_objects, table, wants_table
from pytest_homelab.sim.kube.objects import namespace as namespace_object
from pytest_homelab.sim.kube.openapi import (
    OpenAPI,
    admit,
    decode_kubernetes_protobuf,
    is_builtin,
    kube_kind_schema,
    resolve_schema,
)
from pytest_homelab.sim.kube.patch import (
    StrategicMerge,
    drop_disowned,
    fields_v1,
    json_merge,
    json_patch,
)
from pytest_homelab.sim.kube.rbac import SSAR_PATH, Rbac
from pytest_homelab.sim.kube.store import (
    ApiError,
    Obj,
    ResourceInfo,
    Store,
    WatchEvent,
    field_selector,
    label_selector,
)
from pytest_homelab.sim.kube.store import (
    not_found as store_not_found,
)
from pytest_homelab.sim.kube.tekton import Tekton
from pytest_homelab.sim.server import SimHandler, SimHTTPServer, reset_connection

KUBE_FAULTS = ("watch_drop", "gone410", "5xx", "reset")
RESOURCE_OF_KIND = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Pod": "pods",
    "Namespace": "namespaces",
    "Event": "events",
    "PipelineRun": "pipelineruns",
    "TaskRun": "taskruns",
    "Pipeline": "pipelines",
}


class KubeSim:
    """The simulator; ``with`` starts the server and the controllers, and stops both."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        faults: FaultPlan | None = None,
        minor: int = 30,
        history: int = 5000,
        bookmark_interval: float = 60.0,
        timing: Timing | None = None,
        terminating_replicas: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Timestamps never run ahead of the wall clock, however fast the scenario runs (kubectl
        # shows AGE <invalid> for a future creationTimestamp).
        self.clock = ScenarioClock(speed, wall_bound=True)
        self.store = Store(self.clock, history=history)
        self.controllers = Controllers(
            self.store, timing=timing or Timing(), terminating_replicas=terminating_replicas
        )
        self.faults = faults or no_faults()
        self.minor = minor
        self.bookmark_interval = bookmark_interval
        self.requests: list[tuple[str, str, int, str | None]] = []
        self.logs: dict[tuple[str, str, str], list[str]] = {}
        self.tekton = Tekton(self.store, self.controllers, self.set_log)
        self.openapi = OpenAPI()
        self.rbac = Rbac()  # per-namespace permissions; SelfSubjectAccessReview answers
        self._server = SimHTTPServer((host, port), _KubeHandler, ssl_context, app=self)
        self._tls = ssl_context is not None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._watch_count = 0
        self.expired_sent = 0  # watches ended with an in-stream 410 Expired
        self._expiry = 0  # bumped by expire_watches()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    @property
    def watches_opened(self) -> int:
        return self._watch_count

    def start(self) -> KubeSim:
        self._server.start()
        self._ticker = threading.Thread(target=self._tick, name="kube-sim-controllers", daemon=True)
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self._server.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stop.wait(0.01):
            self.controllers.tick(self.clock.now())

    def kubeconfig(
        self,
        path: Path,
        context: str = "sim",
        namespace: str = "default",
        ca_pem: bytes | None = None,
    ) -> Path:
        """Write a kubeconfig that points kubectl and the official client at this simulator
        (with ``ca_pem`` as the cluster's CA when it serves TLS)."""
        cluster: Obj = {"server": self.url}
        if ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": context,
                    "clusters": [{"name": context, "cluster": cluster}],
                    "users": [{"name": context, "user": {"token": "sim"}}],
                    "contexts": [
                        {
                            "name": context,
                            "context": {
                                "cluster": context,
                                "user": context,
                                "namespace": namespace,
                            },
                        }
                    ],
                },
                indent=2,
            )
        )
        return path

    # -- scripting ------------------------------------------------------------------------------

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> Obj:
        return self.store.create("namespaces", namespace_object(name, labels), actor="test")

    def apply(self, obj: Obj) -> Obj:
        """Create the object, or replace its spec like ``kubectl apply`` of a changed manifest."""
        resource = RESOURCE_OF_KIND[obj["kind"]]
        obj = copy.deepcopy(obj)
        apply_defaults(self.store.info(resource), obj)  # as the API server would
        meta = obj["metadata"]
        with self.store.lock:
            current = self.store.find(resource, meta.get("namespace", ""), meta["name"])
            if current is None:
                return self.store.create(resource, obj, actor="test")
            new = copy.deepcopy(obj)
            new["metadata"] = {
                **copy.deepcopy(current["metadata"]),
                **{k: v for k, v in meta.items() if k in ("labels", "annotations")},
            }
            new["metadata"].pop("resourceVersion", None)
            return self.store.update(resource, new, actor="test")

    def set_image(
        self,
        namespace: str,
        name: str,
        image: str,
        *,
        container: str | None = None,
        kind: str = "Deployment",
    ) -> Obj:
        """What CI or GitOps does to land a new image: bump the pod template's image."""

        def change(obj: Obj) -> None:
            containers = obj["spec"]["template"]["spec"]["containers"]
            target = next((c for c in containers if c["name"] == container), containers[0])
            target["image"] = image

        return self.store.mutate(RESOURCE_OF_KIND[kind], namespace, name, change, actor="test")

    def patch_spec(
        self, namespace: str, name: str, change: Callable[[Obj], None], kind: str = "Deployment"
    ) -> Obj:
        return self.store.mutate(RESOURCE_OF_KIND[kind], namespace, name, change, actor="test")

    def image_behavior(self, pattern: str, **kwargs: Any) -> None:
        """Pods whose image matches ``pattern`` (fnmatch) behave so: pull, ready, fail, message."""
        self.controllers.set_behavior(pattern, ImageBehavior(**kwargs))

    def delete(self, resource: str, namespace: str, name: str) -> None:
        _delete(self, resource, namespace, name, actor="test")

    def advance(self, seconds: float) -> None:
        """Move the scenario clock and run the controllers once (not with the store's lock
        held: a tick takes it after the controllers' own)."""
        self.clock.advance(seconds)
        self.controllers.tick(self.clock.now())

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        return self.store.get(resource, namespace, name)

    def wait_until(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the simulated cluster did not reach the expected state")
            time.sleep(0.01)

    def expire_watches(self) -> None:
        """End every open watch with an in-stream 410 Expired, as an API server does when a
        watch's resourceVersion has left its window (history compacted, server restarted).
        Clients must relist; a reconnect from a version older than now also gets 410."""
        with self.store.changed:
            self.store.compact()
            self._expiry += 1
            self.store.changed.notify_all()

    def set_log(self, namespace: str, pod: str, container: str, lines: list[str]) -> None:
        with self.store.lock:
            self.logs[(namespace, pod, container)] = list(lines)


def _delete(
    sim: KubeSim, resource: str, namespace: str, name: str, actor: str, grace: int | None = None
) -> Obj:
    store = sim.store
    with store.lock:
        info = store.info(resource)
        obj = store.get(resource, namespace if info.namespaced else "", name)
        if resource == "pods" and grace != 0:
            if obj["metadata"].get("deletionTimestamp"):
                return obj

            def mark(o: Obj) -> None:
                o["metadata"]["deletionTimestamp"] = store.clock.iso(store.clock.now())
                o["metadata"]["deletionGracePeriodSeconds"] = 30 if grace is None else grace

            return store.mutate("pods", namespace, name, mark, actor=actor)
        if resource == "namespaces":
            stamp = store.clock.iso(store.clock.now())
            store.mutate(
                "namespaces",
                "",
                name,
                lambda o: o["metadata"].__setitem__("deletionTimestamp", stamp),
                actor=actor,
            )
            return store.mutate(
                "namespaces",
                "",
                name,
                lambda o: o.__setitem__("status", {"phase": "Terminating"}),
                actor=actor,
                status=True,
            )
        deleted = store.delete(resource, namespace, name, actor=actor)
        _collect_garbage(sim, deleted, actor)
        return deleted


def _collect_garbage(sim: KubeSim, owner: Obj, actor: str) -> None:
    """Background cascading deletion of everything the object owned."""
    uid = owner["metadata"]["uid"]
    namespace = owner["metadata"].get("namespace", "")
    for resource in ("replicasets", "taskruns", "pods"):
        for obj in list(sim.store.live(resource, namespace)):
            if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                with contextlib.suppress(ApiError):
                    _delete(
                        sim, resource, namespace, obj["metadata"]["name"], actor="garbage-collector"
                    )


# -- discovery ------------------------------------------------------------------------------------


def _resource_list(sim: KubeSim, group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for info in sim.store.resources.values():
        if info.group != group or info.version != version:
            continue
        resources.append(
            {
                "name": info.name,
                "singularName": info.singular,
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": list(info.verbs),
                "shortNames": list(info.short),
                **({"categories": list(info.categories)} if info.categories else {}),
                "storageVersionHash": info.kind[:8],
            }
        )
        for sub in info.subresources:
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            resources.append(
                {
                    "name": f"{info.name}/{sub}",
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": "Pod" if sub == "log" else info.kind,
                    "verbs": verbs,
                }
            )
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _groups(sim: KubeSim) -> list[Obj]:
    groups: dict[str, list[str]] = {}
    for info in sim.store.resources.values():
        if info.group:
            versions = groups.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
    return [
        {
            "name": name,
            "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
        }
        for name, versions in sorted(groups.items())
    ]


# -- HTTP -----------------------------------------------------------------------------------------


def _verb(method: str, route: _Route, query: dict[str, str]) -> str:
    """The authorization verb of a request (kubernetes/apiserver pkg/endpoints/request
    requestinfo.go: GET of a collection is list, or watch with ?watch)."""
    if method == "GET":
        if route.name is None:
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


class _Route:
    def __init__(
        self, info: ResourceInfo, namespace: str | None, name: str | None, sub: str | None
    ) -> None:
        self.info = info
        self.namespace = namespace
        self.name = name
        self.sub = sub


class _KubeHandler(SimHandler):
    """The API server's HTTP side: discovery, OpenAPI, CRUD, watch and patch (:meth:`serve`)."""

    server_version = "kube-sim"
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = SimHandler.dispatch

    @property
    def sim(self) -> KubeSim:
        return cast(KubeSim, self.app)

    def _body(self) -> Any:
        raw = self.read_body()
        if not raw:
            return None
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/vnd.kubernetes.protobuf":  # kubectl 1.33 create namespace
            return decode_kubernetes_protobuf(raw)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            try:
                import yaml

                return yaml.safe_load(raw)
            except Exception:
                raise ApiError(400, "BadRequest", "the body is neither JSON nor YAML") from None

    def _send_json(
        self, code: int, body: Obj | bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        headers = list(headers)
        if not any(k == "Cache-Control" for k, _ in headers):
            self.send_header("Cache-Control", "no-cache, private")
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _openapi(self, path: str, query: dict[str, str]) -> None:
        resources = list(self.sim.store.resources.values())
        if path == "/openapi/v3":
            index = json.dumps(self.sim.openapi.index(resources), sort_keys=True).encode()
            self._send_json(200, index, [("ETag", f'"{hashlib.sha1(index).hexdigest()}"')])
            return
        found = self.sim.openapi.find(resources, path.removeprefix("/openapi/v3/"))
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        data, digest = found
        wanted = query.get("hash")
        if wanted and wanted != digest:  # a stale hash redirects to the current document
            self.send_response(301)
            self.send_header("Location", f"{path}?hash={digest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        etag = f'"{digest}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        cache = "public, immutable" if wanted else "no-cache, private"
        self._send_json(200, data, [("ETag", etag), ("Cache-Control", cache)])

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        fault = None
        if path.startswith(("/api/", "/apis/")):
            allowed = KUBE_FAULTS if query.get("watch") in ("true", "1") else ("5xx", "reset")
            fault = self.sim.faults.decide(path, allowed)
        with self.sim.store.lock:
            self.sim.requests.append((method, self.path, 0, fault))
        if fault == "reset":
            self.close_connection = True
            reset_connection(self.connection)
            return
        if fault == "5xx":
            code = (500, 503)[self.sim.faults.draw(0, 1)]
            reason = "InternalError" if code == 500 else "ServiceUnavailable"
            self._send_json(code, ApiError(code, reason, "the simulated server is unwell").status())
            return
        try:
            self._route(method, path, query, fault)
        except ApiError as err:
            self._send_json(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, str], fault: str | None) -> None:
        if path == "/version":
            self._send_json(
                200,
                {
                    "major": "1",
                    "minor": str(self.sim.minor),
                    "gitVersion": f"v1.{self.sim.minor}.0-sim",
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.22",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
            return
        if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            self._openapi(path, query)
            return
        if path == "/openapi/v2":  # kubectl 1.27 reads fieldValidation support only here
            protobuf = "protobuf" in (self.headers.get("Accept") or "")
            data = self.sim.openapi.v2(self.sim.store.resources.values(), protobuf)
            self.send_response(200)
            kind = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            self.send_header("Content-Type", kind if protobuf else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/healthz" or path == "/readyz" or path == "/livez":
            self._send_text(200, "ok")
            return
        if path == "/api":
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.sim.port}"}
                    ],
                },
            )
            return
        if path == "/apis":
            self._send_json(
                200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups(self.sim)}
            )
            return
        if path == SSAR_PATH:
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
            self._send_json(201, self.sim.rbac.review(self._body()))
            return
        segments = path.strip("/").split("/")
        if segments[0] == "api" and len(segments) >= 2:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[0] == "apis" and len(segments) >= 2:
            if len(segments) == 2:
                match = [g for g in _groups(self.sim) if g["name"] == segments[1]]
                if not match:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **match[0]})
                return
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            listing = _resource_list(self.sim, group, version)
            if not listing["resources"]:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send_json(200, listing)
            return
        route = self._resolve(group, version, rest)
        self._dispatch(method, route, query, fault)

    def _resolve(self, group: str, version: str, rest: list[str]) -> _Route:
        def info_for(name: str) -> ResourceInfo:
            info = self.sim.store.resources.get(name)
            if info is None or info.group != group or info.version != version:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return info

        if rest[0] == "namespaces" and len(rest) >= 3:
            info = info_for(rest[2])
            if not info.namespaced:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _Route(
                info,
                rest[1],
                rest[3] if len(rest) > 3 else None,
                rest[4] if len(rest) > 4 else None,
            )
        info = info_for(rest[0])
        name = rest[1] if len(rest) > 1 else None
        if info.namespaced and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Route(
            info, None if info.namespaced else "", name, rest[2] if len(rest) > 2 else None
        )

    def _dispatch(
        self, method: str, route: _Route, query: dict[str, str], fault: str | None
    ) -> None:
        info, ns = route.info, route.namespace
        self.sim.rbac.check(
            _verb(method, route, query),
            info.group,
            info.name,
            route.sub or "",
            ns or "",
            route.name or "",
        )
        if method == "GET" and route.name is None:
            if query.get("watch") in ("true", "1"):
                check_field_selector(info, query.get("fieldSelector"))
                self._watch(route, query, fault)
                return
            listing = list_objects(self.sim.store, info, ns, query)
            if wants_table(self.headers.get("Accept")):
                rv = listing["metadata"]["resourceVersion"]
                listing = table(info, listing["items"], rv, query.get("includeObject"))
            self._send_json(200, listing)
            return
        if method == "POST" and route.name is None:
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be an object")
            if ns:
                body.setdefault("metadata", {})["namespace"] = ns
            warnings = admit(info, body, query.get("fieldValidation"), create=True)
            apply_defaults(info, body)
            validate(info, body)
            if query.get("dryRun") == "All":
                self._send_json(201, body, _warnings(warnings))
                return
            created = self.sim.store.create(info.name, body, actor="client")
            self._send_json(201, created, _warnings(warnings))
            return
        if route.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
        name, namespace = route.name, ns or ""
        if route.sub == "log" and info.name == "pods" and method == "GET":
            self._log(namespace, name, query)
            return
        if route.sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        status_only = route.sub == "status"
        if method == "GET":
            obj = self.sim.store.get(info.name, namespace, name)
            if wants_table(self.headers.get("Accept")) and not status_only:
                rv = obj["metadata"].get("resourceVersion", "")
                obj = table(info, [obj], rv, query.get("includeObject"))
            self._send_json(200, obj)
        elif method == "PUT":
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be an object")
            body.setdefault("metadata", {}).update(name=name)
            if info.namespaced:
                body["metadata"]["namespace"] = namespace
            warnings = admit(info, body, query.get("fieldValidation"), create=False)
            if not status_only:
                apply_defaults(info, body)
                validate(info, body)
            self._send_json(
                200,
                self.sim.store.update(info.name, body, actor="client", status=status_only),
                _warnings(warnings),
            )
        elif method == "PATCH":
            self._patch(info, namespace, name, query, status_only)
        elif method == "DELETE":
            self._body()  # DeleteOptions: read it, or it would be taken for the next request
            grace = query.get("gracePeriodSeconds")
            deleted = _delete(
                self.sim,
                info.name,
                namespace,
                name,
                actor="client",
                grace=int(grace) if grace and grace.isdigit() else None,
            )
            self._send_json(200, deleted)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _patch(
        self, info: ResourceInfo, namespace: str, name: str, query: dict[str, str], sub: bool
    ) -> None:
        """PATCH in its four media types (see ``patch.py``), then what any write gets: field
        validation, defaulting, validation, and an optimistic-concurrency check against a
        ``metadata.resourceVersion`` the patch itself carries."""
        body = self._body()
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            *(["application/strategic-merge-patch+json"] if is_builtin(info) else []),
            "application/apply-patch+yaml",
        ]
        if kind not in types:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(types)}",
            )
        if kind == "application/apply-patch+yaml":
            self._apply(info, namespace, name, body, query, sub)
            return
        current = self.sim.store.get(info.name, namespace, name)
        if kind == "application/json-patch+json":
            patched = json_patch(current, body)
        elif not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        elif kind == "application/merge-patch+json":
            patched = json_merge(current, body)
        else:
            patched = StrategicMerge(resolve_schema).merge_map(
                current, body, kube_kind_schema(info)
            )
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch removed the whole object")
        meta = patched.setdefault("metadata", {})
        sent = meta.get("resourceVersion")
        check = sent is not None and sent != current["metadata"].get("resourceVersion")
        if not check:
            meta.pop("resourceVersion", None)
        self._store_write(info, patched, query, sub, check_version=check)

    def _store_write(
        self, info: ResourceInfo, obj: Obj, query: dict[str, str], sub: bool, **kw: Any
    ) -> None:
        warnings = admit(info, obj, query.get("fieldValidation"), create=False)
        if not sub:
            apply_defaults(info, obj)
            validate(info, obj)
        if query.get("dryRun") == "All":
            self._send_json(200, obj, _warnings(warnings))
            return
        written = self.sim.store.update(info.name, obj, actor="client", status=sub, **kw)
        self._send_json(200, written, _warnings(warnings))

    def _apply(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        body: Any,
        query: dict[str, str],
        sub: bool,
    ) -> None:
        """Server-side apply: merge the applied configuration (list-map keys from the schema),
        create the object when it is missing, record the manager in ``managedFields``, and
        remove what the manager applied before and applies no longer. Other managers'
        ownership and conflicts are not modelled."""
        manager = query.get("fieldManager")
        if not manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "an apply patch must be an object")
        raw_meta = body.get("metadata")
        meta: Obj = raw_meta if isinstance(raw_meta, dict) else {}
        if meta.get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on "
                f"the URL ({name})",
            )
        schema = kube_kind_schema(info)
        clock = self.sim.clock
        entry = {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": info.api_version,
            "time": clock.iso(clock.now()),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(
                {k: v for k, v in body.items() if k not in ("apiVersion", "kind")},
                schema,
                resolve_schema,
            ),
        }
        if sub:
            entry["subresource"] = "status"
        current = self.sim.store.find(info.name, namespace, name)
        if current is None:
            if sub:
                raise store_not_found(info, name)
            obj = dict(body)
            obj["metadata"] = {**meta, "name": name, "managedFields": [entry]}
            if info.namespaced:
                obj["metadata"]["namespace"] = namespace
            warnings = admit(info, obj, query.get("fieldValidation"), create=True)
            apply_defaults(info, obj)
            validate(info, obj)
            if query.get("dryRun") == "All":
                self._send_json(201, obj, _warnings(warnings))
                return
            self._send_json(201, self.sim.store.create(info.name, obj, actor="client"))
            return
        merged = StrategicMerge(resolve_schema).merge_map(copy.deepcopy(current), body, schema)
        mine = [
            f
            for f in merged["metadata"].get("managedFields") or []
            if f.get("manager") == manager and f.get("operation") == "Apply"
        ]
        for previous in mine:  # what this manager applied before and applies no longer goes
            drop_disowned(merged, previous.get("fieldsV1"), entry["fieldsV1"])
        fields = [f for f in merged["metadata"].get("managedFields") or [] if f not in mine]
        merged["metadata"]["managedFields"] = [*fields, entry]
        merged["metadata"].pop("resourceVersion", None)
        self._store_write(info, merged, query, sub, check_version=False)

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> None:
        pod = self.sim.store.get("pods", namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        container = query.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, choose one of: {containers}",
            )
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        with self.sim.store.lock:
            lines = self.sim.logs.get((namespace, name, container))
        if lines is None:
            image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == container)
            lines = [f"starting {image}", "listening on :8080"]
        tail = query.get("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :] if int(tail) else []
        self._send_text(200, "".join(f"{line}\n" for line in lines))

    def _watch(self, route: _Route, query: dict[str, str], fault: str | None) -> None:
        if query.get("sendInitialEvents") == "true":
            raise ApiError(
                422,
                "Invalid",
                "sendInitialEvents is not supported by this server; list, then watch",
            )
        info, ns = route.info, route.namespace
        match_labels = label_selector(query.get("labelSelector"))
        match_fields = field_selector(query.get("fieldSelector"))
        rv_text = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = query.get("timeoutSeconds")
        ends_at = time.monotonic() + (float(timeout) if timeout and timeout.isdigit() else 1800.0)
        with self.sim.store.lock:
            self.sim._watch_count += 1
            # The expiry generation the watch lives in, taken as it counts as open: an
            # expire_watches() from then on ends it with a 410. Taken later, an expiry between
            # the two (a client told "it watches" by watches_opened) was never sent.
            expiry = self.sim._expiry
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

        def wanted(event: WatchEvent) -> bool:
            if event.resource != info.name or (ns and event.namespace != ns):
                return False
            labels = event.obj.get("metadata", {}).get("labels") or {}
            return bool(match_labels(labels) and match_fields(event.obj))

        sent = 0
        drop_after = self.sim.faults.draw(0, 2) if fault == "watch_drop" else None
        try:
            if fault == "gone410":
                self._event(
                    {
                        "type": "ERROR",
                        "object": ApiError(
                            410,
                            "Expired",
                            f"too old resource version: {rv_text or 0} "
                            f"({self.sim.store.compacted})",
                        ).status(),
                    }
                )
                return
            with self.sim.store.lock:
                if rv_text in ("", "0"):
                    since = self.sim.store.rv
                    initial = [
                        WatchEvent(self.sim.store.rv, info.name, "ADDED", ns or "", o)
                        for o in self.sim.store.select(info.name, ns)[0]
                    ]
                else:
                    try:
                        since = int(rv_text)
                    except ValueError:
                        since = -1
                    try:
                        initial = list(self.sim.store.events_after(since))
                    except ApiError as err:
                        self._expired(err)
                        return
            last_bookmark = time.monotonic()
            pending = initial
            while True:
                # What is pending goes out in one write, as kube-apiserver flushes a watch only
                # when no further event waits (staging/src/k8s.io/apiserver/pkg/endpoints/
                # handlers/watch.go@034debc HandleHTTP: `if len(ch) == 0 { flusher.Flush() }`);
                # a write (and a flush) per event made the simulator fall seconds behind its
                # own store under a thousand rollouts, each write waiting for the GIL.
                lines: list[bytes] = []
                held = 0
                dropping = False
                for event in pending:
                    since = max(since, event.rv)
                    if not wanted(event):
                        continue
                    lines.append(_event_line({"type": event.type, "object": event.obj}))
                    held += len(lines[-1])
                    if held >= _WATCH_CHUNK:
                        self._send_lines(lines)
                        lines, held = [], 0
                    sent += 1
                    if drop_after is not None and sent >= drop_after:
                        dropping = True
                        break
                self._send_lines(lines)
                if dropping:
                    return
                now = time.monotonic()
                if now >= ends_at or self.sim._stop.is_set() or self.sim._server.stopping.is_set():
                    return
                if self.sim._expiry != expiry:
                    self._expired(
                        ApiError(
                            410,
                            "Expired",
                            f"too old resource version: {since} ({self.sim.store.compacted})",
                        )
                    )
                    return
                if bookmarks and now - last_bookmark >= self.sim.bookmark_interval:
                    last_bookmark = now
                    self._event(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": info.kind,
                                "apiVersion": info.api_version,
                                "metadata": {"resourceVersion": str(self.sim.store.rv)},
                            },
                        }
                    )
                    if drop_after is not None:
                        return
                with self.sim.store.changed:
                    if self.sim.store.rv <= since:
                        self.sim.store.changed.wait(timeout=min(0.2, max(0.0, ends_at - now)))
                    try:
                        pending = list(self.sim.store.events_after(since))
                    except ApiError as err:
                        self._expired(err)
                        return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    def _expired(self, err: ApiError) -> None:
        with self.sim.store.lock:
            self.sim.expired_sent += 1
        self._event({"type": "ERROR", "object": err.status()})

    def _event(self, event: Obj) -> None:
        self._send_lines([_event_line(event)])

    def _send_lines(self, lines: list[bytes]) -> None:
        """Event lines as one chunk (Go's chunked writer also puts several small events in one
        chunk and splits big ones: a client must not count on a chunk per event)."""
        if not lines:
            return
        data = b"".join(lines)
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


_WATCH_CHUNK = 64 * 1024  # bytes of pending events written (and flushed) at once


def _event_line(event: Obj) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _warnings(messages: list[str]) -> list[tuple[str, str]]:
    """``Warning`` headers (RFC 7234 style, as the API server sends them)."""
    return [("Warning", '299 - "' + m.replace('"', '\\"') + '"') for m in messages]


def iter_namespace_writes(sim: KubeSim, namespace: str) -> Iterator[str]:
    """Every write (by anyone but the test script) to ``namespace``, as text, for assertions."""
    for record in sim.store.writes(namespace):
        if record.actor != "test":
            yield f"{record.actor} {record.verb} {record.resource}/{record.name}"
