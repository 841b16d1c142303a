"""``--json`` prints exactly one JSON document for every outcome, valid against the schema that
docs/cli.md documents: success, failure, early errors, typos and unreachable servers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_homelab.cli import main
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

ROOT = Path(__file__).parents[2]
SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
TOKEN = "sim-token"


def documented_schema() -> dict[str, Any]:
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text[text.index("## JSON output") :]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match, "docs/cli.md: no JSON schema block under '## JSON output'"
    schema: dict[str, Any] = json.loads(match.group(1))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


SCHEMA = documented_schema()


def one_document(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(args)
    out, err = capsys.readouterr()
    document = json.loads(out)  # exactly one document: json.loads rejects anything after it
    assert isinstance(document, dict), out
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == code, (out, err)
    return code, document


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def sim(clean: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WoodpeckerSim]:
    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    with WoodpeckerSim() as server:
        server.add_repo("homelab/app")
        yield server


def ci_args(sim: WoodpeckerSim, verb: str, *more: str) -> list[str]:
    return [
        "ci",
        verb,
        SHA,
        "--repo",
        "homelab/app",
        "--woodpecker-server",
        sim.base_url,
        "--json",
        *more,
    ]


@pytest.mark.parametrize(
    ("args", "outcome", "mentions"),
    [
        (["ci", "watch", "--deploy-json", "nope.json", "--json"], "BadInput", "nope.json"),
        (["ci", "run-dev-e2e", "--json"], "BadInput", "d601_host"),
        (["ci", "logs", "e2e-12345678-20260101000000-abcd", "--json"], "BadInput", "d601_host"),
        (["manifest", "check", "nope.json", "--json"], "BadInput", "nope.json"),
        (["demo", "--scenaro", "red", "--json"], "BadInput", "--scenaro"),
        (["ci", "watch", "--bogus", "--json"], "BadInput", "--bogus"),
        (["demo", "--scenario", "nope", "--json"], "BadInput", "nope"),
    ],
)
def test_early_errors_print_one_document(
    clean: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    outcome: str,
    mentions: str,
) -> None:
    code, document = one_document(args, capsys)
    assert code == 2
    assert document["verdict"] == "ERROR" and document["checks"] == []
    assert document["outcome"] == outcome and mentions in document["message"]
    assert document["next"]


def test_a_bad_value_names_the_flag_typed(
    sim: WoodpeckerSim, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = one_document(ci_args(sim, "watch", "--timeout", "banana"), capsys)
    assert code == 2 and document["outcome"] == "BadInput"
    assert "--timeout" in document["message"] and "--ci-timeout" not in document["message"]


def test_no_token(
    sim: WoodpeckerSim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WOODPECKER_TOKEN")
    code, document = one_document(ci_args(sim, "status"), capsys)
    assert code == 2 and document["outcome"] == "AuthError" and document["checks"] == []


def test_invalid_manifest_lists_each_problem_with_its_path(
    clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"schemaVersion": 2, "environments": {"dev": {"services": [{"name": "Web!"}]}}}
    (clean / "deploy.json").write_text(json.dumps(bad))
    code, document = one_document(["manifest", "check", "deploy.json", "--json"], capsys)
    assert code == 2 and document["file"] == "deploy.json"
    paths = {p["path"] for p in document["problems"]}
    assert {"environments.dev.services[0].name", "environments.dev.services[0].image"} <= paths


def test_valid_manifest(clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {
        "schemaVersion": 2,
        "environments": {"dev": {"services": [{"name": "web", "namespace": "a", "image": "r/w"}]}},
    }
    (clean / "deploy.json").write_text(json.dumps(good))
    code, document = one_document(["manifest", "check", "--json"], capsys)
    assert code == 0 and document["verdict"] == "PASSED" and document["problems"] == []


@pytest.mark.parametrize(("fail", "expected"), [(False, 0), (True, 1)], ids=["green", "red"])
def test_ci_watch_and_status(
    sim: WoodpeckerSim, capsys: pytest.CaptureFixture[str], fail: bool, expected: int
) -> None:
    step = StepSpec("test", duration=0.05, exit_code=1 if fail else 0, log=["x"])
    sim.add_pipeline("homelab/app", commit=SHA, steps=[step])
    code, document = one_document(ci_args(sim, "watch"), capsys)
    assert code == expected and len(document["checks"]) == 1 and "junit" in document
    code, document = one_document(ci_args(sim, "status"), capsys)
    assert code == expected and document["pipeline"]["number"] == 1 and document["checks"] == []


def test_ci_status_without_a_pipeline(
    sim: WoodpeckerSim, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = one_document(ci_args(sim, "status"), capsys)
    assert code == 3 and document["verdict"] == "NOT FOUND" and document["pipeline"] is None


def test_unreachable_server(
    clean: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    server = f"http://127.0.0.1:{free_port()}"
    base = ["--repo", "homelab/app", "--woodpecker-server", server, "--json"]
    code, document = one_document(["ci", "status", SHA, *base], capsys)
    assert code == 2 and document["outcome"] == "InfraError"
    code, document = one_document(["ci", "watch", SHA, *base, "--timeout", "15s"], capsys)
    assert code == 2 and document["verdict"] == "ERROR"
    assert [c["outcome"] for c in document["checks"]] == ["InfraError"]
