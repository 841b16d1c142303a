"""Where and as whom to reach D601: ``~/.ssh/config`` (with Include) resolved into an
:class:`SSHTarget`; ProxyJump/ProxyCommand are refused rather than silently bypassed."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.secrets import Environ

if TYPE_CHECKING:
    pass


SSH_PORT = 22
CONNECT_TIMEOUT = 10.0
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
"""Read after ``~/.ssh/config`` (not with an explicit ssh_config file), as OpenSSH does."""
"""OpenSSH's default GlobalKnownHostsFile (openssh-portable pathnames.h@V_9_9_P2:29-31)."""


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to connect, after ``~/.ssh/config`` and the explicit arguments."""

    alias: str
    hostname: str
    port: int
    user: str
    key_file: str | None
    """The key file to offer (explicit, else the first readable IdentityFile)."""
    unreadable_keys: tuple[str, ...]
    """IdentityFile entries that could not be read (reported when authentication fails)."""
    look_for_keys: bool
    agent_socket: str | None
    known_hosts: tuple[str, ...]
    global_known_hosts: tuple[str, ...]
    """GlobalKnownHostsFile: keys known for every user; their ``@revoked`` lines count too."""
    revoked_host_keys: str | None
    """RevokedHostKeys: a KRL or a list of public keys never to accept."""
    host_key_alias: str | None
    connect_timeout: float
    home: str

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name the host key is filed under: ``host``, ``[host]:port`` or HostKeyAlias."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == SSH_PORT else f"[{self.hostname}]:{self.port}"


def resolve_ssh_target(
    host: str,
    *,
    port: int | None = None,
    user: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    ssh_config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float | None = None,
    global_known_hosts: tuple[str, ...] = GLOBAL_KNOWN_HOSTS,
    system_config: str | None = SYSTEM_SSH_CONFIG,
) -> SSHTarget:
    """Apply ``~/.ssh/config`` (or ``ssh_config``) to ``host``; explicit arguments win."""
    # Only what SSH needs, and never a plain copy of the environment in a frame (``-l``).
    env = Environ(os.environ if environ is None else environ).only("HOME", "SSH_AUTH_SOCK")
    environ = None
    home = env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise BadInput(f"D601 host {host!r} is not a host name or ssh_config alias")
    options = _ssh_config_options(host, ssh_config, home, system_config)
    for unsupported in ("proxyjump", "proxycommand"):
        value = options.get(unsupported)
        if value and str(value).lower() != "none":
            raise BadInput(
                f"ssh_config gives {unsupported} for {host!r}; pytest-homelab connects directly "
                "and does not follow ProxyJump/ProxyCommand",
                hint="give D601 an address this machine reaches directly, or run the CLI on D601 "
                "with --d601-transport local",
            )
    hostname = str(options.get("hostname") or host)
    resolved_port = port if port is not None else _int_option(options, "port", SSH_PORT, host)
    if not 0 < resolved_port < 65536:
        raise BadInput(f"D601 SSH port {resolved_port} is not a TCP port")
    resolved_user = user or str(options.get("user") or "") or pwd.getpwuid(os.getuid()).pw_name

    unreadable: list[str] = []
    chosen_key: str | None = None
    if key_file is not None:
        chosen_key = _expand(os.fspath(key_file), home)
        if not os.path.isfile(chosen_key):
            raise BadInput(
                f"SSH key file {chosen_key} does not exist",
                hint="pass the private key's path (not the .pub), or leave it unset to use "
                "~/.ssh/config, ssh-agent and the usual keys",
            )
    else:
        for candidate in options.get("identityfile") or []:
            if os.access(candidate, os.R_OK) and os.path.isfile(candidate):
                chosen_key = candidate
                break
            unreadable.append(candidate)
    configured_keys = key_file is not None or bool(options.get("identityfile"))
    identities_only = str(options.get("identitiesonly", "no")).lower() == "yes"

    agent_setting = str(options.get("identityagent") or "SSH_AUTH_SOCK")
    agent: str | None
    if agent_setting.lower() == "none" or (identities_only and configured_keys):
        agent = None
    elif agent_setting in ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"):
        agent = env.get("SSH_AUTH_SOCK") or None
    else:
        agent = agent_setting

    if known_hosts is not None:
        files = [_expand(os.fspath(known_hosts), home)]
    else:
        files = [os.path.join(home, ".ssh", "known_hosts")]
        for extra in split_args(str(options.get("userknownhostsfile") or "")) or []:
            if extra.lower() != "none" and extra not in files:
                files.append(extra)

    # openssh-portable readconf.c@V_9_9_P2:2806-2813: the global files unless configured;
    # "none" (alone) means none.
    global_files = split_args(str(options.get("globalknownhostsfile") or "")) or list(
        global_known_hosts
    )
    if [g.lower() for g in global_files] == ["none"]:
        global_files = []
    revoked = str(options.get("revokedhostkeys") or "").strip() or None
    if revoked is not None:
        words = split_args(revoked) or [""]
        revoked = None if words[0].lower() == "none" else words[0]  # readconf.c:2955
    if revoked is not None and "%" in revoked.replace("%%", ""):
        raise BadInput(
            f"ssh_config RevokedHostKeys {revoked!r} for {host!r} uses % tokens that "
            "pytest-homelab cannot expand, so the revocation could not be enforced; refusing",
            hint="give RevokedHostKeys a plain path (~ and %d are understood)",
        )

    timeout = connect_timeout
    if timeout is None:
        timeout = float(_int_option(options, "connecttimeout", 0, host)) or CONNECT_TIMEOUT
    if timeout <= 0:
        raise BadInput(f"SSH connect timeout {timeout:g} s is not positive")
    return SSHTarget(
        alias=host,
        hostname=hostname,
        port=resolved_port,
        user=resolved_user,
        key_file=chosen_key,
        unreadable_keys=tuple(unreadable),
        look_for_keys=not configured_keys,
        agent_socket=agent,
        known_hosts=tuple(files),
        global_known_hosts=tuple(global_files),
        revoked_host_keys=revoked.replace("%%", "%") if revoked else None,
        host_key_alias=str(options["hostkeyalias"]) if options.get("hostkeyalias") else None,
        connect_timeout=timeout,
        home=home,
    )


def _int_option(options: Mapping[str, Any], name: str, default: int, host: str) -> int:
    value = options.get(name)
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise BadInput(f"ssh_config {name} {value!r} for {host!r} is not a number") from None


_PATH_KEYS = re.compile(
    r"^(\s*(?:identityfile|userknownhostsfile|identityagent|certificatefile|hostkeyalias"
    r"|globalknownhostsfile|revokedhostkeys)"
    r"(?:\s*=\s*|\s+))(.*)$",
    re.IGNORECASE,
)
_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.*)$", re.IGNORECASE)


def _expand(path: str, home: str) -> str:
    """``~``/``%d`` with the given HOME (paramiko would use the process's)."""
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    return path.replace("%d", home)


def _ssh_config_options(
    host: str, ssh_config: str | os.PathLike[str] | None, home: str, system_config: str | None
) -> Any:
    """The options for ``host``: the given file only (like ``ssh -F``), else ``~/.ssh/config``
    and then the system-wide file, the first value of each option winning, as OpenSSH reads
    them (so a RevokedHostKeys an administrator set there is honoured too)."""
    texts: list[str] = []
    if ssh_config is not None:
        path = _expand(os.fspath(ssh_config), home)
        if not os.path.isfile(path):
            raise BadInput(f"ssh_config file {path} does not exist")
        texts.append(_config_text(path, home, 0))
    else:
        path = os.path.join(home, ".ssh", "config")
        if os.path.isfile(path):
            texts.append(_config_text(path, home, 0))
        if system_config is not None and os.path.isfile(system_config):
            base = os.path.dirname(system_config)
            texts.append(_config_text(system_config, home, 0, base=base))
            path = f"{path} or {system_config}"
    if not texts:
        return {}
    import paramiko

    text = "\n".join(texts)  # every line checked, errors name their file and line
    failure = ""
    try:
        return paramiko.SSHConfig.from_text(text).lookup(host)
    except Exception as exc:
        failure = type(exc).__name__  # never its text: it may quote the line
    raise BadInput(
        f"cannot read ssh_config {path} (or a file it includes): paramiko failed with {failure}",
        hint="check its Host and Match lines with `ssh -G HOST`, which names the bad line",
    )


_KEYWORD = re.compile(r"\s*([A-Za-z][A-Za-z0-9]*)(\s*=\s*|\s+)(.*)$")


def split_args(text: str) -> list[str] | None:
    """OpenSSH's way of splitting a config value into words (misc.c ``argv_split``): quotes
    group, ``\\`` escapes a quote, a backslash or (unquoted) a space, ``#`` starts a comment.
    None when a quote is not closed. openssh-portable misc.c@V_9_9_P2 argv_split."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote, word = "", []
        while i < n:
            char = text[i]
            nxt = text[i + 1] if i + 1 < n else ""
            if char == "\\" and ((nxt in ("'", '"', "\\") and nxt) or (not quote and nxt == " ")):
                word.append(nxt)
                i += 1
            elif not quote and char in " \t":
                break
            elif not quote and char in "\"'":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            i += 1
        if quote:
            return None
        args.append("".join(word))
    return args


def _config_line(path: str, number: int, line: str) -> tuple[str, list[str]] | None:
    """``(keyword, words)`` of one line, None for a blank or comment line; BadInput naming the
    file and line (never its text, which may hold anything) when OpenSSH would refuse it too."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    match = _KEYWORD.match(stripped)
    if match is None:
        raise BadInput(
            f"ssh_config {path} line {number}: not a 'Keyword value' line",
            hint="fix that line (ssh -G HOST shows how OpenSSH reads the file)",
        )
    words = split_args(match.group(3))
    if words is None:
        raise BadInput(
            f"ssh_config {path} line {number}: invalid quotes (a quote is not closed)",
            hint="close the quote on that line; OpenSSH refuses the file too",
        )
    if not words:
        raise BadInput(f"ssh_config {path} line {number}: no value after {match.group(1)}")
    return match.group(1).lower(), words


def _config_text(path: str, home: str, depth: int, base: str | None = None) -> str:
    """The file with Include inlined and ``~`` expanded against ``home`` (paramiko does neither).

    Every line of every file is split as OpenSSH splits it first: a malformed line is BadInput
    naming its file and line number, before paramiko (whose errors name neither) sees it."""
    if depth > 16:
        raise BadInput(f"ssh_config Include nests too deep at {path}")
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise BadInput(f"cannot read ssh_config {path}: {reason}") from None
    lines: list[str] = []
    for number, line in enumerate(content.splitlines(), 1):
        parsed = _config_line(path, number, line)
        if parsed is None:
            continue
        keyword, words = parsed
        if keyword == "include":
            for pattern in words:
                pattern = _expand(pattern, home)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base or os.path.join(home, ".ssh"), pattern)
                for found in sorted(glob.glob(pattern)):
                    lines.append(_config_text(found, home, depth + 1, base))
            continue
        if keyword in ("host", "match"):
            try:
                shlex.split(" ".join(words))  # paramiko splits these with shlex
            except ValueError:
                raise BadInput(
                    f"ssh_config {path} line {number}: a {keyword} pattern paramiko cannot read",
                    hint="write the patterns without backslashes or stray quotes",
                ) from None
        keyed = _PATH_KEYS.match(line)
        if keyed:
            values = [_expand(word, home) for word in words]
            line = keyed.group(1) + " ".join(values)
        lines.append(line)
    return "\n".join(lines)
