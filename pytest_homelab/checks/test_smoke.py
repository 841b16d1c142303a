"""The smoke phase: each service with a probe in deploy.json answers with the landed commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_homelab.smoke.phase import ProbeResult, ProbeTarget

pytestmark = pytest.mark.smoke


def test_serves_commit(
    homelab_probe: ProbeTarget | None,
    homelab_smoke: dict[str, ProbeResult],
    homelab_record: Callable[[Iterable[tuple[str, str]]], None],
) -> None:
    """The service's probe URL answers (2xx) with the commit: in its body or a header."""
    assert homelab_probe is not None  # None only when an earlier phase failed (checked before)
    result = homelab_smoke[homelab_probe.service]
    homelab_record(result.properties())
    result.check()
