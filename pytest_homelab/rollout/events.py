"""Watch events decoded straight into the slimmed objects the tracker keeps.

A watch event carries a whole object (a Deployment with its full pod template: 6 KB of JSON at
the benchmark's size; a pod: 3 KB). Decoding it into Python objects and then slimming it
(:func:`pytest_homelab.rollout.tracker.slim`) allocated every field only to drop most of them:
at 1000 services, the watch threads' decoding was the largest CPU cost after the rules (py-spy).
msgspec decodes into ``TypedDict`` types that name only the kept fields and skips the rest
without building them: 3.9 µs for a pod's event against 19.4 µs for orjson plus ``slim``
(measured on the simulator's pods).

The types below name the fields ``slim`` keeps, from the apps/v1 and core/v1 API
(k8s.io/api apps/v1/types.go, core/v1/types.go) that the rules read (``rules.WORKLOAD_*_READ``,
``POD_CONDITION_TYPES_READ``; tests/rollout/test_events.py holds the lists equal). Anything
that does not fit the types (a null where an object belongs, an unexpected type, an ERROR
event) is decoded the general way and slimmed by ``slim``: the result is the same either way
(tests/rollout/test_events.py holds them equal on the simulator's objects and on random ones).
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from pytest_homelab.rollout.rules import COMMIT_KEYS, POD_CONDITION_TYPES_READ


class _Waiting(TypedDict, total=False):
    reason: Any
    message: Any


class _State(TypedDict, total=False):
    waiting: _Waiting


class _Terminated(TypedDict, total=False):
    reason: Any
    exitCode: Any


class _LastState(TypedDict, total=False):
    terminated: _Terminated


class _ContainerStatus(TypedDict, total=False):
    name: Any
    image: Any
    imageID: Any
    ready: Any
    restartCount: Any
    state: _State
    lastState: _LastState


class _Condition(TypedDict, total=False):
    type: Any
    status: Any


class _PodStatus(TypedDict, total=False):
    conditions: list[_Condition]
    containerStatuses: list[_ContainerStatus]
    initContainerStatuses: list[_ContainerStatus]


class _Container(TypedDict, total=False):
    name: Any
    image: Any


class _PodSpec(TypedDict, total=False):
    containers: list[_Container]
    initContainers: list[_Container]


class _Meta(TypedDict, total=False):
    name: Any
    namespace: Any
    generation: Any
    labels: Any
    deletionTimestamp: Any
    annotations: dict[str, Any]
    resourceVersion: Any


class _Pod(TypedDict, total=False):
    metadata: _Meta
    spec: _PodSpec
    status: _PodStatus


class _Template(TypedDict, total=False):
    metadata: _Meta
    spec: _PodSpec


class _WorkloadSpec(TypedDict, total=False):
    # rules.WORKLOAD_SPEC_READ and the template
    replicas: Any
    selector: Any
    paused: Any
    updateStrategy: Any
    template: _Template


class _WorkloadCondition(TypedDict, total=False):
    # rules.WORKLOAD_CONDITION_READ
    type: Any
    status: Any
    reason: Any
    message: Any


class _WorkloadStatus(TypedDict, total=False):
    # rules.WORKLOAD_STATUS_READ
    observedGeneration: Any
    replicas: Any
    updatedReplicas: Any
    readyReplicas: Any
    availableReplicas: Any
    terminatingReplicas: Any
    numberReady: Any
    numberAvailable: Any
    updatedNumberScheduled: Any
    desiredNumberScheduled: Any
    currentReplicas: Any
    currentRevision: Any
    updateRevision: Any
    conditions: list[_WorkloadCondition]


class _Workload(TypedDict, total=False):
    apiVersion: Any
    kind: Any
    metadata: _Meta
    spec: _WorkloadSpec
    status: _WorkloadStatus


class _PodEvent(TypedDict, total=False):
    type: str
    object: _Pod


class _WorkloadEvent(TypedDict, total=False):
    type: str
    object: _Workload


class _PodList(TypedDict, total=False):
    metadata: dict[str, Any]
    items: list[_Pod]


class _WorkloadList(TypedDict, total=False):
    metadata: dict[str, Any]
    items: list[_Workload]


def _per_resource(pods: Any, workloads: Any) -> dict[str, msgspec.json.Decoder[Any]]:
    """A decoder for each watched resource: ``pods`` for pods, ``workloads`` for the rest."""
    pod, workload = msgspec.json.Decoder(pods), msgspec.json.Decoder(workloads)
    return {"pods": pod, "deployments": workload, "statefulsets": workload, "daemonsets": workload}


_DECODERS = _per_resource(_PodEvent, _WorkloadEvent)
_LIST_DECODERS = _per_resource(_PodList, _WorkloadList)


def _read_condition(kind: Any) -> bool:
    return isinstance(kind, str) and kind in POD_CONDITION_TYPES_READ


def _recorded(meta: dict[str, Any]) -> dict[str, Any]:
    """As tracker._recorded: the annotations reduced to those that record a commit."""
    annotations = meta.get("annotations")
    if annotations is not None:
        meta["annotations"] = {k: annotations[k] for k in COMMIT_KEYS if k in annotations}
    return meta


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    meta.pop("generation", None)
    meta.pop("annotations", None)
    kept: dict[str, Any] = {"metadata": meta, "spec": obj.get("spec", {})}
    status = obj.get("status")
    if status is not None:
        status["conditions"] = [
            c for c in status.get("conditions", ()) if _read_condition(c.get("type"))
        ]
        for key in ("containerStatuses", "initContainerStatuses"):
            for container in status.get(key, ()):
                if not container.get("state", True):
                    del container["state"]  # running or terminated: slim keeps no state
                if not container.get("lastState", True):
                    del container["lastState"]
        kept["status"] = status
    return kept


def _workload(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    obj["metadata"] = _recorded(meta) if meta is not None else {}
    spec = obj.get("spec")
    if spec is None:
        obj["spec"] = None
    else:
        template = spec.get("template")
        if template is not None:
            template_meta = template.get("metadata")
            template["metadata"] = _recorded(template_meta) if template_meta is not None else {}
            template.setdefault("spec", {})
            if template_meta is not None:
                template_meta.pop("resourceVersion", None)
    return obj


def _typed(decoders: dict[str, msgspec.json.Decoder[Any]], resource: str, data: bytes) -> Any:
    """``data`` decoded with the resource's types; None when it does not fit them."""
    decoder = decoders.get(resource)
    if decoder is None:
        return None
    try:
        return decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def decode_kept(line: bytes, resource: str) -> tuple[str, str | None, dict[str, Any]] | None:
    """(type, resourceVersion, the object as ``slim`` keeps it), or None when the line does not
    fit the types (the caller decodes it the general way)."""
    event = _typed(_DECODERS, resource, line)
    if event is None:
        return None
    kind = event.get("type")
    obj = event.get("object")
    if kind is None or kind == "ERROR" or obj is None:
        return None
    meta = obj.get("metadata")
    version = meta.pop("resourceVersion", None) if meta is not None else None
    if version is not None and not isinstance(version, str):
        return None  # slim's caller would str() it; let the general path decide
    kept = _pod(dict(obj)) if resource == "pods" else _workload(dict(obj))
    return kind, version, kept


def decode_list_kept(
    data: bytes, resource: str
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A List response as (each item as ``slim`` keeps it, the list's metadata), or None when
    it does not fit the types (the caller decodes it the general way,
    ``tracker.decode_list``). A namespace's pods are never built whole: their List was the
    largest decoding of a run at 1000 services."""
    body = _typed(_LIST_DECODERS, resource, data)
    if body is None:
        return None
    keep = _pod if resource == "pods" else _workload
    items = []
    for item in body.get("items") or ():
        meta = item.get("metadata")
        if meta is not None:
            meta.pop("resourceVersion", None)
        items.append(keep(dict(item)))
    return items, body.get("metadata") or {}
