from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

HOSTNAME = "ci.example.test"


@dataclass
class Seen:
    sni: str | None
    host: str | None
    path: str
    auth: str | None


Reply = tuple[int, dict[str, str], bytes]
Step = Reply | str | tuple[str, float]  # a reply, "reset", or ("stall", seconds)


@dataclass
class Script:
    """Responses to play in order; then ``default`` for every further request."""

    steps: list[Step] = field(default_factory=list)
    default: Step = (200, {}, b'{"ok": true}')

    def next(self) -> Step:
        return self.steps.pop(0) if self.steps else self.default


class ScriptedServer:
    def __init__(self, context: ssl.SSLContext | None, host: str = "127.0.0.2") -> None:
        self.script = Script()
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                sni = getattr(self.connection, "homelab_sni", None)
                server.seen.append(
                    Seen(
                        sni, self.headers.get("Host"), self.path, self.headers.get("Authorization")
                    )
                )
                step = server.script.next()
                if step == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if isinstance(step, tuple) and len(step) == 2:
                    time.sleep(step[1])
                    step = server.script.default
                assert isinstance(step, tuple) and len(step) == 3
                status, headers, body = step
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        if context is not None:

            def remember_sni(
                sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
            ) -> None:
                sock.homelab_sni = name  # type: ignore[union-attr]

            context.sni_callback = remember_sni
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(context)
    server = ScriptedServer(context)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plain_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(None, host="127.0.0.1")
    try:
        yield server
    finally:
        server.stop()


ServerFactory = Callable[[], ScriptedServer]
