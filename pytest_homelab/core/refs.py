"""References a user types that every phase reads: workload targets (``NS/KIND/NAME``) and
paths on D601. Settings validate them here, so core owns them."""

from __future__ import annotations

import re

from pytest_homelab.core.outcomes import BadInput

PATH_PART = re.compile(r"[A-Za-z0-9._-]+")
HOME_PREFIX = "$HOME/"

_KIND_ALIASES = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
}
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_target(text: str) -> tuple[str, str, str]:
    """``NS/NAME`` or ``NS/KIND/NAME`` (kind: deployment, statefulset, daemonset or their short
    names) → (namespace, kind, name). Raises BadInput."""
    parts = text.strip().split("/")
    if len(parts) == 2:
        namespace, kind, name = parts[0], "Deployment", parts[1]
    elif len(parts) == 3 and parts[1].lower() in _KIND_ALIASES:
        namespace, kind, name = parts[0], _KIND_ALIASES[parts[1].lower()], parts[2]
    else:
        raise BadInput(
            f"target {text!r} is not NS/NAME or NS/KIND/NAME",
            hint="e.g. apps/web or apps/statefulset/db",
        )
    if not _LABEL.fullmatch(namespace) or not _SUBDOMAIN.fullmatch(name):
        raise BadInput(f"target {text!r}: namespace must be a DNS label and name a DNS subdomain")
    return namespace, kind, name


def normalize_remote_path(text: str) -> str:
    """An absolute path, or ``$HOME/…`` (``~/…`` is accepted and rewritten): D601 expands
    ``$HOME`` itself. Parts are plain names; ``..``, empty parts, shell characters are refused."""
    value = text.strip()
    if value.startswith("~/"):
        value = HOME_PREFIX + value[2:]
    if value.startswith(HOME_PREFIX):
        parts = value[len(HOME_PREFIX) :].split("/")
    elif value.startswith("/"):
        parts = value[1:].split("/")
    else:
        raise BadInput(f"remote path {text!r} must be absolute or start with ~/ or $HOME/")
    parts = [p for p in parts if p != ""] if value.endswith("/") else parts
    if not parts or any(not PATH_PART.fullmatch(p) or p in {".", ".."} for p in parts):
        raise BadInput(f"remote path {text!r}: use plain names (letters, digits, . _ -), no '..'")
    return (HOME_PREFIX if value.startswith(HOME_PREFIX) else "/") + "/".join(parts)


_HEX = re.compile(r"[0-9a-f]{7,40}")
_WORDS = re.compile(r"[^0-9A-Za-z]+")


def sha_token_matches(token: str, sha: str) -> bool:
    """A token names the commit: the full sha, or a prefix of it of at least 7 hex digits (the
    rule for image tags, and for the version a service answers with)."""
    token, sha = token.lower(), sha.lower()
    if not _HEX.fullmatch(token) or not _HEX.fullmatch(sha):
        return False
    return sha.startswith(token) or token.startswith(sha)


def commit_tokens(text: str) -> list[str]:
    """The words of ``text`` (split on anything but letters and digits) that look like commit
    shas: 7 to 40 hex digits."""
    return [w for w in _WORDS.split(text.lower()) if _HEX.fullmatch(w)]
