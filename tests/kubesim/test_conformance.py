"""Real kubectl referees the simulator: for each scenario, `kubectl rollout status` and
`kubectl get` must agree with what the simulator means, and with our rules where they overlap."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from pytest_homelab.rollout.rules import rollout_state
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset
from tests.waiting import wait_until

IMAGE = "registry.example.test/homelab/web"


def later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


def rolled_out(
    sim: KubeSim, name: str = "web", resource: str = "deployments", kind: str = "Deployment"
) -> bool:
    obj = sim.get(resource, "apps", name)
    return rollout_state(obj, kind).done


def test_rolled_out_deployment(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=3))
    sim.wait_until(lambda: rolled_out(sim))
    done = kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert done.returncode == 0, done.stderr
    assert 'deployment "web" successfully rolled out' in done.stdout
    got = kubectl("get", "deployment", "web", "-o", "json")
    assert got.returncode == 0, got.stderr
    obj = json.loads(got.stdout)
    assert obj == sim.get("deployments", "apps", "web")  # what kubectl sees is what is stored
    assert rollout_state(obj, "Deployment").done  # our rules agree with kubectl's verdict


def test_progressing_rollout_reports_the_same_waits(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=3))
    sim.wait_until(lambda: rolled_out(sim))
    sim.image_behavior(f"{IMAGE}:bbbbbbb2", ready=1.0)
    sim.set_image("apps", "web", f"{IMAGE}:bbbbbbb2")  # then ask: kubectl must wait for it
    done = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == 'deployment "web" successfully rolled out'
    waits = " ".join(lines[:-1])
    assert "new replicas have been updated" in waits or "updated replicas are available" in waits
    final = sim.get("deployments", "apps", "web")
    assert final["status"]["updatedReplicas"] == 3 and rollout_state(final, "Deployment").done


def test_progress_deadline_exceeded_fails_kubectl_and_us(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2, progress_deadline=2))
    sim.wait_until(lambda: rolled_out(sim))
    sim.image_behavior(f"{IMAGE}:ccccccc3", ready=100_000)
    sim.set_image("apps", "web", f"{IMAGE}:ccccccc3")
    done = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert done.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in done.stderr
    state = rollout_state(sim.get("deployments", "apps", "web"), "Deployment")
    assert state.failed is not None and "ProgressDeadlineExceeded" in state.failed


def test_stuck_rollout_times_out_in_kubectl_and_is_not_done_for_us(
    sim: KubeSim, kubectl: Any
) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    sim.wait_until(lambda: rolled_out(sim))
    sim.image_behavior(f"{IMAGE}:ddddddd4", fail="ImagePullBackOff")
    sim.set_image("apps", "web", f"{IMAGE}:ddddddd4")
    done = kubectl("rollout", "status", "deployment/web", "--timeout=2s")
    assert done.returncode == 1 and "timed out waiting for the condition" in done.stderr
    assert not rollout_state(sim.get("deployments", "apps", "web"), "Deployment").done
    pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
    reasons = {
        s["state"].get("waiting", {}).get("reason")
        for p in pods
        for s in p["status"].get("containerStatuses", [])
    }
    assert "ImagePullBackOff" in reasons


def test_spec_update_not_yet_observed(sim: KubeSim, kubectl: Any) -> None:
    # The controller observes the new generation only once kubectl watches, so kubectl's first
    # look finds it unobserved however slow kubectl is to start.
    sim.controllers.timing.observe = 1e9
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    ran: list[Any] = []
    status = threading.Thread(
        target=lambda: ran.append(kubectl("rollout", "status", "deployment/web", "--timeout=20s"))
    )
    status.start()
    try:
        wait_until(lambda: sim.watches_opened > 0, what="kubectl to watch", timeout=20)
    finally:
        sim.controllers.timing.observe = 0.0
        sim.controllers.wake(("deployments", "apps", "web"), 0.0)  # look again now
        status.join(timeout=60)
    (done,) = ran
    assert done.returncode == 0, done.stderr
    assert "Waiting for deployment spec update to be observed" in done.stdout


def test_statefulset_and_daemonset(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(statefulset("db", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    sim.apply(daemonset("agent", "apps", f"{IMAGE}:aaaaaaa1"))
    sim.set_image("apps", "db", f"{IMAGE}:bbbbbbb2", kind="StatefulSet")
    sts = kubectl("rollout", "status", "statefulset/db", "--timeout=30s")
    assert sts.returncode == 0, sts.stderr
    assert "statefulset rolling update complete" in sts.stdout or "roll out complete" in sts.stdout
    assert rollout_state(sim.get("statefulsets", "apps", "db"), "StatefulSet").done
    ds = kubectl("rollout", "status", "daemonset/agent", "--timeout=30s")
    assert ds.returncode == 0, ds.stderr
    assert 'daemon set "agent" successfully rolled out' in ds.stdout
    assert rollout_state(sim.get("daemonsets", "apps", "agent"), "DaemonSet").done


def test_watch_survives_compaction_410(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    sim.wait_until(lambda: rolled_out(sim))
    sim.image_behavior(f"{IMAGE}:eeeeeee5", ready=4.0)
    sim.set_image("apps", "web", f"{IMAGE}:eeeeeee5")
    # While kubectl watches, its resourceVersion expires: 410 in the stream, it must relist.
    later(0.4, sim.expire_watches)
    done = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert sim.expired_sent >= 1


def test_not_found_and_deleted(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    missing = kubectl("get", "deployment", "ghost")
    assert missing.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "ghost" not found' in missing.stderr
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    sim.image_behavior(f"{IMAGE}:aaaaaaa1", ready=100_000)
    later(0.8, lambda: sim.delete("deployments", "apps", "web"))
    deleted = kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert deleted.returncode == 1 and "deleted" in deleted.stderr


def test_logs_events_and_selectors(sim: KubeSim, kubectl: Any) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=2))
    sim.wait_until(lambda: rolled_out(sim))
    pods = kubectl("get", "pods", "-l", "app.kubernetes.io/name=web", "-o", "name")
    assert pods.returncode == 0 and len(pods.stdout.split()) == 2
    none = kubectl("get", "pods", "-l", "app.kubernetes.io/name=nope", "-o", "name")
    assert none.returncode == 0 and none.stdout.strip() == ""
    logs = kubectl("logs", "deployment/web")
    assert logs.returncode == 0 and f"starting {IMAGE}:aaaaaaa1" in logs.stdout
    events = kubectl("get", "events", "-o", "json")
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "ScalingReplicaSet" in reasons


@pytest.mark.parametrize("kind", ["deployment", "deploy"])
def test_short_names_from_discovery(sim: KubeSim, kubectl: Any, kind: str) -> None:
    sim.create_namespace("apps")
    sim.apply(deployment("web", "apps", f"{IMAGE}:aaaaaaa1", replicas=1))
    done = kubectl("get", kind, "web", "-o", "jsonpath={.metadata.name}")
    assert done.returncode == 0 and done.stdout == "web"
