"""A known-good deploy.json document to break one rule at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.samples import good_deploy

Doc = dict[str, Any]
MakeDoc = Callable[..., Doc]


@pytest.fixture(scope="session")
def make_doc() -> MakeDoc:
    """A fresh copy of a valid document; ``make_doc(path, value)`` replaces (``delete=True``:
    removes) the item at a path like ``["environments", "dev", "ci"]``."""

    def make(
        path: list[str | int] | None = None, value: object = None, *, delete: bool = False
    ) -> Doc:
        doc = good_deploy()  # tests/samples.py: the known-good document
        if path is None:
            return doc
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc

    return make
