"""Tekton in the Kubernetes simulator: fixtures, HTTP helpers and real kubectl binaries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.tekton import pipeline, succeeded
from tests.kubectl import SDK, Kubectl, kubectl_for
from tests.waiting import wait_until

PRS = "/apis/tekton.dev/v1/namespaces/ci/pipelineruns"
TRS = "/apis/tekton.dev/v1/namespaces/ci/taskruns"


def sdk_kubectls() -> dict[str, str]:
    """Every versioned kubectl of the machine image (else HOMELAB_KUBECTL)."""
    found = {
        p.name.removeprefix("kubectl."): str(p)
        for p in sorted(SDK.glob("kubectl.1.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        if p.is_file()
    }
    if not found and os.environ.get("HOMELAB_KUBECTL"):
        found = {"env": os.environ["HOMELAB_KUBECTL"]}
    return found


KUBECTLS = sdk_kubectls()


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(speed=10.0, timing=Timing(observe=0.1, terminate=0.2)) as k:
        k.create_namespace("ci")
        k.apply(
            pipeline(
                "ship",
                "ci",
                ["build", "lint", "test", "deploy"],
                run_after={"test": ["build"], "deploy": ["test", "lint"]},
            )
        )
        yield k


class Api:
    """Plain HTTP against the simulator, as any client would talk to it."""

    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim
        self.client = httpx.Client(base_url=sim.url, timeout=10)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def obj(self, path: str) -> dict[str, Any]:
        response = self.get(path)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def create_run(self, body: dict[str, Any], **params: Any) -> httpx.Response:
        return self.client.post(PRS, json=body, params=params)

    def run(self, body: dict[str, Any]) -> str:
        response = self.create_run(body)
        assert response.status_code == 201, response.text
        name: str = response.json()["metadata"]["name"]
        return name

    def pr(self, name: str) -> dict[str, Any]:
        return self.obj(f"{PRS}/{name}")

    def taskruns(self, pr: str) -> dict[str, dict[str, Any]]:
        items = self.get(TRS, labelSelector=f"tekton.dev/pipelineRun={pr}").json()["items"]
        return {tr["metadata"]["labels"]["tekton.dev/pipelineTask"]: tr for tr in items}

    def log(self, pod: str, container: str) -> httpx.Response:
        return self.get(f"/api/v1/namespaces/ci/pods/{pod}/log", container=container)

    def wait(self, name: str, seconds: float = 15, done: bool = True) -> dict[str, Any]:
        """The PipelineRun once its Succeeded condition is final (or, with done=False, set)."""
        last: dict[str, Any] = {}

        def ready() -> dict[str, Any] | None:
            last["pr"] = pr = self.pr(name)
            cond = succeeded(pr)
            return pr if cond is not None and (not done or cond["status"] != "Unknown") else None

        return wait_until(
            ready,
            what=f"PipelineRun {name} to finish" if done else f"PipelineRun {name} to start",
            timeout=seconds,
            detail=lambda: last["pr"].get("status"),
        )


@pytest.fixture
def api(sim: KubeSim) -> Iterator[Api]:
    client = Api(sim)
    yield client
    client.client.close()


@pytest.fixture(params=list(KUBECTLS) or ["missing"])
def kubectl(request: pytest.FixtureRequest, sim: KubeSim, tmp_path: Path) -> Kubectl:
    if request.param == "missing":
        pytest.fail("no kubectl found under /usr/lib/google-cloud-sdk/bin nor HOMELAB_KUBECTL")
    return kubectl_for(KUBECTLS[request.param], sim, tmp_path, "ci")
