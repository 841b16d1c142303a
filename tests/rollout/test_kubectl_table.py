"""kubectl's own rollout-status test table, replayed against our rules.

Every case of kubernetes/kubectl pkg/polymorphichelpers/rollout_status_test.go at v0.33.9
(commit d5ec974d6914d84924fdbc259429d78d6a30b317): the input generation, spec and status, and
kubectl's expected message and done. The facts are carried, not the code. Our message is
kubectl's without its trailing newline; where our rules deliberately differ, the row says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_homelab.rollout.rules import rollout_state


@dataclass(frozen=True)
class Row:
    cite: str  # the test case in rollout_status_test.go@v0.33.9
    kind: str
    generation: int
    status: dict[str, Any]
    message: str  # kubectl's, trailing newline dropped; "" when kubectl returns an error
    done: bool
    spec: dict[str, Any] = field(default_factory=dict)
    error: bool = False  # kubectl returns an error (exit 1): ours is a failed state
    note: str = ""  # where ours deliberately differs


def deployment(generation: int, replicas: int, **status: int) -> dict[str, Any]:
    keys = {
        "observed": "observedGeneration",
        "replicas": "replicas",
        "updated": "updatedReplicas",
        "available": "availableReplicas",
        "unavailable": "unavailableReplicas",
    }
    return {
        "kind": "Deployment",
        "generation": generation,
        "spec": {"replicas": replicas},
        "status": {keys[k]: v for k, v in status.items()},
    }


WAITING = 'Waiting for deployment "foo" rollout to finish: '
DS_WAITING = 'Waiting for daemon set "foo" rollout to finish: '
ROLLING = {"type": "RollingUpdate"}
PARTITION_2 = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}


def sts_status(observed: int, ready: int, current: int, updated: int, **rest: Any) -> Any:
    return {
        "observedGeneration": observed,
        "replicas": 3,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        **rest,
    }


ROWS = [
    # TestDeploymentStatusViewerStatus (rollout_status_test.go:30-114)
    Row(
        "deployment test1 (l.39)",
        "Deployment",
        0,
        {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0, "availableReplicas": 1},
        WAITING + "0 out of 1 new replicas have been updated...",
        False,
        {"replicas": 1},
    ),
    Row(
        "deployment test2 (l.54)",
        "Deployment",
        1,
        {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2},
        WAITING + "1 old replicas are pending termination...",
        False,
        {"replicas": 1},
    ),
    Row(
        "deployment test3 (l.69)",
        "Deployment",
        1,
        {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 1,
            "unavailableReplicas": 1,
        },
        WAITING + "1 of 2 updated replicas are available...",
        False,
        {"replicas": 2},
    ),
    Row(
        "deployment test4 (l.84)",
        "Deployment",
        1,
        {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
        'deployment "foo" successfully rolled out',
        True,
        {"replicas": 2},
    ),
    Row(
        "deployment test5 (l.99)",
        "Deployment",
        2,
        {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
        "Waiting for deployment spec update to be observed...",
        False,
        {"replicas": 2},
    ),
    # TestDaemonSetStatusViewerStatus (l.157-217): strategy RollingUpdate
    Row(
        "daemon set test1 (l.165)",
        "DaemonSet",
        0,
        {
            "observedGeneration": 1,
            "updatedNumberScheduled": 0,
            "desiredNumberScheduled": 1,
            "numberAvailable": 0,
        },
        DS_WAITING + "0 out of 1 new pods have been updated...",
        False,
        {"updateStrategy": ROLLING},
    ),
    Row(
        "daemon set test2 (l.178)",
        "DaemonSet",
        1,
        {
            "observedGeneration": 1,
            "updatedNumberScheduled": 2,
            "desiredNumberScheduled": 2,
            "numberAvailable": 1,
        },
        DS_WAITING + "1 of 2 updated pods are available...",
        False,
        {"updateStrategy": ROLLING},
    ),
    Row(
        "daemon set test3 (l.191)",
        "DaemonSet",
        1,
        {
            "observedGeneration": 1,
            "updatedNumberScheduled": 2,
            "desiredNumberScheduled": 2,
            "numberAvailable": 2,
        },
        'daemon set "foo" successfully rolled out',
        True,
        {"updateStrategy": ROLLING},
    ),
    Row(
        "daemon set test4 (l.204)",
        "DaemonSet",
        2,
        {
            "observedGeneration": 1,
            "updatedNumberScheduled": 2,
            "desiredNumberScheduled": 2,
            "numberAvailable": 2,
        },
        "Waiting for daemon set spec update to be observed...",
        False,
        {"updateStrategy": ROLLING},
    ),
    # TestDaemonSetStatusViewerStatusWithWrongUpdateStrategyType (l.413-440)
    Row(
        "daemon set OnDelete (l.413)",
        "DaemonSet",
        0,
        {},
        "",
        True,
        {"updateStrategy": {"type": "OnDelete"}},
        error=True,
        note="kubectl errors (exit 1); ours fails the check with the same reason",
    ),
    # TestStatefulSetStatusViewerStatus (l.263-379), newStatefulSet(3) (l.442-473)
    Row(
        "on delete returns an error (l.274)",
        "StatefulSet",
        1,
        sts_status(1, 1, 0, 0) | {"replicas": 0},
        "",
        True,
        {"updateStrategy": {"type": "OnDelete"}},
        error=True,
        note="kubectl errors (exit 1); ours fails the check with the same reason",
    ),
    Row(
        "unobserved update is not complete (l.290)",
        "StatefulSet",
        2,
        sts_status(1, 3, 3, 0),
        "Waiting for statefulset spec update to be observed...",
        False,
        {"updateStrategy": ROLLING},
    ),
    Row(
        "if all pods are not ready the update is not complete (l.306)",
        "StatefulSet",
        1,
        sts_status(2, 2, 3, 0),
        "Waiting for 1 pods to be ready...",
        False,
        {"updateStrategy": ROLLING},
    ),
    Row(
        "partition update completes when all replicas above the partition are updated (l.322)",
        "StatefulSet",
        1,
        sts_status(2, 3, 2, 1),
        "partitioned roll out complete: 1 new pods have been updated...",
        True,
        {"updateStrategy": PARTITION_2},
    ),
    Row(
        "partition update is in progress if all pods above the partition have not been "
        "updated (l.342)",
        "StatefulSet",
        1,
        sts_status(2, 3, 3, 0),
        "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...",
        # The test table says done: true, but it only asserts `done && !test.done` (l.403),
        # so true there means "not checked"; kubectl's Status returns false (rollout_status.go
        # l.138-141), and so do we.
        False,
        {"updateStrategy": PARTITION_2},
    ),
    Row(
        "update completes when all replicas are current (l.362)",
        "StatefulSet",
        1,
        sts_status(2, 3, 3, 3, currentRevision="foo", updateRevision="foo"),
        "statefulset rolling update complete 3 pods at revision foo...",
        True,
        {"updateStrategy": ROLLING},
    ),
]


def workload(row: Row) -> dict[str, Any]:
    spec = {"replicas": 3, **row.spec} if row.kind == "StatefulSet" else dict(row.spec)
    return {
        "kind": row.kind,
        "metadata": {"name": "foo", "namespace": "bar", "generation": row.generation},
        "spec": spec,
        "status": row.status,
    }


@pytest.mark.parametrize("row", ROWS, ids=[r.cite for r in ROWS])
def test_our_rules_agree_with_kubectls_own_table(row: Row) -> None:
    state = rollout_state(workload(row), row.kind)
    if row.error:
        assert not state.done and state.failed is not None
        assert "only available for RollingUpdate strategy type" in state.failed
        return
    assert state.failed is None
    assert state.done is row.done
    assert state.message == row.message


def test_every_case_of_the_kubectl_file_is_here() -> None:
    # 5 deployment, 4 daemon set, 1 wrong-strategy daemon set, 6 statefulset cases.
    kinds = [r.kind for r in ROWS]
    assert (kinds.count("Deployment"), kinds.count("DaemonSet"), kinds.count("StatefulSet")) == (
        5,
        5,
        6,
    )


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == "Deployment"], ids=lambda r: r.cite)
def test_paused_changes_nothing_once_complete(row: Row) -> None:
    # Only Deployments have spec.paused. kubectl never reads it: a complete paused rollout is
    # done. Ours fails an incomplete paused one at once (kubectl would wait forever): a
    # deliberate difference.
    obj = workload(row)
    obj["spec"]["paused"] = True
    state = rollout_state(obj, row.kind)
    assert state.done is row.done
    if not row.done:
        assert state.failed is not None and "paused" in state.failed


# -- beyond the table: every Deployment status, against kubectl's decision order ----------------

counts = st.integers(min_value=0, max_value=4)


def kubectl_deployment_done(generation: int, spec: int, status: dict[str, int]) -> bool:
    """kubectl's DeploymentStatusViewer.Status (rollout_status.go@v0.33.9:75-91), written out
    independently of ours: done only when observed, all updated, none old, all available."""
    if generation > status["observedGeneration"]:
        return False
    if status["updatedReplicas"] < spec:
        return False
    if status["replicas"] > status["updatedReplicas"]:
        return False
    return status["availableReplicas"] >= status["updatedReplicas"]


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    generation=counts,
    observed=counts,
    spec=counts,
    replicas=counts,
    updated=counts,
    available=counts,
    terminating=counts,
    paused=st.booleans(),
)
def test_ours_agree_with_kubectl_on_every_deployment_status(
    generation: int,
    observed: int,
    spec: int,
    replicas: int,
    updated: int,
    available: int,
    terminating: int,
    paused: bool,
) -> None:
    status = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "terminatingReplicas": terminating,
    }
    obj = {
        "metadata": {"name": "foo", "generation": generation},
        "spec": {"replicas": spec, "paused": paused},
        "status": status,
    }
    kubectl = kubectl_deployment_done(generation, spec, status)
    ours = rollout_state(obj, "Deployment")
    assert ours.done is kubectl  # paused or not, terminating or not: kubectl's verdict
    if paused and not kubectl:
        assert ours.failed is not None  # ours fails it at once; kubectl would wait forever
    strict = rollout_state(obj, "Deployment", strict_terminating=True)
    assert strict.done is (kubectl and terminating == 0)  # strict is never greener
