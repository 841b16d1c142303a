"""A ``homelab`` (or ``pytest``) child process whose stderr lines the test can wait for."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLI = "import sys; from pytest_homelab.cli import main; sys.exit(main())"


def _default_sigint() -> None:
    # A child of a non-interactive shell may inherit SIGINT ignored; Python then keeps
    # ignoring it. Ctrl-C in a terminal is what the tests imitate.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """Runs ``argv``; collects stdout, and stderr line by line for :meth:`wait_for`."""

    def __init__(
        self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.started = time.monotonic()
        # stdout goes to a file: a grandchild holding it open cannot delay reading it
        self._stdout = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        self.err: list[str] = []
        self.out = ""
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._read_err, daemon=True)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def homelab(
        cls, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Child:
        return cls([sys.executable, "-c", CLI, *args], cwd=cwd, env=env)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.err.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The first stderr line matching ``pattern``; fails if the child ends or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.err[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.err)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._threads[0].is_alive()):
                    raise AssertionError(
                        f"no stderr line matched {pattern!r}; stderr:\n" + "\n".join(self.err)
                    )
                self._changed.wait(min(left, 0.5))

    def signal(self, signum: int) -> float:
        """Send ``signum``; returns the monotonic time it was sent."""
        self.proc.send_signal(signum)
        return time.monotonic()

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for thread in self._threads:
            thread.join(10)
        self._stdout.seek(0)
        self.out = self._stdout.read()
        self._stdout.close()
        return code, self.out, "\n".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def environ(**extra: str) -> dict[str, str]:
    """This environment without the user's homelab settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_")) or k == "HOMELAB_KUBECTL"
    }
    env.update(extra)
    return env
