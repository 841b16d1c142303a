"""What the API server does to an apps/v1 or core/v1 object before storing it: defaulting and
the validation a client can trip over.

Defaults follow kubernetes pkg/apis/apps/v1/defaults.go (``SetDefaults_Deployment``,
``SetDefaults_StatefulSet``, ``SetDefaults_DaemonSet``, ``SetDefaults_ReplicaSet``) and
pkg/apis/core/v1/defaults.go for pod templates and containers, so that clients (kubectl's
``rollout status`` above all) take the same branch on the simulator as on a cluster: a
StatefulSet always has ``updateStrategy.rollingUpdate.partition`` (0), a Deployment its
``strategy`` and ``progressDeadlineSeconds``. Validation covers what the real API rejects with
422 Invalid and a client may plausibly send: a missing container name or image, a missing or
non-matching selector, a duplicate container name. It is not the API server's full validation.
"""

from __future__ import annotations

from typing import Any

from pytest_homelab.sim.kube.store import ApiError, Obj, ResourceInfo

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


def _pull_policy(image: str) -> str:
    """Always for ``:latest`` or no tag, IfNotPresent otherwise (core/v1 defaults.go)."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@" in image:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(c: Obj) -> None:
    if isinstance(c.get("image"), str):
        c.setdefault("imagePullPolicy", _pull_policy(c["image"]))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _container(c)


def _rolling(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def apply_defaults(info: ResourceInfo, obj: Obj) -> None:
    """Default ``obj`` in place, as the API server does on create and update."""
    spec = obj.get("spec")
    if info.kind == "Pod":
        pod_spec(spec)
        return
    if info.kind not in WORKLOADS or not isinstance(spec, dict):
        return
    template = spec.get("template")
    if isinstance(template, dict):
        pod_spec(template.get("spec"))
        labels = (template.get("metadata") or {}).get("labels")
        meta = obj.setdefault("metadata", {})
        if labels and not meta.get("labels"):  # the object's labels default to the template's
            meta["labels"] = dict(labels)
    if info.kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if info.kind == "Deployment":
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy["rollingUpdate"] = _rolling(strategy.get("rollingUpdate"))
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
        spec.setdefault("progressDeadlineSeconds", 600)
    elif info.kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy["rollingUpdate"] = _rolling(strategy.get("rollingUpdate"))
                rolling.setdefault("partition", 0)
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
    elif info.kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy["rollingUpdate"] = _rolling(strategy.get("rollingUpdate"))
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)


def _selects(selector: Any, labels: Any) -> bool:
    if not isinstance(selector, dict) or not isinstance(labels, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _containers(spec: Any, path: str, errors: list[tuple[str, str, str]]) -> None:
    if not isinstance(spec, dict):
        return
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        errors.append((f"{path}.containers", "FieldValueRequired", "Required value"))
        return
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{i}]"
            if not isinstance(c, dict):
                continue
            name = c.get("name")
            if not name:
                errors.append((f"{where}.name", "FieldValueRequired", "Required value"))
            elif name in seen:
                errors.append(
                    (f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
                )
            else:
                seen.add(str(name))
            image = c.get("image")
            if not isinstance(image, str) or not image.strip():
                errors.append((f"{where}.image", "FieldValueRequired", "Required value"))


def validate(info: ResourceInfo, obj: Obj) -> None:
    """Raise 422 Invalid for what the real API server rejects and clients may send."""
    errors: list[tuple[str, str, str]] = []
    spec = obj.get("spec")
    if info.kind == "Pod":
        _containers(spec, "spec", errors)
    elif info.kind in WORKLOADS and isinstance(spec, dict):
        raw = spec.get("template")
        template: Obj = raw if isinstance(raw, dict) else {}
        selector = spec.get("selector")
        labels = (template.get("metadata") or {}).get("labels")
        if not isinstance(selector, dict) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            errors.append(("spec.selector", "FieldValueRequired", "Required value"))
        elif not _selects(selector, labels or {}):
            errors.append(
                (
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {_labels_text(labels)}: `selector` does not match "
                    "template `labels`",
                )
            )
        _containers(template.get("spec"), "spec.template.spec", errors)
    if not errors:
        return
    name = (obj.get("metadata") or {}).get("name", "")
    messages = [f"{field}: {text}" for field, _, text in errors]
    qualified = f"{info.kind}.{info.group}" if info.group else info.kind
    text = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    raise ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": info.group,
            "kind": info.kind,
            "causes": [
                {"reason": reason, "message": message, "field": field}
                for field, reason, message in errors
            ],
        },
    )


def _labels_text(labels: Any) -> str:
    if not isinstance(labels, dict):
        return "map[string]string(nil)"
    inner = " ".join(f"{k}:{v}" for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"
