"""Run commands on the CI host D601: over SSH (paramiko) or locally when the CLI runs on D601.

Both transports implement :class:`Remote`; a UniDesk ``/api/dispatch`` host.ssh dispatcher can be a
third. :class:`SSHRemote` connects on its first :meth:`~SSHRemote.run` and keeps that one
connection for every later call (one reconnect if it was lost between calls). Host keys are checked
strictly: an unknown or changed key refuses before any authentication, and nothing is ever added to
known_hosts. ``~/.ssh/config`` then ``/etc/ssh/ssh_config`` (HostName, Port, User, IdentityFile,
IdentitiesOnly, IdentityAgent, UserKnownHostsFile, GlobalKnownHostsFile, RevokedHostKeys,
HostKeyAlias, ConnectTimeout, Include) and ssh-agent are honoured; a revoked host key (listed in
RevokedHostKeys, or ``@revoked`` in any known_hosts file) is refused, with ``HOME``
and ``SSH_AUTH_SOCK`` taken from the ``environ`` given, never from ``os.environ`` behind the
caller's back. ProxyJump/ProxyCommand are refused rather than silently bypassed.

paramiko is imported only when an :class:`SSHRemote` is built, so the CLI starts without it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pytest_homelab.core.outcomes import AuthError, BadInput, InfraError
from pytest_homelab.core.secrets import Environ
from pytest_homelab.e2e.hostkeys import (
    HOST_KEY_FILES,
    check_not_revoked,
    fingerprint,
    known_keys,
    preferred_key_types,
)
from pytest_homelab.e2e.ssh_config import (
    CONNECT_TIMEOUT,
    GLOBAL_KNOWN_HOSTS,
    SSH_PORT,
    SYSTEM_SSH_CONFIG,
    resolve_ssh_target,
)

if TYPE_CHECKING:
    import paramiko


KEEPALIVE_SECONDS = 15
TRANSPORTS = ("ssh", "local")
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
"""Tried from ``$HOME/.ssh`` when no key file is configured (as OpenSSH does)."""

_CHUNK = 65536
_DROP_GRACE = 0.5  # how long a vanished exit status may take to show up as a dead transport


@dataclass(frozen=True)
class RemoteResult:
    """What a command left behind: exit status (negative: killed by a signal) and both streams."""

    returncode: int
    stdout: bytes
    stderr: bytes


@runtime_checkable
class Remote(Protocol):
    """Runs shell commands on D601."""

    description: str
    """For messages, e.g. ``ssh root@127.0.0.2:2222`` or ``local``."""

    def run(
        self, command: str, *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> RemoteResult: ...

    def close(self) -> None: ...


def open_remote(transport: str, host: str | None, **kwargs: Any) -> Remote:
    """The transport named by the settings: ``ssh`` (to ``host``) or ``local``.

    ``kwargs`` are :class:`SSHRemote`'s keyword arguments; ``local`` uses only ``environ``.
    """
    if transport == "local":
        return LocalRemote(environ=kwargs.get("environ"))
    if transport == "ssh":
        if not host:
            raise BadInput(
                "the ssh transport to D601 needs a host",
                hint="set --d601-host (a host name or ~/.ssh/config alias), or use "
                "--d601-transport local when running on D601 itself",
            )
        return SSHRemote(host, **kwargs)
    raise BadInput(
        f"unknown D601 transport {transport!r}", hint=f"use one of: {', '.join(TRANSPORTS)}"
    )


# -- local ------------------------------------------------------------------------------------


class LocalRemote:
    """Runs ``bash -c command`` on this machine, for when the CLI runs on D601 itself."""

    description = "local"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = Environ(os.environ if environ is None else environ)

    def run(
        self, command: str, *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> RemoteResult:
        # Popen rather than subprocess.run: on a timeout the whole process group must die, and a
        # grandchild that escaped it must not keep us waiting on the pipes.
        proc = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(self._environ),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise InfraError(
                f"command timed out on D601 ({self.description}) after {timeout:g} s; "
                "its process group was killed",
                hint="raise the timeout, or look at what the command waits for",
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        return RemoteResult(proc.returncode, out, err)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalRemote:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=1)
    except subprocess.TimeoutExpired:  # a detached grandchild still holds a pipe
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


# -- ssh ----------------------------------------------------------------------------------------


class SSHRemote:
    """D601 over SSH: one paramiko connection, opened on the first :meth:`run`."""

    def __init__(
        self,
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
    ) -> None:
        """``connect_timeout`` defaults to ssh_config's ConnectTimeout, else 10 s.
        ``global_known_hosts`` are OpenSSH's defaults unless ssh_config's GlobalKnownHostsFile
        names others (tests give their own)."""
        self.target = resolve_ssh_target(
            host,
            port=port,
            user=user,
            key_file=key_file,
            known_hosts=known_hosts,
            ssh_config=ssh_config,
            environ=environ,
            connect_timeout=connect_timeout,
            global_known_hosts=global_known_hosts,
            system_config=system_config,
        )
        t = self.target
        self.description = f"ssh {t.user}@{t.address}"
        if t.alias != t.hostname:
            self.description += f" ({t.alias})"
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SSHRemote:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    # -- running ------------------------------------------------------------------------------

    def run(
        self, command: str, *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> RemoteResult:
        """Run ``command`` by the login shell on D601; ``stdin`` is sent, then EOF."""
        import paramiko

        transport = self._connected()
        try:
            channel = transport.open_session(timeout=self.target.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError):
            # the connection died between commands and nothing was started: reconnect once
            self._forget()
            transport = self._connected()
            try:
                channel = transport.open_session(timeout=self.target.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._forget()
                raise self._dropped(f"before the command started ({exc})", started=False) from None
        try:
            return self._exchange(transport, channel, command, stdin, timeout)
        finally:
            channel.close()

    def _exchange(
        self,
        transport: paramiko.Transport,
        channel: paramiko.Channel,
        command: str,
        stdin: bytes | None,
        timeout: float,
    ) -> RemoteResult:
        import paramiko

        deadline = time.monotonic() + timeout
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if not transport.is_active():
                self._forget()
                raise self._dropped(f"before the command started ({exc})", started=False) from None
            raise InfraError(
                f"D601 ({self.description}) refused to run the command: {exc}",
                hint="check the account's shell and any forced command on D601",
            ) from None
        out, err = bytearray(), bytearray()
        # Both streams are drained while stdin is written, so no buffer can fill up and deadlock.
        threads = [
            threading.Thread(target=_drain, args=(channel.recv, out), daemon=True),
            threading.Thread(target=_drain, args=(channel.recv_stderr, err), daemon=True),
        ]
        if stdin:
            threads.append(threading.Thread(target=_feed, args=(channel, stdin), daemon=True))
        else:
            channel.shutdown_write()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = not any(t.is_alive() for t in threads) and channel.status_event.wait(
            max(0.0, deadline - time.monotonic())
        )
        if not finished:
            channel.close()
            if not transport.is_active():
                self._forget()
                raise self._dropped("while the command ran")
            raise InfraError(
                f"command timed out on D601 ({self.description}) after {timeout:g} s; the channel "
                "was closed but the command may still be running there",
                hint="raise the timeout, or look on D601 at what the command waits for",
            )
        if not channel.exit_status_ready() or channel.exit_status == -1:
            # No exit status: either the command died of a signal (OpenSSH then sends an
            # exit-signal that paramiko ignores) or the connection went down under us.
            grace = time.monotonic() + _DROP_GRACE
            while transport.is_active() and time.monotonic() < grace:
                time.sleep(0.02)
            if not transport.is_active():
                self._forget()
                raise self._dropped("while the command ran")
            return RemoteResult(-1, bytes(out), bytes(err))
        return RemoteResult(channel.exit_status, bytes(out), bytes(err))

    def _dropped(self, when: str, *, started: bool = True) -> InfraError:
        if started:
            return InfraError(
                f"the SSH connection to D601 ({self.description}) dropped {when}; the remote "
                "command may still be running there",
                hint="check D601 before running it again; the next command reconnects",
            )
        return InfraError(
            f"the SSH connection to D601 ({self.description}) dropped {when}; nothing ran",
            hint="check that D601 is reachable; the next command reconnects",
        )

    def _forget(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    def _connected(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self._transport
            if self._transport is not None:
                self._transport.close()
            self._transport = None
            self._transport = self._connect()
            return self._transport

    # -- connecting ---------------------------------------------------------------------------

    def _connect(self) -> paramiko.Transport:
        import paramiko

        t = self.target
        known = known_keys(t.known_hosts + t.global_known_hosts, t.known_hosts_name)
        try:
            sock = socket.create_connection((t.hostname, t.port), timeout=t.connect_timeout)
        except socket.gaierror as exc:
            raise InfraError(
                f"cannot resolve D601 host {t.hostname!r} ({self.description}): {exc.strerror}",
                hint="check the host name or the HostName in ~/.ssh/config",
            ) from None
        except TimeoutError:
            raise InfraError(
                f"D601 at {t.address} did not answer within {t.connect_timeout:g} s",
                hint="check that D601 is up and reachable from here (VPN, firewall)",
            ) from None
        except OSError as exc:
            raise InfraError(
                f"cannot connect to D601 at {t.address}: {exc.strerror or exc}",
                hint="check that D601 is up and its sshd listens on that port",
            ) from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = t.connect_timeout
            transport.handshake_timeout = t.connect_timeout
            if known:
                preferred = preferred_key_types({name for _, name, _ in known})
                options = transport.get_security_options()
                options.key_types = [
                    *[k for k in preferred if k in options.key_types],
                    *[k for k in options.key_types if k not in preferred],
                ]
            try:
                # start_client returns quietly when its timeout runs out mid-handshake
                transport.start_client(timeout=t.connect_timeout)
                server_key = transport.get_remote_server_key()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                reason = transport.get_exception() or exc
                raise InfraError(
                    f"D601 at {t.address} did not complete the SSH handshake within "
                    f"{t.connect_timeout:g} s: {reason}",
                    hint="check that an SSH server listens on that port",
                ) from None
            check_not_revoked(
                server_key,
                t.known_hosts_name,
                t.known_hosts + t.global_known_hosts,
                t.revoked_host_keys,
            )
            self._check_host_key(server_key, known)
            self._authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(KEEPALIVE_SECONDS)
        return transport

    def _check_host_key(
        self, offered: paramiko.PKey, known: list[tuple[str, str, paramiko.PKey]]
    ) -> None:
        t = self.target
        name = t.known_hosts_name
        kind, print_ = offered.get_name(), fingerprint(offered)
        if any(k == kind and key.asbytes() == offered.asbytes() for _, k, key in known):
            return
        consulted = ", ".join(t.known_hosts)
        target_file = t.known_hosts[1] if len(t.known_hosts) > 1 else t.known_hosts[0]
        keyscan = "ssh-keyscan" + ("" if t.port == SSH_PORT else f" -p {t.port}")
        short = HOST_KEY_FILES.get(kind, "ecdsa")
        keyscan += f" -t {short} {shlex.quote(t.hostname)}"
        if t.host_key_alias:  # ssh-keyscan files the key under the host name, not the alias
            keyscan += " | sed " + shlex.quote(f"s/^[^ ]*/{t.host_key_alias}/")
        keyscan += f" >> {shlex.quote(target_file)}"
        server_file = f"/etc/ssh/ssh_host_{short}_key.pub"
        if not known:
            raise AuthError(
                f"D601's host key is unknown: {t.address} offered the {kind} key {print_}, "
                f"and no key for {name} is in {consulted}; refusing to connect "
                "(strict host key checking never adds keys by itself)",
                hint=f"compare the fingerprint with `ssh-keygen -lf {server_file}` run on D601 "
                f"itself (out of band), then add the key: {keyscan}",
            )
        expected = "; ".join(f"{key.get_name()} {fingerprint(key)} in {f}" for f, _, key in known)
        remove = f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(known[0][0])}"
        raise AuthError(
            f"D601's host key CHANGED for {name} ({t.address}): known_hosts has {expected}, but "
            f"the server offered {kind} {print_}. This may be a man-in-the-middle attack; "
            "refusing to connect",
            hint=f"find out why the key changed (reinstalled D601?) and verify {print_} with "
            f"`ssh-keygen -lf {server_file}` on D601 itself; only then replace the entry: "
            f"{remove} && {keyscan}",
        )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        import paramiko

        t = self.target
        tried: list[str] = [f"IdentityFile {p} (not readable)" for p in t.unreadable_keys]
        offered: set[bytes] = set()
        agent: _Agent | None = None

        def attempt(label: str, key: paramiko.PKey) -> bool:
            if key.asbytes() in offered:
                return False
            offered.add(key.asbytes())
            try:
                transport.auth_publickey(t.user, key)
            except paramiko.BadAuthenticationType as exc:
                raise AuthError(
                    f"D601 ({t.user}@{t.address}) does not accept public keys "
                    f"(it allows: {', '.join(exc.allowed_types) or 'nothing'})",
                    hint="enable PubkeyAuthentication in D601's sshd_config",
                ) from None
            except paramiko.AuthenticationException:
                tried.append(f"{label} (rejected)")
                return False
            return transport.is_authenticated()

        try:
            if t.key_file is not None:
                key = _load_key(t.key_file, tried)
                if key is not None and attempt(f"key file {t.key_file}", key):
                    return
            if t.agent_socket is not None:
                agent = _Agent.connect(t.agent_socket, tried)
                if agent is not None:
                    keys = agent.get_keys()
                    if not keys:
                        tried.append(f"ssh-agent at {t.agent_socket} (holds no keys)")
                    for agent_key in keys:
                        label = f"ssh-agent key {agent_key.get_name()} {fingerprint(agent_key)}"
                        if attempt(label, agent_key):
                            return
            else:
                tried.append("no ssh-agent (SSH_AUTH_SOCK unset or disabled)")
            if t.look_for_keys:
                found = False
                for name in DEFAULT_KEYS:
                    path = os.path.join(t.home, ".ssh", name)
                    if os.path.isfile(path):
                        found = True
                        key = _load_key(path, tried)
                        if key is not None and attempt(f"default key {path}", key):
                            return
                if not found:
                    tried.append(f"no default keys in {os.path.join(t.home, '.ssh')}")
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if transport.is_active():
                raise InfraError(
                    f"SSH authentication with D601 ({t.user}@{t.address}) broke off: {exc}",
                    hint="try again; if it persists, look at D601's sshd log",
                ) from None
            tried.append(f"then the server closed the connection ({exc or 'EOF'})")
        finally:
            if agent is not None:
                agent.close()
        raise AuthError(
            f"D601 refused SSH authentication for {t.user}@{t.address}; tried: {'; '.join(tried)}",
            hint=f"make sure the public key is in {t.user}'s ~/.ssh/authorized_keys on D601, then "
            "pass --d601-key, set IdentityFile in ~/.ssh/config, or load the key into ssh-agent",
        )


def _drain(recv: Callable[[int], bytes], into: bytearray) -> None:
    while True:
        try:
            data = recv(_CHUNK)
        except (OSError, EOFError):
            return
        if not data:
            return
        into += data


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    # A command that exits without reading its stdin closes the channel under us: as with a pipe,
    # that is not an error of ours.
    with contextlib.suppress(OSError, EOFError):
        channel.sendall(data)
        channel.shutdown_write()


def _load_key(path: str, tried: list[str]) -> paramiko.PKey | None:
    import paramiko

    encrypted = f"key file {path} (encrypted; load it into ssh-agent: ssh-add {path})"
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        tried.append(encrypted)
    except TypeError as exc:  # cryptography's way of saying the same for OpenSSH-format keys
        if "password" not in str(exc):
            raise
        tried.append(encrypted)
    except (paramiko.SSHException, OSError, ValueError) as exc:
        tried.append(f"key file {path} (unusable: {type(exc).__name__})")
    return None


class _Agent:
    """The ssh-agent at the socket given (paramiko's own Agent reads only ``os.environ``)."""

    def __init__(self, agent: paramiko.agent.AgentSSH, sock: socket.socket) -> None:
        self._agent = agent
        self._sock = sock

    @classmethod
    def connect(cls, path: str, tried: list[str]) -> _Agent | None:
        import paramiko.agent

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
            agent = paramiko.agent.AgentSSH()
            agent._connect(sock)  # type: ignore[attr-defined]  # paramiko.Agent does the same
        except (OSError, paramiko.SSHException) as exc:
            sock.close()
            tried.append(f"ssh-agent at {path} (unreachable: {exc})")
            return None
        return cls(agent, sock)

    def get_keys(self) -> tuple[paramiko.agent.AgentKey, ...]:
        return self._agent.get_keys()

    def close(self) -> None:
        self._sock.close()
