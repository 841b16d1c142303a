"""Host keys as OpenSSH files them: fingerprints, known_hosts look-ups, algorithms to ask for."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import TYPE_CHECKING

from pytest_homelab.core.outcomes import BadInput

if TYPE_CHECKING:
    import paramiko


HOST_KEY_FILES = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def preferred_key_types(names: set[str]) -> list[str]:
    """Host key algorithms to ask for first: those known_hosts can verify."""
    preferred: list[str] = []
    for name in sorted(names):
        preferred += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if name == "ssh-rsa" else [name]
    return preferred


def known_keys(files: tuple[str, ...], name: str) -> list[tuple[str, str, paramiko.PKey]]:
    """``(file, key type, key)`` for every key filed under ``name`` (hashed entries too)."""
    import paramiko
    from paramiko.hostkeys import InvalidHostKey

    found: list[tuple[str, str, paramiko.PKey]] = []
    for path in files:
        if not os.path.isfile(path):
            continue
        keys = paramiko.HostKeys()
        try:
            keys.load(path)
        except (OSError, UnicodeDecodeError, InvalidHostKey) as exc:
            raise BadInput(
                f"cannot read known_hosts file {path}: {exc}",
                hint="fix or remove the broken line (ssh-keygen -F HOST -f FILE shows entries)",
            ) from None
        entries = keys.lookup(name)
        if entries:
            found += [(path, kind, key) for kind, key in entries.items()]
    return found
