"""Property tests: no input ever gives a traceback; scriptPath is accepted exactly when safe."""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_homelab.core.manifest import (
    Manifest,
    ManifestInvalid,
    parse_manifest,
    validate_document,
)

MakeDoc = Callable[..., dict[str, Any]]
SCRIPT = ["environments", "dev", "ci", "scriptPath"]
NAME_CHARS = string.ascii_letters + string.digits + "._-"
SCRIPT_MESSAGE = "environments.dev.ci.scriptPath: must match scripts/ci/<name>.sh"
FIXTURE_OK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def assert_well_formed(exc: ManifestInvalid) -> None:
    assert exc.errors
    for issue in exc.errors:
        assert issue.path and issue.message
        assert "\n" not in str(issue) and len(str(issue)) < 400, issue
        assert "does not match" not in issue.message  # no raw jsonschema text
        assert "is not valid under any" not in issue.message


def outcome(text: str | bytes) -> Manifest | ManifestInvalid:
    try:
        return parse_manifest(text, "fuzz.json")
    except ManifestInvalid as exc:
        assert_well_formed(exc)
        return exc


# -- arbitrary input: a Manifest or ManifestInvalid, never anything else -------------------------


@FIXTURE_OK
@given(json_values)
def test_arbitrary_json_is_a_manifest_or_manifest_invalid(value: object) -> None:
    outcome(json.dumps(value))


@FIXTURE_OK
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_and_text(data: bytes | str) -> None:
    outcome(data)


paths_in_good = st.sampled_from(
    [
        ["schemaVersion"],
        ["environments"],
        ["environments", "dev"],
        ["environments", "dev", "ci"],
        ["environments", "dev", "ci", "repo"],
        ["environments", "dev", "ci", "timeoutMs"],
        ["environments", "dev", "ci", "extra"],
        ["environments", "dev", "services"],
        ["environments", "dev", "services", 0],
        ["environments", "dev", "services", 1, "name"],
        ["environments", "dev", "services", 1, "namespace"],
        ["environments", "dev", "services", 1, "deployment"],
        ["environments", "dev", "services", 1, "container"],
        ["environments", "dev", "services", 1, "image"],
        ["environments", "dev", "services", 1, "commit"],
        ["environments", "dev", "services", 1, "kind"],
        ["environments", "qa"],
    ]
)


def set_at(doc: dict[str, Any], path: list[str | int], value: object) -> None:
    """Replace the item at ``path`` if the earlier edits left a way to it."""
    target: Any = doc
    with contextlib.suppress(KeyError, IndexError, TypeError):
        for key in path[:-1]:
            target = target[key]
        last: Any = path[-1]
        if isinstance(target, dict | list) and isinstance(target, dict) == isinstance(last, str):
            target[last] = value


def edited(make_doc: MakeDoc, edits: list[tuple[list[str | int], object]]) -> dict[str, Any]:
    """The known-good document with each (path, value) edit made that still has a way in."""
    doc = make_doc()
    for path, value in edits:
        set_at(doc, path, value)
    return doc


@FIXTURE_OK
@given(st.lists(st.tuples(paths_in_good, json_values), min_size=1, max_size=3))
def test_good_document_with_random_parts_replaced(
    make_doc: MakeDoc, edits: list[tuple[list[str | int], object]]
) -> None:
    doc = edited(make_doc, edits)
    result = outcome(json.dumps(doc))
    issues = validate_document(json.loads(json.dumps(doc)))
    if isinstance(result, ManifestInvalid):
        assert [str(i) for i in result.errors] == [str(i) for i in issues]
    else:
        assert issues == []


# -- scriptPath --------------------------------------------------------------------------------

valid_names = (
    st.tuples(
        st.sampled_from(string.ascii_letters + string.digits + "_"),
        st.text(NAME_CHARS, max_size=40),
    )
    .map("".join)
    .filter(lambda n: ".." not in n and not n.endswith("."))
)

HOSTILE = [
    "..",
    "/",
    "\\",
    " ",
    "\t",
    "\n",
    "\r",
    "\x00",
    ";",
    "$(",
    "${",
    "`",
    "'",
    '"',
    "|",
    "&",
    ">",
    "<",
    "*",
    "?",
    "~",
    "#",
    "!",
    "．",  # fullwidth full stop
    "／",  # fullwidth solidus
    "∕",  # division slash
    "⁄",  # fraction slash
    "\u2024",  # one dot leader
    "\u200b",  # zero-width space
    "\u00a0",  # no-break space
    "ｓｈ",  # fullwidth letters
    "і",  # Cyrillic i
]
non_name_chars = st.characters(blacklist_characters=NAME_CHARS, blacklist_categories=["Cs"]).map(
    str
)


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    name = draw(valid_names)
    how = draw(st.sampled_from(["insert", "dots", "lead", "prefix", "suffix", "case"]))
    if how == "dots":  # '..' anywhere, also where it meets the '.sh'
        at = draw(st.integers(0, len(name)))
        return f"scripts/ci/{name[:at]}.{'.' * draw(st.integers(1, 3))}{name[at:]}.sh"
    if how == "insert":
        junk = draw(st.sampled_from(HOSTILE) | non_name_chars)
        at = draw(st.integers(0, len(name)))
        return f"scripts/ci/{name[:at]}{junk}{name[at:]}.sh"
    if how == "lead":
        return f"scripts/ci/{draw(st.sampled_from('.-'))}{name}.sh"
    if how == "prefix":
        prefix = draw(
            st.sampled_from(["/", "./", "../", "scripts/ci/../", "a/", " ", "\\", "~/", "$HOME/"])
        )
        where = draw(st.sampled_from(["start", "dir"]))
        if where == "start":
            return f"{prefix}scripts/ci/{name}.sh"
        return f"scripts/ci/{prefix}{name}.sh"
    if how == "suffix":
        tail = draw(st.sampled_from(["\n", " ", ";id", ".txt", "/", "\x00", "#", " && id", "\nid"]))
        return f"scripts/ci/{name}.sh{tail}"
    ext = draw(st.sampled_from([".SH", ".Sh", ".sH", ".bash", ".py", "", ".s h", ".shh"]))
    return f"scripts/ci/{name}{ext}"


@FIXTURE_OK
@given(hostile_paths())
def test_generated_invalid_script_paths_are_rejected(make_doc: MakeDoc, path: str) -> None:
    found = [str(i) for i in validate_document(make_doc(SCRIPT, path))]
    assert len(found) == 1 and found[0].startswith(SCRIPT_MESSAGE), (path, found)


@FIXTURE_OK
@given(valid_names)
def test_generated_valid_script_paths_are_accepted_and_round_trip(
    make_doc: MakeDoc, name: str
) -> None:
    path = f"scripts/ci/{name}.sh"
    text = json.dumps(make_doc(SCRIPT, path))
    manifest = parse_manifest(text, "deploy.json")
    ci = manifest.environment("dev").ci
    assert ci is not None and ci.script_path == path
    assert parse_manifest(json.dumps(to_document(manifest)), "deploy.json") == manifest


@FIXTURE_OK
@given(st.text(st.sampled_from([*NAME_CHARS, *"/\\ $;()`'\"\n", ".", ".", "-"]), max_size=40))
def test_script_names_are_accepted_exactly_when_safe(make_doc: MakeDoc, name: str) -> None:
    path = f"scripts/ci/{name}.sh"
    safe = (
        name != ""
        and set(name) <= set(NAME_CHARS)
        and not name.startswith((".", "-"))
        and ".." not in path
    )
    found = validate_document(make_doc(SCRIPT, path))
    assert (found == []) == safe, (path, found)


# -- generated valid manifests round-trip -----------------------------------------------------

labels = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?\Z", fullmatch=True)
images = st.from_regex(
    r"\A(registry\.example\.test(:5000)?/)?[a-z0-9]{1,8}(-[a-z0-9]{1,4})?(/[a-z0-9]{1,8})?\Z",
    fullmatch=True,
)


@st.composite
def services(draw: st.DrawFn) -> list[dict[str, object]]:
    names = draw(st.lists(labels, max_size=5, unique=True))
    out: list[dict[str, object]] = []
    for name in names:
        service: dict[str, object] = {
            "name": name,
            "namespace": draw(st.sampled_from(["apps", "edge", "data"])),
            "image": draw(images),
        }
        if draw(st.booleans()):
            service["container"] = draw(labels)
        if draw(st.booleans()):
            service["commit"] = draw(st.from_regex(r"\A[0-9a-f]{40}\Z", fullmatch=True))
        if draw(st.booleans()):
            service["kind"] = draw(st.sampled_from(["Deployment", "StatefulSet", "DaemonSet"]))
        out.append(service)
    return out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    envs: dict[str, object] = {}
    for env_name in draw(st.lists(labels, min_size=1, max_size=3, unique=True)):
        env: dict[str, object] = {"services": draw(services())}
        if draw(st.booleans()):
            env["ci"] = {
                "repo": draw(
                    st.sampled_from(
                        ["https://git.example.test/h/app", "git@git.example.test:h/app.git"]
                    )
                ),
                "scriptPath": f"scripts/ci/{draw(valid_names)}.sh",
                "timeoutMs": draw(st.integers(1000, 86_400_000)),
            }
        envs[env_name] = env
    return {"schemaVersion": 2, "environments": envs}


def to_document(manifest: Manifest) -> dict[str, Any]:
    """The manifest written back as deploy.json, defaults made explicit."""
    envs: dict[str, Any] = {}
    for name, env in manifest.environments.items():
        out: dict[str, Any] = {"services": []}
        if env.ci is not None:
            out["ci"] = {
                "repo": env.ci.repo,
                "scriptPath": env.ci.script_path,
                "timeoutMs": env.ci.timeout_ms,
            }
        for s in env.services:
            service = {"name": s.name, "namespace": s.namespace, "deployment": s.deployment}
            service |= {"image": s.image, "kind": s.kind}
            if s.container is not None:
                service["container"] = s.container
            if s.commit is not None:
                service["commit"] = s.commit
            out["services"].append(service)
        envs[name] = out
    return {"schemaVersion": manifest.schema_version, "environments": envs}


def with_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))
    for env in out["environments"].values():
        for s in env["services"]:
            s.setdefault("deployment", s["name"])
            s.setdefault("kind", "Deployment")
    return out


@FIXTURE_OK
@given(documents())
def test_generated_valid_manifests_round_trip(doc: dict[str, Any]) -> None:
    manifest = parse_manifest(json.dumps(doc), "deploy.json")
    assert to_document(manifest) == with_defaults(doc)
    assert parse_manifest(json.dumps(to_document(manifest)), "deploy.json") == manifest
    used = {s["namespace"] for e in doc["environments"].values() for s in e["services"]}
    assert manifest.all_namespaces() == used
