"""Running the checks suite as an in-process pytest session and turning its JUnit into a verdict."""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from pytest_homelab.core.outcomes import EXIT_BAD_INPUT, BadInput
from pytest_homelab.core.settings import OPTIONS_BY_KEY, Settings
from pytest_homelab.report.junit import CheckRecord, exit_code, read_junit
from pytest_homelab.report.verdict import render_json, render_text

PACKAGED_SUITE = Path(__file__).parents[1] / "checks"


def suite_dir(repo_root: Path) -> Path:
    """The repo's own ``checks/`` when it has checks, else the suite shipped with the package."""
    own = repo_root / "checks"
    if own.is_dir() and any(own.glob("test_*.py")):
        return own
    return PACKAGED_SUITE


def default_junit_path(verb: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "homelab" / f"{verb}.xml"


def pytest_args(
    suite: Path, markexpr: str, junit: Path, flags: Mapping[str, object | None]
) -> list[str]:
    args = [
        str(suite),
        "-m",
        markexpr,
        f"--junitxml={junit}",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "--tb=short",
    ]
    if suite == PACKAGED_SUITE or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        # The shipped suite needs this plugin and pytest-timeout, nothing else: other plugins
        # installed alongside (hypothesis, say) only cost time, up to 150 ms at the summary.
        args += ["-p", "pytest_homelab.plugin", "-p", "pytest_timeout"]
    if suite == PACKAGED_SUITE:
        # Its warnings would land in output the verdict never shows, and the full garbage
        # collections it forces at the session's end cost 30 ms or more after the verdict.
        args += ["-p", "no:unraisableexception"]
    for key, value in flags.items():
        option = OPTIONS_BY_KEY[key]
        if value is None:
            continue
        if option.boolean:
            if str(value).lower() in {"1", "true", "yes", "on"}:
                args.append(option.flag)
            continue
        args += [option.flag, str(value)]
    return args


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


def _exit_without_collecting() -> None:
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
) -> int:
    """Run the ``markexpr`` checks, read the JUnit back, print the verdict, return the code.
    ``report`` adds the verb's own facts to the JSON document (e.g. what work land pushed)."""
    import pytest

    junit = Path(junitxml) if junitxml else default_junit_path(verb)
    try:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.unlink(missing_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot write the JUnit file {junit}: {exc.strerror}") from None
    suite = suite_dir(settings.repo_root)
    args = pytest_args(suite, markexpr, junit, flags) + (extra_args or [])
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), _plugin_autoload(suite != PACKAGED_SUITE):
        code = pytest.main(args)
    _exit_without_collecting()
    records: list[CheckRecord] = []
    if junit.is_file():
        records = read_junit(junit)
    # pytest says "interrupted" for Ctrl-C and for collection errors alike; only the latter
    # leaves testcases behind.
    if code == pytest.ExitCode.INTERRUPTED and not records:
        print("homelab: interrupted", file=sys.stderr)
        return 130
    if not records or code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        sys.stderr.write(captured.getvalue())
        if not records:
            print(f"homelab: no checks ran (pytest exit {int(code)})", file=sys.stderr)
            return EXIT_BAD_INPUT
    result = exit_code(records)
    if as_json:
        print(json.dumps({**(report or {}), **render_json(records, junit, result)}, indent=2))
    else:
        for line in render_text(records, junit, result):
            print(line)
    return result
