"""PATCH as the API server applies it: JSON patch, JSON merge patch, strategic merge patch and
server-side apply, on the simulator's objects.

Strategic merge follows apimachinery ``pkg/util/strategicpatch`` (the facts, not the code): a
list whose schema carries ``x-kubernetes-patch-strategy: merge`` and a
``x-kubernetes-patch-merge-key`` is merged element by element on that key (containers, env and
volumes by ``name``, ports by ``containerPort``, volumeMounts by ``mountPath`` …); a list of
scalars with strategy ``merge`` is a set union; every other list is replaced. The directives
``$patch`` (``replace``, ``delete``, ``merge``), ``$setElementOrder/<list>``, ``$retainKeys`` and
``$deleteFromPrimitiveList/<list>`` are honoured. The merge keys come from the served OpenAPI
schemas (generated from the k8s.io/api types, ``schemas/kube-v1.json``).

Server-side apply merges the applied configuration the same way, creates a missing object,
records a minimal ``managedFields`` entry per manager (its ``fieldsV1`` set, list elements keyed
by their merge key), and removes a field the manager applied before and applies no longer. It
does not weigh other managers' ownership: such a field goes even if another manager set it too,
and conflicts are never reported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from pytest_homelab.sim.kube.store import ApiError, Obj

Schema = dict[str, Any]
Resolver = Callable[[Schema | None], Schema | None]

PATCH = "$patch"
RETAIN = "$retainKeys"
ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"the JSON pointer {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts:
        try:
            current = current[int(part)] if isinstance(current, list) else current[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: doc is missing path: {path!r}",
            ) from None
    return current


def json_patch(doc: Obj, ops: Any) -> Obj:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, "BadRequest", f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, source, op.get("from", "")))
            if kind == "move":
                parent = _walk(doc, source[:-1], op["from"])
                del parent[int(source[-1]) if isinstance(parent, list) else source[-1]]
            kind, op = "add", {**op, "value": value}
        if kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our "
                    f"request: testing value {path} failed",
                )
            continue
        if not parts:
            raise ApiError(422, "Invalid", "a JSON patch may not replace the whole object")
        parent = _walk(doc, parts[:-1], path)
        last = parts[-1]
        if kind == "add":
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if not 0 <= index <= len(parent):
                    raise ApiError(422, "Invalid", f"add operation index out of range: {path}")
                parent.insert(index, copy.deepcopy(op.get("value")))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(op.get("value"))
            else:
                raise ApiError(422, "Invalid", f"doc is missing path: {path!r}")
        elif kind in ("replace", "remove"):
            _walk(doc, parts, path)  # must exist
            key: Any = int(last) if isinstance(parent, list) else last
            if kind == "remove":
                del parent[key]
            else:
                parent[key] = copy.deepcopy(op.get("value"))
        else:
            raise ApiError(400, "BadRequest", f"unsupported JSON patch op {kind!r}")
    return doc


class StrategicMerge:
    """Strategic merge of a patch into an object, with the object's OpenAPI schema."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve

    def _field(self, schema: Schema | None, key: str) -> Schema | None:
        """The raw property schema (its x-kubernetes-patch-* extensions are on this level)."""
        schema = self.resolve(schema)
        if not schema:
            return None
        props = schema.get("properties")
        if isinstance(props, dict) and key in props:
            return dict(props[key])
        extra = schema.get("additionalProperties")
        return dict(extra) if isinstance(extra, dict) else None

    def merge_map(self, original: Any, patch: Obj, schema: Schema | None) -> Any:
        patch = dict(patch)
        directive = patch.pop(PATCH, None)
        if directive == "delete":
            return None
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
        if directive not in (None, "merge"):
            raise ApiError(400, "BadRequest", f"unknown patch type: {directive}")
        retain = patch.pop(RETAIN, None)
        result = dict(original) if isinstance(original, dict) else {}
        orders = {}
        for key in [k for k in patch if k.startswith(ORDER)]:
            orders[key[len(ORDER) :]] = patch.pop(key)
        for key in [k for k in patch if k.startswith(DELETE_PRIMITIVE)]:
            name, doomed = key[len(DELETE_PRIMITIVE) :], patch.pop(key)
            if isinstance(result.get(name), list) and isinstance(doomed, list):
                result[name] = [v for v in result[name] if v not in doomed]
        for key, value in patch.items():
            field = self._field(schema, key)
            if value is None:
                result.pop(key, None)
            elif isinstance(value, dict):
                merged = self.merge_map(result.get(key), value, field)
                if merged is None:
                    result.pop(key, None)
                else:
                    result[key] = merged
            elif isinstance(value, list):
                result[key] = self.merge_list(result.get(key), value, field)
            else:
                result[key] = copy.deepcopy(value)
        for key, order in orders.items():
            if isinstance(result.get(key), list) and isinstance(order, list):
                result[key] = self._ordered(result[key], order, self._field(schema, key))
        if isinstance(retain, list):
            result = {k: v for k, v in result.items() if k in retain}
        return result

    def merge_list(self, original: Any, patch: list[Any], field: Schema | None) -> list[Any]:
        field = field or {}
        strategy = str(field.get("x-kubernetes-patch-strategy", "")).split(",")
        key = field.get("x-kubernetes-patch-merge-key")
        current = list(original) if isinstance(original, list) else []
        if "merge" not in strategy:
            if any(isinstance(v, dict) and PATCH in v for v in patch):
                patch = [v for v in patch if not (isinstance(v, dict) and PATCH in v)]
            return copy.deepcopy(patch)
        items = self.resolve(field.get("items")) if isinstance(field.get("items"), dict) else None
        if not key:  # a set of scalars
            if any(isinstance(v, dict) and v.get(PATCH) == "replace" for v in patch):
                return [v for v in patch if not isinstance(v, dict)]
            return current + [v for v in patch if v not in current and not isinstance(v, dict)]
        if any(isinstance(v, dict) and v.get(PATCH) == "replace" for v in patch):
            return [
                {k: copy.deepcopy(x) for k, x in v.items() if k != PATCH}
                for v in patch
                if isinstance(v, dict) and v.get(PATCH) != "replace"
            ]
        result = [copy.deepcopy(v) for v in current]
        for element in patch:
            if not isinstance(element, dict) or key not in element:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"map: {element!r} does not contain declared merge key: {key}",
                )
            index = next(
                (
                    i
                    for i, v in enumerate(result)
                    if isinstance(v, dict) and v.get(key) == element[key]
                ),
                None,
            )
            if element.get(PATCH) == "delete":
                if index is not None:
                    del result[index]
                continue
            if index is None:
                merged = self.merge_map({}, element, items)
                result.append(merged)
            else:
                result[index] = self.merge_map(result[index], element, items)
        return result

    def _ordered(self, values: list[Any], order: list[Any], field: Schema | None) -> list[Any]:
        """``$setElementOrder``: the listed elements in that order, the server-only ones after."""
        key = (field or {}).get("x-kubernetes-patch-merge-key")

        def ident(v: Any) -> Any:
            return json.dumps(v.get(key) if key and isinstance(v, dict) else v, sort_keys=True)

        wanted = [ident(v) for v in order]
        listed = sorted(
            (v for v in values if ident(v) in wanted), key=lambda v: wanted.index(ident(v))
        )
        return listed + [v for v in values if ident(v) not in wanted]


def fields_v1(obj: Any, schema: Schema | None, resolve: Resolver) -> Any:
    """The ``fieldsV1`` set of an applied configuration (``f:`` fields, ``k:`` list-map keys)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        resolved = resolve(schema) or {}
        props = resolved.get("properties") or {}
        for key, value in obj.items():
            if key in ("apiVersion", "kind") and schema is not None and "apiVersion" in props:
                continue
            field = props.get(key) if isinstance(props, dict) else None
            if field is None and isinstance(resolved.get("additionalProperties"), dict):
                field = resolved["additionalProperties"]
            if isinstance(value, list) and field is not None:
                keys = field.get("x-kubernetes-list-map-keys") or (
                    [field["x-kubernetes-patch-merge-key"]]
                    if field.get("x-kubernetes-patch-merge-key")
                    else []
                )
                items = field.get("items") if isinstance(field.get("items"), dict) else None
                entry: dict[str, Any] = {}
                for element in value:
                    if keys and isinstance(element, dict):
                        ident = {k: element.get(k) for k in keys if k in element}
                        name = "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)
                        entry[name] = {".": {}, **fields_v1(element, items, resolve)}
                    else:
                        entry["v:" + json.dumps(element, separators=(",", ":"))] = {}
                out[f"f:{key}"] = entry
            else:
                out[f"f:{key}"] = fields_v1(value, field, resolve)
        return out
    return {}


def drop_disowned(obj: Any, before: Any, after: Any) -> None:
    """Remove from ``obj``, in place, what a manager's previous applied configuration set
    (``before``, a fieldsV1 set) and its new one no longer does (``after``): server-side apply
    deletes a field its only manager stopped applying. Other managers are not consulted."""
    if not isinstance(before, dict):
        return
    after = after if isinstance(after, dict) else {}
    for key, old in before.items():
        if key == ".":
            continue
        new = after.get(key)
        if key.startswith("f:") and isinstance(obj, dict):
            name = key[2:]
            if name not in obj:
                continue
            if new is None:
                del obj[name]
            else:
                drop_disowned(obj[name], old, new)
        elif key.startswith("k:") and isinstance(obj, list):
            try:
                ident = json.loads(key[2:])
            except ValueError:
                continue
            for index, element in enumerate(obj):
                if isinstance(element, dict) and all(element.get(k) == v for k, v in ident.items()):
                    if new is None:
                        del obj[index]
                    else:
                        drop_disowned(element, old, new)
                    break
        elif key.startswith("v:") and isinstance(obj, list) and new is None:
            try:
                value = json.loads(key[2:])
            except ValueError:
                continue
            if value in obj:
                obj.remove(value)
