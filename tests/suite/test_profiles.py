"""Property tests are deterministic in CI: the hypothesis profile tests/conftest.py loads."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.conftest import hypothesis_profile


@pytest.mark.parametrize(
    ("environ", "profile"),
    [
        ({"CI": "true"}, "ci"),
        ({"CI": "1", "HYPOTHESIS_PROFILE": "explore"}, "ci"),  # CI never draws new examples
        ({"HYPOTHESIS_PROFILE": "explore"}, "explore"),
        ({}, "ci"),
        ({"CI": "false"}, "ci"),
    ],
)
def test_the_profile_of_a_run(environ: dict[str, str], profile: str) -> None:
    assert hypothesis_profile(environ) == profile


def test_the_ci_profile_is_derandomized_without_deadline_or_database() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize is True and ci.deadline is None and ci.database is None


def test_this_run_uses_the_profile_its_environment_asks_for() -> None:
    expected = settings.get_profile(hypothesis_profile(os.environ))
    assert settings().derandomize == expected.derandomize
    assert settings().deadline == expected.deadline
