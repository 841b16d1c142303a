"""A small forward HTTP proxy on loopback, standing in for D601's node-local egress proxy in the
demo (the test suite uses a real tinyproxy). It forwards absolute-form requests (``GET
http://host/path``) and tunnels ``CONNECT``, to loopback destinations only, and records what it
forwarded."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import select
import socket
import threading
from typing import cast
from urllib.parse import urlsplit

from pytest_homelab.sim.server import SimHandler, SimHTTPServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ForwardProxy:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[str] = []  # "GET http://…", "CONNECT host:port"
        self._lock = threading.Lock()
        self._server = SimHTTPServer((host, port), _ProxyHandler, None, app=self)

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]!s}:{self._server.port}"

    def record(self, line: str) -> None:
        with self._lock:
            self.requests.append(line)

    def start(self) -> ForwardProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ProxyHandler(SimHandler):
    """One proxied request: plain http:// forwarding, or a CONNECT tunnel."""

    do_GET = do_POST = do_HEAD = SimHandler.dispatch

    @property
    def proxy(self) -> ForwardProxy:
        return cast(ForwardProxy, self.app)

    def serve(self, method: str) -> None:
        self._forward()

    def _refuse(self, code: int, why: str) -> None:
        self.send_body(code, (why + "\n").encode(), "text/plain")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self._refuse(400, "a forward self.proxy needs an absolute http:// URL")
            return
        if not _loopback(url.hostname):
            self._refuse(403, f"the demo self.proxy only reaches loopback, not {url.hostname}")
            return
        self.proxy.record(f"{self.command} {self.path}")
        body = self._body()
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
        }
        if body or self.command == "POST":
            headers["Content-Length"] = str(len(body))
        target = url.path + (f"?{url.query}" if url.query else "")
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        try:
            conn.request(self.command, target or "/", body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
        except OSError as exc:
            self._refuse(502, f"upstream {url.hostname}:{url.port}: {exc}")
            return
        finally:
            conn.close()
        self.send_response(upstream.status, upstream.reason)
        for key, value in upstream.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        if not _loopback(host) or not port.isdigit():
            self._refuse(403, f"the demo self.proxy only reaches loopback, not {self.path}")
            return
        self.proxy.record(f"CONNECT {self.path}")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except OSError as exc:
            self._refuse(502, f"upstream {self.path}: {exc}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        client = self.connection
        with contextlib.closing(upstream):
            _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 60)
        if not ready:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)
