"""The deploy.json documents the tests write, in one place: the known-good sample that tests break
one rule at a time, and the builder every other test writes its deploy.json with.

``deploy_doc(dev=environment([service("web", "apps")], ci=ci_block()))`` is::

    {"schemaVersion": 2, "environments": {"dev": {"ci": {...}, "services": [{...}]}}}
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

Doc = dict[str, Any]

SCHEMA_VERSION = 2
SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "registry.example.test"
REPO_URL = "https://git.example.test/homelab/app"
RUNNER = "scripts/ci/dev-e2e.sh"


def service(name: str, namespace: str, image: str, **extra: object) -> Doc:
    """One entry of ``services``: name, namespace, image, then any of deployment, container,
    commit, kind."""
    return {"name": name, "namespace": namespace, "image": image, **extra}


def ci_block(repo: str = REPO_URL, script: str = RUNNER, timeout_ms: int = 1_800_000) -> Doc:
    """An environment's ``ci`` block: the dev e2e run's repo, runner and timeout."""
    return {"repo": repo, "scriptPath": script, "timeoutMs": timeout_ms}


def environment(services: Iterable[Doc] = (), *, ci: Doc | None = None) -> Doc:
    env: Doc = {} if ci is None else {"ci": copy.deepcopy(ci)}
    env["services"] = copy.deepcopy(list(services))
    return env


def deploy_doc(**environments: Doc) -> Doc:
    """A deploy.json document with these environments (by name)."""
    return {"schemaVersion": SCHEMA_VERSION, "environments": copy.deepcopy(environments)}


def deploy_text(**environments: Doc) -> str:
    """:func:`deploy_doc` as the file's text."""
    return json.dumps(deploy_doc(**environments), indent=2) + "\n"


# Known good, and every optional field used: the document the manifest tests and R3 break.
GOOD_DEPLOY: Doc = {
    "$schema": "./pytest_homelab/core/deploy.schema.json",
    **deploy_doc(
        dev=environment(
            [
                service("web", "apps", f"{REGISTRY}/h/web"),
                service(
                    "api",
                    "apps",
                    f"{REGISTRY}:5000/h/api",
                    deployment="api-server",
                    container="api",
                    commit=SHA,
                    kind="StatefulSet",
                ),
            ],
            ci=ci_block(),
        )
    ),
}


def good_deploy() -> Doc:
    """A fresh copy of :data:`GOOD_DEPLOY`."""
    return copy.deepcopy(GOOD_DEPLOY)
