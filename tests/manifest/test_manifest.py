"""deploy.json: every rule, every error at once with its JSON path, and no traceback ever."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_homelab.manifest import (
    ManifestInvalid,
    check_manifest,
    load_manifest,
    parse_manifest,
    validate_document,
)
from pytest_homelab.outcomes import BadInput

ROOT = Path(__file__).parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


def good() -> dict[str, Any]:
    return {
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


def messages(doc: object) -> list[str]:
    return [str(issue) for issue in validate_document(doc)]


def test_good_document_parses_to_typed_objects() -> None:
    m = parse_manifest(json.dumps(good()), "deploy.json")
    dev = m.environment(None)
    assert dev.ci is not None and dev.ci.script_path == "scripts/ci/dev-e2e.sh"
    web, api = dev.services
    assert (web.deployment, web.kind, web.container, web.commit) == (
        "web",
        "Deployment",
        None,
        None,
    )
    assert (api.deployment, api.kind, api.commit, api.target) == (
        "api-server",
        "StatefulSet",
        SHA,
        "apps/api-server",
    )
    assert m.all_namespaces() == {"apps"}


def test_the_example_at_the_repo_root_validates() -> None:
    m = load_manifest(ROOT / "deploy.json")
    assert set(m.environments) == {"dev", "prod"}
    code, lines = check_manifest(ROOT / "deploy.json")
    assert code == 0 and "valid (schemaVersion 2; environments: dev (3 services, ci)" in lines[0]


def test_environment_choice() -> None:
    doc = good()
    doc["environments"]["prod"] = {"services": []}
    m = parse_manifest(json.dumps(doc), "deploy.json")
    assert m.environment("prod").services == ()
    with pytest.raises(BadInput, match=r"several environments \(dev, prod\)"):
        m.environment(None)
    with pytest.raises(BadInput, match=r"no environment 'qa' \(it has: dev, prod\)"):
        m.environment("qa")


def mutate(path: list[str | int], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(good())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


DELETE = object()
E: list[str | int] = ["environments", "dev"]
S0: list[str | int] = [*E, "services", 0]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["schemaVersion"], 1, "schemaVersion: unsupported version 1 (supported: 2)"),
        (["schemaVersion"], "2", "schemaVersion: unsupported version '2'"),
        (["schemaVersion"], DELETE, "schemaVersion: is required"),
        (["environments"], {}, "environments: must be an object with at least one environment"),
        (["environments"], [], "environments: must be an object with at least one environment"),
        (["extra"], 1, "extra: unknown key (allowed: $schema, environments, schemaVersion)"),
        ([*E, "services"], DELETE, "environments.dev.services: is required"),
        ([*E, "services"], {}, "environments.dev.services: must be a list of services"),
        ([*E, "stuff"], 1, "environments.dev.stuff: unknown key (allowed: ci, services)"),
        ([*E, "ci", "scriptPath"], "../x.sh", "environments.dev.ci.scriptPath: must match"),
        ([*E, "ci", "scriptPath"], DELETE, "environments.dev.ci.scriptPath: is required"),
        ([*E, "ci", "timeoutMs"], 1.5, "environments.dev.ci.timeoutMs: must be a whole number"),
        ([*E, "ci", "timeoutMs"], 999, "environments.dev.ci.timeoutMs: must be a whole number"),
        ([*E, "ci", "timeoutMs"], "60000", "environments.dev.ci.timeoutMs: must be a whole"),
        ([*E, "ci", "repo"], "git.example.test/x", "environments.dev.ci.repo: must be a git URL"),
        ([*E, "ci", "repo"], "https://h/x;id", "environments.dev.ci.repo: must be a git URL"),
        ([*E, "ci", "script"], "echo hi", "environments.dev.ci.script: unknown key"),
        ([*S0, "name"], "Web", "environments.dev.services[0].name: must be a DNS label"),
        ([*S0, "name"], DELETE, "environments.dev.services[0].name: is required"),
        ([*S0, "namespace"], "a_b", "environments.dev.services[0].namespace: must be a DNS"),
        ([*S0, "deployment"], "-x", "environments.dev.services[0].deployment: must be a DNS sub"),
        ([*S0, "container"], "a.b", "environments.dev.services[0].container: must be a DNS label"),
        ([*S0, "image"], "web:1.2", "services[0].image: must be an image repository without tag"),
        ([*S0, "image"], "r.test/web@sha256:" + "a" * 64, "without tag or digest"),
        ([*S0, "image"], "Registry/Web", "services[0].image: must be an image repository"),
        ([*S0, "commit"], SHA[:12], "services[0].commit: must be a full 40-character"),
        ([*S0, "commit"], SHA.upper(), "services[0].commit: must be a full 40-character"),
        ([*S0, "kind"], "Job", "services[0].kind: must be Deployment, StatefulSet or DaemonSet"),
        ([*S0, "replicas"], 3, "services[0].replicas: unknown key"),
        ([*E, "services", 1], "web", "environments.dev.services[1]: must be an object"),
    ],
)
def test_each_rule_names_its_path(path: list[str | int], value: object, expected: str) -> None:
    found = messages(mutate(path, value))
    assert any(expected in m for m in found), found


def test_all_errors_are_reported_together_and_sorted() -> None:
    doc = mutate([*S0, "image"], "web:1")
    doc["environments"]["dev"]["ci"]["scriptPath"] = "/abs.sh"
    doc["environments"]["dev"]["services"][1]["kind"] = "Pod"
    found = messages(doc)
    assert [m.split(":")[0] for m in found] == [
        "environments.dev.ci.scriptPath",
        "environments.dev.services[0].image",
        "environments.dev.services[1].kind",
    ]


def test_paths_sort_numerically() -> None:
    doc = good()
    doc["environments"]["dev"]["services"] = [
        {"name": f"s{n}", "namespace": "apps", "image": "BAD"} for n in range(12)
    ]
    paths = [m.split(":")[0] for m in messages(doc)]
    assert paths[:3] == [f"environments.dev.services[{n}].image" for n in range(3)]
    assert paths[-1] == "environments.dev.services[11].image"


def test_duplicates() -> None:
    doc = good()
    doc["environments"]["dev"]["services"].append(
        {
            "name": "web",
            "namespace": "apps",
            "deployment": "api-server",
            "kind": "StatefulSet",
            "image": "r.test/x",
        }
    )
    found = messages(doc)
    assert (
        "environments.dev.services[2].name: duplicate service name 'web' (also services[0])"
        in found
    )
    assert any("StatefulSet apps/api-server is already verified by services[1]" in m for m in found)


def test_unknown_schema_version_reports_only_the_version() -> None:
    assert messages({"schemaVersion": 3, "environments": {"x": {"weird": True}}}) == [
        "schemaVersion: unsupported version 3 (supported: 2)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "line 1 column 2: invalid JSON"),
        ('{"schemaVersion": 2,\n "environments": {,}}', "line 2 column 19: invalid JSON"),
        (
            '{"schemaVersion": 2, "schemaVersion": 2, "environments": {}}',
            "duplicate key 'schemaVersion'",
        ),
        ("[]", "(top level): must be a JSON object (got array)"),
        ("null", "(top level): must be a JSON object (got null)"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_json(text: str | bytes, expected: str) -> None:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(text, "deploy.json")
    assert any(expected in str(issue) for issue in info.value.errors), info.value.errors
    assert "deploy.json is not a valid deploy.json" in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no deploy\.json at"):
        load_manifest(tmp_path / "deploy.json")
    with pytest.raises(BadInput, match="is a directory"):
        load_manifest(tmp_path)
    code, lines = check_manifest(tmp_path / "deploy.json")
    assert code == 2 and "--deploy-json" in lines[0]


def test_long_values_are_truncated_in_messages() -> None:
    (msg,) = messages(mutate([*S0, "image"], "x" * 5000 + ":tag"))
    assert len(msg) < 300 and msg.endswith("...)")


TRAVERSALS = [
    "../x.sh",
    "/abs.sh",
    "/scripts/ci/x.sh",
    "scripts/ci/../../x.sh",
    "scripts/ci/a/b.sh",
    "scripts/ci/x.sh;rm -rf /",
    "scripts/ci/x.sh\n",
    "scripts/ci/.hidden.sh",
    "scripts/ci/-x.sh",
    "scripts/ci/x．sh",
    "scripts／ci/x.sh",
    "scripts/ci/x.SH",
    "scripts\\ci\\x.sh",
    "scripts/ci/$(id).sh",
    "scripts/ci/`id`.sh",
    "scripts/ci/x y.sh",
    "scripts/ci/.sh",
    "scripts/ci/x..sh",
    "scripts/ci/a..b.sh",
    "./scripts/ci/x.sh",
    "scripts/ci//x.sh",
    "scripts/ci/x.sh.txt",
    "scripts/ci/ｘ.sh",
    "scripts/ci/x\u200b.sh",
    "scripts/cі/x.sh",
    "scripts/ci/x.sh\x00",
    "",
    "scripts/ci/" + "a" * 200 + ".sh",
    "echo hi",
    "scripts/ci/x'.sh",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_script_path_traversal_and_inline_shell_are_rejected(path: str) -> None:
    found = messages(mutate([*E, "ci", "scriptPath"], path))
    assert any(m.startswith("environments.dev.ci.scriptPath: must match") for m in found), found


@pytest.mark.parametrize(
    "path",
    ["scripts/ci/dev-e2e.sh", "scripts/ci/a.b_c-d.sh", "scripts/ci/X1.sh", "scripts/ci/_.sh"],
)
def test_good_script_paths(path: str) -> None:
    assert messages(mutate([*E, "ci", "scriptPath"], path)) == []


# -- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_is_a_manifest_or_manifest_invalid(value: object) -> None:
    try:
        parse_manifest(json.dumps(value), "fuzz.json")
    except ManifestInvalid as exc:
        assert exc.errors and all(issue.path and issue.message for issue in exc.errors)


near_miss = st.fixed_dictionaries(
    {
        "schemaVersion": st.sampled_from([2, 2, 2, 1, "2"]),
        "environments": st.dictionaries(
            st.sampled_from(["dev", "prod", "Dev", "", "a.b"]),
            st.fixed_dictionaries(
                {
                    "services": st.lists(
                        st.dictionaries(
                            st.sampled_from(["name", "namespace", "image", "commit", "kind", "x"]),
                            json_values,
                            max_size=5,
                        ),
                        max_size=3,
                    )
                }
            ),
            max_size=3,
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(near_miss)
def test_near_miss_documents_never_raise_anything_else(doc: dict[str, Any]) -> None:
    with contextlib.suppress(ManifestInvalid):
        parse_manifest(json.dumps(doc), "fuzz.json")


name_chars = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(name_chars)
def test_generated_script_names(name: str) -> None:
    path = f"scripts/ci/{name}.sh"
    ok = not name.startswith((".", "-")) and ".." not in path
    assert (messages(mutate([*E, "ci", "scriptPath"], path)) == []) == ok


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_generated_hostile_script_paths(junk: str) -> None:
    path = f"scripts/ci/{junk}.sh"
    result = messages(mutate([*E, "ci", "scriptPath"], path))
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
    if not set(junk) <= allowed or junk.startswith((".", "-")) or ".." in path:
        assert result, path
