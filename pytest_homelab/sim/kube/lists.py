"""LIST as the API server answers it: list options validation, ``resourceVersion`` semantics
and their errors, ``limit``/``continue`` paging, the field selectors each kind supports, and
server-side Table output.

Facts from kubernetes/apiserver and kubernetes/apimachinery at v0.33.13:
- ListOptions validation (apimachinery pkg/apis/meta/internalversion/validation/validation.go
  :33-44) answers 422 Invalid ``ListOptions.meta.k8s.io`` (apiserver endpoints/handlers/get.go
  :201-204);
- an unsupported field selector is 400 BadRequest (handlers/get.go:220-229): apps kinds use
  apimachinery's default conversion (runtime/conversion.go:40), core kinds and custom resources
  answer ``field label not supported``;
- a garbage resourceVersion is 400 ``invalid resource version``, a continue token with a
  resourceVersion 400, a bad continue token 400 (apiserver storage/interfaces.go:334-357,
  storage/continue.go:29-32);
- a resourceVersion newer than the server's is 504 ``Too large resource version`` with the
  ResourceVersionTooLarge cause and retryAfterSeconds 1 (storage/errors.go:229-241); an exact
  one older than history 410 ``too old resource version`` (cacher/watch_cache.go:546-553); a
  compacted continue token 410 (etcd3/errors.go:53-90).

The simulator keeps no snapshots beyond its watch history: an exact resourceVersion is served
from that history (410 when it is compacted, or when an object's earlier state is not in it),
and a continue token's later pages show objects as they are now, under the token's
resourceVersion.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pytest_homelab.sim.kube.store import (
    ApiError,
    Obj,
    ResourceInfo,
    Store,
    clone,
    field_selector,
    label_selector,
)

META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
# kubernetes pkg/apis/core/v1/conversion.go (AddFieldLabelConversionFunc per kind).
FIELDS: dict[str, frozenset[str]] = {
    "pods": META_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    },
    "namespaces": frozenset({"metadata.name", "status.phase"}),
    "events": META_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "replicasets": META_FIELDS | {"status.replicas"},
}
MATCHES = ("Exact", "NotOlderThan")


def _invalid_list_options(errors: list[str]) -> ApiError:
    text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    return ApiError(
        422,
        "Invalid",
        f'ListOptions.meta.k8s.io "" is invalid: {text}',
        {"group": "meta.k8s.io", "kind": "ListOptions"},
    )


def check_field_selector(info: ResourceInfo, text: str | None) -> None:
    """400 for a field the real server cannot select on (a client must never rely on one)."""
    supported = FIELDS.get(info.name, META_FIELDS)
    for raw in (text or "").split(","):
        label = raw.split("!=")[0].split("=")[0].strip()
        if not label or label in supported:
            continue
        if info.group == "apps" and info.name != "replicasets":
            message = (
                f'"{label}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        else:
            message = f"field label not supported: {label}"
        raise ApiError(400, "BadRequest", message)


def _parse_rv(text: str) -> int:
    if text in ("", "0"):
        return 0
    if not text.isdigit():
        raise ApiError(
            400,
            "BadRequest",
            f'invalid resource version: resourceVersion: Invalid value: "{text}": '
            f'strconv.ParseUint: parsing "{text}": invalid syntax',
        )
    return int(text)


def encode_continue(rv: int, start: str) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise ApiError(
            400, "BadRequest", f"invalid continue token: continue key is not valid: {err}"
        ) from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        raise ApiError(
            400,
            "BadRequest",
            "invalid continue token: continue key is not valid: server does not recognize "
            "this encoded version",
        )
    rv, start = data.get("rv"), data.get("start")
    if not isinstance(rv, int) or rv == 0:
        raise ApiError(
            400,
            "BadRequest",
            "invalid continue token: continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)",
        )
    if not isinstance(start, str) or not start:
        raise ApiError(
            400,
            "BadRequest",
            "invalid continue token: continue key is not valid: encoded start key empty "
            "(version meta.k8s.io/v1)",
        )
    return rv, start


def _too_large(rv: int, current: int) -> ApiError:
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {rv}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def _state_at(store: Store, info: ResourceInfo, namespace: str | None, rv: int) -> list[Obj]:
    """The objects of ``info`` as they were at ``rv``, from the watch history (410 when the
    history cannot tell)."""
    expired = ApiError(410, "Expired", f"too old resource version: {rv}")
    if rv < store.compacted:
        raise expired
    later: dict[tuple[str, str], str] = {}  # the first event after rv, per object
    at: dict[tuple[str, str], Obj | None] = {}
    for event in store.history:
        if event.resource != info.name or (namespace and event.namespace != namespace):
            continue
        key = (event.namespace, event.obj["metadata"]["name"])
        if event.rv <= rv:
            at[key] = None if event.type == "DELETED" else event.obj
        else:
            later.setdefault(key, event.type)
    result = []
    for (res, ns, name), obj in sorted(store.objects.items()):
        if res != info.name or (namespace and ns != namespace):
            continue
        key = (ns, name)
        if key in at or key in later:
            continue
        result.append(obj)  # unchanged since before rv
    for key in sorted(set(at) | set(later)):
        if key in at:
            if at[key] is not None:
                result.append(at[key])  # type: ignore[arg-type]
        elif later[key] != "ADDED":  # existed at rv, but its state then is not in the history
            raise expired
    return sorted(result, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def list_objects(
    store: Store, info: ResourceInfo, namespace: str | None, query: dict[str, str]
) -> Obj:
    """The List (or the error) a real API server gives for ``query``."""
    rv_text = query.get("resourceVersion", "")
    match = query.get("resourceVersionMatch", "")
    token = query.get("continue", "")
    errors = []
    if match:
        if not rv_text:
            errors.append(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                "resourceVersion is provided"
            )
        if token:
            errors.append(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when "
                "continue is provided"
            )
        if match not in MATCHES:
            errors.append(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                '"Exact", "NotOlderThan", ""'
            )
        if match == "Exact" and rv_text == "0":
            errors.append(
                'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden '
                'for resourceVersion "0"'
            )
    if errors:
        raise _invalid_list_options(errors)
    check_field_selector(info, query.get("fieldSelector"))
    match_labels = label_selector(query.get("labelSelector"))
    match_fields = field_selector(query.get("fieldSelector"))
    limit_text = query.get("limit", "")
    limit = int(limit_text) if limit_text.isdigit() else 0
    start = ""
    with store.lock:
        current = store.rv
        if token:
            if rv_text not in ("", "0"):
                raise ApiError(
                    400,
                    "BadRequest",
                    "specifying resource version is not allowed when using continue",
                )
            list_rv, start = decode_continue(token)
            if 0 < list_rv < store.compacted:
                expired = ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use "
                    "the continue token in this response to retrieve the remainder of the "
                    "results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time "
                    "the first chunk was returned and now may show up in the list.",
                )
                expired.list_continue = encode_continue(-1, start)
                raise expired
            if list_rv < 0:
                list_rv = current
            objects = list(store.live(info.name, namespace))
        else:
            rv = _parse_rv(rv_text)
            if rv > current:
                raise _too_large(rv, current)
            exact = match == "Exact" or (not match and limit > 0 and rv > 0)
            if exact and rv < current:
                objects, list_rv = _state_at(store, info, namespace, rv), rv
            else:
                objects, list_rv = list(store.live(info.name, namespace)), current
        chosen = []
        for obj in sorted(objects, key=_key):
            if start and _key(obj) <= start:
                continue
            if match_labels(obj.get("metadata", {}).get("labels") or {}) and match_fields(obj):
                chosen.append(obj)
        metadata: Obj = {"resourceVersion": str(list_rv)}
        if limit and len(chosen) > limit:
            rest = len(chosen) - limit
            chosen = chosen[:limit]
            metadata["continue"] = encode_continue(list_rv, _key(chosen[-1]) + "\x00")
            if not query.get("labelSelector") and not query.get("fieldSelector"):
                metadata["remainingItemCount"] = rest
        items = [clone(o) for o in chosen]
    return {
        "kind": f"{info.kind}List",
        "apiVersion": info.api_version,
        "metadata": metadata,
        "items": items,
    }


def _key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


# -- Table (kubectl get's human output asks for it) ---------------------------------------------
# kubernetes pkg/printers/internalversion/printers.go: column names, types and priorities.

_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "deployments": [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Up-to-date", "integer", 0),
        ("Available", "integer", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ],
    "replicasets": [
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ],
    "statefulsets": [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
    ],
    "daemonsets": [
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Up-to-date", "integer", 0),
        ("Available", "integer", 0),
        ("Node Selector", "string", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ],
    "pods": [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Status", "string", 0),
        ("Restarts", "string", 0),
        ("Age", "string", 0),
        ("IP", "string", 1),
        ("Node", "string", 1),
        ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ],
    "namespaces": [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
}


def wants_table(accept: str | None) -> bool:
    return "as=Table" in (accept or "")


def human_age(created: str | None, now: float | None = None) -> str:
    """kubectl's short duration (apimachinery pkg/util/duration HumanDuration)."""
    if not created:
        return "<unknown>"
    try:
        moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = int((time.time() if now is None else now) - moment.timestamp())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _template_cells(obj: Obj) -> list[str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    return [
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    ]


def _selector_text(obj: Obj) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _cells(resource: str, obj: Obj, columns: list[tuple[str, str, int]]) -> list[Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec") or {}, obj.get("status") or {}
    age = human_age(meta.get("creationTimestamp"))
    if resource == "deployments":
        return [
            meta.get("name"),
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
            age,
            *_template_cells(obj),
            _selector_text(obj),
        ]
    if resource == "replicasets":
        return [
            meta.get("name"),
            spec.get("replicas", 1),
            status.get("replicas", 0),
            status.get("readyReplicas", 0),
            age,
            *_template_cells(obj),
            _selector_text(obj),
        ]
    if resource == "statefulsets":
        return [
            meta.get("name"),
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            age,
            *_template_cells(obj),
        ]
    if resource == "daemonsets":
        node = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        return [
            meta.get("name"),
            status.get("desiredNumberScheduled", 0),
            status.get("currentNumberScheduled", 0),
            status.get("numberReady", 0),
            status.get("updatedNumberScheduled", 0),
            status.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(node.items())) or "<none>",
            age,
            *_template_cells(obj),
            _selector_text(obj),
        ]
    if resource == "pods":
        statuses = status.get("containerStatuses") or []
        total = len(spec.get("containers") or [])
        ready = sum(1 for s in statuses if s.get("ready"))
        reason = status.get("phase", "Pending")
        for s in statuses:
            waiting = (s.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                reason = waiting["reason"]
        if meta.get("deletionTimestamp"):
            reason = "Terminating"
        restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
        return [
            meta.get("name"),
            f"{ready}/{total}",
            reason,
            str(restarts),
            age,
            status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            "<none>",
        ]
    if resource == "namespaces":
        return [meta.get("name"), status.get("phase", "Active"), age]
    return [meta.get("name"), age][: len(columns)]


def _crd_columns(info: ResourceInfo) -> list[tuple[str, str, int, str]] | None:
    from pytest_homelab.sim.kube.openapi import tekton_crds

    crds = tekton_crds()
    if info.group != crds["group"] or info.version != crds["version"]:
        return None
    kind = crds["kinds"].get(info.kind) or {}
    columns = kind.get("printerColumns") or kind.get("additionalPrinterColumns")
    if not columns:
        return None
    return [
        (c["name"], c.get("type", "string"), int(c.get("priority", 0)), c["jsonPath"])
        for c in columns
    ]


def _json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: ``.a.b`` and ``[?(@.k=="v")]``."""
    import re

    current: Any = obj
    for part in re.findall(r'\.([A-Za-z0-9_]+)|\[\?\(@\.([A-Za-z]+)=="([^"]*)"\)\]', path):
        name, key, value = part
        if name:
            current = current.get(name) if isinstance(current, dict) else None
        elif isinstance(current, list):
            current = next(
                (x for x in current if isinstance(x, dict) and x.get(key) == value), None
            )
        if current is None:
            return None
    return current


def table(info: ResourceInfo, objects: Iterable[Obj], rv: str, include: str | None) -> Obj:
    """A ``meta.k8s.io/v1`` Table of ``objects`` with the real server's columns."""
    crd = _crd_columns(info)
    if crd is not None:
        defs = [("Name", "string", 0), *[(n, t, p) for n, t, p, _ in crd]]
    else:
        defs = _COLUMNS.get(info.name, [("Name", "string", 0), ("Age", "string", 0)])
    rows = []
    for obj in objects:
        if crd is not None:
            cells = [obj.get("metadata", {}).get("name")]
            for _, kind, _, path in crd:
                value = _json_path(obj, path)
                if kind == "date" and isinstance(value, str):
                    value = human_age(value)
                cells.append(value)
        else:
            cells = _cells(info.name, obj, defs)
        row: Obj = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, kind, priority in defs
        ],
        "rows": rows,
    }
