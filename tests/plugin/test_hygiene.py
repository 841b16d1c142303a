"""The entry-point plugin loads into every pytest run: it must stay out of the way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).parents[2] / "pytest_homelab" / "checks"
HEAVY = ("httpx", "kubernetes", "paramiko", "hvac", "pytest_homelab.ci.client")


def test_unrelated_suite_sees_nothing(pytester: pytest.Pytester) -> None:
    # No git repo, no deploy.json, no settings, hostile env values: none of it may matter.
    pytester.makepyfile(
        f"""
        import sys

        def test_plain():
            assert 1 + 1 == 2

        def test_no_heavy_imports():
            heavy = [m for m in {HEAVY!r} if m in sys.modules]
            assert heavy == [], heavy
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    ours = [
        line
        for line in result.stdout.lines
        if "homelab" in line.lower() and not line.startswith("plugins:")
    ]
    assert ours == []  # pytest's own "plugins:" header line is the only mention
    assert result.stderr.str() == ""


def test_unrelated_suite_ignores_broken_homelab_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".toml", pyproject="[tool.homelab]\nnonsense = 1\nci_timeout = 'soon'\n")
    monkeypatch.setenv("HOMELAB_CI_TIMEOUT", "never")
    monkeypatch.setenv("WOODPECKER_SERVER", "not a url")
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_user_marker_named_ci_without_homelab_fixtures_is_left_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.e2e
        def test_b():
            pass

        @pytest.mark.ci
        def test_a():
            pass
        """
    )
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)  # not deselected, not reordered
    result.stdout.fnmatch_lines(["*test_b PASSED*", "*test_a PASSED*"])


def test_markers_options_and_fixtures_are_documented(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest(str(CHECKS), "--markers")  # where landing checks are
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.ci: *", "@pytest.mark.rollout: *", "@pytest.mark.e2e: *"]
    )
    help_text = " ".join(pytester.runpytest("--help").stdout.str().split())
    for flag in (
        "--commit",
        "--deploy-json",
        "--homelab-env",
        "--woodpecker-server",
        "--woodpecker-dial",
        "--ca-bundle",
        "--woodpecker-repo",
        "--ci-timeout",
        "--appear-grace",
        "--rollout-timeout",
        "--landing-timeout",
        "--homelab-e2e",
    ):
        assert flag in help_text, flag
    assert "env WOODPECKER_SERVER" in help_text and "ini woodpecker_server" in help_text
    fixtures = pytester.runpytest("--fixtures").stdout.str()
    for name in (
        "homelab_settings",
        "homelab_landing",
        "homelab_ci",
        "homelab_woodpecker",
        "homelab_woodpecker_repo",
        "homelab_woodpecker_token",
        "homelab_record",
    ):
        assert f"{name} [session scope]" in fixtures or f"{name} --" in fixtures or name in fixtures
    assert "The ci phase's result" in fixtures


def test_missing_server_is_a_usage_error_naming_every_place(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ci
        def test_ci(homelab_ci):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--woodpecker-server" in err and "env WOODPECKER_SERVER" in err
    assert "woodpecker_server in ~/.config/homelab/config.toml" in err
    assert "Traceback" not in err


def test_bad_flag_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ci
        def test_ci(homelab_ci):
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--ci-timeout",
        "soon",
        "--woodpecker-server",
        "https://ci.example.test",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ci_timeout from --ci-timeout: 'soon' is not a duration" in result.stderr.str()


def test_phases_run_in_order_and_e2e_only_when_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.mark.e2e
        def test_e2e(homelab_landing):
            pass

        @pytest.mark.rollout
        def test_rollout(homelab_landing):
            pass
        """,
        test_b="""
        import pytest

        @pytest.mark.ci
        def test_ci(homelab_landing):
            pass

        def test_other():
            pass
        """,
    )
    flags = ("-v", "-p", "no:cacheprovider", "--woodpecker-server", "https://ci.example.test")
    result = pytester.runpytest(*flags)
    result.assert_outcomes(passed=3, deselected=1)
    order = [line.split("::")[1].split()[0] for line in result.stdout.lines if " PASSED" in line]
    assert order == ["test_ci", "test_rollout", "test_other"]
    with_e2e = pytester.runpytest(*flags, "--homelab-e2e")
    with_e2e.assert_outcomes(passed=4)
    only_e2e = pytester.runpytest(*flags, "-m", "e2e")
    only_e2e.assert_outcomes(passed=1, deselected=3)


def test_plugin_module_is_light() -> None:
    # Importing the plugin must not import the clients (it loads into every pytest run).
    code = (
        "import sys, pytest_homelab.plugin; "
        f"heavy=[m for m in {HEAVY!r} if m in sys.modules]; print(heavy); assert not heavy"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_phase_that_m_leaves_out_needs_no_plan(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-m ci` deselects the rollout and smoke checks whatever their parameters, so deploy.json
    is not read for them (a broken one is no error, and jsonschema is not imported: 0.1 s of
    `pytest checks/ -m ci`). Selected, the same file is the usage error it always was."""
    pytester.makefile(".json", deploy="{ not json")
    pytester.makepyfile(
        test_checks="""
        import os, sys
        import pytest

        @pytest.mark.ci
        def test_ci(homelab_landing):
            if os.environ.get("EXPECT_NO_JSONSCHEMA"):  # a process of its own
                assert "jsonschema" not in sys.modules

        @pytest.mark.rollout
        def test_rollout(homelab_service):
            pass

        @pytest.mark.smoke
        def test_smoke(homelab_probe):
            pass
        """
    )
    flags = ("-p", "no:cacheprovider", "--woodpecker-server", "https://ci.example.test")
    monkeypatch.setenv("EXPECT_NO_JSONSCHEMA", "1")
    pytester.runpytest_subprocess(*flags, "-m", "ci").assert_outcomes(passed=1, deselected=2)
    monkeypatch.delenv("EXPECT_NO_JSONSCHEMA")
    for expression in ("not rollout and not smoke", "(ci or e2e) and not smoke"):
        result = pytester.runpytest_inprocess(*flags, "-m", expression)
        result.assert_outcomes(passed=1, deselected=2)
    broken = pytester.runpytest_inprocess(*flags, "-m", "ci or rollout")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    assert "deploy.json" in broken.stderr.str() + broken.stdout.str()
