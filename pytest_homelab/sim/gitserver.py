"""Git over plain HTTP on loopback: real ``git http-backend`` behind a small CGI bridge.

It serves every bare repository under ``root`` (smart HTTP, protocol v2), which is what D601's
launcher fetches from in tests and the demo. Production fetches go through the egress proxy's
CONNECT to an https remote instead; the git side is the same.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from pytest_homelab.sim.server import SimHandler, SimHTTPServer


def git_env(identity: str) -> dict[str, str]:
    """The environment for a simulated homelab's own git: none of the user's ``GIT_*`` settings
    or config files, and a fixed identity (``<identity>@example.test``)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": identity,
        "GIT_AUTHOR_EMAIL": f"{identity}@example.test",
        "GIT_COMMITTER_NAME": identity,
        "GIT_COMMITTER_EMAIL": f"{identity}@example.test",
    }


class GitFailed(RuntimeError):
    """A git command of the simulated homelab failed; the message names it and its stderr."""


def run_git(cwd: Path, *args: str, identity: str) -> str:
    """``git ARGS`` in ``cwd`` with :func:`git_env`; its stdout, stripped. Raises GitFailed."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(identity), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise GitFailed(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


class GitHttpServer:
    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root
        self.fetches: list[str] = []  # paths of upload-pack requests, for assertions
        self._server = SimHTTPServer((host, port), _GitHandler, None, app=self)

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]!s}:{self._server.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def start(self) -> GitHttpServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _GitHandler(SimHandler):
    """A CGI bridge to ``git http-backend`` for one request."""

    do_GET = do_POST = SimHandler.dispatch

    def serve(self, method: str) -> None:
        git = cast(GitHttpServer, self.app)
        parts = urlsplit(self.path)
        body = self.read_body()
        env = {
            "GIT_PROJECT_ROOT": str(git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(git.root),
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if parts.path.endswith("git-upload-pack"):
            git.fetches.append(parts.path)
        done = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        head, _, data = done.stdout.partition(b"\r\n\r\n")
        status, headers, content_type = 200, [], "application/octet-stream"
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key.lower() == "content-type":
                content_type = value.strip()
            elif key:
                headers.append((key, value.strip()))
        self.send_body(status, data, content_type, headers)
