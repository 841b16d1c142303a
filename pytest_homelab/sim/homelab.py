"""A whole simulated homelab that keeps running, for a new user's first steps (the quickstart as
tests/docs runs it) and for ``homelab doctor``'s tests.

Like ``homelab demo``'s, on loopback only: a git forge (``git http-backend``), Woodpecker over
TLS with its own CA (reached through the internal-LB dialer, its public name never resolved),
Kubernetes with its rollout and Tekton controllers, D601's egress proxy, and D601 itself through
the ``local`` transport. Unlike the demo, nothing is scripted per landing: the forge's "webhook"
makes a pipeline for every new commit pushed to the default branch, and "CD" rolls the app's
images out once that pipeline is green. The cluster also runs workloads from other registries,
so that ``homelab init`` has something to leave out.

    with SimHomelab(tmp) as lab:
        repo = lab.clone(tmp / "app")
        env = {**os.environ, **lab.environ()}   # the settings a user would export
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

from pytest_homelab.sim.gitserver import git_env, run_git

SLUG = "homelab/app"
HOSTNAME = "ci.example.org"
REGISTRY = "registry.example.org/homelab"
CI_NAMESPACE = "unidesk-ci"
E2E_PIPELINE = "unidesk-dev-namespace-e2e"
# (name, namespace, kind, extra containers): the app's workloads, built from the repo
APP = (
    ("web", "shop-dev", "Deployment"),
    ("api", "shop-dev", "Deployment"),
    ("worker", "jobs-dev", "StatefulSet"),
)
# workloads from other registries, which init must leave out
OTHERS = (
    ("redis", "shop-dev", "Deployment", "docker.io/library/redis:7.2"),
    ("node-exporter", "monitoring", "DaemonSet", "quay.io/prometheus/node-exporter:v1.8.0"),
)


def _git_env() -> dict[str, str]:
    return git_env("homelab")


def _git(cwd: Path, *args: str) -> str:
    return run_git(cwd, *args, identity="homelab")


class SimHomelab:
    """Start with ``with``; :meth:`environ` gives the settings, :meth:`clone` a user's checkout."""

    def __init__(self, root: Path, *, token: str | None = None, kubectl: str | None = None) -> None:
        self.root = root.absolute()
        root = self.root
        self.token = token or "lab-" + os.urandom(8).hex()
        self.kubectl = kubectl or os.environ.get("HOMELAB_KUBECTL") or shutil.which("kubectl")
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self._hook: threading.Thread | None = None
        self.pipelines: dict[str, int] = {}  # sha -> pipeline number
        self.ca_pem = root / "lab-ca.pem"
        self.d601 = root / "d601"
        self.bare = root / "forge" / "homelab" / "app.git"
        self.ci: Any = None
        self.kube: Any = None
        self.proxy: Any = None
        self.forge: Any = None
        self.kubeconfig = root / "kubeconfig"

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> SimHomelab:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._hook is not None:
            self._hook.join(timeout=5)
        self._stack.close()

    def _start(self) -> None:
        import trustme

        from pytest_homelab.e2e.launcher import reference_runner
        from pytest_homelab.sim.gitserver import GitHttpServer
        from pytest_homelab.sim.kube.api import KubeSim
        from pytest_homelab.sim.kube.controllers import Timing
        from pytest_homelab.sim.kube.objects import daemonset, deployment, statefulset
        from pytest_homelab.sim.kube.tekton import pipeline
        from pytest_homelab.sim.proxy import ForwardProxy
        from pytest_homelab.sim.woodpecker import WoodpeckerSim

        self.root.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_pem))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOSTNAME).configure_cert(server_ctx)
        self.bare.parent.mkdir(parents=True)
        _git(self.bare.parent, "init", "-q", "--bare", "-b", "main", self.bare.name)
        self.d601.mkdir()
        self.forge = self._stack.enter_context(GitHttpServer(self.root / "forge"))
        self.proxy = self._stack.enter_context(ForwardProxy())
        self.ci = self._stack.enter_context(
            WoodpeckerSim(
                host="127.0.0.1",
                ssl_context=server_ctx,
                public_host=HOSTNAME,
                token=self.token,
                ping_interval=2.0,
            )
        )
        self.kube = self._stack.enter_context(
            KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1, namespace_cleanup=0.1))
        )
        # the app as it was before the user arrives: code and the dev e2e runner, no deploy.json
        seed = self.root / "seed"
        seed.mkdir()
        _git(seed, "init", "-q", "-b", "main")
        (seed / "app.py").write_text("print('hello homelab')\n")
        (seed / "scripts" / "ci").mkdir(parents=True)
        (seed / "scripts" / "ci" / "dev-e2e.sh").write_text(reference_runner().read_text())
        _git(seed, "add", ".")
        _git(seed, "commit", "-q", "-m", "app: first version")
        _git(seed, "push", "-q", str(self.bare), "main")
        base = _git(seed, "rev-parse", "HEAD")
        self.ci.add_repo(SLUG, private=True)
        self.ci.add_pipeline(SLUG, commit=base, steps=self._steps(base))
        self.pipelines[base] = 1
        kube = self.kube
        for ns in (CI_NAMESPACE, "shop-dev", "jobs-dev", "monitoring"):
            kube.create_namespace(ns)
        for name, ns, kind in APP:
            image = f"{REGISTRY}/{name}:main-{base[:12]}"
            if kind == "StatefulSet":
                kube.apply(statefulset(name, ns, image, replicas=2))
            else:
                kube.apply(deployment(name, ns, image, replicas=2))
        for name, ns, kind, image in OTHERS:
            kube.apply(
                daemonset(name, ns, image) if kind == "DaemonSet" else deployment(name, ns, image)
            )
        kube.apply(
            pipeline(
                E2E_PIPELINE,
                CI_NAMESPACE,
                tasks=["setup", "smoke", "teardown"],
                run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            )
        )
        kube.tekton.behave("setup", duration=0.4, logs=["namespace ready"])
        kube.tekton.behave("smoke", duration=0.6, logs=["GET /healthz 200"])
        kube.kubeconfig(self.kubeconfig)
        env_lines = {
            "HOMELAB_E2E_PROXY": self.proxy.url,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.d601 / "kubecache"),
            "HOMELAB_E2E_POLL": "0.2",
        }
        if self.kubectl:
            env_lines["KUBECTL"] = self.kubectl
        (self.d601 / "ci.env").write_text(
            "".join(f"export {k}={v}\n" for k, v in env_lines.items())
        )
        self._seen = base
        self._hook = threading.Thread(target=self._forge_hook, name="lab-forge-hook", daemon=True)
        self._hook.start()

    # -- what a user gets -----------------------------------------------------------------------

    @property
    def repo_url(self) -> str:
        return str(self.forge.repo_url("homelab/app.git"))

    def environ(self) -> dict[str, str]:
        """The settings a user of this homelab exports (its ports change every start)."""
        return {
            "WOODPECKER_SERVER": self.ci.base_url,
            "HOMELAB_WOODPECKER_DIAL": f"127.0.0.1:{self.ci.port}",
            "HOMELAB_CA_BUNDLE": str(self.ca_pem),
            "WOODPECKER_TOKEN": self.token,
            "KUBECONFIG": str(self.kubeconfig),
            "HOMELAB_D601_TRANSPORT": "local",
            "HOMELAB_E2E_WORK_ROOT": str(self.d601 / "work"),
            "HOMELAB_E2E_RESULT_ROOT": str(self.d601 / "runs"),
            "HOMELAB_E2E_ENV_FILE": str(self.d601 / "ci.env"),
            "HOMELAB_CI_POLL_INTERVAL": "1s",
        }

    def clone(self, dest: Path) -> Path:
        """A user's checkout: fetches over HTTP like D601's, pushes into the bare repo (the
        forge's http-backend serves anonymous fetches only)."""
        _git(dest.parent, "clone", "-q", self.repo_url, dest.name)
        _git(dest, "remote", "set-url", "--push", "origin", str(self.bare))
        return dest

    # -- the forge's webhook and CD -------------------------------------------------------------

    @staticmethod
    def _steps(sha: str) -> list[Any]:
        from pytest_homelab.sim.woodpecker import StepSpec

        return [
            StepSpec("clone", 0.2, log=["HEAD is now at " + sha[:8]]),
            StepSpec("test", 0.6, log=["+ pytest -q", "3 passed"]),
        ]

    def _forge_hook(self) -> None:
        while not self._stop.wait(0.1):
            done = subprocess.run(
                ["git", "--git-dir", str(self.bare), "rev-parse", "--verify", "-q", "main"],
                env=_git_env(),
                capture_output=True,
                text=True,
                check=False,
            )
            head = done.stdout.strip()
            if done.returncode != 0 or head == self._seen:
                continue
            self._seen = head
            number = self.ci.add_pipeline(SLUG, commit=head, steps=self._steps(head))
            self.pipelines[head] = number
            threading.Thread(target=self._cd, args=(number, head), daemon=True).start()

    def _cd(self, number: int, sha: str) -> None:
        while not self._stop.wait(0.1):
            try:
                status = self.ci.pipeline_json(SLUG, number, with_steps=False).get("status")
            except KeyError:
                continue
            if status in ("failure", "error", "killed", "declined", "canceled"):
                return
            if status == "success":
                for name, ns, kind in APP:
                    self.kube.set_image(ns, name, f"{REGISTRY}/{name}:main-{sha[:12]}", kind=kind)
                return
