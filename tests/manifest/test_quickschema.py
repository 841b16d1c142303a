"""The quick validity check (core/quickschema.py) held to jsonschema, the referee.

The quick check may only ever say "valid" of a document jsonschema finds valid, and "invalid" of
one it finds invalid; "not sure" is always allowed. And whatever it says, validate_document's
answer (every problem, each message) is the one the jsonschema path alone gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pytest_homelab.core import manifest
from pytest_homelab.core.quickschema import compile_schema
from tests.manifest.test_properties import (
    FIXTURE_OK,
    HOSTILE,
    MakeDoc,
    documents,
    edited,
    json_values,
    paths_in_good,
)
from tests.samples import good_deploy


class Flag(IntEnum):
    ON = 5


def referee(doc: object) -> bool:
    """jsonschema's verdict, with the same ECMA ``$`` as the product's validator."""
    return bool(manifest._validator().is_valid(doc))  # type: ignore[arg-type]


def quick(doc: object) -> bool | None:
    return manifest._proven_valid()(doc)


def jsonschema_only(doc: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with monkeypatch.context() as patch:
        patch.setattr(manifest, "_proven_valid", lambda: lambda _doc: None)
        return [str(issue) for issue in manifest.validate_document(doc)]


def assert_agrees(doc: object) -> None:
    seen = quick(doc)
    if seen is not None:
        assert seen == referee(doc), json.dumps(doc)[:500]


# Values the subset's edges turn on: floats that jsonschema counts as integers, bools that it
# does not, strings with a trailing newline (Python's `$`), '..', huge and negative numbers.
edge_values: st.SearchStrategy[object] = st.sampled_from(
    [
        2,
        2.0,
        True,
        False,
        "2",
        None,
        1000,
        1000.0,
        999,
        86_400_000,
        86_400_001,
        86_400_000.0,
        -1,
        2**70,
        1e300,
        "",
        "dev",
        "Dev",
        "dev\n",
        "scripts/ci/x.sh",
        "scripts/ci/x.sh\n",
        "scripts/ci/a..b.sh",
        "registry.example.test/team/web",
        "registry.example.test/team/web\n",
        "registry.example.test/team/web:1.0",
        "https://git.example.test/h/app",
        "git@git.example.test:h/app.git",
        "Deployment",
        "deployment",
        "a" * 63,
        "a" * 64,
        "0" * 40,
        "0" * 40 + "\n",
        "https://web.example.org/version",
        [],
        {},
        *HOSTILE,
    ]
)


@FIXTURE_OK
@given(json_values)
def test_any_json_value(value: object) -> None:
    assert_agrees(value)
    assert_agrees({"schemaVersion": 2, "environments": value})
    assert_agrees({"schemaVersion": 2, "environments": {"dev": {"services": [value]}}})


@FIXTURE_OK
@given(documents(), st.data())
def test_generated_documents_are_proven_valid_and_their_edits_agree(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    assert referee(doc)
    assert quick(doc) is True  # the quick path is taken for valid documents
    env = data.draw(st.sampled_from(sorted(doc["environments"])))
    services = doc["environments"][env]["services"]
    keys = ["name", "namespace", "deployment", "container", "image", "commit", "kind", "x"]
    if services:
        service = data.draw(st.sampled_from(services))
        service[data.draw(st.sampled_from(keys))] = data.draw(edge_values)
    elif "ci" in doc["environments"][env]:
        ci = doc["environments"][env]["ci"]
        ci[data.draw(st.sampled_from(["repo", "scriptPath", "timeoutMs", "x"]))] = data.draw(
            edge_values
        )
    assert_agrees(doc)


@FIXTURE_OK
@given(st.lists(st.tuples(paths_in_good, json_values | edge_values), max_size=3))
def test_good_document_with_random_parts_replaced_agrees_and_says_the_same(
    make_doc: MakeDoc, edits: list[tuple[list[str | int], object]]
) -> None:
    doc = edited(make_doc, edits)
    assert_agrees(doc)
    # validate_document's answer: every problem and message as the jsonschema path alone.
    with pytest.MonkeyPatch.context() as patch:
        alone = jsonschema_only(doc, patch)
    assert [str(issue) for issue in manifest.validate_document(doc)] == alone


def test_the_known_good_document_and_a_large_one_are_proven_valid() -> None:
    assert quick(good_deploy()) is True
    services = [
        {"name": f"svc-{i}", "namespace": f"team-{i % 4}", "image": f"registry.example.test/s{i}"}
        for i in range(1000)
    ]
    assert quick({"schemaVersion": 2, "environments": {"dev": {"services": services}}}) is True


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["schemaVersion"], 2.0),  # jsonschema: equal to 2
        (["environments", "dev", "ci", "timeoutMs"], 1800000.0),  # jsonschema: an integer
        (["schemaVersion"], True),  # jsonschema: not equal to 2 (bools are not numbers)
    ],
)
def test_where_python_and_json_schema_differ_it_is_not_sure(
    make_doc: MakeDoc, path: list[str | int], value: object
) -> None:
    doc = make_doc(path, value)
    assert quick(doc) is None
    assert_agrees(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["environments", "dev", "ci", "scriptPath"], "scripts/ci/dev-e2e.sh\n"),
        (["environments", "dev", "ci", "scriptPath"], "scripts/ci/a..b.sh"),
        (["environments", "dev", "ci", "timeoutMs"], 999),
        (["environments", "dev", "ci", "extra"], 1),
        (["environments", "Dev"], {"services": []}),
        (["environments", "dev", "services", 0, "kind"], "deployment"),
        (["environments", "dev", "services", 0, "name"], "a" * 64),  # maxLength 63
        (["environments", "dev", "services", 0, "namespace"], ["apps"]),
        (["environments", "dev", "services", 0], {"name": "web"}),  # required
        (["schemaVersion"], 3),
    ],
)
def test_broken_rules_are_invalid(make_doc: MakeDoc, path: list[str | int], value: object) -> None:
    doc = make_doc(path, value)
    assert quick(doc) is False
    assert not referee(doc)


def test_an_unknown_keyword_or_reference_is_never_proven_valid() -> None:
    # A schema that grows a keyword this module does not know is judged by jsonschema alone.
    assert compile_schema({"type": "string", "format": "email"})("x") is None
    assert compile_schema({"$ref": "https://example.invalid/other.json"})("x") is None
    assert compile_schema({"$ref": "#/$defs/missing"})("x") is None
    assert compile_schema({"type": ["string", "null"]})("x") is None
    assert compile_schema({"additionalProperties": False, "patternProperties": {}})({}) is None
    assert compile_schema({"not": {"format": "email"}})("x") is None
    # Where jsonschema's types are wider than Python's exact ones (found by review): under
    # `not`, an inexact "invalid" would become a wrong "valid".
    assert compile_schema({"not": {"type": "integer"}})(Flag.ON) is None
    assert compile_schema({"minimum": 1000})(Flag.ON) is None
    assert compile_schema({"minimum": 1000})(Decimal(5)) is None
    assert compile_schema({"minimum": 1000})(True) is True  # bools are not numbers
    escaped: dict[str, Any] = {
        "$defs": {"a~1b": {}, "a/b": {"type": "string"}},
        "$ref": "#/$defs/a~1b",
    }
    assert compile_schema(escaped)(5) is None
    based = {"$defs": {"x": {"$id": "other.json", "$ref": "#/$defs/y"}}, "$ref": "#/$defs/x"}
    assert compile_schema(based)(5) is None
    cases: list[tuple[dict[str, Any], object]] = [
        ({"not": {"type": "integer"}}, Flag.ON),
        ({"minimum": 1000}, Flag.ON),
        ({"minimum": 1000}, Decimal(5)),
        (escaped, 5),
    ]
    for schema, value in cases:
        assert not Draft202012Validator(schema).is_valid(value)  # what jsonschema says
    # ... while the keywords it knows are exact.
    assert compile_schema({"type": "string", "maxLength": 1, "description": "d"})("x") is True
    assert compile_schema({"enum": ["a", 1]})([1]) is None
    assert compile_schema({"enum": ["a", 1]})(2) is False


def test_a_valid_deploy_json_does_not_import_jsonschema(tmp_path: Any) -> None:
    good = tmp_path / "deploy.json"
    good.write_text(json.dumps(good_deploy()))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**good_deploy(), "schemaVersion": 3}))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pytest_homelab.core.manifest import ManifestInvalid, load_manifest\n"
        f"load_manifest(Path({str(good)!r}))\n"
        "print('jsonschema' in sys.modules)\n"
        "try:\n"
        f"    load_manifest(Path({str(bad)!r}))\n"
        "except ManifestInvalid as exc:\n"
        "    print('jsonschema' in sys.modules, exc.errors[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["False", "True schemaVersion: unsupported version 3 (supported: 2)"]
