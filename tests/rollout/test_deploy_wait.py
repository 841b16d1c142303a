"""`homelab deploy wait` and the rollout checks end to end: kubeconfig, the LIST+WATCH tracker,
the simulated cluster, and the JUnit read back. No false green, fast failures, clear messages."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.cli import main
from pytest_homelab.report.junit import read_junit
from pytest_homelab.sim.faults import FaultPlan

NEW = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def wait(
    cluster: Any, capsys: pytest.CaptureFixture[str], *extra: str, junit: Path | None = None
) -> tuple[int, str, str]:
    args = ["deploy", "wait", *cluster.flags(), *extra]
    if junit is not None:
        args += ["--junitxml", str(junit)]
    return run(args, capsys)


def test_green_over_two_namespaces_with_provenance(
    cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name, ns in (("web", "apps"), ("api", "apps"), ("gw", "edge")):
        cluster.add(name, ns, replicas=3)
        cluster.land(name, ns)
    cluster.write_manifest()
    junit = tmp_path / "rollout.xml"
    code, out, err = wait(cluster, capsys, junit=junit)
    print("DEBUG-ERR", err)
    assert code == 0, out + err
    assert out.count("PASS  rollout") == 3 and "verdict: PASSED (exit 0)" in out
    assert "rollout: apps/web" in err
    records = {r.name: r for r in read_junit(junit)}
    web = records["test_rolled_out[web]"]
    assert web.prop("namespace") == "apps" and web.prop("deployment") == "web"
    assert web.prop("expected_sha") == cluster.sha
    assert web.prop("image") == cluster.image("web")
    assert web.prop("replicas") == "3/3 ready" and web.prop("time_to_ready").endswith("s")
    assert len(web.prop("image_ids").split(", ")) == 1 and "@sha256:" in web.prop("image_ids")
    assert len(web.prop("pods").split(", ")) == 3
    assert cluster.sim.watches_opened <= 4  # two namespaces × (deployments, pods)


def test_image_never_updated_is_a_deadline_not_a_false_green(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("web", "apps")  # fully rolled out — on the OLD image
    cluster.write_manifest()
    code, out, _ = wait(cluster, capsys, "--timeout", "1.5s")
    assert code == 124
    assert "DeadlineExceeded" in out and "0000000a" in out and cluster.sha[:12] in out


@pytest.mark.parametrize(
    ("failure", "flags"),
    [
        ("CrashLoopBackOff", ()),  # the simulated loop reports restartCount 3: the default
        ("ImagePullBackOff", ("--image-pull-grace", "2s")),
        ("ErrImagePull", ("--image-pull-grace", "2s")),
        ("CreateContainerConfigError", ()),
        ("InvalidImageName", ()),
        ("ErrImageNeverPull", ()),
    ],
)
def test_stuck_new_pods_fail_fast(
    cluster: Any, capsys: pytest.CaptureFixture[str], failure: str, flags: tuple[str, ...]
) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    cluster.sim.image_behavior(cluster.image("web"), fail=failure)
    cluster.land("web", "apps")
    started = time.monotonic()
    code, out, _ = wait(cluster, capsys, "--timeout", "60s", *flags)
    assert code == 1, out
    assert time.monotonic() - started < 15  # seconds, not the 60 s deadline
    assert f"is {failure}" in out and "pod web-" in out


@pytest.mark.parametrize(
    ("failure", "flags"),
    [
        ("CrashLoopBackOff", ("--crash-restarts", "3")),
        ("ImagePullBackOff", ("--image-pull-grace", "20s")),
        ("ErrImagePull", ("--image-pull-grace", "20s")),
    ],
)
def test_back_off_states_that_heal_pass(
    cluster: Any, capsys: pytest.CaptureFixture[str], failure: str, flags: tuple[str, ...]
) -> None:
    cluster.add("web", "apps", replicas=2)
    cluster.write_manifest()
    # One crash (restartCount 1) or a registry blip, healed by the kubelet's retry in 1.5 s.
    cluster.sim.image_behavior(cluster.image("web"), fail=failure, fail_for=1.5, restarts=1)
    cluster.land("web", "apps")
    code, out, err = wait(cluster, capsys, "--timeout", "60s", *flags)
    assert code == 0, out + err
    assert f"is {failure}" in err  # the progress lines said what it was waiting out


def test_a_crash_loop_below_the_limit_keeps_waiting(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    cluster.sim.image_behavior(cluster.image("web"), fail="CrashLoopBackOff", restarts=2)
    cluster.land("web", "apps")
    code, out, _ = wait(cluster, capsys, "--timeout", "2s", "--crash-restarts", "3")
    assert code == 124 and "CrashLoopBackOff (2 of 3 restarts allowed)" in out
    code, out, _ = wait(cluster, capsys, "--timeout", "30s", "--crash-restarts", "2")
    assert code == 1 and "restarted 2 times" in out


def test_progress_deadline_exceeded_fails(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps", progress_deadline=2)
    cluster.write_manifest()
    cluster.sim.image_behavior(cluster.image("web"), ready=10_000)  # never becomes ready
    cluster.land("web", "apps")
    code, out, _ = wait(cluster, capsys, "--timeout", "60s")
    assert code == 1 and "ProgressDeadlineExceeded" in out


def test_paused_fails_with_that_reason(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps", paused=True)
    cluster.write_manifest()
    cluster.land("web", "apps")
    code, out, _ = wait(cluster, capsys, "--timeout", "30s")
    assert code == 1 and "paused" in out and "rollout resume" in out


def test_missing_deployment_is_not_found(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps")
    cluster.services.append(
        {"name": "ghost", "namespace": "apps", "image": "registry.example.test/homelab/ghost"}
    )
    cluster.write_manifest()
    cluster.land("web", "apps")
    code, out, _ = wait(cluster, capsys, "--timeout", "30s")
    assert code == 3, out
    assert "NotFound: Deployment apps/ghost does not exist" in out
    assert "PASS  rollout  apps/web (Deployment)" in out


def test_deleted_mid_wait_is_not_found(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    cluster.later(1.0, lambda: cluster.sim.delete("deployments", "apps", "web"))
    code, out, _ = wait(cluster, capsys, "--timeout", "30s")
    assert code == 3 and "deleted while waiting" in out


def test_a_second_landing_replacing_the_image_is_superseded(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    cluster.sim.image_behavior(cluster.image("web"), ready=10_000)  # ours never finishes
    cluster.land("web", "apps", after=0.3)
    cluster.land("web", "apps", after=1.5, sha=NEW)
    code, out, _ = wait(cluster, capsys, "--timeout", "30s")
    assert code == 1 and "Superseded" in out and NEW[:8] in out


def test_explicit_targets_and_sha(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps", in_manifest=False)
    cluster.add("api", "apps", in_manifest=False)
    cluster.land("web", "apps", sha=NEW)
    code, out, err = wait(cluster, capsys, "apps/web", "--sha", NEW[:10], "--timeout", "30s")
    assert code == 0, out + err
    assert "apps/web (Deployment)" in out and "api" not in out


def test_statefulset_and_daemonset(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("db", "data", kind="StatefulSet", replicas=3)
    cluster.add("agent", "infra", kind="DaemonSet")
    cluster.write_manifest()
    cluster.land("db", "data", kind="StatefulSet")
    cluster.land("agent", "infra", kind="DaemonSet")
    code, out, err = wait(cluster, capsys, "--timeout", "60s")
    assert code == 0, out + err
    assert "data/db (StatefulSet)" in out and "infra/agent (DaemonSet)" in out


def test_watch_faults_still_end_green(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("web", "api"):
        cluster.add(name, "apps")
        cluster.land(name, "apps", after=0.8)
    cluster.write_manifest()
    faults = FaultPlan(rate=0.0, kinds=("watch_drop", "gone410", "5xx"))
    for kind in ("gone410", "watch_drop", "5xx", "gone410"):
        faults.inject(kind, path_prefix="/apis/apps")
    faults.inject("watch_drop", count=2, path_prefix="/api/v1")
    cluster.sim.faults = faults
    code, out, err = wait(cluster, capsys, "--timeout", "60s")
    assert code == 0, out + err
    assert {f for *_, f in cluster.sim.requests if f} >= {"gone410", "watch_drop", "5xx"}


def test_no_kubeconfig_is_a_clear_error(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    code, out, err = run(["deploy", "wait", "--timeout", "5s"], capsys)
    assert code == 2
    assert "no Kubernetes configuration found" in out + err and "KUBECONFIG" in out + err
    code, out, err = run(["deploy", "wait", "--kubeconfig", "/nope/kc"], capsys)
    assert code == 2 and "does not exist" in out + err


def test_unknown_kube_context(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    code, out, err = wait(cluster, capsys, "--kube-context", "nope")
    assert code == 2 and "nope" in out + err


def test_environment_without_services(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.write_manifest()
    code, out, _ = wait(cluster, capsys)
    assert code == 0 and "environment dev has no services" in out


def test_bad_target_and_unknown_environment(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("web", "apps")
    cluster.write_manifest()
    code, _, err = wait(cluster, capsys, "apps")
    assert code == 2 and "is not NS/NAME" in err
    code, _, err = wait(cluster, capsys, "--env", "prod")
    assert code == 2 and "no environment 'prod' (it has: dev)" in err


def test_many_services_one_watch_pair_per_namespace(
    cluster: Any, pytester: pytest.Pytester
) -> None:
    namespaces = ("alpha", "beta", "gamma")
    for n in range(50):
        name, ns = f"svc-{n:02d}", namespaces[n % 3]
        cluster.add(name, ns, replicas=1)
        cluster.land(name, ns, after=0.5 + (n % 5) * 0.1)
    cluster.write_manifest()
    checks = Path(__file__).parents[2] / "checks"
    junit = pytester.path / "many.xml"
    result = pytester.runpytest_subprocess(
        str(checks),
        "-m",
        "rollout",
        "--commit",
        cluster.sha,
        "--deploy-json",
        str(cluster.repo / "deploy.json"),
        *cluster.pytest_flags(),
        f"--junitxml={junit}",
        timeout=180,
    )
    result.assert_outcomes(passed=50)
    records = read_junit(junit)
    assert {r.name for r in records} == {f"test_rolled_out[svc-{n:02d}]" for n in range(50)}
    assert all(r.outcome == "success" and r.prop("expected_sha") == cluster.sha for r in records)
    assert cluster.sim.watches_opened <= 2 * len(namespaces)


def test_no_services_means_no_testcases_not_a_skip(cluster: Any, tmp_path: Path) -> None:
    cluster.write_manifest()
    checks = Path(__file__).parents[2] / "checks"
    junit = tmp_path / "none.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(checks),
            "-m",
            "rollout",
            *cluster.pytest_flags(),
            f"--junitxml={junit}",
        ],
        cwd=cluster.repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "environment dev has no services, so there are no rollout checks" in done.stdout
    assert "skipped" not in done.stdout
    assert list(ET.parse(junit).getroot().iter("testcase")) == []


def test_old_pods_still_terminating_do_not_block_unless_strict(
    cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # kubectl never reads status.terminatingReplicas (rollout_status.go@v0.33.9:75-91): by
    # default neither do we, but the JUnit records them; the strict setting waits for them.
    cluster.sim.controllers.terminating_replicas = True
    cluster.sim.controllers.timing.terminate = 1e6  # old pods never finish terminating
    cluster.add("web", "apps", replicas=2)
    cluster.write_manifest()
    cluster.land("web", "apps")
    junit = tmp_path / "rollout.xml"
    code, out, err = wait(cluster, capsys, "--timeout", "30s", junit=junit)
    assert code == 0, out + err
    web = {r.name: r for r in read_junit(junit)}["test_rolled_out[web]"]
    assert int(web.prop("terminating_replicas")) >= 1
    code, out, _ = wait(cluster, capsys, "--timeout", "2s", "--strict-terminating")
    assert code == 124 and "old replicas are still terminating" in out


def test_a_crash_loop_that_keeps_crashing_fails_as_restarts_mount(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The simulated kubelet restarts with its back-off (10 s, 20 s … scenario time): one crash
    # first (within the limit), then the count grows until it reaches --crash-restarts.
    cluster.add("web", "apps")
    cluster.write_manifest()
    cluster.sim.image_behavior(cluster.image("web"), fail="CrashLoopBackOff", restarts=1)
    cluster.land("web", "apps")
    started = time.monotonic()
    code, out, err = wait(cluster, capsys, "--timeout", "60s", "--crash-restarts", "2")
    assert code == 1, out + err
    assert "CrashLoopBackOff (1 of 2 restarts allowed)" in err
    assert "restarted 2 times" in out and "back-off 20s" in out
    assert time.monotonic() - started < 15  # 10 scenario seconds at speed 4, not the deadline
