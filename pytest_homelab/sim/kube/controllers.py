"""The simulator's controllers: Deployments (ReplicaSets, surge), StatefulSets, DaemonSets, a
kubelet that runs pods per image behaviour, and namespace deletion.

They react to store changes (dirty keys) and timers on the scenario clock, the way real
controllers react to watch events and requeues, so hundreds of workloads cost little when idle.
"""

from __future__ import annotations

import copy
import fnmatch
import heapq
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_homelab.sim.kube.objects import (
    image_id,
    owner_reference,
    pod_from_template,
    template_hash,
)
from pytest_homelab.sim.kube.store import ApiError, Obj, Store, WatchEvent

Key = tuple[str, str, str]
NODES = ("node-a", "node-b", "node-c")
STUCK_MESSAGES = {
    "ImagePullBackOff": 'Back-off pulling image "{image}"',
    "ErrImagePull": 'rpc error: code = NotFound desc = failed to pull and unpack image "{image}":'
    " not found",
    "ErrImageNeverPull": 'Container image "{image}" is not present with pull policy of Never',
    "InvalidImageName": 'Failed to apply default image tag "{image}": invalid reference format',
    "CrashLoopBackOff": "back-off {backoff} restarting failed container={container} pod={pod}",
    "CreateContainerConfigError": 'secret "{container}-credentials" not found',
}


def _initial_restarts(behavior: ImageBehavior) -> int:
    return 3 if behavior.restarts is None else behavior.restarts


def _crash_backoff(restarts: int) -> float:
    """The kubelet's crash back-off after ``restarts`` restarts: 10 s doubling, at most 5 min
    (scenario seconds)."""
    return float(min(10 * 2 ** max(restarts - 1, 0), 300))


@dataclass(frozen=True)
class ImageBehavior:
    """How pods running an image behave: start after ``pull``, Ready after ``ready`` more
    seconds; or get stuck with ``fail`` (a waiting reason) and never become ready, unless
    ``fail_for`` says after how many seconds the kubelet's retry heals it (a registry blip, a
    crash before a dependency came up). A ``CrashLoopBackOff`` container reports ``restarts``
    in ``restartCount`` (default 3), and keeps that count once healed."""

    pull: float = 0.05
    ready: float = 0.15
    fail: str | None = None
    message: str | None = None
    fail_for: float | None = None
    restarts: int | None = None

    def __post_init__(self) -> None:
        if self.fail is not None and self.fail not in STUCK_MESSAGES:
            raise ValueError(f"unknown failure {self.fail!r} (known: {sorted(STUCK_MESSAGES)})")


@dataclass
class Timing:
    observe: float = 0.05  # until a controller observes a new generation
    terminate: float = 0.2  # a deleted pod's graceful termination
    namespace_cleanup: float = 0.1


@dataclass
class _PodState:
    started_at: float
    behavior: ImageBehavior
    phase: str = "created"  # created → pulled → ready | stuck (→ healed → ready)
    restarts: int = 0  # a crash loop's restartCount
    next_restart: float = 0.0  # when the kubelet's back-off restarts it again


@dataclass
class Controllers:
    store: Store
    timing: Timing = field(default_factory=Timing)
    default_behavior: ImageBehavior = field(default_factory=ImageBehavior)
    behaviors: list[tuple[str, ImageBehavior]] = field(default_factory=list)
    nodes: tuple[str, ...] = NODES
    terminating_replicas: bool = False  # report status.terminatingReplicas (KEP-3973)
    extra: list[Callable[[float], None]] = field(default_factory=list)
    # Other controllers (Tekton) plug in here: a reconciler per resource, called with the dirty
    # key (the object may be gone), and pod runners that claim pods the kubelet must not run.
    reconcilers: dict[str, Callable[[Key, float], None]] = field(default_factory=dict)
    pod_runners: list[Callable[[Obj, float], bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._dirty: set[Key] = set()
        self._timers: list[tuple[float, int, Key]] = []
        self._seq = 0
        self._pods: dict[str, _PodState] = {}
        self._progress: dict[str, tuple[float, tuple[int, ...]]] = {}
        self._seen_generation: dict[str, tuple[int, float]] = {}
        self._lock = threading.RLock()
        # One tick at a time (the ticker thread's and advance()'s): a tick no longer holds the
        # store's lock throughout. Taken before the store's lock; advance() must not be called
        # with the store's lock held.
        self._tick_lock = threading.Lock()
        self.store.on_change(self._on_change)

    # -- scheduling -------------------------------------------------------------------------------

    def behavior(self, image: str) -> ImageBehavior:
        for pattern, behavior in reversed(self.behaviors):
            if fnmatch.fnmatchcase(image, pattern):
                return behavior
        return self.default_behavior

    def set_behavior(self, pattern: str, behavior: ImageBehavior) -> None:
        with self._lock:
            self.behaviors.append((pattern, behavior))

    def _on_change(self, event: WatchEvent) -> None:
        meta = event.obj.get("metadata", {})
        key = (event.resource, event.namespace, meta.get("name", ""))
        with self._lock:
            if event.resource in self.reconcilers or event.resource in (
                "deployments",
                "replicasets",
                "statefulsets",
                "daemonsets",
                "pods",
                "namespaces",
            ):
                self._dirty.add(key)
            for owner in meta.get("ownerReferences") or []:
                resource = {
                    "ReplicaSet": "replicasets",
                    "Deployment": "deployments",
                    "StatefulSet": "statefulsets",
                    "DaemonSet": "daemonsets",
                    **{
                        self.store.resources[r].kind: r
                        for r in self.reconcilers
                        if r in self.store.resources
                    },
                }.get(owner.get("kind", ""))
                if resource:
                    self._dirty.add((resource, event.namespace, owner.get("name", "")))
                    if resource == "replicasets":
                        rs = self.store.find("replicasets", event.namespace, owner.get("name", ""))
                        for up in (rs or {}).get("metadata", {}).get("ownerReferences") or []:
                            self._dirty.add(("deployments", event.namespace, up.get("name", "")))

    def wake(self, key: Key, at: float) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._timers, (at, self._seq, key))

    def tick(self, now: float) -> None:
        with self._tick_lock:
            self._tick(now)

    def _tick(self, now: float) -> None:
        # The store's lock is taken for each object reconciled, not for the whole tick: a real
        # API server's watches deliver each write while the controllers work on the next one,
        # and one lock held through a tick of a thousand rollouts kept every watch of this
        # simulator waiting for hundreds of milliseconds. (Locks are always taken store first.)
        with self.store.lock, self._lock:
            while self._timers and self._timers[0][0] <= now:
                self._dirty.add(heapq.heappop(self._timers)[2])
            for hook in self.extra:
                hook(now)
        order = {
            "namespaces": 0,
            "pods": 1,
            "replicasets": 2,
            "deployments": 3,
            "statefulsets": 4,
            "daemonsets": 5,
        }
        for _ in range(4):  # a few passes so changes cascade (deploy → rs → pods) in one tick
            with self.store.lock, self._lock:
                if not self._dirty:
                    break
                batch, self._dirty = self._dirty, set()
            for key in sorted(batch, key=lambda k: (order.get(k[0], 9), k)):
                with self.store.lock, self._lock:
                    try:
                        self._reconcile(key, now)
                    except ApiError:
                        continue  # the object changed or vanished mid-way: the next event retries

    def _reconcile(self, key: Key, now: float) -> None:
        resource, namespace, name = key
        if resource in self.reconcilers:
            self.reconcilers[resource](key, now)
            return
        obj = self.store.find(resource, namespace, name)
        if resource == "namespaces":
            if obj is not None:
                self._namespace(obj, now)
            return
        if obj is None:
            if resource == "pods":
                self._pods.pop(f"{namespace}/{name}", None)
            return
        {
            "pods": self._kubelet,
            "replicasets": self._replicaset,
            "deployments": self._deployment,
            "statefulsets": self._statefulset,
            "daemonsets": self._daemonset,
        }[resource](obj, now)

    # -- helpers ----------------------------------------------------------------------------------

    def _owned(self, resource: str, owner: Obj) -> list[Obj]:
        meta = owner["metadata"]
        return self.store.owned(resource, meta["namespace"], meta["uid"])

    def _observed(self, obj: Obj, now: float) -> bool:
        """True once the controller has 'seen' the current generation (after a short delay)."""
        uid, gen = obj["metadata"]["uid"], obj["metadata"].get("generation", 1)
        seen = self._seen_generation.get(uid)
        if seen is None or seen[0] != gen:
            self._seen_generation[uid] = (gen, now)
            if self.timing.observe > 0:
                self.wake(_key(obj), now + self.timing.observe)
                return False
            return True
        if now - seen[1] < self.timing.observe:
            self.wake(_key(obj), seen[1] + self.timing.observe)
            return False
        return True

    def _set_status(self, resource: str, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        meta = obj["metadata"]
        self.store.mutate(
            resource,
            meta.get("namespace", ""),
            meta["name"],
            lambda o: o.__setitem__("status", status),
            actor="controller",
            status=True,
            detached=False,
        )

    def _create_pod(
        self, owner: Obj, template: Obj, name: str, labels: dict[str, str], node: str
    ) -> None:
        pod = pod_from_template(
            template,
            name=name,
            namespace=owner["metadata"]["namespace"],
            owner=owner,
            labels=labels,
            node=node,
        )
        self.store.create("pods", pod, actor="controller")

    def _delete_pod(self, pod: Obj, now: float) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return

        def mark(o: Obj) -> None:
            o["metadata"]["deletionTimestamp"] = self.store.clock.iso(now)
            o["metadata"]["deletionGracePeriodSeconds"] = 30

        self.store.mutate(
            "pods", meta["namespace"], meta["name"], mark, actor="controller", detached=False
        )

    # -- kubelet ----------------------------------------------------------------------------------

    def _kubelet(self, pod: Obj, now: float) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if meta.get("deletionTimestamp"):
            state = self._pods.setdefault(key, _PodState(now, self.default_behavior))
            if state.phase != "terminating":
                state.phase, state.started_at = "terminating", now
                self.wake(_key(pod), now + self.timing.terminate)
            elif now - state.started_at >= self.timing.terminate:
                self.store.delete("pods", meta["namespace"], meta["name"], actor="kubelet")
                self._pods.pop(key, None)
            return
        if any(claim(pod, now) for claim in self.pod_runners):
            return
        containers = pod["spec"].get("containers", [])
        images = [c.get("image", "") for c in containers]
        behaviors = [self.behavior(i) for i in images]
        failing = next((b for b in behaviors if b.fail), None)
        worst = failing or max(
            behaviors, key=lambda b: b.pull + b.ready, default=self.default_behavior
        )
        known = self._pods.get(key)
        if known is None:
            self._pods[key] = _PodState(now, worst)
            self.wake(_key(pod), now + worst.pull)
            return
        state = known
        elapsed = now - state.started_at
        healed = worst.fail is not None and worst.fail_for is not None
        lag = worst.fail_for if healed and worst.fail_for is not None else 0.0
        if state.phase == "created" and elapsed >= worst.pull:
            state.phase = "pulled"
            self._pod_status(pod, now, ready=False, stuck=worst.fail is not None)
            if worst.fail is None:
                self.wake(_key(pod), state.started_at + worst.pull + worst.ready)
            else:
                state.phase = "stuck"
                if healed:
                    self.wake(_key(pod), state.started_at + worst.pull + lag)
                elif worst.fail == "CrashLoopBackOff":
                    state.restarts = _initial_restarts(worst)
                    state.next_restart = now + _crash_backoff(state.restarts)
                    self.wake(_key(pod), state.next_restart)
        elif state.phase == "stuck" and not healed and worst.fail == "CrashLoopBackOff":
            if now >= state.next_restart:  # the kubelet's back-off: 10 s doubling to 5 min
                state.restarts += 1
                state.next_restart = now + _crash_backoff(state.restarts)
                self._pod_status(pod, now, ready=False, stuck=True, restarts=state.restarts)
            self.wake(_key(pod), state.next_restart)
        elif state.phase == "stuck" and healed and elapsed >= worst.pull + lag:
            state.phase = "healed"
            self._pod_status(pod, now, ready=False, stuck=False, healed=True)
            self.wake(_key(pod), state.started_at + worst.pull + lag + worst.ready)
        elif state.phase == "healed" and elapsed >= worst.pull + lag + worst.ready:
            state.phase = "ready"
            self._pod_status(pod, now, ready=True, stuck=False, healed=True)
        elif state.phase == "pulled" and elapsed >= worst.pull + worst.ready:
            state.phase = "ready"
            self._pod_status(pod, now, ready=True, stuck=False)

    def _pod_status(
        self,
        pod: Obj,
        now: float,
        *,
        ready: bool,
        stuck: bool,
        healed: bool = False,
        restarts: int | None = None,
    ) -> None:
        iso = self.store.clock.iso(now)
        statuses = []
        for container in pod["spec"].get("containers", []):
            image = container.get("image", "")
            behavior = self.behavior(image)
            failing = behavior.fail is not None and not healed
            status: Obj = {
                "name": container["name"],
                "image": image,
                "ready": ready and not failing,
                "restartCount": 0,
                "started": not failing,
                "state": {"running": {"startedAt": iso}},
            }
            if healed and behavior.fail == "CrashLoopBackOff":
                status["restartCount"] = 3 if behavior.restarts is None else behavior.restarts
                status["lastState"] = {
                    "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": iso}
                }
            if failing and behavior.fail is not None:
                message = behavior.message or STUCK_MESSAGES[behavior.fail].format(
                    image=image,
                    container=container["name"],
                    pod=pod["metadata"]["name"],
                    backoff="10s",
                )
                status["state"] = {"waiting": {"reason": behavior.fail, "message": message}}
                self._kubelet_events(pod, now, container["name"], image, behavior.fail)
                if behavior.fail == "CrashLoopBackOff":
                    count = _initial_restarts(behavior) if restarts is None else restarts
                    status["restartCount"] = count
                    if behavior.message is None:
                        status["state"]["waiting"]["message"] = STUCK_MESSAGES[
                            behavior.fail
                        ].format(
                            image=image,
                            container=container["name"],
                            pod=pod["metadata"]["name"],
                            backoff=f"{_crash_backoff(count):.0f}s",
                        )
                    status["imageID"] = image_id(image)
                    status["lastState"] = {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": iso,
                            "finishedAt": iso,
                        }
                    }
                else:
                    status["imageID"] = ""
            else:
                status["imageID"] = image_id(image)
                status["containerID"] = f"containerd://{uuid.uuid4().hex}"
            statuses.append(status)
        ready_all = ready and not stuck
        cond = "True" if ready_all else "False"
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": iso},
            {"type": "Initialized", "status": "True", "lastTransitionTime": iso},
            {"type": "Ready", "status": cond, "lastTransitionTime": iso},
            {"type": "ContainersReady", "status": cond, "lastTransitionTime": iso},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": iso},
        ]
        index = abs(hash(pod["metadata"]["name"])) % 200 + 10
        status_obj = {
            "phase": "Running" if not stuck else "Pending",
            "conditions": conditions,
            "hostIP": f"127.0.1.{index % 250}",
            "podIP": f"127.0.2.{index % 250}",
            "podIPs": [{"ip": f"127.0.2.{index % 250}"}],
            "startTime": iso,
            "qosClass": "Burstable",
            "containerStatuses": statuses,
        }
        self._set_status("pods", pod, status_obj)

    # -- ReplicaSets and Deployments --------------------------------------------------------------

    def _live_pods(self, owner: Obj) -> tuple[list[Obj], list[Obj]]:
        pods = self._owned("pods", owner)
        alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return alive, [p for p in pods if p["metadata"].get("deletionTimestamp")]

    def _replicaset(self, rs: Obj, now: float) -> None:
        wanted = rs["spec"].get("replicas", 1)
        alive, _ = self._live_pods(rs)
        if len(alive) < wanted:
            labels = dict(rs["spec"]["selector"].get("matchLabels", {}))
            for n in range(wanted - len(alive)):
                name = f"{rs['metadata']['name']}-{uuid.uuid4().hex[:5]}"
                self._create_pod(
                    rs,
                    rs["spec"]["template"],
                    name,
                    labels,
                    self.nodes[(len(alive) + n) % len(self.nodes)],
                )
        elif len(alive) > wanted:
            # Remove pods that are not ready first, then the newest.
            ranked = sorted(alive, key=lambda p: (_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in ranked[: len(alive) - wanted]:
                self._delete_pod(pod, now)
        alive, _ = self._live_pods(rs)
        ready = sum(1 for p in alive if _ready(p))
        self._set_status(
            "replicasets",
            rs,
            {
                "replicas": len(alive),
                "fullyLabeledReplicas": len(alive),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation", 1),
            },
        )

    def _deployment(self, d: Obj, now: float) -> None:
        if not self._observed(d, now):
            return
        spec = d["spec"]
        wanted = spec.get("replicas", 1)
        template = spec["template"]
        new_hash = template_hash(template)
        owned = self._owned("replicasets", d)
        new = next(
            (r for r in owned if r["metadata"]["labels"].get("pod-template-hash") == new_hash), None
        )
        revisions = [
            int(r["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
            for r in owned
        ]
        if new is None and not spec.get("paused"):
            revision = max(revisions, default=0) + 1
            new = self._new_replicaset(d, new_hash, revision)
            self._event(
                d,
                now,
                "ScalingReplicaSet",
                f"Scaled up replica set {new['metadata']['name']} from 0 to {min(wanted, 1)}",
            )
            owned = self._owned("replicasets", d)
            new = next(
                r for r in owned if r["metadata"]["labels"].get("pod-template-hash") == new_hash
            )
        olds = [r for r in owned if new is None or r["metadata"]["uid"] != new["metadata"]["uid"]]
        if new is not None and not spec.get("paused"):
            self._roll(d, new, olds, wanted)
        self._deployment_status(d, new, olds, wanted, now)

    def _new_replicaset(self, d: Obj, pod_hash: str, revision: int) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": d["metadata"]["namespace"],
                "labels": {**template["metadata"]["labels"]},
                "annotations": {
                    "deployment.kubernetes.io/revision": str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1)),
                },
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": 0,
                "selector": selector,
                "template": template,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
            },
        }
        created = self.store.create("replicasets", rs, actor="controller")

        def annotate(o: Obj) -> None:
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(
                revision
            )

        self.store.mutate(
            "deployments",
            d["metadata"]["namespace"],
            d["metadata"]["name"],
            annotate,
            actor="controller",
            detached=False,
        )
        return created

    def _scale(self, rs: Obj, replicas: int) -> None:
        if rs["spec"].get("replicas", 0) == replicas:
            return
        self.store.mutate(
            "replicasets",
            rs["metadata"]["namespace"],
            rs["metadata"]["name"],
            lambda o: o["spec"].__setitem__("replicas", replicas),
            actor="controller",
            detached=False,
        )

    def _roll(self, d: Obj, new: Obj, olds: list[Obj], wanted: int) -> None:
        strategy = d["spec"].get("strategy", {})
        if strategy.get("type") == "Recreate":
            for old in olds:
                self._scale(old, 0)
            if all(not self._live_pods(o)[0] for o in olds):
                self._scale(new, wanted)
            return
        rolling = strategy.get("rollingUpdate", {})
        surge = _resolve(rolling.get("maxSurge", "25%"), wanted, up=True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), wanted, up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        total = sum(r["spec"].get("replicas", 0) for r in [new, *olds])
        new_replicas = new["spec"].get("replicas", 0)
        if new_replicas < wanted:
            room = max(0, wanted + surge - total)
            self._scale(new, min(wanted, new_replicas + room))
        elif new_replicas > wanted:
            self._scale(new, wanted)
        # Scale old ReplicaSets down as far as availability allows; unready old pods go first.
        available = sum(sum(1 for p in self._live_pods(r)[0] if _ready(p)) for r in [new, *olds])
        budget = available - (wanted - unavailable)
        for old in sorted(olds, key=lambda r: r["metadata"]["creationTimestamp"]):
            current = old["spec"].get("replicas", 0)
            if current == 0:
                continue
            alive = self._live_pods(old)[0]
            unready = sum(1 for p in alive if not _ready(p))
            remove = min(current, unready + max(0, budget))
            budget -= max(0, remove - unready)
            if remove > 0:
                self._scale(old, current - remove)

    def _deployment_status(
        self, d: Obj, new: Obj | None, olds: list[Obj], wanted: int, now: float
    ) -> None:
        everything = [r for r in [new, *olds] if r is not None]
        alive = {r["metadata"]["uid"]: self._live_pods(r) for r in everything}
        replicas = sum(len(a) for a, _ in alive.values())
        terminating = sum(len(t) for _, t in alive.values())
        updated = len(alive[new["metadata"]["uid"]][0]) if new is not None else 0
        ready = sum(sum(1 for p in a if _ready(p)) for a, _ in alive.values())
        available = ready
        gen = d["metadata"].get("generation", 1)
        uid = d["metadata"]["uid"]
        counters = (gen, replicas, updated, ready, available, terminating)
        last = self._progress.get(uid)
        if last is None or last[1] != counters:
            self._progress[uid] = (now, counters)
            last = self._progress[uid]
        deadline = d["spec"].get("progressDeadlineSeconds", 600)
        complete = updated == wanted and replicas == wanted and available == wanted
        rs_name = new["metadata"]["name"] if new is not None else d["metadata"]["name"]
        iso, since = self.store.clock.iso(now), self.store.clock.iso(last[0])
        previous = {c["type"]: c for c in (d.get("status") or {}).get("conditions", [])}
        if d["spec"].get("paused"):
            progressing = {
                "type": "Progressing",
                "status": "Unknown",
                "reason": "DeploymentPaused",
                "message": "Deployment is paused",
            }
        elif complete:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
            }
        elif now - last[0] > deadline or (
            previous.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"
            and now > last[0]
        ):
            progressing = {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{rs_name}" has timed out progressing.',
            }
        else:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{rs_name}" is progressing.',
            }
            self.wake(_key(d), last[0] + deadline + 0.001)
        floor = wanted - _resolve(
            d["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable", "25%"),
            wanted,
            up=False,
        )
        available_cond = {
            "type": "Available",
            "status": "True" if available >= floor else "False",
            "reason": "MinimumReplicasAvailable"
            if available >= floor
            else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available >= floor
            else "Deployment does not have minimum availability.",
        }
        conditions = []
        for cond in (available_cond, progressing):
            old = previous.get(cond["type"])
            same = (
                old is not None
                and old.get("status") == cond["status"]
                and old.get("reason") == cond["reason"]
            )
            cond["lastTransitionTime"] = old["lastTransitionTime"] if same and old else iso
            cond["lastUpdateTime"] = since
            conditions.append(cond)
        status: Obj = {
            "observedGeneration": gen,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, wanted - available),
            "conditions": conditions,
        }
        if self.terminating_replicas:
            status["terminatingReplicas"] = terminating
        for key in (
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "replicas",
            "unavailableReplicas",
        ):
            if status[key] == 0:
                del status[key]  # omitempty, as the real API does
        self._set_status("deployments", d, status)

    # -- StatefulSets and DaemonSets --------------------------------------------------------------

    def _statefulset(self, s: Obj, now: float) -> None:
        if not self._observed(s, now):
            return
        name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
        wanted = s["spec"].get("replicas", 1)
        revision = f"{name}-{template_hash(s['spec']['template'])}"
        alive, _ = self._live_pods(s)
        by_ordinal = {int(p["metadata"]["name"].rsplit("-", 1)[1]): p for p in alive}
        all_pods = {int(p["metadata"]["name"].rsplit("-", 1)[1]) for p in self._owned("pods", s)}
        for ordinal in range(wanted):  # OrderedReady: create in order, each after the last is ready
            if ordinal in by_ordinal:
                if not _ready(by_ordinal[ordinal]):
                    break
                continue
            if ordinal in all_pods:
                break  # the old one is still terminating
            labels = {
                **s["spec"]["selector"].get("matchLabels", {}),
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}",
            }
            self._create_pod(
                s,
                s["spec"]["template"],
                f"{name}-{ordinal}",
                labels,
                self.nodes[ordinal % len(self.nodes)],
            )
            break
        partition = (s["spec"].get("updateStrategy", {}).get("rollingUpdate") or {}).get(
            "partition", 0
        )
        if len(by_ordinal) == wanted and all(_ready(p) for p in by_ordinal.values()):
            for ordinal in sorted(by_ordinal, reverse=True):  # update from the highest ordinal
                if ordinal < partition:
                    break
                pod = by_ordinal[ordinal]
                if pod["metadata"]["labels"].get("controller-revision-hash") != revision:
                    self._delete_pod(pod, now)
                    break
        alive, _ = self._live_pods(s)
        updated = sum(
            1 for p in alive if p["metadata"]["labels"].get("controller-revision-hash") == revision
        )
        ready = sum(1 for p in alive if _ready(p))
        previous = s.get("status") or {}
        current_revision = previous.get("currentRevision") or revision
        if updated == wanted and ready == wanted:
            current_revision = revision
        current = sum(
            1
            for p in alive
            if p["metadata"]["labels"].get("controller-revision-hash") == current_revision
        )
        self._set_status(
            "statefulsets",
            s,
            {
                "observedGeneration": s["metadata"].get("generation", 1),
                "replicas": len(alive),
                "readyReplicas": ready,
                "currentReplicas": current,
                "updatedReplicas": updated,
                "availableReplicas": ready,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        )
        del ns

    def _daemonset(self, ds: Obj, now: float) -> None:
        if not self._observed(ds, now):
            return
        name = ds["metadata"]["name"]
        revision = template_hash(ds["spec"]["template"])
        alive, terminating = self._live_pods(ds)
        on_node = {p["spec"].get("nodeName"): p for p in alive}
        busy_nodes = {p["spec"].get("nodeName") for p in terminating}
        for node in self.nodes:
            if node not in on_node and node not in busy_nodes:
                labels = {
                    **ds["spec"]["selector"].get("matchLabels", {}),
                    "controller-revision-hash": revision,
                }
                self._create_pod(
                    ds, ds["spec"]["template"], f"{name}-{uuid.uuid4().hex[:5]}", labels, node
                )
        alive, terminating = self._live_pods(ds)
        unavailable = sum(1 for p in alive if not _ready(p)) + len(terminating)
        if unavailable < 1:  # maxUnavailable 1: replace one old pod at a time
            for pod in alive:
                if pod["metadata"]["labels"].get("controller-revision-hash") != revision:
                    self._delete_pod(pod, now)
                    break
        alive, _ = self._live_pods(ds)
        ready = sum(1 for p in alive if _ready(p))
        updated = sum(
            1 for p in alive if p["metadata"]["labels"].get("controller-revision-hash") == revision
        )
        desired = len(self.nodes)
        self._set_status(
            "daemonsets",
            ds,
            {
                "observedGeneration": ds["metadata"].get("generation", 1),
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": len(alive),
                "numberMisscheduled": 0,
                "numberReady": ready,
                "updatedNumberScheduled": updated,
                "numberAvailable": ready,
                "numberUnavailable": max(0, desired - ready),
            },
        )

    # -- namespaces and events --------------------------------------------------------------------

    def _namespace(self, ns: Obj, now: float) -> None:
        if ns.get("status", {}).get("phase") != "Terminating":
            return
        name = ns["metadata"]["name"]
        leftovers = [
            (r, o)
            for r in self.store.resources
            if r != "namespaces"
            for o in self.store.live(r, name)
        ]
        for resource, obj in leftovers:
            if resource == "pods" and not obj["metadata"].get("deletionTimestamp"):
                self._delete_pod(obj, now)
            elif resource != "pods":
                self.store.delete(
                    resource, name, obj["metadata"]["name"], actor="namespace-controller"
                )
        if not leftovers:
            self.store.delete("namespaces", "", name, actor="namespace-controller")
        else:
            self.wake(("namespaces", "", name), now + self.timing.namespace_cleanup)

    def _kubelet_events(
        self, pod: Obj, now: float, container: str, image: str, reason: str
    ) -> None:
        """The events the kubelet records for a container that cannot start: for a crash loop
        ``Warning BackOff`` "Back-off restarting failed container C in pod P" (kubernetes/
        kubernetes pkg/kubelet/kuberuntime/kuberuntime_manager.go doBackOff, events.
        BackOffStartContainer; the pod as format.Pod: name_namespace(uid)); for an image it
        cannot pull ``Normal BackOff`` "Back-off pulling image" and ``Warning Failed``
        "Error: <reason>" (pkg/kubelet/images/image_manager.go)."""
        meta = pod["metadata"]
        if reason == "CrashLoopBackOff":
            who = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
            text = f"Back-off restarting failed container {container} in pod {who}"
            self._event(pod, now, "BackOff", text, "Warning", component="kubelet")
            return
        if reason == "ImagePullBackOff":
            text = f'Back-off pulling image "{image}"'
            self._event(pod, now, "BackOff", text, component="kubelet")
        self._event(pod, now, "Failed", f"Error: {reason}", "Warning", component="kubelet")

    def _event(
        self,
        obj: Obj,
        now: float,
        reason: str,
        message: str,
        kind: str = "Normal",
        *,
        component: str = "deployment-controller",
    ) -> None:
        meta = obj["metadata"]
        iso = self.store.clock.iso(now)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": iso,
            "lastTimestamp": iso,
            "source": {"component": component},
            "reportingComponent": component,
        }
        self.store.create("events", event, actor="controller")


def _key(obj: Obj) -> Key:
    resource = {
        "Pod": "pods",
        "ReplicaSet": "replicasets",
        "Deployment": "deployments",
        "StatefulSet": "statefulsets",
        "DaemonSet": "daemonsets",
        "Namespace": "namespaces",
    }[obj["kind"]]
    meta = obj["metadata"]
    return (resource, meta.get("namespace", ""), meta["name"])


def _ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _resolve(value: Any, total: int, *, up: bool) -> int:
    """maxSurge/maxUnavailable: an int, or a percentage of ``total`` (surge rounds up)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        amount = total * float(text[:-1]) / 100
        return math.ceil(amount) if up else math.floor(amount)
    return int(text)
