"""Host keys as OpenSSH files them: fingerprints, known_hosts look-ups, algorithms to ask for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_homelab.core.outcomes import AuthError, BadInput

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
    """``(file, key type, key)`` for every plain key filed under ``name`` (hashed entries and
    patterns too); marker lines (``@revoked``, ``@cert-authority``) are not keys of the host."""
    import paramiko

    found: list[tuple[str, str, paramiko.PKey]] = []
    for entry in read_entries(files, name):
        if entry.marker is not None:
            continue
        try:
            key = paramiko.PKey.from_type_string(entry.key_type, entry.blob)
        except (paramiko.SSHException, ValueError, TypeError):
            continue  # a key type we cannot use: OpenSSH skips it too
        found.append((entry.path, entry.key_type, key))
    return found


# -- known_hosts and revocation as OpenSSH reads them ---------------------------------------------

KRL_MAGIC = b"SSHKRL\n\0"  # openssh-portable krl.h@V_9_9_P2:24
MARKERS = {"@revoked": "revoked", "@cert-authority": "cert-authority"}


@dataclass(frozen=True)
class HostKeyEntry:
    """One known_hosts line filed under the host: where, its marker, key type and blob."""

    path: str
    line: int
    marker: str | None  # None, "revoked" or "cert-authority"
    key_type: str
    blob: bytes


def _pattern_matches(name: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def host_matches(name: str, hosts: str) -> bool:
    """Does ``name`` match a known_hosts host field: hashed (``|1|salt|hash``), or a list of
    patterns where ``!`` excludes. openssh-portable hostfile.c@V_9_9_P2:740-757, match.c:194-203:
    names and patterns are compared lower-cased, a negated match excludes the line."""
    if hosts.startswith("|1|"):
        parts = hosts.split("|")
        try:
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        except (IndexError, binascii.Error, ValueError):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    name, found = name.lower(), False
    for pattern in hosts.lower().split(","):
        negated = pattern.startswith("!")
        if _pattern_matches(name, pattern[1:] if negated else pattern):
            if negated:
                return False
            found = True
    return found


def read_entries(files: tuple[str, ...], name: str) -> list[HostKeyEntry]:
    """Every line of the known_hosts ``files`` filed under ``name``, markers kept. A file that
    exists but cannot be read, or a line whose key is not base64, is BadInput (file and line)."""
    entries: list[HostKeyEntry] = []
    for path in files:
        if not os.path.isfile(path):
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise BadInput(f"cannot read known_hosts file {path}: {reason}") from None
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = None
            if fields[0].startswith("@"):
                marker = MARKERS.get(fields[0])
                if marker is None:  # an unknown marker: OpenSSH skips the line
                    continue
                fields = fields[1:]
            if len(fields) < 3 or not host_matches(name, fields[0]):
                continue
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except (binascii.Error, ValueError):
                raise BadInput(
                    f"cannot read known_hosts file {path}: line {number} has no valid key",
                    hint="fix or remove the broken line (ssh-keygen -F HOST -f FILE shows entries)",
                ) from None
            entries.append(HostKeyEntry(path, number, marker, fields[1], blob))
    return entries


def check_not_revoked(
    offered: paramiko.PKey, name: str, files: tuple[str, ...], revoked_file: str | None
) -> None:
    """AuthError when the offered host key is revoked: by an ``@revoked`` line for the host in
    any known_hosts file (user or global), or in the ``RevokedHostKeys`` file. As OpenSSH does,
    a revocation file that cannot be read or understood refuses the connection too
    (openssh-portable sshconnect.c@V_9_9_P2:1517-1535, authfile.c:445-469)."""
    blob, kind, print_ = offered.asbytes(), offered.get_name(), fingerprint(offered)
    for entry in read_entries(files, name):
        if entry.marker == "revoked" and entry.blob == blob:
            raise AuthError(
                f"D601's host key {kind} {print_} is REVOKED (@revoked in {entry.path} line "
                f"{entry.line}); refusing to connect",
                hint="the key was revoked on purpose: find out why, and give D601 a new host key",
            )
    if revoked_file is None:
        return
    try:
        data = Path(revoked_file).read_bytes()
    except OSError as exc:
        raise AuthError(
            f"RevokedHostKeys file {revoked_file} cannot be read ({exc.strerror}); refusing "
            "to connect, as OpenSSH does, since revocation cannot be checked",
            hint="fix the RevokedHostKeys path in ~/.ssh/config, or remove the setting",
        ) from None
    if data.startswith(KRL_MAGIC):
        _check_krl(revoked_file, offered)
        return
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            listed = base64.b64decode(fields[1], validate=True) if len(fields) > 1 else None
        except (binascii.Error, ValueError):
            listed = None
        if listed is None:
            raise AuthError(
                f"RevokedHostKeys file {revoked_file} line {number} is not a public key; "
                "refusing to connect, as OpenSSH does, since revocation cannot be checked",
                hint="fix that line (one public key per line, or a KRL from ssh-keygen -k)",
            )
        if listed == blob:
            raise AuthError(
                f"D601's host key {kind} {print_} is REVOKED (listed in RevokedHostKeys "
                f"{revoked_file} line {number}); refusing to connect",
                hint="the key was revoked on purpose: find out why, and give D601 a new host key",
            )


def _check_krl(path: str, offered: paramiko.PKey) -> None:
    """A binary KRL, checked by OpenSSH's own ``ssh-keygen -Q`` (exit 0 ok, 1 revoked)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise AuthError(
            f"RevokedHostKeys {path} is a KRL and ssh-keygen is not installed to check it; "
            "refusing to connect rather than ignore a revocation",
            hint="install OpenSSH's ssh-keygen, or list revoked keys as plain public keys",
        )
    with tempfile.TemporaryDirectory() as tmp:
        pub = Path(tmp) / "host.pub"
        pub.write_text(f"{offered.get_name()} {offered.get_base64()}\n")
        try:
            done = subprocess.run(
                [keygen, "-Q", "-f", path, str(pub)], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
    if done is not None and done.returncode == 0:
        return
    if done is not None and done.returncode == 1 and b"REVOKED" in done.stdout:
        raise AuthError(
            f"D601's host key {offered.get_name()} {fingerprint(offered)} is REVOKED (KRL "
            f"{path}); refusing to connect",
            hint="the key was revoked on purpose: find out why, and give D601 a new host key",
        )
    raise AuthError(
        f"RevokedHostKeys {path} could not be checked (ssh-keygen -Q failed); refusing to "
        "connect, as OpenSSH does",
        hint="check the KRL with ssh-keygen -Q -f FILE KEY.pub",
    )
