"""Pure rollout rules: does an image reference a commit, has a workload rolled out, is a pod stuck.

No I/O: every function takes plain Kubernetes JSON (dicts) so the rules are testable with data.
The rollout verdicts follow kubectl's ``rollout status`` (kubernetes/kubectl
pkg/polymorphichelpers/rollout_status.go@v0.33.9; tests/rollout/test_kubectl_table.py replays
kubectl's own test table), with additions kubectl lacks: a generation guard (the generation at
which the image first matched must have been observed), a paused rollout that is not complete
fails instead of waiting forever, and pods of the new image in a state that will not heal fail the
wait early (see :class:`RolloutPolicy`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_homelab.core.manifest import Service
from pytest_homelab.core.outcomes import (
    CheckFailed,
    DeadlineExceeded,
    HomelabError,
    NotFound,
    Superseded,
)
from pytest_homelab.core.refs import parse_target, sha_token_matches

# Where a digest-pinned image records the commit it was built from: on the pod template (or the
# workload) as an annotation or label. The OCI key is what `docker buildx --label`/`--annotation`
# and most CI templates already write.
COMMIT_KEYS = ("homelab.dev/commit", "org.opencontainers.image.revision")

# The fields of a workload and a pod that the rules below read, and nothing else: the tracker
# keeps only these of thousands of objects (tracker.slim, rollout/events.py). A rule that reads
# another field must name it here (tests/rollout/test_tracker_view.py holds slimmed and full
# objects to the same verdicts).
WORKLOAD_SPEC_READ = ("replicas", "selector", "paused", "updateStrategy")  # and the template
WORKLOAD_STATUS_READ = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "terminatingReplicas",
    "numberReady",
    "numberAvailable",
    "updatedNumberScheduled",
    "desiredNumberScheduled",
    "currentReplicas",
    "currentRevision",
    "updateRevision",
    "conditions",
)
WORKLOAD_CONDITION_READ = ("type", "status", "reason", "message")
POD_CONDITION_TYPES_READ = frozenset({"Ready"})  # of a pod's conditions, their type and status

# Container waiting reasons the kubelet sets (kubernetes pkg/kubelet/images/types.go,
# pkg/kubelet/kuberuntime/kuberuntime_container.go, pkg/kubelet/container/sync_result.go).
# Retrying does not heal these: the image name does not parse, the pull policy forbids the pull
# the pod needs, the container's configuration (a missing Secret or ConfigMap key) is wrong.
# They fail the wait at once.
PERMANENT_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)
# The kubelet retries these with a back-off (10 s doubling to 5 min): a registry blip or one crash
# heals by itself. They fail the wait only when they persist (RolloutPolicy).
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
CRASH_REASONS = frozenset({"CrashLoopBackOff"})
STUCK_REASONS = PERMANENT_REASONS | IMAGE_PULL_REASONS | CRASH_REASONS
KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_HEX = re.compile(r"[0-9a-f]{7,40}")
_TOKENS = re.compile(r"[-_.]")


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None = None
    digest: str | None = None


def parse_image(image: str) -> ImageRef:
    """``registry:5000/team/web:tag@sha256:…`` → repository, tag, digest."""
    name, _, digest = image.strip().partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return ImageRef(name[:colon], name[colon + 1 :] or None, digest or None)
    return ImageRef(name, None, digest or None)


def normalize_repository(repository: str) -> str:
    """Docker Hub's implicit prefixes, so ``nginx`` equals ``docker.io/library/nginx``."""
    repo = repository.lower()
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix) :]
            break
    return repo.removeprefix("library/")


def tag_sha_tokens(tag: str | None) -> list[str]:
    """The tag's tokens (split on ``-_.``) that look like commit shas."""
    return [t for t in _TOKENS.split((tag or "").lower()) if _HEX.fullmatch(t)]


def image_references(image: str, sha: str, recorded: Mapping[str, str] | None = None) -> bool:
    """The image was built from ``sha``: a tag token names it, or the image is pinned by digest
    and ``recorded`` (the template's annotations and labels) names it under a COMMIT_KEY."""
    if _tag_references(image, sha):
        return True
    if recorded and parse_image(image).digest:
        return any(sha_token_matches(recorded.get(key, ""), sha) for key in COMMIT_KEYS)
    return False


@functools.lru_cache(maxsize=4096)
def _tag_references(image: str, sha: str) -> bool:
    """A token of the image's tag names ``sha``. Remembered: each look at a target checks its
    template's and its pods' images again, the same few strings, for every one of thousands of
    targets."""
    tag = parse_image(image).tag or ""
    return any(sha_token_matches(token, sha) for token in _TOKENS.split(tag))


def _get(obj: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    current: Any = obj
    for key in path:
        # JSON objects are dicts: the exact type check spares the ABC's isinstance, which
        # the rules' hundreds of thousands of lookups at a thousand targets felt.
        if type(current) is not dict and not isinstance(current, Mapping):
            return default
        current = current.get(key)
    return default if current is None else current


def _int(obj: Mapping[str, Any] | None, *path: str, default: int = 0) -> int:
    value = _get(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


POD_VIEW_GRACE = 5.0  # seconds the pod view may trail a finished rollout before we stop waiting


def _ready_count(workload: Mapping[str, Any], kind: str) -> int:
    """How many ready pods the workload's own status reports."""
    if kind == "DaemonSet":
        return _int(workload, "status", "numberAvailable")
    if kind == "StatefulSet":
        return _int(workload, "status", "readyReplicas")
    return _int(workload, "status", "availableReplicas")


@dataclass(frozen=True)
class TemplateImages:
    """What the workload's pod template runs, for one service."""

    images: tuple[str, ...]  # the selected containers' images, in order
    containers: tuple[str, ...]
    matches: bool  # every selected container references the sha
    all_containers: tuple[tuple[str, str], ...]  # (name, image) of every container, for messages

    @property
    def found(self) -> bool:
        return bool(self.images)


def template_images(
    workload: Mapping[str, Any],
    sha: str,
    *,
    container: str | None = None,
    repository: str | None = None,
) -> TemplateImages:
    """Select the containers to judge (by name, else by image repository, else any) and match."""
    template = _get(workload, "spec", "template", default={})
    recorded: dict[str, str] = {}
    for source in (_get(workload, "metadata"), _get(template, "metadata")):
        for field in ("labels", "annotations"):
            values = _get(source, field, default={})
            if isinstance(values, Mapping):
                recorded.update({str(k): str(v) for k, v in values.items()})
    everything = tuple(
        (str(c.get("name", "")), str(c.get("image", "")))
        for c in _get(template, "spec", "containers", default=[])
        if isinstance(c, Mapping)
    )
    if container is not None:
        chosen = [(n, i) for n, i in everything if n == container]
    elif repository is not None:
        wanted = normalize_repository(repository)
        chosen = [
            (n, i)
            for n, i in everything
            if normalize_repository(parse_image(i).repository) == wanted
        ]
    else:  # an explicit NS/NAME target: any container built from the commit will do
        hits = [(n, i) for n, i in everything if image_references(i, sha, recorded)]
        chosen = hits or list(everything)
        return TemplateImages(
            tuple(i for _, i in chosen), tuple(n for n, _ in chosen), bool(hits), everything
        )
    matches = bool(chosen) and all(image_references(i, sha, recorded) for _, i in chosen)
    return TemplateImages(
        tuple(i for _, i in chosen), tuple(n for n, _ in chosen), matches, everything
    )


MAX_CRASH_RESTARTS = 5


@dataclass(frozen=True)
class RolloutPolicy:
    """Where the wait is stricter or quicker than kubectl, and by how much.

    kubectl keeps waiting while a pod of the new image backs off; we fail early, but only once
    the trouble has persisted: a ``CrashLoopBackOff`` container whose ``restartCount`` (as the
    pod reports it, restarts before the wait began included) reached ``crash_restarts``, an image
    pull (``ErrImagePull``/``ImagePullBackOff``) still failing ``image_pull_grace`` seconds after
    the wait first saw it. With the kubelet's back-off (10 s, 20 s, 40 s …) a crash loop reaches
    3 restarts about a minute after the first crash. ``strict_terminating`` also waits for
    ``status.terminatingReplicas`` (which kubectl never reads) to reach 0.
    """

    crash_restarts: int = 3
    image_pull_grace: float = 30.0
    strict_terminating: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.crash_restarts <= MAX_CRASH_RESTARTS:
            raise ValueError(f"crash_restarts must be 1..{MAX_CRASH_RESTARTS}")
        if not 0 <= self.image_pull_grace <= 600:
            raise ValueError("image_pull_grace must be 0..600 seconds")


@dataclass(frozen=True)
class RolloutState:
    done: bool
    message: str
    failed: str | None = None  # a reason when the rollout cannot finish


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in _get(obj, "status", "conditions", default=[]):
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def rollout_state(
    workload: Mapping[str, Any],
    kind: str,
    min_generation: int = 0,
    *,
    strict_terminating: bool = False,
) -> RolloutState:
    """kubectl's verdict for ``kind``; status older than ``min_generation`` never counts.

    A paused workload whose rollout is complete is done, as kubectl says; one that is not
    complete fails (kubectl would wait forever: a paused rollout does not progress)."""
    name = _get(workload, "metadata", "name", default="?")
    state = _unpaused_state(workload, kind, name, min_generation, strict_terminating)
    paused = kind == "Deployment" and _get(workload, "spec", "paused") is True
    if paused and not state.done and state.failed is None:
        return RolloutState(
            False,
            f"{kind.lower()} {name!r} is paused ({state.message})",
            failed=f"paused before its rollout finished ({state.message}); resume it "
            f"(kubectl rollout resume {kind.lower()}/{name})",
        )
    return state


def _unpaused_state(
    workload: Mapping[str, Any], kind: str, name: str, min_generation: int, strict: bool
) -> RolloutState:
    # Messages are kubectl's own (rollout_status.go@v0.33.9), without the trailing newline.
    generation = _int(workload, "metadata", "generation")
    observed = _int(workload, "status", "observedGeneration")
    if kind in ("StatefulSet", "DaemonSet"):
        refused = _strategy_refused(workload, kind, name)
        if refused is not None:  # kubectl checks the strategy first for these two
            return refused
    what = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemon set"}
    if kind not in what:
        raise ValueError(f"unknown workload kind {kind!r}")
    unobserved = observed < generation or (kind == "StatefulSet" and observed == 0)
    if unobserved:
        return RolloutState(False, f"Waiting for {what[kind]} spec update to be observed...")
    if observed < min_generation:  # ours: the generation that first ran our image
        return RolloutState(
            False,
            f"Waiting for {what[kind]} spec update to be observed... (our image is at "
            f"generation {min_generation}, observed {observed})",
        )
    if kind == "Deployment":
        return _deployment(workload, name, strict)
    if kind == "StatefulSet":
        return _statefulset(workload, name)
    return _daemonset(workload, name)


def _strategy_refused(workload: Mapping[str, Any], kind: str, name: str) -> RolloutState | None:
    strategy = _get(workload, "spec", "updateStrategy", "type", default="RollingUpdate")
    if strategy == "RollingUpdate":
        return None
    what = "statefulset" if kind == "StatefulSet" else "daemon set"
    return RolloutState(
        False,
        f"{what} {name!r} uses {strategy}",
        failed="rollout status is only available for RollingUpdate strategy type",
    )


def _deployment(d: Mapping[str, Any], name: str, strict_terminating: bool) -> RolloutState:
    progressing = _condition(d, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutState(
            False,
            f'deployment "{name}" exceeded its progress deadline',
            failed=f"ProgressDeadlineExceeded: {progressing.get('message', '')}",
        )
    wanted = _int(d, "spec", "replicas", default=1)
    updated = _int(d, "status", "updatedReplicas")
    replicas = _int(d, "status", "replicas")
    available = _int(d, "status", "availableReplicas")
    terminating = _int(d, "status", "terminatingReplicas")
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < wanted:
        return RolloutState(
            False, f"{waiting}{updated} out of {wanted} new replicas have been updated..."
        )
    if replicas > updated:
        return RolloutState(
            False, f"{waiting}{replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return RolloutState(
            False, f"{waiting}{available} of {updated} updated replicas are available..."
        )
    if terminating > 0 and strict_terminating:
        # kubectl#1628: the counters ignore terminating pods and kubectl never reads this field
        # (absent unless the DeploymentReplicaSetTerminatingReplicas gate is on); strict only.
        return RolloutState(False, f"{waiting}{terminating} old replicas are still terminating")
    return RolloutState(True, f'deployment "{name}" successfully rolled out')


def _statefulset(s: Mapping[str, Any], name: str) -> RolloutState:
    wanted = _int(s, "spec", "replicas", default=1)
    ready = _int(s, "status", "readyReplicas")
    updated = _int(s, "status", "updatedReplicas")
    if ready < wanted:
        return RolloutState(False, f"Waiting for {wanted - ready} pods to be ready...")
    rolling = _get(s, "spec", "updateStrategy", "rollingUpdate")
    if isinstance(rolling, Mapping):  # kubectl: a rollingUpdate block decides, partition or not
        partition = _get(rolling, "partition")
        if (
            isinstance(partition, int)
            and not isinstance(partition, bool)
            and updated < wanted - partition
        ):
            return RolloutState(
                False,
                f"Waiting for partitioned roll out to finish: {updated} "
                f"out of {wanted - partition} new pods have been updated...",
            )
        return RolloutState(
            True, f"partitioned roll out complete: {updated} new pods have been updated..."
        )
    update, current = _get(s, "status", "updateRevision"), _get(s, "status", "currentRevision")
    if update != current:
        return RolloutState(
            False,
            f"waiting for statefulset rolling update to complete {updated} pods at "
            f"revision {update}...",
        )
    return RolloutState(
        True,
        f"statefulset rolling update complete {_int(s, 'status', 'currentReplicas')} pods at "
        f"revision {current}...",
    )


def _daemonset(d: Mapping[str, Any], name: str) -> RolloutState:
    desired = _int(d, "status", "desiredNumberScheduled")
    updated = _int(d, "status", "updatedNumberScheduled")
    available = _int(d, "status", "numberAvailable")
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return RolloutState(
            False, f"{waiting}{updated} out of {desired} new pods have been updated..."
        )
    if available < desired:
        return RolloutState(
            False, f"{waiting}{available} of {desired} updated pods are available..."
        )
    return RolloutState(True, f'daemon set "{name}" successfully rolled out')


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's labels."""
    if not selector:
        return False  # an empty selector would select everything: never trust it here
    for key, value in (_get(selector, "matchLabels", default={}) or {}).items():
        if labels.get(key) != value:
            return False
    for expr in _get(selector, "matchExpressions", default=[]) or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def workload_pods(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Any]:
    selector = _get(workload, "spec", "selector")
    return [
        p
        for p in pods
        if selector_matches(selector, _get(p, "metadata", "labels", default={}) or {})
    ]


def pod_images(pod: Mapping[str, Any]) -> list[str]:
    return [str(c.get("image", "")) for c in _get(pod, "spec", "containers", default=[])]


@dataclass(frozen=True)
class ContainerTrouble:
    """A container of a pod waiting in one of STUCK_REASONS, as the pod reports it."""

    container: str
    reason: str
    message: str
    restarts: int = 0  # status.restartCount (restarts before the wait began count too)
    last_exit: str = ""  # lastState.terminated, in words: "Error, exit code 1"

    @property
    def detail(self) -> str:
        return f"container {self.container}: {self.message}".strip()


def container_troubles(pod: Mapping[str, Any]) -> list[ContainerTrouble]:
    """Every container of the pod (init containers first) waiting in one of STUCK_REASONS."""
    troubles = []
    for status in [
        *_get(pod, "status", "initContainerStatuses", default=[]),
        *_get(pod, "status", "containerStatuses", default=[]),
    ]:
        waiting = _get(status, "state", "waiting")
        reason = _get(waiting, "reason")
        if reason not in STUCK_REASONS:
            continue
        last = _get(status, "lastState", "terminated")
        last_exit = ""
        if isinstance(last, Mapping):
            last_exit = ", ".join(
                part
                for part in (
                    str(last.get("reason") or ""),
                    f"exit code {last['exitCode']}" if "exitCode" in last else "",
                )
                if part
            )
        troubles.append(
            ContainerTrouble(
                str(_get(status, "name", default="?")),
                str(reason),
                str(_get(waiting, "message", default="")),
                _int(status, "restartCount"),
                last_exit,
            )
        )
    return troubles


def pod_stuck(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, detail) of the pod's first container waiting in one of STUCK_REASONS, whether or
    not it has persisted long enough to fail a wait (that is :class:`ServiceWait`'s call)."""
    troubles = container_troubles(pod)
    return (troubles[0].reason, troubles[0].detail) if troubles else None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if _get(pod, "metadata", "deletionTimestamp"):
        return False
    cond = _condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_image_ids(pod: Mapping[str, Any]) -> list[str]:
    return [
        str(s.get("imageID", ""))
        for s in _get(pod, "status", "containerStatuses", default=[])
        if s.get("imageID")
    ]


# -- one service through both phases -------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A workload to verify and the commit its image must come from."""

    name: str  # the check id: the service name, or NS/NAME for explicit targets
    namespace: str
    object_name: str
    sha: str
    kind: str = "Deployment"
    container: str | None = None
    repository: str | None = None  # None: an explicit target, any container may match

    @property
    def ref(self) -> str:
        prefix = "" if self.kind == "Deployment" else f"{self.kind.lower()}/"
        return f"{self.namespace}/{prefix}{self.object_name}"


UNOBSERVED = "unobserved"  # time_to_ready of a rollout that had finished before the first look


@dataclass(frozen=True)
class RolloutResult:
    """What the wait saw for one target; ``outcome`` is None when it landed."""

    target: Target
    outcome: HomelabError | None
    images: tuple[str, ...] = ()
    generation: int | None = None
    replicas: int = 0
    ready_replicas: int = 0
    image_ids: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    waited: float = 0.0
    time_to_ready: float | None = None
    terminating: int = 0  # status.terminatingReplicas when it landed (kubectl ignores them)
    stuck_pod: str | None = None  # the pod whose container will not start by itself
    events: tuple[str, ...] = ()  # that pod's recent events, as kubectl describe pod shows them

    @property
    def landed(self) -> bool:
        return self.outcome is None

    def properties(self) -> list[tuple[str, str]]:
        t = self.target
        props = [
            ("namespace", t.namespace),
            ("kind", t.kind),
            ("deployment", t.object_name),
            ("expected_sha", t.sha),
        ]
        if self.images:
            props.append(("image", ", ".join(self.images)))
        if self.generation is not None:
            props.append(("generation", str(self.generation)))
        props.append(("replicas", f"{self.ready_replicas}/{self.replicas} ready"))
        if self.image_ids:
            props.append(("image_ids", ", ".join(self.image_ids)))
        if self.pods:
            props.append(("pods", ", ".join(self.pods)))
        if self.terminating:
            props.append(("terminating_replicas", str(self.terminating)))
        if self.time_to_ready is not None:
            props.append(("time_to_ready", f"{self.time_to_ready:.1f}s"))
        elif self.landed:  # rolled out before the first look: how long it took is unknown
            props.append(("time_to_ready", UNOBSERVED))
        props.append(("waited", f"{self.waited:.1f}s"))
        if self.stuck_pod and self.events:
            props.append((f"events:{self.stuck_pod}", "\n".join(self.events)))
        return props

    def check(self) -> None:
        __tracebackhide__ = True
        if self.outcome is not None:
            raise self.outcome


class ServiceWait:
    """Follow one target through image match, then rollout. Pure: feed it snapshots.

    ``observe`` returns a result when the target is decided and None while it is still waiting;
    ``message`` is the current state in words (for progress lines and the deadline message).
    """

    def __init__(self, target: Target, started: float, policy: RolloutPolicy | None = None) -> None:
        self.target = target
        self.started = started
        self.policy = policy or RolloutPolicy()
        # (pod, container) → when the wait first saw its image pull failing
        self._pull_failing: dict[tuple[str, str], float] = {}
        self.wake_at: float | None = None  # a verdict due at this time even if nothing changes
        self.stuck_pod: str | None = None  # the pod _pod_troubles found stuck for good
        self.message = "waiting for the first look"
        self.generation: int | None = None  # generation at which the image first matched
        self.matched_at: float | None = None
        self._first_images: tuple[str, ...] | None = None
        self._matched_once = False  # our image was in the template at some point
        self._images: tuple[str, ...] = ()
        self._seen = False
        self._looks = 0
        self._replicas = (0, 0)
        self.done_at: float | None = None
        self._template_seen: tuple[tuple[Any, ...], TemplateImages] | None = None

    def _template(self, workload: Mapping[str, Any]) -> TemplateImages:
        # What template_images reads, compared by value with the last look's: most events of
        # a rolling workload change only its status, and judging the images again (labels to
        # text, image references parsed) was a third of the looks' CPU at 1000 services.
        key = (
            _get(workload, "metadata", "labels"),
            _get(workload, "metadata", "annotations"),
            _get(workload, "spec", "template", "metadata"),
            _get(workload, "spec", "template", "spec", "containers"),
        )
        if self._template_seen is not None and self._template_seen[0] == key:
            return self._template_seen[1]
        t = self.target
        images = template_images(workload, t.sha, container=t.container, repository=t.repository)
        self._template_seen = (key, images)
        return images

    def note(self, workload: Mapping[str, Any]) -> None:
        """Remember the template's images before the first full look (pods not listed yet), so
        an image of ours replaced in that window still counts as superseded."""
        current = self._template(workload)
        if self._first_images is None:
            self._first_images = current.images
        self._matched_once = self._matched_once or current.matches

    def observe(
        self, workload: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]], now: float
    ) -> RolloutResult | None:
        t = self.target
        if workload is None:
            what = "was deleted while waiting" if self._seen else "does not exist"
            return self._result(
                now,
                NotFound(
                    f"{t.kind} {t.ref} {what}",
                    hint="check the name and namespace in deploy.json (or the NS/NAME argument) "
                    "and the kube context",
                ),
            )
        self._seen = True
        self._looks += 1
        current = self._template(workload)
        self._images = current.images
        self._replicas = (
            _int(workload, "status", "replicas"),
            _int(
                workload, "status", "readyReplicas", default=_int(workload, "status", "numberReady")
            ),
        )
        if self._first_images is None:
            self._first_images = current.images
        if not current.matches:
            if (
                self.generation is not None
                or self._matched_once
                or current.images != self._first_images
            ):
                return self._superseded(now, current)
            self.message = self._not_matching(current)
            return None
        if self.generation is None:
            self.generation = _int(workload, "metadata", "generation")
            # Matched at the very first look: the rollout may have finished long ago, so how
            # long it took is unknown.
            self.matched_at = now if self._looks > 1 else None
        state = rollout_state(
            workload, t.kind, self.generation, strict_terminating=self.policy.strict_terminating
        )
        self.message = state.message
        if state.failed is not None:
            return self._result(
                now,
                CheckFailed(
                    f"expected {t.ref} to roll out {self._shown()}, but {state.failed}",
                    hint=f"kubectl -n {t.namespace} describe {t.kind.lower()} {t.object_name}",
                ),
            )
        mine = [
            p
            for p in workload_pods(workload, pods)
            if any(i in current.images or _tag_references(i, t.sha) for i in pod_images(p))
        ]
        failed = self._pod_troubles(mine, now)
        if failed is not None:
            return replace(self._result(now, failed), stuck_pod=self.stuck_pod)
        if not state.done:
            self.done_at = None
            return None
        ready = [p for p in mine if pod_ready(p)]
        expected = _ready_count(workload, t.kind)
        if len(ready) < expected:
            # The pods watch can trail the workload's status by an event or two; wait briefly
            # so the provenance names every ready pod, but never let it block the verdict.
            self.done_at = now if self.done_at is None else self.done_at
            if now - self.done_at < POD_VIEW_GRACE:
                return None
        return RolloutResult(
            t,
            None,
            current.images,
            self.generation,
            replicas=self._replicas[0],
            ready_replicas=max(len(ready), expected),
            image_ids=tuple(sorted({i for p in ready for i in pod_image_ids(p)})),
            pods=tuple(sorted(str(_get(p, "metadata", "name")) for p in ready)),
            waited=now - self.started,
            time_to_ready=None if self.matched_at is None else now - self.matched_at,
            terminating=_int(workload, "status", "terminatingReplicas"),
        )

    def _pod_troubles(self, pods: list[Any], now: float) -> CheckFailed | None:
        """A failure when a pod of the new image is stuck for good; else None, noting in
        ``message`` and ``wake_at`` what is still backing off."""
        t, policy = self.target, self.policy
        seen: dict[tuple[str, str], float] = {}
        pending: list[str] = []
        self.wake_at = None
        for pod in pods:
            name = str(_get(pod, "metadata", "name", default="?"))
            for trouble in container_troubles(pod):
                why = ""
                if trouble.reason in PERMANENT_REASONS:
                    why = "retrying does not heal it"
                elif trouble.reason in CRASH_REASONS:
                    if trouble.restarts >= policy.crash_restarts:
                        last = f"; last exit: {trouble.last_exit}" if trouble.last_exit else ""
                        why = f"it has restarted {trouble.restarts} times{last}"
                    else:
                        pending.append(
                            f"pod {name} is {trouble.reason} ({trouble.restarts} of "
                            f"{policy.crash_restarts} restarts allowed)"
                        )
                else:  # an image pull failing: a registry blip heals, a wrong image does not
                    key = (name, trouble.container)
                    since = self._pull_failing.get(key, now)
                    seen[key] = since
                    if now - since >= policy.image_pull_grace:
                        why = f"its image pull kept failing for {now - since:.0f}s"
                    else:
                        due = since + policy.image_pull_grace
                        self.wake_at = due if self.wake_at is None else min(self.wake_at, due)
                        pending.append(
                            f"pod {name} is {trouble.reason} (the kubelet retries; fails "
                            f"{policy.image_pull_grace:.0f}s after it was first seen)"
                        )
                if why:
                    self.stuck_pod = name
                    return CheckFailed(
                        f"expected the new pods of {t.ref} to become ready, but pod {name} is "
                        f"{trouble.reason}: {trouble.detail} ({why})",
                        hint=f"kubectl -n {t.namespace} describe pod {name}; fix the image or "
                        "its configuration and land again",
                    )
        self._pull_failing = seen  # a pull that recovered starts its grace afresh next time
        if pending:
            self.message = f"{self.message}; {', '.join(pending)}"
        return None

    def wants_look(self, now: float) -> bool:
        """A verdict may be due now although nothing in the cluster changed."""
        return self.done_at is not None or (self.wake_at is not None and now >= self.wake_at)

    def at_deadline(self, now: float) -> RolloutResult:
        t = self.target
        waited = now - self.started
        if self.generation is None:
            outcome: HomelabError = DeadlineExceeded(
                f"expected the pod template of {t.ref} to run an image of {t.sha[:12]}, but after "
                f"{waited:.0f}s it still {self.message}",
                hint="the new image was never applied: check that CI pushed it and that the "
                "deployment tool (GitOps, a pipeline step) updated the workload",
            )
        else:
            outcome = DeadlineExceeded(
                f"expected {t.ref} to finish rolling out {self._shown()}, but after {waited:.0f}s: "
                f"{self.message}",
                hint=f"kubectl -n {t.namespace} describe {t.kind.lower()} {t.object_name}; "
                "raise --rollout-timeout if it is just slow",
            )
        return self._result(now, outcome)

    def _shown(self) -> str:
        return f"({', '.join(self._images)})" if self._images else ""

    def _not_matching(self, current: TemplateImages) -> str:
        t = self.target
        if not current.found:
            described = ", ".join(f"{n}={i}" for n, i in current.all_containers) or "none"
            which = (
                f"container {t.container!r}"
                if t.container
                else f"a container of image {t.repository}"
            )
            return f"has no {which} (containers: {described})"
        return f"runs {', '.join(current.images)}"

    def _superseded(self, now: float, current: TemplateImages) -> RolloutResult:
        t = self.target
        shas = sorted({s for i in current.images for s in tag_sha_tokens(parse_image(i).tag)})
        newer = f" (commit {', '.join(s[:12] for s in shas)})" if shas else ""
        return self._result(
            now,
            Superseded(
                f"expected {t.ref} to run an image of {t.sha[:12]}, but its image moved on to "
                f"{', '.join(current.images) or 'nothing'}{newer} while waiting",
                hint="another landing replaced this one; verify that landing instead",
            ),
        )

    def _result(self, now: float, outcome: HomelabError) -> RolloutResult:
        return RolloutResult(
            self.target,
            outcome,
            self._images,
            self.generation,
            replicas=self._replicas[0],
            ready_replicas=self._replicas[1],
            waited=now - self.started,
        )


def targets_for(
    services: Iterable[Service],
    sha: str,
    *,
    explicit: Iterable[str] = (),
    namespace: str | None = None,
) -> list[Target]:
    """The targets of a rollout phase: every service of the environment, or the explicit
    NS/NAME ones (taking container, image, kind and pin from deploy.json when it lists them).
    ``namespace`` overrides every service's namespace (a per-environment setting)."""
    services = list(services)

    def from_service(s: Service) -> Target:
        return Target(
            s.name,
            namespace or s.namespace,
            s.deployment,
            s.commit or sha,
            s.kind,
            s.container,
            s.image,
        )

    chosen = [parse_target(t) for t in explicit]
    if not chosen:
        return [from_service(s) for s in services]
    targets = []
    for ns, kind, name in chosen:
        known = next(
            (
                s
                for s in services
                if (namespace or s.namespace) == ns and s.deployment == name and s.kind == kind
            ),
            None,
        )
        if known is not None:
            targets.append(from_service(known))
        else:
            label = f"{ns}/{name}" if kind == "Deployment" else f"{ns}/{kind.lower()}/{name}"
            targets.append(Target(label, ns, name, sha, kind))
    return list({t.name: t for t in targets}.values())  # a target named twice is checked once
