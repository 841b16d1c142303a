"""``/api/stream/events``: full pipeline snapshots but no ordering and no replay, so the watch
uses it only as a wake-up signal.

A connected stream may be silent about the repo: the server subscribes a connection to the repos
the user has a permission row for and that are active, fixed at connect time
(server/api/stream.go@v3.17.0:76-86, server/store/datastore/repo.go@v3.17.0:143-162), plus public
repos (server/scheduler/impl.go@v3.17.0:129-135); its pubsub is in memory, so a second server
replica never sees the other's events. A stream is therefore trusted (``proven``) only once the
current connection has delivered an event of this repo.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Protocol

import httpx

from pytest_homelab.ci.models import Pipeline, Repo
from pytest_homelab.core.clock import SYSTEM_CLOCK, Backoff, Clock
from pytest_homelab.core.outcomes import (
    HomelabError,
)
from pytest_homelab.core.secrets import Secret, scrub

# -- the event stream: a wake-up signal only -----------------------------------------------------


class EventSource(Protocol):
    wake: threading.Event

    @property
    def connected(self) -> bool: ...

    @property
    def generation(self) -> int:
        """Increments on every (re)connect: events may have been lost, so re-list."""
        ...

    @property
    def proven(self) -> bool:
        """The current connection has delivered an event of this repo: it carries the repo."""
        ...

    def drain(self) -> list[Pipeline]: ...

    def close(self) -> None: ...


class WoodpeckerEventStream:
    """Reads ``/api/stream/events`` in a thread and keeps the snapshots of one repo's pipelines."""

    def __init__(
        self,
        http: httpx.Client,
        repo: Repo,
        *,
        token: Secret | None,
        clock: Clock = SYSTEM_CLOCK,
        read_timeout: float = 75.0,  # the server pings every 30 s
        backoff: Backoff | None = None,
    ) -> None:
        self.http = http
        self.repo = repo
        self.wake = threading.Event()
        self._token = token
        self._clock = clock
        self._read_timeout = read_timeout
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._lock = threading.Lock()
        self._queue: list[Pipeline] = []
        self._connected = False
        self._generation = 0
        self._proven_generation = -1
        self.delivered = 0  # events of this repo received, over all connections
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name="woodpecker-events", daemon=True)
        self.last_error: str | None = None

    def start(self) -> WoodpeckerEventStream:
        self._thread.start()
        return self

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def proven(self) -> bool:
        with self._lock:
            return self._connected and self._proven_generation == self._generation

    def drain(self) -> list[Pipeline]:
        with self._lock:
            items, self._queue = self._queue, []
        return items

    def close(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _shutdown_stream(response)
        self._thread.join(timeout=5)
        self.wake.set()

    def _run(self) -> None:
        from httpx_sse import SSEError, connect_sse

        delays = self._backoff.delays()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        while not self._stop.is_set():
            try:
                with connect_sse(
                    self.http,
                    "GET",
                    "/api/stream/events",
                    headers=headers,
                    timeout=httpx.Timeout(8.0, read=self._read_timeout),
                ) as source:
                    self._response = source.response
                    if self._stop.is_set():
                        break
                    if source.response.status_code != 200:
                        raise _StreamUnavailable(f"HTTP {source.response.status_code}")
                    with self._lock:
                        self._connected = True
                        self._generation += 1
                    self.wake.set()
                    delays = self._backoff.delays()
                    for sse in source.iter_sse():
                        self._handle(sse.data)
                    self.last_error = "stream ended"
            except (
                httpx.HTTPError,
                httpx.StreamError,
                SSEError,
                _StreamUnavailable,
                OSError,
            ) as exc:
                self.last_error = f"{type(exc).__name__}: {scrub(str(exc))}"
            except Exception as exc:
                self.last_error = type(exc).__name__  # its text may quote a header value
            finally:
                self._response = None
                if self._connected:
                    self._connected = False
                    self.wake.set()
                elif self._generation == 0:
                    self.wake.set()  # the first connection failed: the watch stops waiting
            self._clock.wait(self._stop, next(delays))  # the injected clock, like every wait

    def _handle(self, data: str) -> None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        repo = payload.get("repo")
        pipeline = payload.get("pipeline")
        if not isinstance(repo, dict) or repo.get("id") != self.repo.id:
            return
        if not isinstance(pipeline, dict):
            return
        try:
            snapshot = Pipeline.from_json(pipeline)
        except HomelabError:
            return
        with self._lock:
            self._queue.append(snapshot)
            self._proven_generation = self._generation
            self.delivered += 1
        self.wake.set()


class _StreamUnavailable(Exception):
    pass


def _shutdown_stream(response: httpx.Response) -> None:
    """Wake a thread blocked reading ``response``: close() alone does not interrupt recv()."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        # Only shut the socket down: the reader sees EOF and closes the response itself. Closing
        # it here would free the descriptor under the reader (which could then poll a reused fd)
        # or make it raise StreamClosed.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):  # no socket to shut down: closing is all there is
        response.close()
