"""Random pipelines (runAfter, when, onError: continue, failing tasks, a finally task) end the way
tektoncd/pipeline v1.15.0's GetPipelineConditionStatus and GetSkippedTasks say
(pkg/reconciler/pipelinerun/resources/pipelinerunstate.go@v1.15.0:539-700)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.tekton import pipeline, succeeded, when


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(2, 5))
    names = [f"t{n}" for n in range(count)]
    after = {
        name: sorted(draw(st.sets(st.sampled_from(names[:n]), max_size=2)))
        for n, name in enumerate(names)
        if n
    }
    return {
        "names": names,
        "after": {k: v for k, v in after.items() if v},
        "fails": draw(st.sets(st.sampled_from(names), max_size=2)),
        "lenient": draw(st.sets(st.sampled_from(names), max_size=2)),
        "guarded": draw(st.sets(st.sampled_from(names), max_size=2)),
        "final": draw(st.booleans()),
    }


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(shape=pipelines())
def test_random_pipelines_end_as_tekton_says(shape: dict[str, Any]) -> None:
    names: list[str] = shape["names"]
    guard = [when("$(params.go)", "in", ["yes"])]
    with KubeSim(speed=20.0, timing=Timing(observe=0.05, terminate=0.1)) as sim:
        sim.create_namespace("ci")
        sim.apply(
            pipeline(
                "p",
                "ci",
                names,
                shape["after"],
                finally_tasks=["cleanup"] if shape["final"] else (),
                when_=dict.fromkeys(shape["guarded"], guard),
                on_error=dict.fromkeys(shape["lenient"], "continue"),
                params=[{"name": "go", "default": "no"}],
            )
        )
        for task in shape["fails"]:
            sim.tekton.behave(task, exit_code=1, duration=0.1)
        name = sim.tekton.start("p", "ci")["metadata"]["name"]

        def done() -> bool:
            cond = succeeded(sim.get("pipelineruns", "ci", name))
            return cond is not None and cond["status"] in ("True", "False")

        sim.wait_until(done, seconds=30)
        pr = sim.get("pipelineruns", "ci", name)
        cond = succeeded(pr)
        assert cond is not None
        status = pr["status"]
        ran = {c["pipelineTaskName"] for c in status.get("childReferences") or []}
        skipped = {s["name"]: s["reason"] for s in status.get("skippedTasks") or []}
        everything = [*names, *(["cleanup"] if shape["final"] else [])]
        # every task either ran or was skipped, never both (Incomplete: 0)
        assert ran | set(skipped) == set(everything) and not ran & set(skipped)
        assert ("cleanup" in ran) == shape["final"]  # finally always runs here
        for task, reason in skipped.items():
            parents = shape["after"].get(task, [])
            assert reason in (
                "When Expressions evaluated to false",
                "Parent Tasks were skipped",
                "PipelineRun was stopping",
            )
            if reason == "When Expressions evaluated to false":
                assert task in shape["guarded"]
            if reason == "Parent Tasks were skipped":
                assert any(
                    skipped.get(p) not in (None, "When Expressions evaluated to false")
                    for p in parents
                )
        # a failure counts unless the task tolerates it (onError: continue)
        hard = {t for t in shape["fails"] & ran if t not in shape["lenient"]}
        ignored = shape["fails"] & ran & shape["lenient"]
        if hard:
            assert (cond["status"], cond["reason"]) == ("False", "Failed")
        else:
            expected = "Completed" if skipped else "Succeeded"
            assert (cond["status"], cond["reason"]) == ("True", expected)
        match = re.fullmatch(
            r"Tasks Completed: (\d+) \(Failed: (\d+)(?: \(Ignored: (\d+)\))?, Cancelled 0\), "
            r"Skipped: (\d+)",
            cond["message"],
        )
        assert match is not None, cond["message"]
        completed, failed, ignored_n, skipped_n = match.groups()
        assert int(completed) == len(ran) and int(skipped_n) == len(skipped)
        assert int(failed) == len(hard) + len(ignored)
        assert int(ignored_n or 0) == len(ignored)
        for task in ran:
            tr = sim.get("taskruns", "ci", f"{name}-{task}")
            reason = (succeeded(tr) or {}).get("reason")
            if task in shape["fails"]:
                assert reason == ("FailureIgnored" if task in shape["lenient"] else "Failed")
            else:
                assert reason == "Succeeded"
