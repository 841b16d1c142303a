"""pytest manners: fixture names that cannot collide, phase markers only where landing checks are
collected, listing the checks without settings."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import pytest_homelab.plugin as plugin
from tests.gitenv import landing_suite

CHECKS = Path(plugin.__file__).parent / "checks"
OURS = "landing check of the"


def plugin_fixtures() -> list[str]:
    from _pytest.fixtures import FixtureFunctionDefinition

    return [n for n, v in vars(plugin).items() if isinstance(v, FixtureFunctionDefinition)]


def test_every_plugin_fixture_starts_with_homelab() -> None:
    names = plugin_fixtures()
    assert len(names) >= 10
    assert [n for n in names if not n.startswith("homelab_")] == []
    # a module asking for any of them is a landing check module (markers registered for it)
    assert all(plugin._FIXTURE_NAMES.search(n.encode()) for n in names)


def test_a_suites_own_woodpecker_fixture_is_its_own(pytester: pytest.Pytester) -> None:
    """docs/simulators.md defines a ``woodpecker`` fixture: it must not meet one of ours."""
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef woodpecker():\n    return 'mine'\n"
    )
    pytester.makepyfile("def test_mine(woodpecker):\n    assert woodpecker == 'mine'\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    listed = pytester.runpytest("--fixtures", "-p", "no:cacheprovider").stdout.str()
    assert "homelab_woodpecker_token" in listed and "homelab_woodpecker_repo" in listed


def test_a_foreign_e2e_marker_keeps_its_description(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    e2e: our browser tests (slow)\n")
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.e2e\ndef test_browser():\n    pass\n"
        "\n@pytest.mark.ci\ndef test_other():\n    pass\n"
    )
    markers = pytester.runpytest("--markers", "-p", "no:cacheprovider").stdout.str()
    assert "@pytest.mark.e2e: our browser tests (slow)" in markers
    assert OURS not in markers
    # and its meaning: an e2e test of that suite runs without -m e2e, unknown ci stays unknown
    # (in a subprocess: pytest.mark caches known names across in-process sessions)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    assert result.ret != 0 and "'ci' not found in `markers`" in result.stdout.str()
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "browser")
    result.assert_outcomes(passed=1)


def landing_repo(pytester: pytest.Pytester) -> Path:
    """A git work tree with a ``checks/`` directory, as the CLI finds a repo's own suite."""
    return landing_suite(
        pytester.path,
        "import pytest\n\n@pytest.mark.ci\ndef test_green(homelab_landing):\n    pass\n",
    )


def test_the_phase_markers_are_registered_for_a_landing_suite(pytester: pytest.Pytester) -> None:
    checks = landing_repo(pytester)
    markers = pytester.runpytest(str(checks), "--markers", "-p", "no:cacheprovider")
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.ci: landing check of the ci phase*", "@pytest.mark.rollout: *"]
    )
    shipped = pytester.runpytest(str(CHECKS), "--markers").stdout.str()
    assert "@pytest.mark.e2e: landing check of the dev e2e phase" in shipped
    # --collect-only needs no settings (no woodpecker_server) and --strict-markers holds
    listed = pytester.runpytest_subprocess(str(checks), "--collect-only", "-q", "--strict-markers")
    assert listed.ret == 0, listed.stdout.str() + listed.stderr.str()
    listed.stdout.fnmatch_lines(["checks/test_mine.py::test_green"])


def test_a_check_module_anywhere_gets_the_markers(pytester: pytest.Pytester) -> None:
    """A module that asks for a homelab fixture is a landing check module wherever it is."""
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.rollout\ndef test_x(homelab_landing):\n    pass\n"
    )
    result = pytester.runpytest(
        "--collect-only", "-q", "--strict-markers", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    assert "PytestUnknownMarkWarning" not in result.stdout.str()


def two_environments(root: Path) -> None:
    def service(name: str) -> dict[str, object]:
        return {
            "name": name,
            "namespace": "apps",
            "deployment": name,
            "image": f"registry.example.test/{name}",
        }

    doc = {
        "schemaVersion": 2,
        "environments": {
            "dev": {"services": [service("web"), service("api")]},
            "prod": {"services": [service("web"), service("billing")]},
        },
    }
    (root / "deploy.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("env", [None, "prod"])
def test_listing_needs_no_settings_and_lists_the_real_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    for name in ("WOODPECKER_SERVER", "WOODPECKER_TOKEN", "WP_TOKEN", "HOMELAB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(pytester.path))  # no ~/.config, no credentials
    subprocess.run(["git", "init", "-q", str(pytester.path)], check=True)
    two_environments(pytester.path)
    suite = pytester.path / "checks"
    shutil.copytree(CHECKS, suite)
    args = [str(suite), "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, *(["--homelab-env", env] if env else []))
    out = result.stdout.str()
    assert result.ret == 0, out + result.stderr.str()
    listed = sorted(line.split("[")[1].rstrip("]") for line in result.stdout.lines if "[" in line)
    assert listed == (["billing", "web"] if env else ["api", "billing", "web"])
    assert "configuration" not in out and "test_pipeline_green" in out


LF_CHECKS = """
import os
import pytest
from pytest_homelab.core.outcomes import CheckFailed

pytestmark = pytest.mark.rollout

def test_web(homelab_landing):
    pass

def test_api(homelab_landing):
    if os.environ.get("API_BROKEN"):
        raise CheckFailed("expected api to roll out, saw CrashLoopBackOff", hint="fix api")
"""


def test_last_failed_and_failed_first_work_with_the_cache_out_of_the_repo(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = landing_repo(pytester)
    (checks / "test_mine.py").unlink()
    (checks / "test_rollouts.py").write_text(LF_CHECKS)
    state = pytester.path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("TOX_ENV_DIR", raising=False)
    monkeypatch.setenv("API_BROKEN", "1")
    first = pytester.runpytest_subprocess(str(checks))
    first.assert_outcomes(passed=1, failed=1)
    monkeypatch.delenv("API_BROKEN")
    again = pytester.runpytest_subprocess(str(checks), "--lf", "-v")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*test_api PASSED*"])
    monkeypatch.setenv("API_BROKEN", "1")
    pytester.runpytest_subprocess(str(checks)).assert_outcomes(passed=1, failed=1)
    first_failed = pytester.runpytest_subprocess(str(checks), "--ff", "-v")
    order = [line.split("::")[1].split()[0] for line in first_failed.stdout.lines if "::" in line]
    assert order[:2] == ["test_api", "test_web"]
    assert list(pytester.path.rglob(".pytest_cache")) == []  # nothing in the repo
    assert list((state / "homelab" / "pytest-cache").glob("*/v/cache/lastfailed"))


def test_a_check_module_is_one_that_asks_for_a_homelab_fixture() -> None:
    """Not one that merely names one in a string (a pytester source): such test modules keep
    their xdist distribution and their markers."""
    assert plugin._is_check_module(b"def test_x(homelab_landing):\n    pass\n")
    assert plugin._is_check_module(
        b"import pytest\n\n@pytest.mark.usefixtures('homelab_rollouts')\ndef test_x():\n    pass\n"
    )
    assert not plugin._is_check_module(b"SOURCE = 'def test_x(homelab_landing): pass'\n")
    assert not plugin._is_check_module(b"def test_x(homelab_landings):\n    pass\n")
    assert not plugin._is_check_module(b"def broken(homelab_landing:\n")
    shipped = [p.name for p in CHECKS.glob("test_*.py") if plugin._is_check_module(p.read_bytes())]
    assert sorted(shipped) == sorted(p.name for p in CHECKS.glob("test_*.py"))
