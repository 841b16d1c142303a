"""A server that does not answer: before it has answered once, a refused connection is an
infrastructure error within seconds (exit 2, naming the address dialed); once it has answered,
a restart is ridden out within the deadline, with a progress line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim
from tests.cli.child import Child, environ
from tests.conftest import free_port

SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"
TOKEN = "sim-token"


def ci(verb: str, server: str, *more: str) -> list[str]:
    return ["ci", verb, SHA, "--repo", "homelab/app", "--woodpecker-server", server, *more]


def test_lookups_and_waits_end_fast_when_nothing_listens(tmp_path: Path) -> None:
    port = free_port()  # bound and released: nothing listens there
    server = f"http://127.0.0.1:{port}"
    env = environ(WOODPECKER_TOKEN=TOKEN)
    for verb, limit in (("status", 10.0), ("watch", 15.0)):
        child = Child.homelab(*ci(verb, server, "--json"), cwd=tmp_path, env=env)
        code, out, err = child.finish(timeout=60)
        took = time.monotonic() - child.started
        assert code == 2, out + err
        assert took <= limit, f"ci {verb} took {took:.1f}s"
        document = json.loads(out)
        assert document["exit_code"] == 2 and document["verdict"] == "ERROR"
        text = json.dumps(document)
        assert f"127.0.0.1:{port}" in text and "has not answered once" in text
        assert "DeadlineExceeded" not in text


def test_a_restart_after_first_contact_is_ridden_out(tmp_path: Path) -> None:
    first = WoodpeckerSim().start()
    port = first.port
    first.add_repo("homelab/app")
    first.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("test", 600.0)])
    child = Child.homelab(
        *ci(
            "watch",
            first.base_url,
            "--ci-poll-interval",
            "1s",
            "--ci-stream-recheck",
            "1s",
            "--timeout",
            "2m",
        ),
        cwd=tmp_path,
        env=environ(WOODPECKER_TOKEN=TOKEN),
    )
    second: WoodpeckerSim | None = None
    try:
        child.wait_for(r"^ci: #1 running", timeout=60)
        first.stop()  # the restart: connections are refused now
        child.wait_for(r"^ci: retry .*(ConnectError|refused)", timeout=60)
        second = WoodpeckerSim(port=port).start()  # back, on the same address
        second.add_repo("homelab/app")
        second.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("test", 0.1)])
        code, out, err = child.finish(timeout=120)
    finally:
        child.kill()
        first.stop()
        if second is not None:
            second.stop()
    assert code == 0, out + err
    assert "verdict: PASSED (exit 0)" in out


def _finish(child: Child) -> tuple[int, str, str, float]:
    code, out, err = child.finish(timeout=60)
    return code, out, err, time.monotonic() - child.started


def test_every_server_fails_fast_before_first_contact(tmp_path: Path) -> None:
    """The Kubernetes API, D601's SSH and Vault, each with nothing listening."""
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
                "users": [{"name": "u", "user": {"token": "kube-token-1"}}],
            }
        )
    )
    env = environ(HOME=str(tmp_path))
    cases = [
        (["deploy", "wait", "apps/web", "--sha", SHA, "--kubeconfig", str(kubeconfig)], 15.0),
        (
            [
                "ci",
                "logs",
                "e2e-12345678-20260101000000-abcd",
                "--d601-host",
                "127.0.0.1",
                "--d601-port",
                str(port),
            ],
            10.0,
        ),
    ]
    for args, limit in cases:
        child = Child.homelab(*args, "--json", cwd=tmp_path, env=env)
        code, out, err, took = _finish(child)
        assert code == 2, out + err
        assert took <= limit, f"{args[:2]} took {took:.1f}s"
        text = json.dumps(json.loads(out))
        assert f"127.0.0.1:{port}" in text and "InfraError" in text
    vault = environ(VAULT_ADDR=f"http://127.0.0.1:{port}", VAULT_TOKEN="s.vault-token-1")
    vault["HOME"] = str(tmp_path)
    child = Child.homelab(*ci("status", "http://127.0.0.1:9", "--json"), cwd=tmp_path, env=vault)
    code, out, err, took = _finish(child)
    assert code == 2 and took <= 10.0, out + err
    assert "unreachable" in json.loads(out)["message"]


def test_a_kubernetes_api_restart_after_first_contact_is_ridden_out(tmp_path: Path) -> None:
    from pytest_homelab.sim.kube.api import KubeSim
    from pytest_homelab.sim.kube.objects import deployment
    from tests.cli.relay import Relay

    old = "registry.example.test/web:main-00000000"
    new = f"registry.example.test/web:main-{SHA[:8]}"
    with KubeSim() as sim:
        sim.create_namespace("apps")
        sim.apply(deployment("web", "apps", old, replicas=1))
        relay = Relay(("127.0.0.1", sim.port))
        kubeconfig = sim.kubeconfig(tmp_path / "kubeconfig")
        text = kubeconfig.read_text().replace(sim.url, f"http://127.0.0.1:{relay.port}")
        kubeconfig.write_text(text)
        child = Child.homelab(
            "deploy",
            "wait",
            "apps/web",
            "--sha",
            SHA,
            "--kubeconfig",
            str(kubeconfig),
            "--timeout",
            "2m",
            cwd=tmp_path,
            env=environ(HOME=str(tmp_path)),
        )
        try:
            child.wait_for(r"^rollout: apps/web ", timeout=60)  # it has looked: first contact
            relay.down()  # the restart: connections dropped, then refused
            child.wait_for(r"^rollout: retry ", timeout=60)
            sim.set_image("apps", "web", new)  # meanwhile, CD lands the image
            relay.up()
            code, out, err = child.finish(timeout=120)
        finally:
            child.kill()
            relay.down()
    assert code == 0, out + err
    assert "verdict: PASSED (exit 0)" in out
