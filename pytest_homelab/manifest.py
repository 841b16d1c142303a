"""deploy.json: load, validate against the shipped JSON Schema, and give typed objects.

Every problem is reported at once, one per line, as ``<json path>: <rule>`` — for example
``environments.dev.ci.scriptPath: must match scripts/ci/<name>.sh (got '../x.sh')``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_homelab.outcomes import BadInput

SUPPORTED_VERSIONS = (2,)
_SPECIFIC = ("pattern", "enum", "const", "required", "additionalProperties")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


@dataclass(frozen=True)
class ManifestIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ManifestInvalid(BadInput):
    """deploy.json broke the contract; ``errors`` holds every problem."""

    def __init__(self, source: str, errors: list[ManifestIssue]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(
            f"{source} is not a valid deploy.json ({len(errors)} "
            f"problem{'s' if len(errors) != 1 else ''}):\n{lines}",
            hint=f"fix the file; `homelab manifest check {source}` lists the problems",
        )


@dataclass(frozen=True)
class CiSpec:
    repo: str
    script_path: str
    timeout_ms: int


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    image: str
    deployment: str
    container: str | None = None
    commit: str | None = None
    kind: str = "Deployment"

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.deployment}"


@dataclass(frozen=True)
class Environment:
    name: str
    services: tuple[Service, ...]
    ci: CiSpec | None = None


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    environments: dict[str, Environment]
    source: str

    def environment(self, name: str | None) -> Environment:
        """The named environment, or the only one; BadInput naming the choices otherwise."""
        names = ", ".join(sorted(self.environments))
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
            hint="pass --env NAME (pytest: --homelab-env), or set env in [tool.homelab]",
        )

    def all_namespaces(self) -> frozenset[str]:
        """Every namespace any environment's services use."""
        return frozenset(s.namespace for env in self.environments.values() for s in env.services)

    def summary(self) -> str:
        parts = []
        for env in self.environments.values():
            count = len(env.services)
            parts.append(
                f"{env.name} ({count} service{'s' if count != 1 else ''}{', ci' if env.ci else ''})"
            )
        return f"schemaVersion {self.schema_version}; environments: {', '.join(parts)}"


@cache
def schema() -> dict[str, Any]:
    text = resources.files("pytest_homelab").joinpath("deploy.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _render_path(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


def _shown(value: object, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _issue(error: Any) -> ManifestIssue:
    """Turn one jsonschema ValidationError into a path and a plain rule."""
    parts: list[str | int] = list(error.absolute_path)
    keyword = error.validator
    rule = error.schema.get("x-rule") if isinstance(error.schema, dict) else None
    instance = error.instance
    if keyword == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else "a property"
        return ManifestIssue(_render_path([*parts, name]), "is required")
    if keyword == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(instance) - set(allowed)) if isinstance(instance, dict) else []
        return ManifestIssue(
            _render_path([*parts, extra[0]] if extra else parts),
            f"unknown key (allowed: {', '.join(allowed)})",
        )
    if "propertyNames" in error.absolute_schema_path:
        return ManifestIssue(
            _render_path([*parts, str(instance)]), f"environment name {rule or 'is invalid'}"
        )
    if keyword == "const" and parts == ["schemaVersion"]:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        return ManifestIssue(
            "schemaVersion", f"unsupported version {_shown(instance)} (supported: {supported})"
        )
    if keyword == "type" and rule is None:
        return ManifestIssue(
            _render_path(parts), f"must be {error.validator_value} (got {_json_type(instance)})"
        )
    if keyword == "pattern" and parts and parts[-1] == "image" and isinstance(instance, str):
        last = instance.rsplit("/", 1)[-1]
        if "@" in instance or ":" in last:
            rule = "must be an image repository without tag or digest (the tag comes from CI)"
    text = rule or error.message
    return ManifestIssue(_render_path(parts), f"{text} (got {_shown(instance)})")


def _semantic(doc: dict[str, Any]) -> list[ManifestIssue]:
    issues: list[ManifestIssue] = []
    envs = doc.get("environments")
    if not isinstance(envs, dict):
        return issues
    for env_name, env in envs.items():
        services = env.get("services") if isinstance(env, dict) else None
        if not isinstance(services, list):
            continue
        names: dict[str, int] = {}
        targets: dict[tuple[str, str, str], int] = {}
        for n, svc in enumerate(services):
            if not isinstance(svc, dict):
                continue
            base = ["environments", env_name, "services", n]
            name = svc.get("name")
            if isinstance(name, str):
                if name in names:
                    issues.append(
                        ManifestIssue(
                            _render_path([*base, "name"]),
                            f"duplicate service name {name!r} (also services[{names[name]}])",
                        )
                    )
                else:
                    names[name] = n
            ns, kind = svc.get("namespace"), svc.get("kind", "Deployment")
            obj = svc.get("deployment", name)
            if isinstance(ns, str) and isinstance(obj, str) and isinstance(kind, str):
                key = (ns, kind, obj)
                if key in targets:
                    issues.append(
                        ManifestIssue(
                            _render_path(base),
                            f"{kind} {ns}/{obj} is already verified by services[{targets[key]}]",
                        )
                    )
                else:
                    targets[key] = n
    return issues


def _sort_key(issue: ManifestIssue) -> list[tuple[int, str]]:
    return [
        (0, p) if not p.isdigit() else (1, p.zfill(8)) for p in re.findall(r"[^.\[\]]+", issue.path)
    ]


@cache
def _validator_class() -> Any:
    """Draft 2020-12 with ECMA-262's ``$``: Python's also matches before a trailing newline,
    which would let ``scripts/ci/x.sh\n`` through a pattern that editors reject."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, value: str, instance: object, _schema: object) -> Any:
        if not validator.is_type(instance, "string"):
            return
        regex = value[:-1] + r"\Z" if value.endswith("$") and not value.endswith("\\$") else value
        if not re.search(regex, str(instance)):
            yield ValidationError(f"{instance!r} does not match {value!r}")

    extend: Any = validators.extend
    return extend(Draft202012Validator, {"pattern": pattern})


def validate_document(doc: object) -> list[ManifestIssue]:
    """Every problem with a parsed document, sorted by path; [] when it is valid."""
    if not isinstance(doc, dict):
        return [ManifestIssue("(top level)", f"must be a JSON object (got {_json_type(doc)})")]
    validator = _validator_class()(schema())
    # One problem per path: when several keywords fail (maxLength and pattern), the most
    # specific one (pattern, enum, const) says it best.
    issues: dict[str, ManifestIssue] = {}
    errors = sorted(validator.iter_errors(doc), key=lambda e: e.validator not in _SPECIFIC)
    for error in errors:
        issue = _issue(error)
        issues.setdefault(issue.path, issue)
    version = doc.get("schemaVersion")
    if version in SUPPORTED_VERSIONS or "schemaVersion" not in doc:
        for issue in _semantic(doc):
            issues.setdefault(issue.path, issue)
    else:  # another version's layout is unknown: report only the version
        issues = {k: v for k, v in issues.items() if k in ("schemaVersion", "(top level)")}
    return sorted(issues.values(), key=_sort_key)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_manifest(text: str | bytes, source: str) -> Manifest:
    """Parse and validate; ManifestInvalid lists every problem."""
    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        raise ManifestInvalid(
            source, [ManifestIssue("(file)", f"not UTF-8: {exc.reason}")]
        ) from None
    try:
        doc = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        issue = ManifestIssue(f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
        raise ManifestInvalid(source, [issue]) from None
    except ValueError as exc:
        raise ManifestInvalid(source, [ManifestIssue("(file)", str(exc))]) from None
    issues = validate_document(doc)
    if issues:
        raise ManifestInvalid(source, issues)
    return _build(doc, source)


def _build(doc: dict[str, Any], source: str) -> Manifest:
    environments = {}
    for name, env in doc["environments"].items():
        ci = env.get("ci")
        environments[name] = Environment(
            name=name,
            ci=CiSpec(ci["repo"], ci["scriptPath"], ci["timeoutMs"]) if ci else None,
            services=tuple(
                Service(
                    name=s["name"],
                    namespace=s["namespace"],
                    image=s["image"],
                    deployment=s.get("deployment", s["name"]),
                    container=s.get("container"),
                    commit=s.get("commit"),
                    kind=s.get("kind", "Deployment"),
                )
                for s in env["services"]
            ),
        )
    return Manifest(doc["schemaVersion"], environments, source)


def load_manifest(path: Path) -> Manifest:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no deploy.json at {path}",
            hint="create one (see docs/deploy-json.md), or point at it with --deploy-json",
        ) from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a directory, not a deploy.json") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    return parse_manifest(data, str(path))


def check_manifest(path: Path) -> tuple[int, list[str]]:
    """For ``homelab manifest check``: exit code (0 valid, 2 invalid) and the lines to print."""
    try:
        manifest = load_manifest(path)
    except ManifestInvalid as exc:
        return 2, [f"{exc.source}: {issue}" for issue in exc.errors]
    except BadInput as exc:
        return 2, [exc.render()]
    return 0, [f"{path}: valid ({manifest.summary()})"]
