"""Keep the docs' examples on loopback: an audit hook refuses any other connect or sendto.

In this process the hook is armed only inside :func:`only_loopback`; subprocesses get it from
the ``sitecustomize`` module :func:`write_sitecustomize` writes (put its directory on
``PYTHONPATH``), and log what they refused to the file named by ``DOCS_NETWORK_LOG``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path

_armed: list[list[str]] = []

SITECUSTOMIZE = """
import ipaddress
import os
import sys


def _docs_loopback_only(event, args):
    if event not in ("socket.connect", "socket.sendto"):
        return
    address = args[1]
    if not isinstance(address, tuple) or not address:
        return
    host = str(address[0]).split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        allowed = host == "localhost"
    else:
        mapped = getattr(ip, "ipv4_mapped", None)
        allowed = ip.is_loopback or (mapped is not None and mapped.is_loopback)
    if not allowed:
        log = os.environ.get("DOCS_NETWORK_LOG")
        if log:
            with open(log, "a") as out:
                out.write(f"{event} {address!r}\\n")
        raise OSError(f"docs examples talk only to loopback, not {address!r}")


sys.addaudithook(_docs_loopback_only)
"""


def is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    host = str(address[0]).split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _hook(event: str, args: tuple[object, ...]) -> None:
    if not _armed or event not in ("socket.connect", "socket.sendto"):
        return
    address = args[1]
    if not is_loopback(address):
        _armed[-1].append(f"{event} {address!r}")
        raise OSError(f"docs examples talk only to loopback, not {address!r}")


sys.addaudithook(_hook)


@contextlib.contextmanager
def only_loopback() -> Iterator[list[str]]:
    """Refuse non-loopback connects in this process; yields the list of what was refused."""
    refused: list[str] = []
    _armed.append(refused)
    try:
        yield refused
    finally:
        _armed.remove(refused)


def write_sitecustomize(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory
