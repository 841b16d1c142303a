"""docs/quickstart.md, run as a new user would: in a clone of the simulated homelab's repository
(``pytest_homelab.sim.homelab``), with its settings exported, every block in order — from an
empty repository to a green ``homelab doctor`` and a green landing."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_homelab.sim.homelab import SimHomelab
from tests.docs.blocks import DOCS, blocks
from tests.docs.test_examples import Runner, pytest_flags

__all__ = ["pytest_flags"]  # the fixture, shared with test_examples.py

PAGE = "quickstart.md"


def test_quickstart_against_the_simulated_homelab(
    tmp_path: Path, pytest_flags: frozenset[str]
) -> None:
    runner = Runner(tmp_path, pytest_flags)
    with SimHomelab(tmp_path / "homelab") as lab:
        lab.clone(runner.work)  # the user's checkout: app code, no deploy.json yet
        runner.env.update(lab.environ())
        ran = []
        for block in blocks(DOCS / PAGE):
            runner.run(block)
            if block.lang == "sh" and not block.has("no-run"):
                ran.append(block.text)
        assert (runner.work / "deploy.json").is_file()
        text = "".join(ran)
        for step in (
            "homelab init",
            "homelab config",
            "homelab doctor",
            "homelab ci watch",
            "homelab deploy wait",
            "homelab ci run-dev-e2e",
        ):
            assert step in text, f"the quickstart runs {step}"
        # the landing the page pushed was verified: its pipeline ran, and D601 ran the dev e2e
        assert len(lab.pipelines) == 2
        results = list((lab.d601 / "runs").glob("*/result.json"))
        assert len(results) == 1 and json.loads(results[0].read_text())["ok"] is True
