"""The e2e phase: the dev end-to-end run on D601 passed (a manual entry: -m e2e)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_homelab import DevRunResult

pytestmark = pytest.mark.e2e


def test_dev_e2e(
    homelab_dev_run: DevRunResult,
    homelab_record: Callable[[Iterable[tuple[str, str]]], None],
) -> None:
    """The Git-controlled runner's PipelineRun succeeded (or, without waiting, was dispatched)."""
    homelab_record(homelab_dev_run.properties())
    homelab_dev_run.check()
