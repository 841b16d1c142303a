#!/usr/bin/env python3
"""Extract what the Kubernetes simulator needs from Tekton's CRDs into package data.

Reads ``300-pipelinerun.yaml`` and ``300-taskrun.yaml`` (byte-for-byte copies of tektoncd/pipeline
``config/300-crds/``) from ``../shared/reference/tekton/`` and writes
``pytest_homelab/sim/kube/schemas/tekton-v1.json``: the ``v1`` ``openAPIV3Schema`` of each kind
without its ``description`` texts, plus names, scope, subresources and printer columns.

    python scripts/gen_tekton_schemas.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference" / "tekton"
OUTPUT = ROOT / "pytest_homelab" / "sim" / "kube" / "schemas" / "tekton-v1.json"
FILES = ("300-pipelinerun.yaml", "300-taskrun.yaml")
VERSION = "v1"

# Keywords whose values are schemas (or lists/maps of schemas); everything else is kept verbatim.
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("not", "additionalItems")


def strip_descriptions(schema: Any) -> Any:
    """The schema without ``description`` keywords (property *names* such as ``description``
    inside ``properties`` are kept: only schema nodes are walked)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_descriptions(sub) for sub in value]
        elif key in (*_SCHEMA_ONE, "additionalProperties") and isinstance(value, dict):
            out[key] = strip_descriptions(value)
        elif key == "items":
            items = value if isinstance(value, list) else None
            out[key] = (
                [strip_descriptions(sub) for sub in items]
                if items is not None
                else strip_descriptions(value)
            )
        else:
            out[key] = value
    return out


def _source(shared: Path) -> dict[str, Any]:
    text = (shared / "SOURCE.txt").read_text()
    commit = re.search(r"\b([0-9a-f]{40})\b", text)
    return {
        "repository": "https://github.com/tektoncd/pipeline",
        "commit": commit.group(1) if commit else "unknown",
        "files": [f"config/300-crds/{name}" for name in FILES],
        "license": "Apache-2.0",
        "copyright": "Copyright 2019 The Tekton Authors",
        "note": "Derived by scripts/gen_tekton_schemas.py: the v1 openAPIV3Schema of each CRD "
        "with description texts removed, plus names, scope, subresources and printer columns.",
    }


def extract(shared: Path = SHARED) -> dict[str, Any]:
    """What the simulator ships, extracted from the CRDs in ``shared``."""
    kinds: dict[str, Any] = {}
    group = ""
    for name in FILES:
        crd = yaml.safe_load((shared / name).read_text())
        spec = crd["spec"]
        group = spec["group"]
        version = next(v for v in spec["versions"] if v["name"] == VERSION)
        names = spec["names"]
        kinds[names["kind"]] = {
            "plural": names["plural"],
            "singular": names["singular"],
            "shortNames": names.get("shortNames", []),
            "categories": names.get("categories", []),
            "scope": spec["scope"],
            "subresources": version.get("subresources", {}),
            "additionalPrinterColumns": version.get("additionalPrinterColumns", []),
            "schema": strip_descriptions(version["schema"]["openAPIV3Schema"]),
        }
    return {"source": _source(shared), "group": group, "version": VERSION, "kinds": kinds}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the CRDs' directory")
    parser.add_argument("--check", action="store_true", help="fail if the shipped file differs")
    args = parser.parse_args(argv)
    text = render(extract(args.shared))
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run scripts/gen_tekton_schemas.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
