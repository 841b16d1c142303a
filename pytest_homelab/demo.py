"""``homelab demo``: a whole landing against the built-in simulated homelab, offline.

It builds the homelab in-process on loopback: a git forge (``git http-backend``), the Woodpecker
simulator over TLS (its own CA, reached through the internal-LB dialer), the Kubernetes simulator
with its rollout and Tekton controllers, D601's egress proxy, and D601 itself through the
``local`` transport. It lands a commit with ``work land``'s code, "CD" rolls the new images out
once CI is green, and the same landing session users run (``pytest checks/``: CI watch, rollout
checks, dev e2e) gives the verdict. Scenarios replay the interesting failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_homelab.core.outcomes import BadInput, InfraError

if TYPE_CHECKING:
    from pytest_homelab.sim.kube.api import KubeSim
    from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

SLUG = "homelab/app"
HOSTNAME = "ci.demo.test"
REGISTRY = "registry.demo.test/homelab"
SERVICES = (("web", "shop-dev"), ("api", "shop-dev"), ("worker", "jobs-dev"))
CI_NAMESPACE = "unidesk-ci"
E2E_PIPELINE = "unidesk-dev-namespace-e2e"
FULL = "ci or rollout or smoke or e2e"
PROBED = ("web", "api")  # services whose deploy.json entry has a probe (the smoke phase)


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    markexpr: str = FULL


SCENARIOS = (
    Scenario(
        "green",
        "the whole landing: CI green, three services roll out, the dev e2e run passes (exit 0)",
    ),
    Scenario(
        "red",
        "the test step fails: its log tail is in the verdict; rollout and e2e are not checked "
        "(exit 1)",
    ),
    Scenario(
        "stale-image",
        "CD never updates web: its rollout check times out (DeadlineExceeded) on the old "
        "commit's image and the e2e run is not started (exit 1)",
    ),
    Scenario(
        "crashloop",
        "the new api image crashes: CrashLoopBackOff fails the rollout at once (exit 1)",
    ),
    Scenario(
        "wrong-version",
        "everything rolls out, but web's route still points at the old Service: its probe "
        "URL serves the previous commit, and the smoke check names both (exit 1)",
    ),
    Scenario(
        "e2e-fail", "the dev e2e run's smoke TaskRun fails; its log is in the verdict (exit 1)"
    ),
    Scenario(
        "flaky",
        "30% of Woodpecker API responses fail (empty, 5xx, 429, resets); still green (exit 0)",
    ),
    Scenario("never", "no pipeline is ever created for the commit (CI watch only, exit 3)", "ci"),
    Scenario(
        "superseded",
        "a newer push cancels the pipeline; its descendant verifies the landing (CI watch only, "
        "exit 0)",
        "ci",
    ),
)


def list_scenarios() -> list[tuple[str, str]]:
    return [(s.name, s.about) for s in SCENARIOS]


def _git_env() -> dict[str, str]:
    from pytest_homelab.sim.gitserver import git_env

    return git_env("demo")


def _git(repo: Path, *args: str) -> str:
    from pytest_homelab.sim.gitserver import GitFailed, run_git

    try:
        return run_git(repo, *args, identity="demo")
    except GitFailed as exc:
        raise InfraError(
            f"the demo's {exc}", hint="the demo needs a working git; run it again, or report this"
        ) from None


def probe_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.demo.test"


def _manifest(repo_url: str, serving: str, probe_timeout_ms: int = 30000) -> str:
    services: list[dict[str, object]] = [
        {"name": name, "namespace": ns, "image": f"{REGISTRY}/{name}"} for name, ns in SERVICES
    ]
    for service in services:
        name, ns = str(service["name"]), str(service["namespace"])
        if name in PROBED:
            service["probe"] = {
                "url": f"https://{probe_host(name, ns)}/version",
                "dial": serving,
                "timeoutMs": probe_timeout_ms,
            }
    doc = {
        "schemaVersion": 2,
        "environments": {
            "dev": {
                "ci": {"repo": repo_url, "scriptPath": "scripts/ci/dev-e2e.sh", "timeoutMs": 60000},
                "services": services,
            }
        },
    }
    return json.dumps(doc, indent=2) + "\n"


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@contextlib.contextmanager
def _isolated_env(values: dict[str, str]) -> Iterator[None]:
    """The demo's own settings only: the user's HOMELAB_*/WOODPECKER_*/KUBECONFIG and proxies
    must not steer it (a user's no_proxy would even route D601's fetch around its proxy)."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if (
            key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE"))
            or key in ("WP_TOKEN", "SSH_AUTH_SOCK")
            or key.lower() in _PROXY_VARS
        ):
            del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _say(line: str) -> None:
    print(f"homelab demo: {line}", file=sys.stderr, flush=True)


def _steps(sha: str, *, red: bool = False) -> list[StepSpec]:
    from pytest_homelab.sim.woodpecker import StepSpec

    test = StepSpec("test", 1.0, log=["+ pytest -q", "42 passed in 0.9s"])
    if red:
        test = StepSpec(
            "test",
            1.0,
            exit_code=1,
            log=[
                "+ pytest -q",
                "..F.",
                "FAILED tests/test_app.py::test_greeting",
                "E   AssertionError: assert 'hello again, homelab' == 'hello homelab'",
                "1 failed, 41 passed in 0.9s",
            ],
        )
    return [
        StepSpec("clone", 0.3, log=["+ git fetch", "HEAD is now at " + sha[:8]]),
        StepSpec("lint", 0.5, log=["+ ruff check .", "All checks passed!"]),
        test,
    ]


class _Cd:
    """What the homelab's CD does: once the landed commit's pipeline is green, bump the images."""

    def __init__(
        self, ci: WoodpeckerSim, kube: KubeSim, number: int, sha: str, skip: set[str]
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ci, kube, number, sha, skip), daemon=True
        )

    def _run(self, ci: WoodpeckerSim, kube: KubeSim, number: int, sha: str, skip: set[str]) -> None:
        while not self._stop.wait(0.1):
            try:
                status = ci.pipeline_json(SLUG, number, with_steps=False).get("status")
            except KeyError:  # not visible yet (appear_after)
                continue
            if status in ("failure", "error", "killed", "declined"):
                return
            if status == "success":
                for name, ns in SERVICES:
                    if name not in skip:
                        kube.set_image(ns, name, f"{REGISTRY}/{name}:main-{sha[:12]}")
                return

    def __enter__(self) -> _Cd:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _kubectl() -> str | None:
    return os.environ.get("HOMELAB_KUBECTL") or shutil.which("kubectl")


def _end_runs(result_root: Path) -> None:
    """End whatever a dev e2e run left running (by the PIDs it recorded, with their groups)."""
    if not result_root.is_dir():
        return
    for run in result_root.iterdir():
        for name in ("runner.pid", "launcher.pid"):
            text = (run / name).read_text().strip() if (run / name).is_file() else ""
            if text.isdigit():
                with contextlib.suppress(OSError):
                    os.kill(int(text), signal.SIGTERM)


def run_demo(name: str, *, junitxml: str | None = None, as_json: bool = False) -> int:
    scenario = next((s for s in SCENARIOS if s.name == name), None)
    if scenario is None:
        raise BadInput(
            f"unknown demo scenario {name!r}",
            hint=f"choose one of: {', '.join(s.name for s in SCENARIOS)} (homelab demo --list)",
        )
    if shutil.which("git") is None:
        raise BadInput("the demo needs git on PATH", hint="install git (apt-get install git)")
    with tempfile.TemporaryDirectory(prefix="homelab-demo-") as tmp:
        root = Path(tmp)
        try:
            code = _run(scenario, root, junitxml=junitxml, as_json=as_json)
        finally:
            _end_runs(root / "d601" / "runs")
    _say(
        "the simulated homelab and its files are gone; to check your own landings, see "
        "docs/quickstart.md"
    )
    return code


def _run(scenario: Scenario, root: Path, *, junitxml: str | None, as_json: bool) -> int:
    import trustme

    from pytest_homelab.core.settings import resolve_settings
    from pytest_homelab.e2e.launcher import reference_runner
    from pytest_homelab.report.session import run_checks
    from pytest_homelab.sim.faults import FaultPlan
    from pytest_homelab.sim.gitserver import GitHttpServer
    from pytest_homelab.sim.kube.api import KubeSim
    from pytest_homelab.sim.kube.controllers import Timing
    from pytest_homelab.sim.kube.objects import deployment
    from pytest_homelab.sim.kube.tekton import pipeline
    from pytest_homelab.sim.proxy import ForwardProxy
    from pytest_homelab.sim.serving import Route, ServingSim
    from pytest_homelab.sim.woodpecker import WoodpeckerSim

    name = scenario.name
    markexpr = scenario.markexpr
    kubectl = _kubectl()
    if kubectl is None and "e2e" in markexpr:
        _say("kubectl is not on PATH, so D601's runner cannot run: the dev e2e phase is left out")
        markexpr = "ci or rollout or smoke"
    token = "demo-" + os.urandom(8).hex()
    ca = trustme.CA()
    ca_pem = root / "demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(server_ctx)
    serving_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(probe_host(n, ns) for n, ns in SERVICES)).configure_cert(serving_ctx)
    faults = FaultPlan(seed=7, rate=0.3, stall_seconds=1.0) if name == "flaky" else None
    forge = root / "forge"
    (forge / "homelab").mkdir(parents=True)
    _git(forge / "homelab", "init", "-q", "--bare", "-b", "main", "app.git")
    d601 = root / "d601"
    d601.mkdir()
    with contextlib.ExitStack() as stack:
        git_server = stack.enter_context(GitHttpServer(forge))
        proxy = stack.enter_context(ForwardProxy())
        ci = stack.enter_context(
            WoodpeckerSim(
                host="127.0.0.1",
                ssl_context=server_ctx,
                public_host=HOSTNAME,
                token=token,
                faults=faults,
                ping_interval=2.0,
            )
        )
        kube = stack.enter_context(
            KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1, namespace_cleanup=0.1))
        )
        serving = stack.enter_context(ServingSim(kube, ssl_context=serving_ctx))
        url = git_server.repo_url("homelab/app.git")
        manifest = _manifest(url, serving.address, 4000 if name == "wrong-version" else 30000)
        repo, base = _make_repo(
            root, forge / "homelab" / "app.git", url, manifest, reference_runner().read_text()
        )
        for svc, ns in SERVICES:
            old = f"{REGISTRY}/{svc}:main-{base[:12]}"
            stale = name == "wrong-version" and svc == "web"
            serving.route(probe_host(svc, ns), Route(ns, svc, fixed=old if stale else None))
        ci.add_repo(SLUG, private=True)
        ci.add_pipeline(SLUG, commit=base, steps=_steps(base)[:1])  # the previous landing
        for ns in (CI_NAMESPACE, *{ns for _, ns in SERVICES}):
            kube.create_namespace(ns)
        for svc, ns in SERVICES:
            kube.apply(deployment(svc, ns, f"{REGISTRY}/{svc}:main-{base[:12]}", replicas=2))
        kube.apply(
            pipeline(
                E2E_PIPELINE,
                CI_NAMESPACE,
                tasks=["setup", "smoke", "teardown"],
                run_after={"smoke": ["setup"], "teardown": ["smoke"]},
            )
        )
        kube.tekton.behave("setup", duration=0.4, logs=["namespace ready", "seeded test data"])
        kube.tekton.behave(
            "smoke",
            duration=0.8,
            exit_code=1 if name == "e2e-fail" else 0,
            logs=["GET /healthz 200", "GET /api/items 200"]
            + (["POST /checkout 502 Bad Gateway", "FAIL: checkout"] if name == "e2e-fail" else []),
        )
        if name == "crashloop":
            kube.image_behavior(f"{REGISTRY}/api:*", fail="CrashLoopBackOff")
            kube.image_behavior(f"{REGISTRY}/api:main-{base[:12]}")  # the old one still runs
        kubeconfig = kube.kubeconfig(root / "kubeconfig")
        env_lines = {
            "HOMELAB_E2E_PROXY": proxy.url,
            "KUBECONFIG": str(kubeconfig),
            "KUBECACHEDIR": str(d601 / "kubecache"),
            "HOMELAB_E2E_POLL": "0.2",
        }
        if kubectl:
            env_lines["KUBECTL"] = kubectl
        (d601 / "ci.env").write_text("".join(f"export {k}={v}\n" for k, v in env_lines.items()))

        _say(f"scenario {name}: {scenario.about}")
        _say(f"forge {url}; Woodpecker simulator {ci.base_url} dialed at 127.0.0.1:{ci.port}")
        _say(f"Kubernetes simulator {kube.url}; D601 is this machine (local transport)")
        sha = _land(repo, _say)
        number = _script_ci(ci, name, repo, sha)
        skip = {"web"} if name == "stale-image" else set()
        flags: dict[str, object | None] = {
            "commit": sha,
            "woodpecker_server": ci.base_url,
            "woodpecker_dial": f"127.0.0.1:{ci.port}",
            "ca_bundle": str(ca_pem),
            "woodpecker_repo": SLUG,
            "appear_grace": "3s" if name == "never" else "1m",
            "ci_timeout": "2m",
            "ci_poll_interval": "1s",
            "kubeconfig": str(kubeconfig),
            "rollout_timeout": "4s" if name == "stale-image" else "1m",
            "d601_transport": "local",
            "e2e_work_root": str(d601 / "work"),
            "e2e_result_root": str(d601 / "runs"),
            "e2e_env_file": str(d601 / "ci.env"),
            "e2e_wait": "60s",
            "e2e_poll_interval": "0.3s",
            "probe_interval": "0.5s",
        }
        with (
            _isolated_env({"WOODPECKER_TOKEN": token, **_git_env_only()}),
            _Cd(ci, kube, number, sha, skip) if number else contextlib.nullcontext(),
            _chdir(repo),
        ):
            settings = resolve_settings(flags)
            code = run_checks(
                settings,
                verb="demo",
                markexpr=markexpr,
                flags=flags,
                junitxml=junitxml,
                as_json=as_json,
                commands=False,  # the run's files are deleted with the simulated homelab
            )
        namespaces = sorted({ns for _, ns in SERVICES})
        e2e_ran = bool(kube.store.writes(CI_NAMESPACE, ["client"]))
        if e2e_ran and not any(kube.store.writes(ns, ["client"]) for ns in namespaces):
            _say(f"no client wrote to {', '.join(namespaces)} (the simulator's audit log)")
        return code


def _git_env_only() -> dict[str, str]:
    return {k: v for k, v in _git_env().items() if k.startswith("GIT_")}


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    cwd = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def _make_repo(root: Path, bare: Path, url: str, manifest: str, runner: str) -> tuple[Path, str]:
    """The app's repo with deploy.json and the Git-controlled runner; ``main`` pushed."""
    repo = root / "app"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('hello homelab')\n")
    (repo / "deploy.json").write_text(manifest)
    (repo / "scripts" / "ci").mkdir(parents=True)
    (repo / "scripts" / "ci" / "dev-e2e.sh").write_text(runner)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "app: first version, deploy.json and the dev e2e runner")
    _git(repo, "remote", "add", "origin", url)
    # Fetches go over HTTP like D601's; pushes straight into the bare repo (http-backend serves
    # anonymous fetches only).
    _git(repo, "remote", "set-url", "--push", "origin", str(bare))
    _git(repo, "push", "-q", "origin", "main")
    _git(repo, "switch", "-q", "-c", "greeting")
    (repo / "app.py").write_text("print('hello again, homelab')\n")
    _git(repo, "commit", "-q", "-am", "app: say hello again")
    return repo, _git(repo, "rev-parse", "main")


def _land(repo: Path, say: Callable[[str], None]) -> str:
    """``homelab work land``'s code: rebase onto origin/main, verify, push."""
    from pytest_homelab.core.gitrepo import GitRepo
    from pytest_homelab.land import land, plan_landing, shell_verify

    with _isolated_env(_git_env_only()):
        git = GitRepo.discover(repo)
        plan = plan_landing(
            git,
            remote="origin",
            onto=None,
            strategy="rebase",
            verify_cmd="python3 -m py_compile app.py",
            no_verify=False,
        )
        landed = land(git, plan, verify=shell_verify(str(repo)), progress=say)
    say(
        f"landed {plan.branch} onto {landed.remote}/{landed.target}: {landed.sha[:8]} "
        f"({landed.commits} commit{'s' if landed.commits != 1 else ''})"
    )
    return landed.sha


def _script_ci(ci: WoodpeckerSim, name: str, repo: Path, sha: str) -> int:
    """What the forge's webhook makes Woodpecker do for the push; 0 when no pipeline runs."""
    from pytest_homelab.sim.woodpecker import StepSpec

    if name == "never":
        return 0
    if name == "superseded":
        child = _descendant(repo)
        first = ci.add_pipeline(SLUG, commit=sha, steps=[StepSpec("test", 30.0)])
        ci.advance(0.5)
        # Like Woodpecker: the new push's pipeline exists before it cancels the older one.
        second = ci.add_pipeline(SLUG, commit=child, steps=_steps(child))
        ci.cancel(SLUG, first, superseded_by=second)
        return second
    return ci.add_pipeline(SLUG, commit=sha, steps=_steps(sha, red=name == "red"), appear_after=0.8)


def _descendant(repo: Path) -> str:
    (repo / "NOTES").write_text("follow-up\n")
    _git(repo, "add", "NOTES")
    _git(repo, "commit", "-q", "-m", "notes: a follow-up push")
    _git(repo, "push", "-q", "origin", "HEAD:main")
    return _git(repo, "rev-parse", "HEAD")
