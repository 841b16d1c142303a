"""Pods of the new image that back off: transient states pass once they heal, persistent ones
fail naming the pod, the reason and the message, long before the rollout deadline; states that
retrying cannot heal fail at once. Container waiting reasons: kubernetes
pkg/kubelet/images/types.go, pkg/kubelet/kuberuntime/kuberuntime_container.go."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_homelab.core.outcomes import CheckFailed
from pytest_homelab.rollout.rules import (
    PERMANENT_REASONS,
    RolloutPolicy,
    ServiceWait,
    Target,
    container_troubles,
)
from pytest_homelab.rollout.tracker import slim

SHA = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
REPO = "registry.example.test/team/web"
IMAGE = f"{REPO}:{SHA[:8]}"


def target() -> Target:
    return Target("web", "apps", "web", SHA, repository=REPO)


def rolling(available: int = 0, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "apps", "generation": 2},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": IMAGE}]}},
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": available,
            "availableReplicas": available,
            **status,
        },
    }


def pod(
    name: str,
    *,
    waiting: str | None = None,
    message: str = "",
    restarts: int = 0,
    last_exit: tuple[str, int] | None = None,
    ready: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": "web",
        "image": IMAGE,
        "ready": ready,
        "restartCount": restarts,
        "state": {"waiting": {"reason": waiting, "message": message}}
        if waiting
        else {"running": {"startedAt": "2026-12-07T10:00:00Z"}},
    }
    if last_exit is not None:
        status["lastState"] = {
            "terminated": {"reason": last_exit[0], "exitCode": last_exit[1], "startedAt": "x"}
        }
    return {
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": IMAGE}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [status],
        },
    }


def healthy(name: str, restarts: int = 0) -> dict[str, Any]:
    return pod(name, ready=True, restarts=restarts, last_exit=("Error", 1) if restarts else None)


@pytest.mark.parametrize("reason", sorted(PERMANENT_REASONS))
def test_states_that_retrying_cannot_heal_fail_at_once(reason: str) -> None:
    wait = ServiceWait(target(), 0)
    result = wait.observe(rolling(), [pod("web-1", waiting=reason, message="why")], now=1)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    text = str(result.outcome)
    assert "pod web-1" in text and reason in text and "why" in text


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_an_image_pull_that_recovers_passes(reason: str) -> None:
    wait = ServiceWait(target(), 0, RolloutPolicy(image_pull_grace=20))
    blip = [pod("web-1", waiting=reason, message="i/o timeout"), healthy("web-2")]
    assert wait.observe(rolling(available=1), blip, now=1) is None
    assert f"pod web-1 is {reason}" in wait.message and wait.wake_at == 21
    assert wait.observe(rolling(available=1), blip, now=15) is None
    result = wait.observe(rolling(available=2), [healthy("web-1"), healthy("web-2")], now=19)
    assert result is not None and result.landed


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_an_image_pull_that_keeps_failing_fails_after_the_grace(reason: str) -> None:
    wait = ServiceWait(target(), 0, RolloutPolicy(image_pull_grace=20))
    stuck = [pod("web-1", waiting=reason, message='failed to pull "x": not found')]
    assert wait.observe(rolling(), stuck, now=5) is None
    assert wait.observe(rolling(), stuck, now=24.9) is None
    assert not wait.wants_look(24.9) and wait.wants_look(25)
    result = wait.observe(rolling(), stuck, now=25)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    text = str(result.outcome)
    assert "pod web-1" in text and reason in text and "not found" in text and "20s" in text


def test_the_pull_grace_starts_afresh_after_a_recovery() -> None:
    wait = ServiceWait(target(), 0, RolloutPolicy(image_pull_grace=20))
    failing = [pod("web-1", waiting="ErrImagePull")]
    assert wait.observe(rolling(), failing, now=0) is None
    assert wait.observe(rolling(), [pod("web-1")], now=15) is None  # pulled, starting
    assert wait.observe(rolling(), failing, now=16) is None  # a new blip: 20 s from now
    assert wait.observe(rolling(), failing, now=30) is None
    assert wait.observe(rolling(), failing, now=36) is not None


def test_one_crash_that_recovers_passes() -> None:
    wait = ServiceWait(target(), 0)
    crashed = [pod("web-1", waiting="CrashLoopBackOff", restarts=1, last_exit=("Error", 1))]
    assert wait.observe(rolling(), crashed, now=1) is None
    assert "CrashLoopBackOff (1 of 3 restarts allowed)" in wait.message
    result = wait.observe(rolling(available=2), [healthy("web-1", 1), healthy("web-2")], now=12)
    assert result is not None and result.landed


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_a_crash_loop_fails_once_restart_count_reaches_the_limit(limit: int) -> None:
    wait = ServiceWait(target(), 0, RolloutPolicy(crash_restarts=limit))
    for restarts in range(limit):
        looping = [pod("web-1", waiting="CrashLoopBackOff", restarts=restarts)]
        assert wait.observe(rolling(), looping, now=restarts) is None
    looping = [
        pod(
            "web-1",
            waiting="CrashLoopBackOff",
            message="back-off 40s restarting failed container",
            restarts=limit,
            last_exit=("Error", 2),
        )
    ]
    result = wait.observe(rolling(), looping, now=limit)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    text = str(result.outcome)
    assert "pod web-1 is CrashLoopBackOff" in text and "back-off 40s" in text
    assert f"restarted {limit} times" in text and "Error, exit code 2" in text


def test_restarts_before_the_wait_began_count() -> None:
    # The pod reports restartCount 4 at the first look: the loop has been going for a while.
    wait = ServiceWait(target(), 100)
    looping = [pod("web-1", waiting="CrashLoopBackOff", restarts=4)]
    result = wait.observe(rolling(), looping, now=100)
    assert result is not None and isinstance(result.outcome, CheckFailed)


def test_policy_bounds() -> None:
    for bad in (0, 6):
        with pytest.raises(ValueError):
            RolloutPolicy(crash_restarts=bad)
    with pytest.raises(ValueError):
        RolloutPolicy(image_pull_grace=-1)


def test_the_tracker_keeps_what_the_crash_rule_reads() -> None:
    full = pod("web-1", waiting="CrashLoopBackOff", restarts=4, last_exit=("OOMKilled", 137))
    kept = slim("pods", full)
    assert container_troubles(kept) == container_troubles(full)
    status = kept["status"]["containerStatuses"][0]
    assert status["restartCount"] == 4
    assert status["lastState"] == {"terminated": {"reason": "OOMKilled", "exitCode": 137}}


def test_terminating_replicas_is_a_property_not_a_wait() -> None:
    done = rolling(available=2, terminatingReplicas=2)
    pods = [healthy("web-1"), healthy("web-2")]
    result = ServiceWait(target(), 0).observe(done, pods, now=1)
    assert result is not None and result.landed and result.terminating == 2
    assert ("terminating_replicas", "2") in result.properties()
    strict = ServiceWait(target(), 0, RolloutPolicy(strict_terminating=True))
    assert strict.observe(done, pods, now=1) is None
    assert "2 old replicas are still terminating" in strict.message
    finished = strict.observe(rolling(available=2, terminatingReplicas=0), pods, now=2)
    assert finished is not None and finished.landed and finished.terminating == 0
