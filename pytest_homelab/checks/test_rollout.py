"""The rollout phase: every service runs an image built from the commit and finished rolling out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_homelab import RolloutResult, Target

pytestmark = pytest.mark.rollout


def test_rolled_out(
    homelab_service: Target,
    homelab_rollouts: Mapping[str, RolloutResult],
    homelab_record: Callable[[Iterable[tuple[str, str]]], None],
) -> None:
    """The pod template's image references the commit, then kubectl's rollout rules hold."""
    result = homelab_rollouts[homelab_service.name]
    homelab_record(result.properties())
    result.check()
