"""Running the checks suite as an in-process pytest session and turning its JUnit into a verdict."""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_homelab.core.outcomes import SIGNAL_EXIT_CODES, BadInput, Terminated, fold_exit_codes
from pytest_homelab.core.settings import (
    OPTIONS_BY_KEY,
    Settings,
    repo_trusted,
    user_config_name,
)
from pytest_homelab.report.junit import CheckRecord, exit_code, read_junit
from pytest_homelab.report.verdict import render_json, render_text

PACKAGED_SUITE = Path(__file__).parents[1] / "checks"


def own_checks_dir(repo_root: Path) -> Path | None:
    """The repo's own ``checks/`` when it has checks of its own (not the shipped suite itself)."""
    own = repo_root / "checks"
    if not own.is_dir() or not any(own.glob("test_*.py")):
        return None
    if own.resolve() == PACKAGED_SUITE.resolve():
        return None  # a link to the shipped suite (as in pytest-homelab's own repository)
    return own


def suites(settings: Settings) -> list[Path]:
    """What a session runs: the shipped checks, plus (``own_checks = "add"``) or instead of them
    (``"replace"``) the repo's own ``checks/`` — only in a repository the user trusts
    (``trusted_repos`` in the user's config), since its checks are code of the branch under test."""
    own = own_checks_dir(settings.repo_root)
    if own is None:
        return [PACKAGED_SUITE]
    if not repo_trusted(settings):
        print(
            f"homelab: {own} was not run: the repository is not trusted (its checks are code of "
            f"the branch under test); to run them, add {settings.repo_root} to trusted_repos in "
            f"{user_config_name(settings.environ)}",
            file=sys.stderr,
        )
        return [PACKAGED_SUITE]
    return [own] if settings.own_checks == "replace" else [PACKAGED_SUITE, own]


def default_junit_path(verb: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "homelab" / f"{verb}.xml"


def pytest_args(
    suite: Path | list[Path],
    markexpr: str,
    junit: Path,
    flags: Mapping[str, object | None],
    extra: Sequence[str] = (),
) -> list[str]:
    dirs = suite if isinstance(suite, list) else [suite]
    shipped_only = dirs == [PACKAGED_SUITE]
    args = [
        *(str(d) for d in dirs),
        "-m",
        markexpr,
        f"--junitxml={junit}",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "--tb=short",
    ]
    if not shipped_only:
        # Two directories: pytest would look for an ini file above both; take none, and say
        # what the shipped suite's pytest.ini says.
        args += ["-c", os.devnull, "--rootdir", str(dirs[-1].parent), "--import-mode=importlib"]
    if shipped_only or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        # The shipped suite needs this plugin and pytest-timeout, nothing else: other plugins
        # installed alongside (hypothesis, say) only cost time, up to 150 ms at the summary.
        args += ["-p", "pytest_homelab.plugin", "-p", "pytest_timeout"]
    if shipped_only:
        # Its warnings would land in output the verdict never shows, and the full garbage
        # collections it forces at the session's end cost 30 ms or more after the verdict.
        args += ["-p", "no:unraisableexception"]
    if logging_plugin_off(dirs, extra):
        # Nor does the verdict show the log records pytest's logging plugin collects in each
        # phase of each check (the shipped checks log nothing; the libraries' records are
        # dropped by quiet_library_logs); its handlers cost 40 ms per 1000 checks.
        args += ["-p", "no:logging"]
    for key, value in flags.items():
        option = OPTIONS_BY_KEY[key]
        if value is None:
            continue
        if option.boolean:
            if str(value).lower() in {"1", "true", "yes", "on"}:
                args.append(option.flag)
            continue
        args += [option.flag, str(value)]
    return args + list(extra)


def logging_plugin_off(dirs: list[Path], extra: Sequence[str] = ()) -> bool:
    """Whether the session runs without pytest's logging plugin: only the shipped suite's, and
    only when no log option is asked for (``--log-level``, ``-o log_cli=true`` in
    ``PYTEST_ADDOPTS`` or ``extra``), which pytest would refuse without the plugin."""
    if dirs != [PACKAGED_SUITE]:
        return False  # a repository's own checks may read caplog or log records
    try:
        tokens = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *extra]
    except ValueError:
        return False  # pytest says what is wrong with the variable; the plugin stays
    return not any(token.startswith("--log") or "log_" in token for token in tokens)


@contextlib.contextmanager
def _plugin_autoload(enabled: bool) -> Iterator[None]:
    """Without autoload, the session loads only the plugins ``pytest_args`` names (pytest reads
    the variable when the session starts; ``--disable-plugin-autoload`` needs pytest 8.4)."""
    name = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
    before = os.environ.get(name)
    if not enabled:
        os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def quiet_library_logs(enabled: bool) -> Iterator[None]:
    """Drop log records nobody handles, as pytest's logging plugin (off in the shipped suite's
    session) did by capturing them: without a handler, Python prints a library's warnings
    (urllib3's "Connection pool is full", paramiko's) on stderr through ``logging.lastResort``."""
    if not enabled:
        yield
        return
    root, handler = logging.getLogger(), logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _forget_modules(dirs: list[Path]) -> None:
    """Drop the repo's check modules from ``sys.modules`` after a session: pytest's importlib
    mode would hand a later in-process session (``work land``'s retry, a test) the module it
    imported before, not the file as it is now."""
    roots = [d.resolve() for d in dirs]
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and any(Path(file).resolve().is_relative_to(root) for root in roots):
            del sys.modules[name]


def exit_without_collecting() -> None:
    """Freeze the garbage collector when the process exits (registered once).

    A session leaves pytest, the HTTP and Kubernetes clients and every check's objects behind;
    the collections during interpreter shutdown then walk all of them, 70-150 ms after the
    verdict is printed (measured: 82 ms → 13 ms for the modules a rollout session imports).
    Nothing needs them: Python does not promise finalizers at exit, and files are closed.
    """
    global _FREEZE_AT_EXIT
    if not _FREEZE_AT_EXIT:
        _FREEZE_AT_EXIT = True
        atexit.register(gc.freeze)


_FREEZE_AT_EXIT = False


def run_checks(
    settings: Settings,
    *,
    verb: str,
    markexpr: str,
    flags: Mapping[str, object | None],
    junitxml: str | None = None,
    as_json: bool = False,
    extra_args: list[str] | None = None,
    report: Mapping[str, object] | None = None,
    commands: bool = True,
) -> int:
    """Run the ``markexpr`` checks, read the JUnit back, print the verdict, return the code.
    ``report`` adds the verb's own facts to the JSON document (e.g. what work land pushed);
    ``commands=False`` prints no ``next:`` command (the demo's runs are gone once it ends)."""
    import pytest

    junit = Path(junitxml) if junitxml else default_junit_path(verb)
    try:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.unlink(missing_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot write the JUnit file {junit}: {exc.strerror}") from None
    dirs = suites(settings)
    args = pytest_args(dirs, markexpr, junit, flags, extra_args or [])
    captured = io.StringIO()
    watch = _SignalWatch()
    with (
        contextlib.redirect_stdout(captured),
        _plugin_autoload(dirs != [PACKAGED_SUITE]),
        quiet_library_logs(logging_plugin_off(dirs, extra_args or [])),
    ):
        try:
            code = pytest.main(args, plugins=[watch])
        finally:
            _forget_modules([d for d in dirs if d != PACKAGED_SUITE])
    exit_without_collecting()
    records: list[CheckRecord] = []
    if junit.is_file():
        records = read_junit(junit)
    if watch.signal is not None:
        # The JUnit already says which check was running and which were not reached.
        print(f"homelab: interrupted by {watch.signal}", file=sys.stderr)
        result = fold_exit_codes([SIGNAL_EXIT_CODES[watch.signal], exit_code(records)])
    elif not records or code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        sys.stderr.write(captured.getvalue())
        if not records:
            raise BadInput(
                f"no checks ran (pytest exit {int(code)})",
                hint="read pytest's output above; a usage error names the setting to fix",
            )
        result = exit_code(records)
    else:
        result = exit_code(records)
    if as_json:
        print(json.dumps({**(report or {}), **render_json(records, junit, result)}, indent=2))
    else:
        for line in render_text(records, junit, result, commands=commands):
            print(line)
    return result


class _SignalWatch:
    """Which signal ended the session, if one did. pytest also reports its own
    ``Session.Interrupted`` (collection errors) through this hook; that is no signal."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        import pytest

        value = excinfo.value
        if isinstance(value, KeyboardInterrupt) and not isinstance(
            value, pytest.Session.Interrupted
        ):
            self.signal = "SIGTERM" if isinstance(value, Terminated) else "SIGINT"
