"""Pure rollout rules on plain Kubernetes JSON, and the per-service wait: no false green, ever."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytest_homelab.core.outcomes import CheckFailed, DeadlineExceeded, NotFound, Superseded
from pytest_homelab.rollout.rules import (
    ServiceWait,
    Target,
    image_references,
    parse_image,
    pod_stuck,
    rollout_state,
    selector_matches,
    template_images,
)

SHA = "3f9c2a1b7d4e8f0a1b2c3d4e5f60718293a4b5c6"
OLD = "0a1b2c3d4e5f60718293a4b5c63f9c2a1b7d4e8f"
NEW = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
REPO = "registry.example.test/homelab/web"


@pytest.mark.parametrize(
    ("image", "repo", "tag", "digest"),
    [
        ("web", "web", None, None),
        ("web:1.2", "web", "1.2", None),
        ("registry:5000/team/web", "registry:5000/team/web", None, None),
        ("registry:5000/team/web:abc", "registry:5000/team/web", "abc", None),
        ("r/web@sha256:" + "a" * 64, "r/web", None, "sha256:" + "a" * 64),
        ("r/web:t@sha256:" + "b" * 64, "r/web", "t", "sha256:" + "b" * 64),
    ],
)
def test_parse_image(image: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image(image)
    assert (ref.repository, ref.tag, ref.digest) == (repo, tag, digest)


@pytest.mark.parametrize(
    ("tag", "matches"),
    [
        (SHA, True),
        (SHA[:7], True),
        (SHA[:12], True),
        (f"main-{SHA[:8]}", True),
        (f"{SHA[:10]}_amd64", True),
        (f"v1.2.3-{SHA[:7]}.build", True),
        (SHA[:6], False),  # too short to name a commit
        (f"x{SHA[:8]}", False),  # not a whole token
        (f"{SHA[:8]}x", False),
        (f"main-{OLD[:8]}", False),
        ("latest", False),
        (f"{SHA[1:9]}", False),  # not a prefix
        (SHA.upper()[:8], True),
    ],
)
def test_image_references_by_tag_token(tag: str, matches: bool) -> None:
    assert image_references(f"{REPO}:{tag}", SHA) is matches


def test_digest_pins_need_a_recorded_commit() -> None:
    image = f"{REPO}@sha256:{'c' * 64}"
    assert not image_references(image, SHA)
    assert image_references(image, SHA, {"homelab.dev/commit": SHA})
    assert image_references(image, SHA, {"org.opencontainers.image.revision": SHA[:10]})
    assert not image_references(image, SHA, {"homelab.dev/commit": OLD})
    assert not image_references(f"{REPO}:latest", SHA, {"homelab.dev/commit": SHA})


def deployment(
    image: str,
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 2,
    updated: int = 2,
    total: int = 2,
    ready: int = 2,
    available: int = 2,
    conditions: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "generation": generation},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": image},
                        {"name": "proxy", "image": "envoy:1.30"},
                    ]
                },
            },
            **spec,
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def test_template_images_selects_by_container_or_repository() -> None:
    d = deployment(f"{REPO}:{SHA[:8]}")
    by_repo = template_images(d, SHA, repository=REPO)
    assert by_repo.matches and by_repo.containers == ("web",)
    by_name = template_images(d, SHA, container="proxy")
    assert not by_name.matches and by_name.images == ("envoy:1.30",)
    assert not template_images(d, SHA, container="nope").found
    explicit = template_images(d, SHA)  # NS/NAME target: any container built from the commit
    assert explicit.matches and explicit.images == (f"{REPO}:{SHA[:8]}",)
    hub = deployment(f"docker.io/library/nginx:{SHA[:8]}")
    assert template_images(hub, SHA, repository="nginx").matches


@pytest.mark.parametrize(
    ("kwargs", "done", "text"),
    [
        ({}, True, "successfully rolled out"),
        ({"generation": 3, "observed": 2}, False, "spec update to be observed"),
        ({"updated": 1}, False, "1 out of 2 new replicas have been updated"),
        ({"total": 3}, False, "1 old replicas are pending termination"),
        ({"available": 1}, False, "1 of 2 updated replicas are available"),
        (
            {
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "RS has timed out",
                    }
                ]
            },
            False,
            "exceeded its progress deadline",
        ),
        ({"paused": True}, True, "successfully rolled out"),  # kubectl 1.33 says so too
        ({"paused": True, "updated": 1}, False, "paused"),
    ],
)
def test_deployment_rollout_state_follows_kubectl(
    kwargs: dict[str, Any], done: bool, text: str
) -> None:
    state = rollout_state(deployment("x", **kwargs), "Deployment")
    assert state.done is done and text in state.message


def test_generation_guard_and_defaults() -> None:
    d = deployment("x", generation=4, observed=4)
    assert rollout_state(d, "Deployment", min_generation=4).done
    assert not rollout_state(d, "Deployment", min_generation=5).done
    no_replicas = deployment("x", updated=1, total=1, available=1)
    del no_replicas["spec"]["replicas"]  # the API default is 1
    assert rollout_state(no_replicas, "Deployment").done
    terminating = deployment("x")
    terminating["status"]["terminatingReplicas"] = 1
    assert rollout_state(terminating, "Deployment").done  # kubectl never reads the field
    strict = rollout_state(terminating, "Deployment", strict_terminating=True)
    assert not strict.done and "1 old replicas are still terminating" in strict.message


def statefulset(**status: Any) -> dict[str, Any]:
    base = {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": "db-1",
        "updateRevision": "db-1",
    }
    base.update(status)
    return {
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
        "status": base,
    }


@pytest.mark.parametrize(
    ("status", "done"),
    [
        ({}, True),
        ({"readyReplicas": 2}, False),
        ({"updateRevision": "db-2"}, False),
        ({"observedGeneration": 0}, False),
    ],
)
def test_statefulset_rules(status: dict[str, Any], done: bool) -> None:
    assert rollout_state(statefulset(**status), "StatefulSet").done is done


def test_statefulset_partition_and_on_delete() -> None:
    s = statefulset(updatedReplicas=1, updateRevision="db-2")
    s["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 2}
    assert rollout_state(s, "StatefulSet").done
    s["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_state(s, "StatefulSet").failed is not None


@pytest.mark.parametrize(
    ("status", "done"),
    [
        ({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}, True),
        ({"desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3}, False),
        ({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}, False),
    ],
)
def test_daemonset_rules(status: dict[str, Any], done: bool) -> None:
    ds = {
        "metadata": {"name": "agent", "generation": 1},
        "status": {"observedGeneration": 1, **status},
    }
    assert rollout_state(ds, "DaemonSet").done is done


def test_selectors() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_matches(sel, {"app": "web", "tier": "fe"})
    assert not selector_matches(sel, {"app": "web", "tier": "db"})
    assert not selector_matches(sel, {"app": "web", "tier": "fe", "canary": "1"})
    assert not selector_matches({}, {"app": "web"})  # an empty selector never matches here


def pod(
    name: str,
    image: str,
    *,
    ready: bool = True,
    waiting: str | None = None,
    message: str = "",
    terminating: bool = False,
) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    meta: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-23T10:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "image": image}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "web", "state": state, "imageID": f"{REPO}@sha256:{'d' * 64}"}
            ],
        },
    }


def test_pod_stuck() -> None:
    assert pod_stuck(pod("p", "x")) is None
    reason, message = pod_stuck(
        pod("p", "x", waiting="CrashLoopBackOff", message="back-off 10s")
    ) or ("", "")
    assert reason == "CrashLoopBackOff" and message == "container web: back-off 10s"
    assert pod_stuck(pod("p", "x", waiting="ContainerCreating")) is None


# -- the per-service wait: the "rollout lies" matrix ---------------------------------------------


def target(**kw: Any) -> Target:
    return Target("web", "apps", "web", SHA, repository=REPO, **kw)


NEW_IMAGE = f"{REPO}:{SHA[:8]}"
OLD_IMAGE = f"{REPO}:{OLD[:8]}"


def landed(**kw: Any) -> dict[str, Any]:
    return deployment(NEW_IMAGE, generation=5, observed=5, **kw)


def test_the_rollout_lies_matrix_never_gives_a_false_green() -> None:
    lies = {
        "image not yet updated (old ReplicaSet looks done)": deployment(OLD_IMAGE),
        "generation not yet observed": deployment(NEW_IMAGE, generation=5, observed=4),
        "new replicas not all updated": landed(updated=1),
        "old pods still pending termination": landed(total=3),
        "new pods not yet available": landed(available=1),
    }
    for why, d in lies.items():
        wait = ServiceWait(target(), started=0)
        assert wait.observe(d, [pod("web-new", NEW_IMAGE)], now=1) is None, why
        result = wait.at_deadline(now=900)
        assert isinstance(result.outcome, DeadlineExceeded), why


def test_generation_guard_uses_the_generation_of_the_first_match() -> None:
    wait = ServiceWait(target(), started=0)
    # The image matched at generation 5, but the status reports generation 4 as fully rolled
    # out and claims it observed 5: only the counters of generation >= 5 may count.
    stale = landed()
    stale["metadata"]["generation"] = 5
    stale["status"]["observedGeneration"] = 4
    assert wait.observe(stale, [], now=1) is None
    assert wait.generation == 5
    assert wait.observe(landed(), [pod("web-1", NEW_IMAGE), pod("web-2", NEW_IMAGE)], now=2)


def test_success_records_provenance() -> None:
    wait = ServiceWait(target(), started=10)
    assert wait.observe(deployment(OLD_IMAGE), [], now=11) is None
    assert wait.observe(landed(updated=1), [], now=12) is None
    pods = [
        pod("web-a", NEW_IMAGE),
        pod("web-b", NEW_IMAGE),
        pod("web-old", OLD_IMAGE, terminating=True),
        pod("web-c", NEW_IMAGE, ready=False),
    ]
    result = wait.observe(landed(), pods, now=20)
    assert result is not None and result.landed
    assert result.generation == 5 and result.images == (NEW_IMAGE,)
    assert result.pods == ("web-a", "web-b") and result.image_ids == (f"{REPO}@sha256:{'d' * 64}",)
    assert result.waited == 10 and result.time_to_ready == 8
    props = dict(result.properties())
    assert props["expected_sha"] == SHA and props["generation"] == "5"
    assert props["replicas"] == "2/2 ready" and props["time_to_ready"] == "8.0s"


def test_progress_deadline_exceeded_fails_now() -> None:
    pde = landed(
        updated=1,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "web-7d" has timed out',
            }
        ],
    )
    result = ServiceWait(target(), 0).observe(pde, [], now=1)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    assert "ProgressDeadlineExceeded" in str(result.outcome)


def test_paused_fails_with_that_reason() -> None:
    result = ServiceWait(target(), 0).observe(landed(paused=True, updated=1), [], now=1)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    assert "paused" in str(result.outcome) and "rollout resume" in str(result.outcome)


@pytest.mark.parametrize(
    "reason", ["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"]
)
def test_stuck_new_pods_fail_fast_with_pod_reason_and_message(reason: str) -> None:
    pods = [pod("web-7d9-abcde", NEW_IMAGE, ready=False, waiting=reason, message="the details")]
    result = ServiceWait(target(), 0).observe(landed(available=0), pods, now=1)
    assert result is not None and isinstance(result.outcome, CheckFailed)
    text = str(result.outcome)
    assert "web-7d9-abcde" in text and reason in text and "the details" in text


def test_stuck_old_pods_do_not_fail_the_new_rollout() -> None:
    pods = [pod("web-old", OLD_IMAGE, ready=False, waiting="CrashLoopBackOff")]
    assert ServiceWait(target(), 0).observe(landed(available=1), pods, now=1) is None


def test_missing_and_deleted_are_not_found() -> None:
    result = ServiceWait(target(), 0).observe(None, [], now=1)
    assert result is not None and isinstance(result.outcome, NotFound)
    assert "does not exist" in str(result.outcome)
    wait = ServiceWait(target(), 0)
    assert wait.observe(landed(available=1), [], now=1) is None
    gone = wait.observe(None, [], now=2)
    assert gone is not None and isinstance(gone.outcome, NotFound)
    assert "deleted while waiting" in str(gone.outcome)


def test_a_second_landing_replacing_the_image_is_superseded() -> None:
    wait = ServiceWait(target(), 0)
    assert wait.observe(deployment(OLD_IMAGE), [], now=1) is None
    result = wait.observe(deployment(f"{REPO}:{NEW[:8]}", generation=6), [], now=2)
    assert result is not None and isinstance(result.outcome, Superseded)
    assert NEW[:8] in str(result.outcome)
    matched = ServiceWait(target(), 0)
    assert matched.observe(landed(updated=1), [], now=1) is None
    replaced = matched.observe(deployment(f"{REPO}:{NEW[:8]}", generation=6), [], now=2)
    assert replaced is not None and isinstance(replaced.outcome, Superseded)


def test_deadline_messages_say_what_was_seen() -> None:
    wait = ServiceWait(target(), 0)
    wait.observe(deployment(OLD_IMAGE), [], now=1)
    text = str(wait.at_deadline(900).outcome)
    assert f"runs {OLD_IMAGE}" in text and SHA[:12] in text
    missing = ServiceWait(target(container="api"), 0)
    missing.observe(deployment(OLD_IMAGE), [], now=1)
    assert "has no container 'api' (containers: web=" in str(missing.at_deadline(900).outcome)
    rolling = ServiceWait(target(), 0)
    rolling.observe(landed(available=1), [], now=1)
    assert "1 of 2 updated replicas are available" in str(rolling.at_deadline(900).outcome)


def test_pinned_commit_and_explicit_targets() -> None:
    explicit = Target("apps/web", "apps", "web", SHA)  # no repository: any container
    result = ServiceWait(explicit, 0).observe(
        landed(), [pod("a", NEW_IMAGE), pod("b", NEW_IMAGE)], now=1
    )
    assert result is not None and result.landed
    d = copy.deepcopy(landed())
    d["spec"]["template"]["spec"]["containers"][0]["image"] = f"{REPO}@sha256:{'e' * 64}"
    d["spec"]["template"]["metadata"]["annotations"] = {"homelab.dev/commit": SHA}
    digest = f"{REPO}@sha256:{'e' * 64}"
    pinned = ServiceWait(target(), 0).observe(d, [pod("a", digest), pod("b", digest)], now=1)
    assert pinned is not None and pinned.landed and pinned.pods == ("a", "b")


def test_a_lagging_pod_view_gets_a_short_grace_then_the_verdict_stands() -> None:
    wait = ServiceWait(target(), 0)
    assert wait.observe(deployment(OLD_IMAGE), [], now=1) is None
    one_pod = [pod("web-a", NEW_IMAGE)]
    assert wait.observe(landed(), one_pod, now=2) is None  # status says 2 ready, we see 1
    both = wait.observe(landed(), [*one_pod, pod("web-b", NEW_IMAGE)], now=3)
    assert both is not None and both.pods == ("web-a", "web-b") and both.time_to_ready == 1
    stale = ServiceWait(target(), 0)
    assert stale.observe(landed(), one_pod, now=1) is None
    late = stale.observe(landed(), one_pod, now=7)
    assert late is not None and late.landed and late.pods == ("web-a",)
    assert late.ready_replicas == 2 and late.time_to_ready is None  # done at the first look
