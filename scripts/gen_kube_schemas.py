#!/usr/bin/env python3
"""Derive the Kubernetes simulator's OpenAPI v3 schemas from the k8s.io/api Go types.

Reads the Go type declarations (struct fields, their ``json`` names, Go types and the
``patchStrategy``/``patchMergeKey`` tags, plus ``+listType``/``+listMapKey`` markers) of
kubernetes/api ``core/v1/types.go`` and ``apps/v1/types.go`` and kubernetes/apimachinery
``pkg/apis/meta/v1/types.go``, from git mirrors at a tag, and writes
``pytest_homelab/sim/kube/schemas/kube-v1.json``: one schema per reachable type, with the
``x-kubernetes-patch-*`` and ``x-kubernetes-list-*`` extensions the API server publishes.
No description texts and no code are carried: only field names, types and patch metadata.

    python scripts/gen_kube_schemas.py --api MIRROR --apimachinery MIRROR --tag v0.33.13 [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "pytest_homelab" / "sim" / "kube" / "schemas" / "kube-v1.json"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
PACKAGES = {  # Go package alias → (schema prefix, file in its repository)
    "core": ("io.k8s.api.core.v1", "api", "core/v1/types.go"),
    "apps": ("io.k8s.api.apps.v1", "api", "apps/v1/types.go"),
    "metav1": (META, "apimachinery", "pkg/apis/meta/v1/types.go"),
}
ROOTS = [
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("core", "Pod"),
    ("core", "Namespace"),
    ("core", "Event"),
]
# Types whose JSON is not their Go shape (custom marshalling in apimachinery).
SPECIAL: dict[str, dict[str, Any]] = {
    f"{META}.Time": {"type": "string", "format": "date-time"},
    f"{META}.MicroTime": {"type": "string", "format": "date-time"},
    f"{META}.Duration": {"type": "string"},
    f"{META}.FieldsV1": {"type": "object"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    },
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
        "x-kubernetes-int-or-string": True,
    },
}
EXTERNAL = {
    "resource.Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "intstr.IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "types.UID": "string",
    "metav1.Time": f"{META}.Time",
    "metav1.MicroTime": f"{META}.MicroTime",
    "metav1.Duration": f"{META}.Duration",
}
BASIC = {
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer", "format": "int32"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "uint64": {"type": "integer", "format": "int64"},
    "float64": {"type": "number", "format": "double"},
    "byte": {"type": "integer"},
}

_TYPE_DECL = re.compile(r"^type (\w+) (struct \{|[^\s{].*)$", re.M)
_FIELD = re.compile(r"^\t(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


def go_source(mirror: Path, tag: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(mirror), "show", f"{tag}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class Package:
    """The struct and named types of one Go file."""

    def __init__(self, alias: str, prefix: str, text: str) -> None:
        self.alias = alias
        self.prefix = prefix
        self.structs: dict[str, list[dict[str, Any]]] = {}
        self.named: dict[str, str] = {}
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            m = _TYPE_DECL.match(lines[i])
            if m is None:
                i += 1
                continue
            name, rest = m.group(1), m.group(2)
            if rest != "struct {":
                self.named[name] = rest.split("//")[0].strip()
                i += 1
                continue
            fields: list[dict[str, Any]] = []
            markers: dict[str, list[str]] = {}
            i += 1
            while i < len(lines) and lines[i] != "}":
                line = lines[i]
                stripped = line.strip()
                if stripped.startswith("// +"):
                    key, _, value = stripped[4:].partition("=")
                    markers.setdefault(key, []).append(value)
                fm = _FIELD.match(line)
                if fm is not None:
                    tags = dict(_TAG.findall(fm.group(3)))
                    json_name = tags.get("json", "").split(",")
                    fields.append(
                        {
                            "go": fm.group(1),
                            "type": fm.group(2),
                            "json": json_name[0],
                            "inline": "inline" in json_name[1:],
                            "omitempty": "omitempty" in json_name[1:],
                            "strategy": tags.get("patchStrategy"),
                            "key": tags.get("patchMergeKey"),
                            "markers": markers,
                        }
                    )
                    markers = {}
                elif not stripped.startswith("//"):
                    markers = {} if not stripped else markers
                i += 1
            self.structs[name] = fields
            i += 1


class Generator:
    def __init__(self, packages: dict[str, Package]) -> None:
        self.packages = packages
        self.schemas: dict[str, Any] = dict(SPECIAL)

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def type_schema(self, go_type: str, pkg: Package) -> dict[str, Any]:
        go_type = go_type.lstrip("*")
        if go_type.startswith("[]"):
            inner = go_type[2:]
            if inner == "byte":
                return {"type": "string", "format": "byte"}
            return {"type": "array", "items": self.element(inner, pkg)}
        if go_type.startswith("map["):
            value = go_type[go_type.index("]") + 1 :]
            return {"type": "object", "additionalProperties": self.element(value, pkg)}
        if go_type in BASIC:
            return dict(BASIC[go_type])
        name = self.resolve(go_type, pkg)
        if name is None or name == "string":
            return {"type": "string"}
        if isinstance(name, dict):
            return name
        return {"allOf": [self.ref(name)], "default": {}}

    def element(self, go_type: str, pkg: Package) -> dict[str, Any]:
        schema = self.type_schema(go_type, pkg)
        return schema

    def resolve(self, go_type: str, pkg: Package) -> Any:
        """A schema name to $ref, an inline schema for named basic types, or None."""
        if go_type in EXTERNAL:
            target = EXTERNAL[go_type]
            return target
        if "." in go_type:
            alias, name = go_type.split(".", 1)
            other = self.packages.get(alias)
            if other is None:
                raise SystemExit(f"unknown package of {go_type}")
            return self.resolve(name, other)
        if f"{pkg.prefix}.{go_type}" in SPECIAL:
            return f"{pkg.prefix}.{go_type}"
        if go_type in pkg.structs:
            full = f"{pkg.prefix}.{go_type}"
            if full not in self.schemas:
                self.schemas[full] = {}  # cycle guard
                self.schemas[full] = self.struct(go_type, pkg)
            return full
        if go_type in pkg.named:
            underlying = pkg.named[go_type]
            if underlying in BASIC:
                return dict(BASIC[underlying])
            return self.type_schema(underlying, pkg)
        if pkg.alias != "metav1" and go_type in self.packages["metav1"].structs:
            return self.resolve(go_type, self.packages["metav1"])
        raise SystemExit(f"unknown type {go_type} in {pkg.alias}")

    def struct(self, name: str, pkg: Package) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in pkg.structs[name]:
            if field["json"] == "-":
                continue
            if field["inline"] or not field["json"]:  # embedded without a name of its own
                if field["type"] == "metav1.TypeMeta" or field["type"] == "TypeMeta":
                    properties["apiVersion"] = {"type": "string"}
                    properties["kind"] = {"type": "string"}
                    continue
                target = self.resolve(field["type"].lstrip("*"), pkg)
                if isinstance(target, str):
                    properties.update(self.schemas[target].get("properties", {}))
                continue
            schema = self.type_schema(field["type"], pkg)
            if field["strategy"]:
                schema["x-kubernetes-patch-strategy"] = field["strategy"]
            if field["key"]:
                schema["x-kubernetes-patch-merge-key"] = field["key"]
            markers = field["markers"]
            if "listType" in markers:
                schema["x-kubernetes-list-type"] = markers["listType"][0]
            if "listMapKey" in markers:
                schema["x-kubernetes-list-map-keys"] = markers["listMapKey"]
            if "mapType" in markers:
                schema["x-kubernetes-map-type"] = markers["mapType"][0]
            properties[field["json"]] = schema
            if not field["omitempty"] and "optional" not in markers:
                required.append(field["json"])
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out


def generate(api: Path, apimachinery: Path, tag: str) -> dict[str, Any]:
    mirrors = {"api": api, "apimachinery": apimachinery}
    packages = {
        alias: Package(alias, prefix, go_source(mirrors[repo], tag, path))
        for alias, (prefix, repo, path) in PACKAGES.items()
    }
    packages["v1"] = packages["core"]  # apps/v1 refers to core types as v1.X
    gen = Generator(packages)
    kinds = {}
    for alias, kind in ROOTS:
        full = gen.resolve(kind, packages[alias])
        gen.resolve(f"{kind}List", packages[alias])
        kinds[kind] = full
    return {
        "source": f"kubernetes/api and kubernetes/apimachinery {tag}",
        "kinds": kinds,
        "schemas": dict(sorted(gen.schemas.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", type=Path, required=True, help="a kubernetes/api git mirror")
    parser.add_argument("--apimachinery", type=Path, required=True)
    parser.add_argument("--tag", default="v0.33.13")
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args()
    text = json.dumps(generate(args.api, args.apimachinery, args.tag), indent=1, sort_keys=True)
    text += "\n"
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run scripts/gen_kube_schemas.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
