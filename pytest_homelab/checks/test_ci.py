"""The ci phase: the Woodpecker pipeline of the landed commit went green."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # an annotation only: `homelab deploy wait` collects this module too
    from pytest_homelab import CiResult

pytestmark = pytest.mark.ci


def test_pipeline_green(
    homelab_ci: CiResult, homelab_record: Callable[[Iterable[tuple[str, str]]], None]
) -> None:
    """The newest pipeline of the commit (events from --ci-events) ended in success."""
    homelab_record(homelab_ci.properties())
    homelab_ci.check()
