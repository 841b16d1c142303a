"""Each test sees only the secrets it makes: the registry of known secrets is process-wide, and
another test's one-letter token would scrub these files' text (``step's`` -> ``step'***``)."""

from __future__ import annotations

import pytest

from pytest_homelab.core import secrets


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_known", set())
