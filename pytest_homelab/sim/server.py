"""A threaded HTTP(S) server base for the simulators: loopback, TLS, prompt and clean stop."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK_V4 = "127."


def check_loopback(host: str) -> None:
    """Simulators serve loopback only: nothing they bind may be reachable from elsewhere."""
    if not (host.startswith(LOOPBACK_V4) or host in {"::1", "localhost"}):
        raise ValueError(f"simulators bind to loopback only (127.0.0.0/8 or ::1), not {host!r}")


class SimHTTPServer(ThreadingHTTPServer):
    """Handshakes TLS in the handler thread (a stalled client cannot block accept) and tracks
    open connections so :meth:`stop` can end long-lived streams at once."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        app: object = None,
    ) -> None:
        check_loopback(address[0])
        self.app = app  # the simulator its handlers serve (SimHandler.app)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        # Like Go servers: headers and body go out as separate writes, and Nagle plus delayed
        # ACKs would add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                sock.settimeout(10)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except (OSError, ssl.SSLError):
                with contextlib.suppress(OSError):
                    request.close()
                return
        with self._open_lock:
            self._open.add(sock)
        try:
            super().finish_request(sock, client_address)
        finally:
            with self._open_lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-response are part of the job

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sim-http-{self.port}",
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class SimHandler(BaseHTTPRequestHandler):
    """One connection to a simulator. Subclasses are module-level, reach their simulator as
    :attr:`app` (the server's), and route every method they answer to :meth:`serve`, e.g.
    ``do_GET = do_POST = SimHandler.dispatch``; a method they do not list gets the standard
    library's 501."""

    protocol_version = "HTTP/1.1"
    server: SimHTTPServer

    @property
    def app(self) -> Any:
        return self.server.app

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the simulators are quiet; tests read their request logs instead

    def dispatch(self) -> None:
        self.serve(self.command)

    def serve(self, method: str) -> None:
        raise NotImplementedError

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_body(
        self,
        code: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A complete response with a Content-Length."""
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def reset_connection(sock: socket.socket) -> None:
    """Close with RST instead of FIN, like a crashing proxy."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
