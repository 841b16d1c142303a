"""The rollout results as a stream (RolloutResults over RolloutTracker.result): a check reads
its own service's result; what ended the watch reaches every check as an exception of its own."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import AuthError
from pytest_homelab.rollout.rules import Target
from pytest_homelab.rollout.tracker import RolloutResults, RolloutTracker, connect
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.objects import deployment

SHA = "0123456789abcdef0123456789abcdef01234567"


def _tracker(names: list[str]) -> RolloutTracker:
    targets = [Target(n, "apps", n, SHA, "Deployment", None, f"r.example.test/{n}") for n in names]
    return RolloutTracker(object(), targets)


def test_a_failed_watch_raises_a_fresh_exception_in_each_check() -> None:
    """Raising one stored exception in a thousand checks would grow its traceback by every
    check's frames (quadratic to format): each reader gets a copy without a traceback."""
    tracker = _tracker([f"svc-{n}" for n in range(50)])
    tracker._error = AuthError("Kubernetes refused pods in namespace apps: 403", hint="check RBAC")
    tracker._ended = True
    seen = []
    for n in range(50):
        with pytest.raises(AuthError) as caught:
            tracker.result(f"svc-{n}")
        seen.append(caught.value)
        assert len(traceback.extract_tb(caught.value.__traceback__)) < 5
    assert len({id(e) for e in seen}) == 50
    assert all(e.render() == seen[0].render() for e in seen)


def test_the_mapping_knows_its_names_without_waiting() -> None:
    results = RolloutResults(_tracker(["web", "api"]))
    assert list(results) == ["web", "api"] and len(results) == 2
    assert "web" in results and "nope" not in results  # no wait: the watch never started
    with pytest.raises(KeyError):
        results["nope"]


def test_once_every_target_is_decided_the_view_lets_go_of_the_objects(tmp_path: Path) -> None:
    # The checks run after the last verdict: what the watches saw is not read again, and its
    # memory goes to the checks' reports and the JUnit instead.
    with KubeSim() as sim:
        sim.create_namespace("apps")
        for name in ("web", "api"):
            sim.apply(deployment(name, "apps", f"r.example.test/{name}:main-{SHA[:8]}", replicas=1))
        client = connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc")), context=None, environ={})
        targets = [
            Target(n, "apps", n, SHA, "Deployment", None, f"r.example.test/{n}")
            for n in ("web", "api")
        ]
        tracker = RolloutTracker(client, targets)
        try:
            results = tracker.wait(Deadline.after(60))
            assert all(r.landed for r in results.values())
            assert results["web"].pods  # the verdicts named the pods the view held
            with tracker.view.changed:
                assert not tracker.view.objects and not tracker.view.pods_by_label
            assert tracker.view.stats.lists >= 2  # what the run counted stays
        finally:
            tracker.close()
            client.close()
