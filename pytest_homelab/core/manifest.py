"""deploy.json: load, validate against the shipped JSON Schema, and give typed objects.

Every problem is reported at once, sorted by path, one per line as ``<json path>: <rule>``, e.g.
``environments.dev.ci.scriptPath: must match scripts/ci/<name>.sh ... (got '../x.sh')``.
The schema (``deploy.schema.json`` in this package) holds the rules; each constraint carries its
user-facing text in an ``x-rule`` annotation, so jsonschema's own messages never reach users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pytest_homelab.core.outcomes import EXIT_BAD_INPUT, EXIT_SUCCESS, BadInput
from pytest_homelab.core.quickschema import Check, compile_schema

if TYPE_CHECKING:  # jsonschema is imported only when a document is not proven valid
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

SUPPORTED_VERSIONS: tuple[int, ...] = (2,)
SCHEMA_FILE = "deploy.schema.json"
MAX_DEPTH = 64  # the contract nests 6 deep; deeper is garbage, refused before validation
TOP_LEVEL = "(top level)"
WHOLE_FILE = "(file)"

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]
PathPart = str | int

_GOT_LIMIT = 60  # characters of an offending value shown in a message
_KEY_LIMIT = 40  # characters of an object key shown in a path
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
# When several keywords fail at one path, the first of these says it best.
_PREFERRED = ("required", "additionalProperties", "const", "enum", "pattern", "not", "type")
_JSON_TYPES = {"object": "an object", "array": "an array", "string": "a string"}
_JSON_TYPES |= {"integer": "an integer", "number": "a number", "boolean": "true or false"}


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestIssue:
    """One broken rule: where (a JSON path like ``environments.dev.services[2].image``), what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ManifestInvalid(BadInput):
    """deploy.json broke the contract; ``errors`` holds every problem, sorted by path."""

    def __init__(self, source: str, errors: list[ManifestIssue]) -> None:
        self.source = source
        self.errors = errors
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        lines = "\n".join(f"  {source}: {issue}" for issue in errors)
        super().__init__(
            f"{source} is not a valid deploy.json ({count}):\n{lines}",
            hint="fix the problems listed; `homelab manifest check [PATH]` checks a file again",
        )


@dataclass(frozen=True)
class CiSpec:
    """The environment's end-to-end runner: ``scripts/ci/<name>.sh`` from ``repo``."""

    repo: str
    script_path: str
    timeout_ms: int


@dataclass(frozen=True)
class Probe:
    """Where a service answers with its version (the smoke phase). Sends no credentials."""

    url: str
    expect: Literal["commit", "ok"] = "commit"
    header: str | None = None
    dial: str | None = None
    timeout: float = 120.0  # seconds


@dataclass(frozen=True, kw_only=True)
class Service:
    """A workload to verify. ``deployment`` (the workload's name, any kind) defaults to ``name``."""

    name: str
    namespace: str
    deployment: str = ""
    container: str | None = None
    image: str
    commit: str | None = None
    kind: WorkloadKind = "Deployment"
    probe: Probe | None = None

    def __post_init__(self) -> None:
        if not self.deployment:
            object.__setattr__(self, "deployment", self.name)

    @property
    def target(self) -> str:
        """``namespace/deployment``, as kubectl names it."""
        return f"{self.namespace}/{self.deployment}"


@dataclass(frozen=True)
class Environment:
    name: str
    ci: CiSpec | None = None
    services: tuple[Service, ...] = ()

    def summary(self) -> str:
        """``dev (3 services, ci)``."""
        count = len(self.services)
        ci = ", ci" if self.ci else ""
        return f"{self.name} ({count} service{'s' if count != 1 else ''}{ci})"


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    environments: Mapping[str, Environment] = field(hash=False)
    source: str

    def environment(self, name: str | None) -> Environment:
        """The named environment, or the only one; BadInput naming the choices otherwise."""
        names = ", ".join(self.environments)
        if name is not None:
            if name not in self.environments:
                raise BadInput(
                    f"{self.source} has no environment {name!r} (it has: {names})",
                    hint="pass one of them with --env (pytest: --homelab-env)",
                )
            return self.environments[name]
        if len(self.environments) == 1:
            return next(iter(self.environments.values()))
        raise BadInput(
            f"{self.source} has several environments ({names}) and none was chosen",
            hint="pass --env NAME (pytest: --homelab-env NAME), or set env in [tool.homelab]",
        )

    def all_namespaces(self) -> frozenset[str]:
        """Every namespace any environment's services use."""
        return frozenset(s.namespace for env in self.environments.values() for s in env.services)

    def summary(self) -> str:
        """``schemaVersion 2; environments: dev (3 services, ci), prod (4 services)``."""
        envs = ", ".join(env.summary() for env in self.environments.values())
        return f"schemaVersion {self.schema_version}; environments: {envs}"


# -- the schema and its validator ------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12), parsed."""
    text = resources.files("pytest_homelab.core").joinpath(SCHEMA_FILE).read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def _ecma(pattern: str) -> str:
    """ECMA-262's ``$``: Python's also matches before a trailing newline, which would let
    ``scripts/ci/x.sh\\n`` through a pattern that editors reject."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def _ecma_pattern(
    validator: Validator, pattern: str, instance: object, _schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``pattern`` with ECMA-262's ``$`` (:func:`_ecma`)."""
    from jsonschema import ValidationError

    if isinstance(instance, str) and not re.search(_ecma(pattern), instance):
        yield ValidationError(f"does not match {pattern!r}")


@cache
def _validator() -> Validator:
    from jsonschema import Draft202012Validator, validators

    extend: Any = validators.extend  # untyped in types-jsonschema
    cls: type[Validator] = extend(Draft202012Validator, {"pattern": _ecma_pattern})
    return cls(schema())


@cache
def _proven_valid() -> Check:
    """The schema as plain checks (core/quickschema.py): a valid document, nearly every one,
    needs neither jsonschema's import nor its walk (together 0.1 s at 1000 services)."""
    return compile_schema(schema(), pattern=_ecma)


def _schema_errors(doc: dict[str, Any]) -> list[ValidationError]:
    if _proven_valid()(doc) is True:
        return []
    return sorted(
        _validator().iter_errors(doc),
        key=lambda e: _PREFERRED.index(e.validator) if e.validator in _PREFERRED else 99,
    )


# -- rendering -------------------------------------------------------------------------------


def render_path(parts: Sequence[PathPart]) -> str:
    """``["environments", "dev", "services", 2]`` → ``environments.dev.services[2]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if len(part) <= _KEY_LIMIT else part[: _KEY_LIMIT - 3] + "..."
        if _IDENT.fullmatch(key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out or TOP_LEVEL


def _shown(value: object) -> str:
    """A short, single-line, escaped rendering of an offending value."""
    if isinstance(value, str):
        # A URL's user:password is never echoed (ci.repo refuses credentials, and says so).
        text = repr(re.sub(r"(?<=://)[^\s'\"<>/]*@", "***@", value[: _GOT_LIMIT * 2]))
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int):
        text = str(value) if value.bit_length() < 200 else "a huge number"
    elif isinstance(value, float):
        text = json.dumps(value) if value == value and abs(value) != float("inf") else str(value)
    elif isinstance(value, list | dict):
        try:
            text = json.dumps(value, ensure_ascii=True)
        except (ValueError, TypeError, RecursionError):
            text = "an array" if isinstance(value, list) else "an object"
    else:
        text = type(value).__name__
    return text if len(text) <= _GOT_LIMIT else text[: _GOT_LIMIT - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    for python, name in ((str, "string"), (list, "array"), (dict, "object")):
        if isinstance(value, python):
            return name
    return type(value).__name__


def _fallback_rule(error: ValidationError) -> str:
    """A plain rule for a keyword whose schema node carries no ``x-rule``."""
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        kinds = [expected] if isinstance(expected, str) else list(cast(list[str], expected))
        return "must be " + " or ".join(_JSON_TYPES.get(k, k) for k in kinds)
    rules: dict[str, str] = {
        "minLength": f"must be at least {expected} characters long",
        "maxLength": f"must be at most {expected} characters long",
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "minProperties": "must not be empty",
        "minItems": "must not be empty",
        "const": f"must be {_shown(expected)}",
        "enum": "must be one of " + ", ".join(_shown(v) for v in cast(list[object], expected)),
    }
    return rules.get(str(keyword), "is not allowed here")


def _issues(error: ValidationError) -> Iterator[tuple[list[PathPart], str]]:
    """Turn one jsonschema error into (path, rule) pairs: a path and a plain rule each."""
    parts: list[PathPart] = list(error.absolute_path)
    keyword, instance = error.validator, error.instance
    node = error.schema if isinstance(error.schema, Mapping) else {}
    rule = node.get("x-rule")
    if keyword == "required" and isinstance(instance, Mapping):
        for name in cast(list[str], error.validator_value):
            if name not in instance and repr(name) in error.message:
                yield [*parts, name], "is required"
        return
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = sorted(node.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield [*parts, str(key)], f"unknown key (allowed: {', '.join(allowed)})"
        return
    if "propertyNames" in error.absolute_schema_path:
        yield [*parts, str(instance)], f"environment name {rule or _fallback_rule(error)}"
        return
    if parts == ["schemaVersion"]:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        yield parts, f"unsupported version {_shown(instance)} (supported: {supported})"
        return
    tagged = isinstance(instance, str) and ("@" in instance or ":" in instance.rsplit("/", 1)[-1])
    if parts[-1:] == ["image"] and tagged:
        rule = "must be an image repository without tag or digest"
    text = rule if isinstance(rule, str) else _fallback_rule(error)
    if keyword == "type" and rule is None:
        yield parts, f"{text} (got {_json_type(instance)})"
    else:
        yield parts, f"{text} (got {_shown(instance)})"


def _semantic(doc: Mapping[str, Any]) -> Iterator[tuple[list[PathPart], str]]:
    """Rules a schema cannot say: unique service names and unique targets per environment."""
    envs = doc.get("environments")
    if not isinstance(envs, Mapping):
        return
    for env_name, env in envs.items():
        services = env.get("services") if isinstance(env, Mapping) else None
        if not isinstance(services, list):
            continue
        names: dict[str, int] = {}
        targets: dict[tuple[str, str, str], int] = {}
        for n, svc in enumerate(services):
            if not isinstance(svc, Mapping):
                continue
            base: list[PathPart] = ["environments", env_name, "services", n]
            name = svc.get("name")
            if isinstance(name, str):
                if name in names:
                    first = names[name]
                    yield (
                        [*base, "name"],
                        (f"duplicate service name {_shown(name)} (services[{first}] and [{n}])"),
                    )
                else:
                    names[name] = n
            ns, kind, obj = (
                svc.get("namespace"),
                svc.get("kind", "Deployment"),
                svc.get("deployment", name),
            )
            probe = svc.get("probe")
            if isinstance(probe, Mapping):
                for key in ("url", "dial"):
                    port = _port_of(probe.get(key), url=key == "url")
                    if port is not None and not 0 < port < 65536:
                        yield [*base, "probe", key], f"port {port} is not 1-65535"
            if isinstance(ns, str) and isinstance(kind, str) and isinstance(obj, str):
                if (ns, kind, obj) in targets:
                    first = targets[ns, kind, obj]
                    yield (
                        base,
                        (
                            f"duplicate target {kind} {_shown(f'{ns}/{obj}')} "
                            f"(services[{first}] and [{n}] verify the same workload)"
                        ),
                    )
                else:
                    targets[ns, kind, obj] = n


def _port_of(value: object, *, url: bool) -> int | None:
    """The explicit port of a probe URL or dial address, if the schema's pattern let it through."""
    if not isinstance(value, str):
        return None
    match = re.match(r"^(?:https?://)?(?:\[[^\]]*\]|[^:/?#\[]*)(?::([0-9]+))?", value)
    if url and not value.lower().startswith(("http://", "https://")):
        return None
    return int(match.group(1)) if match and match.group(1) else None


def _depth(doc: object) -> int:
    """How deep containers nest (iteratively, so depth itself cannot overflow the stack)."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(value, Mapping):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


def _sort_key(parts: Sequence[PathPart]) -> tuple[tuple[int, int, str], ...]:
    return tuple((1, p, "") if isinstance(p, int) else (0, 0, p) for p in parts)


def validate_document(doc: object) -> list[ManifestIssue]:
    """Every problem with a parsed document, sorted by path; ``[]`` when it is valid."""
    if not isinstance(doc, dict):
        return [ManifestIssue(TOP_LEVEL, f"must be a JSON object (got {_json_type(doc)})")]
    if _depth(doc) > MAX_DEPTH:
        return [ManifestIssue(TOP_LEVEL, f"nests deeper than {MAX_DEPTH} levels")]
    found: dict[str, tuple[list[PathPart], str]] = {}
    for error in _schema_errors(doc):
        for parts, message in _issues(error):
            found.setdefault(render_path(parts), (parts, message))
    if "schemaVersion" in doc and "schemaVersion" in found:
        # Another version's layout is unknown: its other "errors" would only mislead.
        found = {"schemaVersion": found["schemaVersion"]}
    else:
        for parts, message in _semantic(doc):
            found.setdefault(render_path(parts), (parts, message))
    ordered = sorted(found.items(), key=lambda item: _sort_key(item[1][0]))
    return [ManifestIssue(path, message) for path, (_, message) in ordered]


# -- parsing and loading ---------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(f"duplicate key {_shown(key)}: JSON readers disagree on which wins")
        seen[key] = value
    return seen


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _decode(text: str | bytes, source: str) -> object:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            where = f"byte {exc.start}"
            raise ManifestInvalid(
                source, [ManifestIssue(WHOLE_FILE, f"not UTF-8 ({where})")]
            ) from None
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        issue = ManifestIssue(f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
    except _DuplicateKey as exc:
        issue = ManifestIssue(WHOLE_FILE, str(exc))
    except RecursionError:
        issue = ManifestIssue(WHOLE_FILE, "invalid JSON: nested too deeply")
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        issue = ManifestIssue(WHOLE_FILE, f"invalid JSON: {str(exc).split(';')[0]}")
    raise ManifestInvalid(source, [issue])


def parse_manifest(text: str | bytes, source: str) -> Manifest:
    """Parse and validate; ManifestInvalid lists every problem. ``source`` names the origin in
    messages: a file path, or ``origin/master:deploy.json``."""
    doc = _decode(text, source)
    issues = validate_document(doc)
    if issues:
        raise ManifestInvalid(source, issues)
    return _build(cast(dict[str, Any], doc), source)


def _build(doc: dict[str, Any], source: str) -> Manifest:
    environments: dict[str, Environment] = {}
    for name, env in doc["environments"].items():
        ci = env.get("ci")
        environments[name] = Environment(
            name=name,
            ci=CiSpec(ci["repo"], ci["scriptPath"], int(ci["timeoutMs"])) if ci else None,
            services=tuple(
                Service(
                    name=s["name"],
                    namespace=s["namespace"],
                    deployment=s.get("deployment", s["name"]),
                    container=s.get("container"),
                    image=s["image"],
                    commit=s.get("commit"),
                    kind=s.get("kind", "Deployment"),
                    probe=_probe(s.get("probe")),
                )
                for s in env["services"]
            ),
        )
    return Manifest(int(doc["schemaVersion"]), environments, source)


def _probe(doc: Mapping[str, Any] | None) -> Probe | None:
    if doc is None:
        return None
    return Probe(
        url=doc["url"],
        expect=doc.get("expect", "commit"),
        header=doc.get("header"),
        dial=doc.get("dial"),
        timeout=int(doc.get("timeoutMs", 120000)) / 1000,
    )


def load_manifest(path: Path) -> Manifest:
    """Read and validate a deploy.json file; BadInput when it is missing or unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no deploy.json at {path}",
            hint="create one (schemaVersion 2, see the example deploy.json of pytest-homelab), "
            "or point at yours with --deploy-json PATH",
        ) from None
    except IsADirectoryError:
        raise BadInput(
            f"{path} is a directory, not a deploy.json", hint="pass the file's path"
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    key = (str(path), data)
    cached = _LOADED.get(key)
    if cached is None:
        cached = parse_manifest(data, str(path))  # an invalid file raises, and is not kept
        _LOADED.clear()  # one file at a time: an edited file is parsed again
        _LOADED[key] = cached
    return cached


# The last file parsed, by path and content: one session reads deploy.json for its settings, the
# rollout plan and the smoke plan, and validating a thousand services against the schema costs
# about 0.2 s each time. Keyed by the content, so an edited file is read as it is now.
_LOADED: dict[tuple[str, bytes], Manifest] = {}


def check_manifest(path: Path) -> tuple[int, list[str]]:
    """For ``homelab manifest check``: exit code (0 valid, 2 invalid) and the lines to print."""
    try:
        manifest = load_manifest(path)
    except ManifestInvalid as exc:
        return EXIT_BAD_INPUT, [f"{exc.source}: {issue}" for issue in exc.errors]
    except BadInput as exc:
        return EXIT_BAD_INPUT, exc.render().splitlines()
    return EXIT_SUCCESS, [f"{path}: valid ({manifest.summary()})"]
