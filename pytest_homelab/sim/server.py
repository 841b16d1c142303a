"""A threaded HTTP(S) server base for the simulators: loopback, TLS, prompt and clean stop."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
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
    ) -> None:
        check_loopback(address[0])
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


def reset_connection(sock: socket.socket) -> None:
    """Close with RST instead of FIN, like a crashing proxy."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
