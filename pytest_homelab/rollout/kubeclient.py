"""Kubernetes access without the generated client: the official package's kubeconfig and
in-cluster loaders (every auth the kubeconfig can name: tokens, client certificates, exec
plugins, auth providers), and plain urllib3 requests configured as the official REST client
configures them.

Why not the official ``ApiClient``: importing it loads pydantic and the ~700 generated models
(kubernetes 37: 0.21 s of CPU and 17 MB of memory on top of pytest, measured with
``resource.getrusage``), and the watches never use either (they read raw JSON). The loaders
only need the client's ``Configuration``, but ``kubernetes/__init__.py`` imports every
subpackage and ``kubernetes.config.kube_config`` imports ``ApiClient`` by name. So the
packages ``kubernetes``, ``kubernetes.client`` and ``kubernetes.utils`` are registered without
running their ``__init__`` when nothing imported them yet, and ``kube_config`` is given a
stand-in ``ApiClient`` that imports the real one when called (only OIDC token refresh and
``new_client_from_config`` call it). The first attribute that someone else asks of such a
package and that it lacks runs its ``__init__`` there and then, so code that uses the whole
client later in the same process (``from kubernetes import client; client.CoreV1Api``) gets
it as usual.

``kube_config`` also imports the OAuth libraries of the OIDC auth provider at its top
(``import oauthlib.oauth2``, ``from requests_oauthlib import OAuth2Session``: kubernetes
37.0.3 config/kube_config.py:27-30), which bring ``requests`` and 160 modules more (6 MB) into
every run; it uses them only when it refreshes an OIDC token (``_refresh_oidc``). So
``oauthlib`` and ``oauthlib.oauth2`` are registered the same way, and ``OAuth2Session`` is a
stand-in that imports the real class when called.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

_LOCK = threading.RLock()
_PARTIAL = ("kubernetes", "kubernetes.client", "kubernetes.utils")
_PARTIAL_OAUTH = ("oauthlib", "oauthlib.oauth2")


def _completing_getattr(module: ModuleType, spec: Any) -> Any:
    def __getattr__(name: str) -> Any:
        with _LOCK:
            if module.__dict__.get("__getattr__") is __getattr__:
                del module.__dict__["__getattr__"]
                spec.loader.exec_module(module)  # the package's own __init__, into this module
        return module.__dict__[name] if name in module.__dict__ else _missing(module, name)

    return __getattr__


def _missing(module: ModuleType, name: str) -> Any:
    lazy = module.__dict__.get("__getattr__")  # kubernetes 37's client resolves names lazily
    if callable(lazy):
        return lazy(name)
    raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")


def _partial_package(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not installed", name=name)
    module = importlib.util.module_from_spec(spec)
    module.__getattr__ = _completing_getattr(module, spec)  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _real_api_client(*args: Any, **kwargs: Any) -> Any:
    from kubernetes.client.api_client import ApiClient

    return ApiClient(*args, **kwargs)


def _real_oauth2_session(*args: Any, **kwargs: Any) -> Any:
    return importlib.import_module("requests_oauthlib").OAuth2Session(*args, **kwargs)


def _oauth_stand_in() -> ModuleType | None:
    """A ``requests_oauthlib`` for ``kube_config``'s import only (None when it is loaded)."""
    if "requests_oauthlib" in sys.modules or importlib.util.find_spec("requests_oauthlib") is None:
        return None
    module = ModuleType("requests_oauthlib")
    module.OAuth2Session = _real_oauth2_session  # type: ignore[attr-defined]
    sys.modules["requests_oauthlib"] = module
    return module


def kube_config_modules() -> tuple[ModuleType, ModuleType]:
    """``kubernetes.config`` and ``kubernetes.client.configuration``, loaded lightly."""
    with _LOCK:
        if "kubernetes.config.kube_config" not in sys.modules:
            for name in _PARTIAL:
                _partial_package(name)
            for name in _PARTIAL_OAUTH:
                if importlib.util.find_spec(name.partition(".")[0]) is not None:
                    _partial_package(name)
            client = sys.modules["kubernetes.client"]
            from kubernetes.client.configuration import Configuration

            stand_in = "ApiClient" not in client.__dict__
            if stand_in:
                client.__dict__["ApiClient"] = _real_api_client
                client.__dict__.setdefault("Configuration", Configuration)
            oauth = _oauth_stand_in()
            try:
                import kubernetes.config  # noqa: F401
            finally:
                if stand_in and client.__dict__.get("ApiClient") is _real_api_client:
                    del client.__dict__["ApiClient"]
                if oauth is not None and sys.modules.get("requests_oauthlib") is oauth:
                    del sys.modules["requests_oauthlib"]  # the next import is the real one
        import kubernetes.client.configuration as configuration
        import kubernetes.config as config

        return config, configuration


class KubeApi:
    """Requests to the API server with a loaded ``Configuration`` through the official client's
    ``RESTClientObject`` (its TLS, client certificate, TLS server name and proxy handling), with
    the bearer token that ``ApiClient`` would add (refreshed by the loader's hook, as for exec
    plugins). Responses are urllib3's, unread."""

    def __init__(self, configuration: Any, *, pool: int = 16) -> None:
        import inspect

        from kubernetes.client.rest import RESTClientObject

        configuration.connection_pool_maxsize = pool
        configuration.retries = 0  # retries are the caller's, bounded by its deadline
        self.configuration = configuration
        self.rest = RESTClientObject(configuration)
        # Older clients (32.0.1 checked) preload the body unless told not to; 37.0.3 never does.
        parameters = inspect.signature(self.rest.request).parameters
        self._unread = {"_preload_content": False} if "_preload_content" in parameters else {}
        self._closed = False

    def url(self, path: str, query: list[tuple[str, str]] | None = None) -> str:
        """The server's URL (which may carry a path prefix: a proxy's) + ``path`` + query;
        path parameters in ``path`` are quoted by the caller."""
        url = str(self.configuration.host) + path
        return f"{url}?{urlencode(query)}" if query else url

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        auth = self.configuration.auth_settings().get("BearerToken")  # runs the refresh hook
        if isinstance(auth, dict) and auth.get("value"):
            headers[str(auth.get("key") or "authorization")] = str(auth["value"])
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        timeout: Any = None,
    ) -> Any:
        """The unread urllib3 response, whatever its status; ``body`` is sent as JSON."""
        import urllib3

        if self._closed:  # a PoolManager would open a new pool, with no one left to close it
            raise urllib3.exceptions.ClosedPoolError(None, "the Kubernetes client is closed")  # type: ignore[arg-type]
        from kubernetes.client.exceptions import ApiException

        extra = {"Content-Type": "application/json"} if body is not None else None
        try:
            answer = self.rest.request(  # type: ignore[no-untyped-call]
                method,
                self.url(path, query),
                headers=self.headers(extra),
                body=body,
                _request_timeout=timeout,
                **self._unread,
            )
        except ApiException as exc:  # older clients raise for a status outside 2xx themselves
            if not isinstance(exc.status, int) or exc.status == 0:
                raise
            return _Refused(exc)
        # 37.0.3 wraps urllib3's response in a RESTResponse (rest.py); older clients return it.
        return getattr(answer, "response", answer)

    def close(self) -> None:
        """Close every pooled connection now: urllib3 2.8's ``PoolManager.clear()`` only
        forgets its pools (their connections close when the garbage collector finalizes them)."""
        self._closed = True
        pools = self.rest.pool_manager.pools
        for key in list(pools.keys()):
            pool = pools.get(key)
            if pool is not None:
                pool.close()
        self.rest.pool_manager.clear()


class _Refused:
    """An answer outside 2xx that an older client raised as ``ApiException``, shaped as the
    read urllib3 response the callers expect (status, reason, headers, data)."""

    def __init__(self, exc: Any) -> None:
        self.status = int(exc.status)
        self.reason = str(exc.reason or "")
        self.headers = exc.headers or {}
        body = exc.body
        self.data = body.encode() if isinstance(body, str) else bytes(body or b"")

    def release_conn(self) -> None:
        """Already read and released by the client."""

    def close(self) -> None:
        """Nothing is open."""
