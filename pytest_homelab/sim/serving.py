"""Services of the simulated homelab answering HTTP with the version they run.

Each host name is routed, like an ingress, to a workload of a ``KubeSim``
(the answer follows the rollout: it names the image of a ready pod, round-robin, so while a
rollout is under way old and new versions answer in turn) or to a fixed version (a route still
pointing at an old Service, a cache). ``GET /version`` (any path) answers
``{"service": …, "version": "<image tag>", "image": …}`` with the tag in ``X-Version`` too.
Probes reach it by dialing its loopback address while keeping the service's hostname.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any, cast

from pytest_homelab.sim.server import SimHandler, SimHTTPServer


@dataclass(frozen=True)
class Route:
    """Where a host's requests go: a workload (``namespace``/``deployment``) or ``fixed``."""

    namespace: str = ""
    deployment: str = ""
    fixed: str | None = None  # an image reference served whatever runs
    status: int = 200


class ServingSim:
    """The ingress in front of the simulated services. ``routes`` maps a host name to a
    :class:`Route`; change them at any time with :meth:`route`."""

    def __init__(
        self,
        kube: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.kube = kube
        self.requests: list[tuple[str, str]] = []  # (host, path), for assertions
        self.headers_seen: list[dict[str, str]] = []  # each request's headers, for assertions
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._server = SimHTTPServer((host, port), _ServingHandler, ssl_context, app=self)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def address(self) -> str:
        """``HOST:PORT`` to dial (a probe's ``dial``)."""
        host = str(self._server.server_address[0])
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def route(self, host: str, route: Route) -> None:
        with self._lock:
            self._routes[host.lower()] = route

    def start(self) -> ServingSim:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ServingSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, host: str, path: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((host, path))
            route = self._routes.get(host.lower())
        if route is None:
            return 404, {}, b"no route for this host\n"
        image = route.fixed if route.fixed is not None else self._serving_image(route)
        if image is None:
            return 503, {}, b"no ready endpoints\n"
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
        body = json.dumps({"service": host.split(".")[0], "version": tag, "image": image})
        return route.status, {"X-Version": tag}, body.encode() + b"\n"

    def _serving_image(self, route: Route) -> str | None:
        """The image of one ready pod of the workload (its Service's endpoints), in turn."""
        if self.kube is None:
            return None
        store = self.kube.store
        workload = store.find("deployments", route.namespace, route.deployment)
        if workload is None:
            return None
        selector = (workload.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        ready: list[str] = []
        for pod in store.live("pods", route.namespace):
            meta = pod.get("metadata", {})
            labels = meta.get("labels") or {}
            if meta.get("deletionTimestamp") or any(
                labels.get(k) != v for k, v in selector.items()
            ):
                continue
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                containers = pod.get("spec", {}).get("containers") or [{}]
                ready.append(str(containers[0].get("image", "")))
        if not ready:
            return None
        return sorted(ready)[next(self._turn) % len(ready)]


class _ServingHandler(SimHandler):
    do_GET = do_HEAD = SimHandler.dispatch

    def serve(self, method: str) -> None:
        sim = cast(ServingSim, self.app)
        host = (self.headers.get("Host") or "").rpartition(":")[0] or self.headers.get("Host", "")
        with sim._lock:
            sim.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = sim.answer(host, self.path)
        kind = "application/json" if status == 200 else "text/plain"
        if method == "HEAD":
            body = b""
        self.send_body(status, body, kind, headers.items())
