"""Full-size Kubernetes objects for the simulator, shaped like what a real cluster stores.

Benchmarks and tests should pay for realistic JSON (probes, resources, env, volumes, managed
labels), not toy dicts, so these builders fill in what kubectl and controllers would.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

Obj = dict[str, Any]


def _container(name: str, image: str, port: int) -> Obj:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            },
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "initialDelaySeconds": 5,
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def pod_template(
    name: str,
    image: str,
    *,
    container: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    containers = [_container(container or name, image, 8080)]
    for n, (extra_name, extra_image) in enumerate(extra or []):
        containers.append(_container(extra_name, extra_image, 9090 + n))
    return {
        "metadata": {
            "labels": {"app.kubernetes.io/name": name, "app": name},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "containers": containers,
            "volumes": [
                {"name": "config", "configMap": {"name": f"{name}-config", "defaultMode": 420}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": name,
            "serviceAccount": name,
            "securityContext": {"fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
        },
    }


def _workload_meta(
    name: str, namespace: str, labels: dict[str, str] | None, annotations: dict[str, str] | None
) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": "homelab",
            "app.kubernetes.io/managed-by": "gitops",
            **(labels or {}),
        },
        "annotations": dict(annotations or {}),
    }


def deployment(
    name: str,
    namespace: str,
    image: str,
    *,
    replicas: int = 2,
    container: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    progress_deadline: int = 600,
    max_surge: int | str = "25%",
    max_unavailable: int | str = "25%",
    min_ready: int = 0,
    paused: bool = False,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": pod_template(
            name, image, container=container, extra=extra, annotations=template_annotations
        ),
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
        },
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": progress_deadline,
        "minReadySeconds": min_ready,
    }
    if paused:
        spec["paused"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_meta(name, namespace, labels, annotations),
        "spec": spec,
    }


def statefulset(
    name: str,
    namespace: str,
    image: str,
    *,
    replicas: int = 3,
    container: str | None = None,
    partition: int | None = None,
) -> Obj:
    rolling: Obj = {"partition": partition} if partition is not None else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _workload_meta(name, namespace, None, None),
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": pod_template(name, image, container=container),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
            "podManagementPolicy": "OrderedReady",
            "revisionHistoryLimit": 10,
        },
    }


def daemonset(name: str, namespace: str, image: str, *, container: str | None = None) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _workload_meta(name, namespace, None, None),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": pod_template(name, image, container=container),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def template_hash(template: Obj) -> str:
    """A stable short hash of a pod template, like the pod-template-hash label."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def image_id(image: str) -> str:
    """The digest-qualified imageID a kubelet reports for a pulled image."""
    repository = image.split("@")[0]
    slash = repository.rfind("/")
    colon = repository.rfind(":")
    if colon > slash:
        repository = repository[:colon]
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    template: Obj, *, name: str, namespace: str, owner: Obj, labels: dict[str, str], node: str
) -> Obj:
    spec = copy.deepcopy(template["spec"])
    spec["nodeName"] = node
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault(
        "tolerations",
        [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    )
    meta = copy.deepcopy(template.get("metadata", {}))
    meta.update(
        name=name,
        namespace=namespace,
        labels={**meta.get("labels", {}), **labels},
        ownerReferences=[owner_reference(owner)],
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
        },
    }
