"""A known-good deploy.json document to break one rule at a time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

SHA = "0123456789abcdef0123456789abcdef01234567"

GOOD: dict[str, Any] = {
    "$schema": "./pytest_homelab/core/deploy.schema.json",
    "schemaVersion": 2,
    "environments": {
        "dev": {
            "ci": {
                "repo": "https://git.example.test/homelab/app",
                "scriptPath": "scripts/ci/dev-e2e.sh",
                "timeoutMs": 1800000,
            },
            "services": [
                {"name": "web", "namespace": "apps", "image": "registry.example.test/h/web"},
                {
                    "name": "api",
                    "namespace": "apps",
                    "deployment": "api-server",
                    "container": "api",
                    "image": "registry.example.test:5000/h/api",
                    "commit": SHA,
                    "kind": "StatefulSet",
                },
            ],
        }
    },
}

Doc = dict[str, Any]
MakeDoc = Callable[..., Doc]


@pytest.fixture(scope="session")
def make_doc() -> MakeDoc:
    """A fresh copy of a valid document; ``make_doc(path, value)`` replaces (``delete=True``:
    removes) the item at a path like ``["environments", "dev", "ci"]``."""

    def make(
        path: list[str | int] | None = None, value: object = None, *, delete: bool = False
    ) -> Doc:
        doc = copy.deepcopy(GOOD)
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
