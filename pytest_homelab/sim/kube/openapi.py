"""OpenAPI v3 for the Kubernetes simulator, and server-side field validation.

kubectl ≥1.27 decides how to validate ``kubectl create -f`` by reading ``/openapi/v3``: when the
group-version document has a PATCH operation for the object's kind (``x-kubernetes-group-version-
kind``) with a ``fieldValidation`` query parameter, it leaves validation to the server and sends
``?fieldValidation=Strict`` (cli-runtime ``pkg/resource/query_param_verifier_v3.go``). So every
registered group-version gets a document with get/put/patch/delete/post operations and a schema
per kind: core and apps kinds typed loosely, Tekton kinds with their CRD schemas
(``schemas/tekton-v1.json``, extracted by ``scripts/gen_tekton_schemas.py``).

Field validation follows the API server for custom resources: unknown fields (outside
``x-kubernetes-preserve-unknown-fields``) are pruned, and reported per the ``fieldValidation``
directive (Strict: 400 ``strict decoding error``; Warn, the default: a ``Warning`` header;
Ignore: nothing); type, enum and required errors are 422 Invalid whatever the directive.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_homelab.sim.kube.store import ApiError, Obj, ResourceInfo

SCHEMAS = Path(__file__).parent / "schemas"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
DIRECTIVES = ("Strict", "Warn", "Ignore")
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


@functools.cache
def tekton_crds() -> Obj:
    """The shipped extraction of Tekton's v1 CRDs (names, printer columns, schemas)."""
    data: Obj = json.loads((SCHEMAS / "tekton-v1.json").read_text())
    return data


@functools.cache
def kube_schemas() -> Obj:
    """The apps/v1 and core/v1 schemas derived from the k8s.io/api Go types
    (``scripts/gen_kube_schemas.py``): fields, types, and the x-kubernetes-patch-* and
    x-kubernetes-list-* extensions that kubectl reads to compute a strategic merge patch."""
    data: Obj = json.loads((SCHEMAS / "kube-v1.json").read_text())
    return data


def is_builtin(info: ResourceInfo) -> bool:
    """A kind of the API server itself (core, apps), not a custom resource."""
    return info.group in ("", "apps")


def kube_kind_schema(info: ResourceInfo) -> Obj | None:
    """The generated schema of a built-in kind the simulator serves, or None."""
    if info.group not in ("", "apps") or info.version != "v1":
        return None
    data = kube_schemas()
    name = data["kinds"].get(info.kind)
    return None if name is None else dict(data["schemas"][name])


def resolve_schema(schema: Obj | None) -> Obj | None:
    """Follow ``allOf[0]`` and ``$ref`` into the generated schemas, as kubectl does."""
    schemas = kube_schemas()["schemas"]
    for _ in range(8):
        if not isinstance(schema, dict):
            return None
        if schema.get("allOf"):
            schema = schema["allOf"][0]
            continue
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = schemas.get(ref.removeprefix("#/components/schemas/"))
            continue
        return schema
    return None


def crd_schema(info: ResourceInfo) -> Obj | None:
    """The structural CRD schema of a kind, if the simulator has one."""
    crds = tekton_crds()
    if info.group != crds["group"] or info.version != crds["version"]:
        return None
    kind = crds["kinds"].get(info.kind)
    return None if kind is None else dict(kind["schema"])


def gv_path(group: str, version: str) -> str:
    """The key of a group-version in the ``/openapi/v3`` index: ``api/v1``, ``apis/g/v``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(info: ResourceInfo, kind: str | None = None) -> str:
    kind = kind or info.kind
    if not info.group:
        return f"io.k8s.api.core.{info.version}.{kind}"
    if "." not in info.group:
        return f"io.k8s.api.{info.group}.{info.version}.{kind}"
    return ".".join(reversed(info.group.split("."))) + f".{info.version}.{kind}"


def _ref(name: str) -> Obj:
    return {"$ref": f"#/components/schemas/{name}"}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split("."))


def _param(name: str, kind: str = "string", where: str = "query", **extra: Any) -> Obj:
    param: Obj = {"name": name, "in": where, "schema": {"type": kind, "uniqueItems": True}}
    if where == "path":
        param["required"] = True
    param.update(extra)
    return param


_WRITE = [
    _param("dryRun"),
    _param("fieldManager"),
    _param(
        "fieldValidation",
        description="Ignore, Warn (the default) or Strict: how to treat unknown or "
        "duplicate fields in the request body.",
    ),
]
_LIST = [
    _param(name)
    for name in (
        "continue",
        "fieldSelector",
        "labelSelector",
        "resourceVersion",
        "resourceVersionMatch",
    )
] + [
    _param("allowWatchBookmarks", "boolean"),
    _param("limit", "integer"),
    _param("sendInitialEvents", "boolean"),
    _param("timeoutSeconds", "integer"),
    _param("watch", "boolean"),
]
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
# Custom resources take no strategic merge patch (the API server answers 415): kubectl reads this
# list in the PATCH operation and then sends a JSON merge patch.
_CR_PATCH_TYPES = tuple(t for t in _PATCH_TYPES if "strategic" not in t)


def _operation(
    verb: str,
    action: str,
    info: ResourceInfo,
    scope: str,
    subject: str,
    *,
    params: list[Obj],
    body: Obj | None = None,
    body_types: Iterable[str] = ("*/*",),
    response: Obj | None = None,
    codes: Iterable[str] = ("200",),
) -> Obj:
    group = _camel(info.group) if info.group else "Core"
    op: Obj = {
        "tags": [f"{group[:1].lower()}{group[1:]}_{info.version}"],
        "description": f"{action} {subject} {info.kind}",
        "operationId": f"{verb}{group}{_camel(info.version)}{scope}{subject}",
        "parameters": params,
        "responses": {
            **{
                code: {
                    "description": "OK" if code == "200" else "Created",
                    "content": {
                        "application/json": {"schema": response or _ref(schema_name(info))}
                    },
                }
                for code in codes
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": info.group,
            "version": info.version,
            "kind": info.kind,
        },
    }
    if body is not None:
        op["requestBody"] = {
            "content": {kind: {"schema": body} for kind in body_types},
            "required": True,
        }
    return op


def _paths(info: ResourceInfo) -> Obj:
    root = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    scope = "Namespaced" if info.namespaced else ""
    base = (
        f"{root}/namespaces/{{namespace}}/{info.name}" if info.namespaced else f"{root}/{info.name}"
    )
    common = [_param("namespace", where="path")] if info.namespaced else []
    named = [_param("name", where="path"), *common]
    own, list_ref = _ref(schema_name(info)), _ref(schema_name(info, f"{info.kind}List"))
    patch_body = _ref(f"{META}.Patch")
    patch_types = _PATCH_TYPES if is_builtin(info) else _CR_PATCH_TYPES
    paths: Obj = {
        base: {
            "parameters": common,
            "get": _operation(
                "list", "list", info, scope, info.kind, params=_LIST, response=list_ref
            ),
            "post": _operation(
                "create",
                "post",
                info,
                scope,
                info.kind,
                params=_WRITE,
                body=own,
                codes=("200", "201", "202"),
            ),
        },
        f"{base}/{{name}}": {
            "parameters": named,
            "get": _operation("read", "get", info, scope, info.kind, params=[]),
            "put": _operation(
                "replace",
                "put",
                info,
                scope,
                info.kind,
                params=_WRITE,
                body=own,
                codes=("200", "201"),
            ),
            "patch": _operation(
                "patch",
                "patch",
                info,
                scope,
                info.kind,
                params=[*_WRITE, _param("force", "boolean")],
                body=patch_body,
                body_types=patch_types,
                codes=("200", "201"),
            ),
            "delete": _operation(
                "delete",
                "delete",
                info,
                scope,
                info.kind,
                params=[_param("dryRun"), _param("gracePeriodSeconds", "integer")],
                body=_ref(f"{META}.DeleteOptions"),
                response=own,
            ),
        },
    }
    if info.namespaced:
        paths[f"{root}/{info.name}"] = {
            "get": _operation(
                "list", "list", info, "", f"{info.kind}ForAllNamespaces", params=_LIST
            )
        }
    for sub in info.subresources:
        subject = f"{info.kind}{_camel(sub)}"
        if sub == "log":
            paths[f"{base}/{{name}}/log"] = {
                "parameters": named,
                "get": {
                    **_operation("read", "get", info, scope, subject, params=[]),
                    "parameters": [_param(p) for p in ("container", "tailLines", "follow")],
                    "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}},
                },
            }
            continue
        paths[f"{base}/{{name}}/{sub}"] = {
            "parameters": named,
            "get": _operation("read", "get", info, scope, subject, params=[]),
            "put": _operation("replace", "put", info, scope, subject, params=_WRITE, body=own),
            "patch": _operation(
                "patch",
                "patch",
                info,
                scope,
                subject,
                params=[*_WRITE, _param("force", "boolean")],
                body=patch_body,
                body_types=patch_types,
            ),
        }
    return paths


def _meta_schemas() -> Obj:
    string, integer = {"type": "string"}, {"type": "integer", "format": "int64"}
    string_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    owner = {
        "type": "object",
        "required": ["apiVersion", "kind", "name", "uid"],
        "properties": {
            "apiVersion": string,
            "kind": string,
            "name": string,
            "uid": string,
            "controller": {"type": "boolean"},
            "blockOwnerDeletion": {"type": "boolean"},
        },
        "x-kubernetes-map-type": "atomic",
    }
    time = {"type": "string", "format": "date-time"}
    return {
        f"{META}.ObjectMeta": {
            "type": "object",
            "properties": {
                "name": string,
                "generateName": string,
                "namespace": string,
                "selfLink": string,
                "uid": string,
                "resourceVersion": string,
                "generation": integer,
                "creationTimestamp": _ref(f"{META}.Time"),
                "deletionTimestamp": _ref(f"{META}.Time"),
                "deletionGracePeriodSeconds": integer,
                "labels": string_map,
                "annotations": string_map,
                "finalizers": {"type": "array", "items": string},
                "ownerReferences": {
                    "type": "array",
                    "items": {"default": {}, "allOf": [_ref(f"{META}.OwnerReference")]},
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "managedFields": {"type": "array", "items": {"type": "object"}},
            },
        },
        f"{META}.OwnerReference": owner,
        f"{META}.ListMeta": {
            "type": "object",
            "properties": {
                "continue": string,
                "remainingItemCount": integer,
                "resourceVersion": string,
                "selfLink": string,
            },
        },
        f"{META}.Time": time,
        f"{META}.Patch": {"type": "object"},
        f"{META}.DeleteOptions": {
            "type": "object",
            "properties": {
                "apiVersion": string,
                "kind": string,
                "dryRun": {"type": "array", "items": string},
                "gracePeriodSeconds": integer,
                "propagationPolicy": string,
            },
        },
        f"{META}.Status": {
            "type": "object",
            "properties": {
                "apiVersion": string,
                "kind": string,
                "code": {"type": "integer", "format": "int32"},
                "message": string,
                "reason": string,
                "status": string,
                "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "metadata": {"default": {}, "allOf": [_ref(f"{META}.ListMeta")]},
            },
        },
    }


def _gvk(info: ResourceInfo, kind: str | None = None) -> list[Obj]:
    return [{"group": info.group, "version": info.version, "kind": kind or info.kind}]


def _kind_schema(info: ResourceInfo) -> Obj:
    crd = crd_schema(info)
    builtin = kube_kind_schema(info)
    if crd is not None:
        schema = copy.deepcopy(crd)
        # As the API server publishes CRDs: metadata is the real ObjectMeta.
        schema.setdefault("properties", {})["metadata"] = {"allOf": [_ref(f"{META}.ObjectMeta")]}
    elif builtin is not None:
        schema = copy.deepcopy(builtin)
    else:
        # Core and apps kinds (and Tekton's Pipeline, which has no CRD here) are typed only at
        # the top; the simulator does not validate them.
        loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema = {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"default": {}, "allOf": [_ref(f"{META}.ObjectMeta")]},
                **({"spec": loose} if info.kind not in ("Event",) else {}),
                **({"status": loose} if "status" in info.subresources else {}),
            },
        }
        if info.kind == "Event":
            schema["x-kubernetes-preserve-unknown-fields"] = True
    schema["x-kubernetes-group-version-kind"] = _gvk(info)
    return schema


def document(resources: Iterable[ResourceInfo], group: str, version: str) -> Obj | None:
    """The OpenAPI v3 document of one group-version, or None if nothing is served there."""
    infos = [r for r in resources if r.group == group and r.version == version]
    if not infos:
        return None
    paths: Obj = {}
    schemas = _meta_schemas()
    if any(kube_kind_schema(info) is not None for info in infos):
        schemas.update(copy.deepcopy(kube_schemas()["schemas"]))
    for info in sorted(infos, key=lambda r: r.name):
        paths.update(_paths(info))
        schemas[schema_name(info)] = _kind_schema(info)
        schemas[schema_name(info, f"{info.kind}List")] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": _ref(schema_name(info))},
                "metadata": {"default": {}, "allOf": [_ref(f"{META}.ListMeta")]},
            },
            "x-kubernetes-group-version-kind": _gvk(info, f"{info.kind}List"),
        }
    title = "Kubernetes" if not group or "." not in group else group
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": f"{version} (kube-sim)"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "in": "header", "name": "authorization"}
            },
        },
        "security": [{"BearerToken": []}],
    }


class OpenAPI:
    """Documents for the registered resources, rendered once per registry state."""

    def __init__(self) -> None:
        self._cache: dict[tuple[ResourceInfo, ...], dict[str, tuple[bytes, str]]] = {}
        self._v2: tuple[tuple[ResourceInfo, ...], bytes, bytes] | None = None

    def _rendered(self, resources: Iterable[ResourceInfo]) -> dict[str, tuple[bytes, str]]:
        key = tuple(sorted(resources, key=lambda r: (r.group, r.version, r.name)))
        cached = self._cache.get(key)
        if cached is None:
            cached = {}
            for group, version in sorted({(r.group, r.version) for r in key}):
                doc = document(key, group, version)
                if doc is not None:
                    data = json.dumps(doc, sort_keys=True).encode()
                    digest = hashlib.sha512(data).hexdigest().upper()
                    cached[gv_path(group, version)] = (data, digest)
            self._cache = {key: cached}
        return cached

    def index(self, resources: Iterable[ResourceInfo]) -> Obj:
        return {
            "paths": {
                path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
                for path, (_, digest) in self._rendered(resources).items()
            }
        }

    def v2(self, resources: Iterable[ResourceInfo], protobuf: bool) -> bytes:
        """``/openapi/v2`` as gnostic protobuf (what client-go asks for) or JSON."""
        key = tuple(sorted(resources, key=lambda r: (r.group, r.version, r.name)))
        if self._v2 is None or self._v2[0] != key:
            doc = document_v2(key)
            self._v2 = (key, encode_v2(doc), json.dumps(doc, sort_keys=True).encode())
        return self._v2[1] if protobuf else self._v2[2]

    def find(self, resources: Iterable[ResourceInfo], path: str) -> tuple[bytes, str] | None:
        """The rendered document at ``api/v1`` or ``apis/g/v`` and its hash."""
        return self._rendered(resources).get(path)


# -- field validation ----------------------------------------------------------------------------


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value: Any) -> bool:
    got = _type_of(value)
    return got == expected or (expected == "number" and got == "integer")


class _Check:
    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.errors: list[tuple[str, str, str]] = []  # (field, reason, message)

    def invalid(self, path: str, got: str, want: str) -> None:
        self.errors.append(
            (
                path,
                "FieldValueTypeInvalid",
                f'{path}: Invalid value: "{got}": {path} in body must be of type {want}: "{got}"',
            )
        )

    def walk(self, schema: Obj, value: Any, path: str) -> Any:
        """``value`` checked against ``schema`` and pruned of unknown fields."""
        if schema.get("x-kubernetes-int-or-string"):
            if _type_of(value) not in ("integer", "string"):
                self.invalid(path, _type_of(value), "integer,string")
            return value
        want = schema.get("type")
        if want and not _type_ok(want, value):
            self.invalid(path, _type_of(value), want)
            return value
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(json.dumps(v) for v in schema["enum"])
            self.errors.append(
                (
                    path,
                    "FieldValueNotSupported",
                    f"{path}: Unsupported value: {json.dumps(value)}: supported values: {allowed}",
                )
            )
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [self.walk(schema["items"], v, f"{path}[{n}]") for n, v in enumerate(value)]
        if isinstance(value, dict) and (want == "object" or "properties" in schema):
            return self._object(schema, value, path)
        return value

    def _object(self, schema: Obj, value: Obj, path: str) -> Obj:
        props: Obj = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        out: Obj = {}
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if sub is None:
                continue  # nulls of non-nullable fields are pruned, as the API server does
            if key in props:
                out[key] = self.walk(props[key], sub, where)
            elif isinstance(extra, dict):
                out[key] = self.walk(extra, sub, f"{path}[{key}]")
            elif keep:
                out[key] = sub
            else:
                self.unknown.append(where)
        for key in schema.get("required") or []:
            if key not in value or value[key] is None:
                where = f"{path}.{key}" if path else key
                self.errors.append((where, "FieldValueRequired", f"{where}: Required value"))
        return out


def admit(info: ResourceInfo, obj: Obj, directive: str | None, *, create: bool) -> list[str]:
    """Server-side field validation of a client's write, in place: prunes unknown fields and
    returns warnings, or raises ApiError (400 for Strict unknown fields, 422 schema errors)."""
    directive = directive or "Warn"  # the API server's default since 1.27 (GA)
    if directive not in DIRECTIVES:
        raise ApiError(
            400,
            "BadRequest",
            f'fieldValidation parameter unsupported: "{directive}" '
            '(allowed: "Ignore", "Warn", "Strict")',
        )
    schema = crd_schema(info)
    if schema is None:
        return []  # core and apps kinds (and Pipelines) are not validated by the simulator
    if create and "status" in info.subresources:
        obj.pop("status", None)  # the status subresource resets status on create
    check = _Check()
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in list(meta):
            if key not in OBJECT_META_FIELDS:
                check.unknown.append(f"metadata.{key}")
                del meta[key]
    body = {k: v for k, v in obj.items() if k != "metadata"}
    pruned = check.walk(
        {**schema, "properties": {**schema["properties"], "metadata": {}}}, body, ""
    )
    if check.unknown and directive == "Strict":
        fields = ", ".join(f'unknown field "{f}"' for f in check.unknown)
        raise ApiError(
            400,
            "BadRequest",
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
            f"strict decoding error: {fields}",
        )
    if check.errors:
        name = (meta or {}).get("name") or (meta or {}).get("generateName", "")
        messages = [m for _, _, m in check.errors]
        text = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
        raise ApiError(
            422,
            "Invalid",
            f'{info.kind}.{info.group} "{name}" is invalid: {text}',
            {
                "name": name,
                "group": info.group,
                "kind": info.kind,
                "causes": [
                    {"reason": reason, "message": m.split(": ", 1)[1], "field": field}
                    for field, reason, m in check.errors
                ],
            },
        )
    for key in list(obj):
        if key != "metadata" and key not in pruned:
            del obj[key]
    obj.update(pruned)
    if directive == "Warn":
        return [f'unknown field "{f}"' for f in check.unknown]
    return []


# -- OpenAPI v2 ----------------------------------------------------------------------------------
# kubectl 1.27 checks fieldValidation support only in /openapi/v2, which client-go fetches as
# protobuf (gnostic openapi_v2.Document): without it, `kubectl create` fails before any POST.


def _v2_schema(schema: Any) -> Any:
    """A v3 component schema as a Swagger 2.0 definition (refs to ``#/definitions``)."""
    if isinstance(schema, list):
        return [_v2_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        # v3 wraps a field's $ref in allOf (to give it a default); Swagger 2.0 and kubectl's
        # proto reader (kube-openapi pkg/util/proto) want the bare $ref.
        rest = {k: v for k, v in schema.items() if k not in ("allOf", "default")}
        return _v2_schema({**rest, **schema["allOf"][0]})
    out: Obj = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key in ("anyOf", "oneOf", "nullable"):
            continue  # not in Swagger 2.0; int-or-string keeps x-kubernetes-int-or-string
        elif key == "properties":
            out[key] = {name: _v2_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "allOf", "not"):
            out[key] = _v2_schema(value)
        else:
            out[key] = value
    return out


def _v2_operation(op: Obj) -> Obj:
    out: Obj = {k: v for k, v in op.items() if k not in ("parameters", "requestBody", "responses")}
    params: list[Obj] = []
    for param in op.get("parameters") or []:
        item = {k: v for k, v in param.items() if k != "schema"}
        item.update(param.get("schema") or {})
        params.append(item)
    body = op.get("requestBody")
    if body:
        content = body["content"]
        out["consumes"] = list(content)
        schema = next(iter(content.values()))["schema"]
        params.insert(0, {"name": "body", "in": "body", "required": True, "schema": schema})
    out["parameters"] = [_v2_schema(p) for p in params]
    out["produces"] = ["application/json"]
    out["schemes"] = ["https"]
    out["responses"] = {
        code: {
            "description": r.get("description", ""),
            **(
                {"schema": _v2_schema(r["content"]["application/json"]["schema"])}
                if "application/json" in (r.get("content") or {})
                else {}
            ),
        }
        for code, r in op["responses"].items()
    }
    return out


def document_v2(resources: Iterable[ResourceInfo]) -> Obj:
    """The Swagger 2.0 document of everything served (derived from the v3 documents)."""
    infos = list(resources)
    paths: Obj = {}
    definitions: Obj = {}
    for group, version in sorted({(r.group, r.version) for r in infos}):
        doc = document(infos, group, version)
        if doc is None:
            continue
        for path, item in doc["paths"].items():
            paths[path] = {
                verb: (
                    [_v2_schema({**p, **p.get("schema", {})}) for p in op]
                    if verb == "parameters"
                    else _v2_operation(op)
                )
                for verb, op in item.items()
            }
            for p in paths[path].get("parameters", []):
                p.pop("schema", None)
        for name, schema in doc["components"]["schemas"].items():
            definitions[name] = _v2_schema(schema)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.0.0 (kube-sim)"},
        "paths": paths,
        "definitions": definitions,
    }


# -- protobuf wire format ------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _str(num: int, text: Any) -> bytes:
    return _len(num, str(text).encode()) if text not in (None, "") else b""


def _bool(num: int, value: Any) -> bytes:
    return _varint(num << 3) + b"\x01" if value else b""


def _int(num: int, value: Any) -> bytes:
    return _varint(num << 3) + _varint(int(value)) if isinstance(value, int) else b""


def _yaml_any(num: int, value: Any) -> bytes:
    return _len(num, _str(2, json.dumps(value)))  # gnostic Any{yaml}; JSON is YAML


def _extensions(num: int, obj: Obj) -> bytes:
    return b"".join(
        _len(num, _str(1, k) + _yaml_any(2, v)) for k, v in obj.items() if k.startswith("x-")
    )


def _pb_schema(s: Obj) -> bytes:
    out = _str(1, s.get("$ref")) + _str(2, s.get("format")) + _str(4, s.get("description"))
    if "default" in s:
        out += _yaml_any(5, s["default"])
    out += _bool(16, s.get("uniqueItems"))
    out += b"".join(_str(19, r) for r in s.get("required") or [])
    out += b"".join(_yaml_any(20, e) for e in s.get("enum") or [])
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out += _len(21, _len(1, _pb_schema(extra)))
    elif isinstance(extra, bool):
        out += _len(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00"))
    if s.get("type"):
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out += _len(22, b"".join(_str(1, t) for t in types))
    if isinstance(s.get("items"), dict):
        out += _len(23, _len(1, _pb_schema(s["items"])))
    out += b"".join(_len(24, _pb_schema(sub)) for sub in s.get("allOf") or [])
    if s.get("properties"):
        named = (_len(1, _str(1, k) + _len(2, _pb_schema(v))) for k, v in s["properties"].items())
        out += _len(25, b"".join(named))
    return out + _extensions(31, s)


def _pb_parameter(p: Obj) -> bytes:
    if p.get("in") == "body":
        body = _str(2, p["name"]) + _str(3, "body") + _bool(4, p.get("required"))
        return _len(1, _len(1, body + _len(5, _pb_schema(p.get("schema") or {}))))
    where = p.get("in", "query")
    sub = _bool(1, p.get("required")) + _str(2, where) + _str(3, p.get("description"))
    sub += _str(4, p["name"])
    if where == "path":  # PathParameterSubSchema: type=5
        sub += _str(5, p.get("type")) + _bool(19, p.get("uniqueItems"))
        return _len(1, _len(2, _len(4, sub)))
    sub += _str(6, p.get("type")) + _bool(20, p.get("uniqueItems"))
    return _len(1, _len(2, _len(3, sub)))


def _pb_operation(op: Obj) -> bytes:
    out = b"".join(_str(1, t) for t in op.get("tags") or [])
    out += _str(3, op.get("description")) + _str(5, op.get("operationId"))
    out += b"".join(_str(6, t) for t in op.get("produces") or [])
    out += b"".join(_str(7, t) for t in op.get("consumes") or [])
    out += b"".join(_len(8, _pb_parameter(p)) for p in op.get("parameters") or [])
    codes = b""
    for code, response in (op.get("responses") or {}).items():
        body = _str(1, response.get("description") or code)
        if "schema" in response:
            body += _len(2, _len(1, _pb_schema(response["schema"])))
        codes += _len(1, _str(1, code) + _len(2, _len(1, body)))
    out += _len(9, codes)
    out += b"".join(_str(10, s) for s in op.get("schemes") or [])
    return out + _extensions(13, op)


def encode_v2(doc: Obj) -> bytes:
    """The gnostic ``openapi_v2.Document`` protobuf of a Swagger 2.0 document."""
    verbs = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}
    paths = b""
    for path, item in doc["paths"].items():
        body = b"".join(
            _len(verbs[verb], _pb_operation(op)) for verb, op in item.items() if verb in verbs
        )
        body += b"".join(_len(9, _pb_parameter(p)) for p in item.get("parameters") or [])
        paths += _len(2, _str(1, path) + _len(2, body))
    definitions = b"".join(
        _len(1, _str(1, name) + _len(2, _pb_schema(schema)))
        for name, schema in doc["definitions"].items()
    )
    info = _str(1, doc["info"]["title"]) + _str(2, doc["info"]["version"])
    return _str(1, doc["swagger"]) + _len(2, info) + _len(8, paths) + _len(9, definitions)


def _fields(data: bytes) -> dict[int, list[Any]]:
    """Decode one protobuf message into field number → values (ints, or bytes when LEN)."""
    out: dict[int, list[Any]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while pos < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(num, []).append(value)
    return out


def _text(fields: dict[int, list[Any]], num: int) -> str | None:
    values = fields.get(num)
    return bytes(values[-1]).decode() if values else None


def decode_kubernetes_protobuf(raw: bytes) -> Obj:
    """A Namespace sent as ``application/vnd.kubernetes.protobuf`` (kubectl 1.33's
    ``create namespace``), as JSON. Other kinds raise ApiError 415."""
    if not raw.startswith(b"k8s\x00"):
        raise ApiError(415, "UnsupportedMediaType", "the protobuf body lacks the k8s envelope")
    unknown = _fields(raw[4:])
    type_meta = _fields(unknown.get(1, [b""])[-1])
    api_version, kind = _text(type_meta, 1) or "", _text(type_meta, 2) or ""
    if (api_version, kind) != ("v1", "Namespace"):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the simulator decodes protobuf only for v1 Namespace, not {api_version} {kind}",
        )
    obj = _fields(unknown.get(2, [b""])[-1])
    meta = _fields(obj.get(1, [b""])[-1])
    metadata: Obj = {}
    for num, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        text = _text(meta, num)
        if text:
            metadata[key] = text
    for num, key in ((11, "labels"), (12, "annotations")):
        entries = [_fields(e) for e in meta.get(num, [])]
        if entries:
            metadata[key] = {_text(e, 1) or "": _text(e, 2) or "" for e in entries}
    if meta.get(14):
        metadata["finalizers"] = [bytes(v).decode() for v in meta[14]]
    spec = _fields(obj.get(2, [b""])[-1])
    body: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    if spec.get(1):
        body["spec"] = {"finalizers": [bytes(v).decode() for v in spec[1]]}
    return body
