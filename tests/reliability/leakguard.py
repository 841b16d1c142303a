"""The secret leak guard: a test fails if a token or Vault secret shows up anywhere it left.

It looks at everything a test leaves behind: stdout and stderr (also what the test read with
``capsys.readouterr()``), log records, the failure text, ``record_property`` values (they go to
JUnit), files written under the test's ``tmp_path`` (JUnit, logs) and any text the test hands to
:meth:`LeakGuard.record`. The secrets are every value wrapped in a
:class:`~pytest_homelab.core.secrets.Secret` in this process, the values of ``WOODPECKER_TOKEN``,
``WP_TOKEN`` and ``VAULT_TOKEN`` while the test ran, and what the test registers with
:meth:`LeakGuard.watch`. Values shorter than 8 characters are ignored (too many false hits).

Use: import ``leak_guard`` and ``pytest_runtest_makereport`` into a conftest (tests/reliability
does, with ``leak_guard`` autouse there).
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.core.secrets import known_secrets

SECRET_ENV = ("WOODPECKER_TOKEN", "WP_TOKEN", "VAULT_TOKEN")
MIN_LENGTH = 8
MAX_FILE = 4 * 1024 * 1024
SKIP_DIRS = {".git", "__pycache__", "kubecache"}

TOTALS: Counter[str] = Counter()  # over the session: tests guarded, texts and files scanned

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
ENV_SECRETS = pytest.StashKey[set[str]]()


def masked(secret: str) -> str:
    """How a found secret is named in a failure: never the value itself."""
    return f"{secret[:2]}***({len(secret)} chars)"


class LeakGuard:
    """What one test must not leak, and the texts and files it produced."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.values: set[str] = set()
        self.texts: list[tuple[str, str]] = []
        self.roots: list[Path] = []
        self.findings: list[str] = []
        self.checked_texts = 0
        self.checked_files = 0

    def watch(self, *values: str) -> None:
        """Treat ``values`` as secrets too (tokens a test hands to a simulator, say)."""
        self.values.update(v for v in values if len(v) >= MIN_LENGTH)

    def record(self, where: str, text: str) -> None:
        """A text the test produced (progress, an exception's text); scanned at the end."""
        self.texts.append((where, text))

    def watch_dir(self, root: Path) -> None:
        """Scan the files written under ``root`` during the test too."""
        self.roots.append(root)

    def secrets(self, extra: Iterable[str] = ()) -> set[str]:
        found = {s for s in known_secrets() if len(s) >= MIN_LENGTH}
        found |= self.values
        found |= {s for s in extra if len(s) >= MIN_LENGTH}
        return found

    def scan_text(self, where: str, text: str, secrets: set[str]) -> None:
        self.checked_texts += 1
        for secret in secrets:
            if secret in text:
                self.findings.append(f"{masked(secret)} in {where}")

    def scan_files(self, root: Path, secrets: set[str]) -> None:
        """Every regular file under ``root`` written since the test started."""
        for path in _files(root):
            try:
                info = path.stat()
                if info.st_mtime < self.started - 1 or info.st_size > MAX_FILE:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            self.checked_files += 1
            text = data.decode("utf-8", "replace")
            for secret in secrets:
                if secret in text or secret.encode() in data:
                    self.findings.append(f"{masked(secret)} in file {path}")

    def scan_now(self, root: Path) -> None:
        """Scan ``root`` at once (for files a fixture deletes before the guard's teardown)."""
        self.scan_files(root, self.secrets(_env_secrets()))


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _env_secrets() -> set[str]:
    return {os.environ[n] for n in SECRET_ENV if len(os.environ.get(n, "")) >= MIN_LENGTH}


def _report_texts(report: pytest.TestReport) -> Iterator[tuple[str, str]]:
    when = report.when
    yield f"{when} stdout", report.capstdout
    yield f"{when} stderr", report.capstderr
    yield f"{when} log", report.caplog
    if report.longrepr is not None:
        yield f"{when} failure text", report.longreprtext
    for name, value in report.user_properties:
        yield f"JUnit property {name}", f"{name}={value}"


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Keep each phase's report (captured output, failure text, properties) for the guard, as
    the test produced it: innermost (``trylast``) and copied, so the plugin's scrubbing — the
    last net — cannot hide a leak from the guard."""
    if call.when == "call":
        item.stash[ENV_SECRETS] = _env_secrets()
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    item.stash.setdefault(REPORTS, {})[report.when] = copy.copy(report)


@pytest.fixture
def leak_guard(request: pytest.FixtureRequest) -> Iterator[LeakGuard]:
    """Fail the test (at teardown) if a secret appears in anything it produced."""
    guard = LeakGuard(time.time())
    if "tmp_path" in request.fixturenames:
        guard.watch_dir(request.getfixturevalue("tmp_path"))
    original = pytest.CaptureFixture.readouterr

    def tee(self: pytest.CaptureFixture[Any]) -> Any:
        result = original(self)
        guard.record("output read by the test", f"{result.out}\n{result.err}")
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pytest.CaptureFixture, "readouterr", tee)
        yield guard
    item = request.node
    secrets = guard.secrets(item.stash.get(ENV_SECRETS, set()) | _env_secrets())
    for report in item.stash.get(REPORTS, {}).values():
        for where, text in _report_texts(report):
            guard.scan_text(where, text, secrets)
    for where, text in guard.texts:
        guard.scan_text(where, text, secrets)
    for root in guard.roots:
        guard.scan_files(root, secrets)
    TOTALS["tests_guarded"] += 1
    TOTALS["texts_scanned"] += guard.checked_texts
    TOTALS["files_scanned"] += guard.checked_files
    TOTALS["leaks_found"] += len(guard.findings)
    TOTALS["tests_leaking" if guard.findings else "tests_clean"] += 1
    if guard.findings:
        shown = "\n  ".join(sorted(set(guard.findings))[:20])
        pytest.fail(f"a secret leaked:\n  {shown}", pytrace=False)
