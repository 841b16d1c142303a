"""``homelab doctor`` against the simulated homelab: all ok, then each dependency broken in turn
gives its own problem line and exit 2, and a homelab that is entirely down is reported in time."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import trustme

from pytest_homelab.core.settings import resolve_settings
from pytest_homelab.onboarding.doctor import BUDGET, run_doctor
from pytest_homelab.sim.homelab import SimHomelab
from tests.d601 import D601
from tests.secrets.conftest import Bao, running_bao


class Lab:
    def __init__(self, lab: SimHomelab, repo: Path, home: Path) -> None:
        self.sim = lab
        self.repo = repo
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            **lab.environ(),
        }

    def doctor(
        self, *, only: str | None = None, budget: float = BUDGET
    ) -> tuple[int, dict[str, dict[str, Any]], float]:
        settings = resolve_settings({}, environ=self.env, cwd=self.repo, collect_refused=True)
        out = io.StringIO()
        started = time.monotonic()
        with redirect_stdout(out):
            code = run_doctor(settings, only=only, as_json=True, budget=budget)
        elapsed = time.monotonic() - started
        checks = {c["id"]: c for c in json.loads(out.getvalue())["checks"]}
        return code, checks, elapsed


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "u",
        "GIT_AUTHOR_EMAIL": "u@example.test",
        "GIT_COMMITTER_NAME": "u",
        "GIT_COMMITTER_EMAIL": "u@example.test",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


DEPLOY_JSON = {
    "schemaVersion": 2,
    "environments": {
        "dev": {
            "ci": {"repo": "", "scriptPath": "scripts/ci/dev-e2e.sh", "timeoutMs": 60000},
            "services": [
                {
                    "name": "web",
                    "namespace": "shop-dev",
                    "image": "registry.example.org/homelab/web",
                },
                {
                    "name": "worker",
                    "namespace": "jobs-dev",
                    "kind": "StatefulSet",
                    "image": "registry.example.org/homelab/worker",
                },
            ],
        }
    },
}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with SimHomelab(tmp_path / "lab-root") as sim:
        repo = sim.clone(tmp_path / "app")
        doc = json.loads(json.dumps(DEPLOY_JSON))
        doc["environments"]["dev"]["ci"]["repo"] = sim.repo_url
        (repo / "deploy.json").write_text(json.dumps(doc, indent=2))
        home = tmp_path / "home"
        home.mkdir()
        yield Lab(sim, repo, home)


def problems(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, c in checks.items() if c["status"] == "problem"}


def test_all_ok_on_a_demo_like_homelab(lab: Lab) -> None:
    code, checks, _ = lab.doctor()
    assert code == 0, {k: c["detail"] for k, c in checks.items() if c["status"] != "ok"}
    assert problems(checks) == set()
    for needed in (
        "git.repo-slug",
        "deploy.json",
        "woodpecker.tls",
        "woodpecker.version",
        "woodpecker.user",
        "woodpecker.repo",
        "woodpecker.stream",
        "kube.rbac.shop-dev",
        "kube.rbac.jobs-dev",
        "d601.proxy",
        "d601.tekton",
        "d601.ci-namespace",
        "d601.work-root",
    ):
        assert checks[needed]["status"] == "ok", checks[needed]
    assert "3.17" in checks["woodpecker.version"]["detail"]
    assert "env WOODPECKER_TOKEN" in checks["woodpecker.user"]["detail"]
    assert lab.sim.token not in json.dumps(checks)


def test_only_limits_the_phases(lab: Lab) -> None:
    code, checks, _ = lab.doctor(only="rollout")
    assert code == 0
    assert not any(k.startswith(("woodpecker.", "d601.")) for k in checks)
    assert "kube.api" in checks


def _other_ca(tmp_path: Path) -> str:
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def _server_down(lab: Lab, tmp: Path) -> None:
    lab.sim.ci.stop()


def _wrong_ca(lab: Lab, tmp: Path) -> None:
    lab.env["HOMELAB_CA_BUNDLE"] = _other_ca(tmp)


def _bad_token(lab: Lab, tmp: Path) -> None:
    lab.env["WOODPECKER_TOKEN"] = "not-the-token"


def _repo_unknown(lab: Lab, tmp: Path) -> None:
    lab.env["HOMELAB_WOODPECKER_REPO"] = "homelab/nope"


def _no_rbac(lab: Lab, tmp: Path) -> None:
    lab.sim.kube.rbac.restrict("jobs-dev", ["get pods"])


def _missing_crds(lab: Lab, tmp: Path) -> None:
    for name in ("pipelines", "pipelineruns", "taskruns"):
        lab.sim.kube.store.resources.pop(name)


def _unsafe_work_root(lab: Lab, tmp: Path) -> None:
    root = lab.sim.d601 / "work"
    root.mkdir()
    root.chmod(0o777)


def _writable_env_file(lab: Lab, tmp: Path) -> None:
    (lab.sim.d601 / "ci.env").chmod(0o666)


def _vault_down(lab: Lab, tmp: Path) -> None:
    del lab.env["WOODPECKER_TOKEN"]
    lab.env.update(VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TOKEN="v")


def _no_deploy_json(lab: Lab, tmp: Path) -> None:
    (lab.repo / "deploy.json").unlink()


BREAKS: dict[str, tuple[Callable[[Lab, Path], None], set[str]]] = {
    "server-down": (_server_down, {"woodpecker.tcp"}),
    "wrong-ca": (_wrong_ca, {"woodpecker.tls"}),
    "bad-token": (_bad_token, {"woodpecker.user"}),
    "repo-unknown": (_repo_unknown, {"woodpecker.repo"}),
    "no-rbac-on-one-namespace": (_no_rbac, {"kube.rbac.jobs-dev"}),
    "missing-crds": (_missing_crds, {"d601.tekton"}),
    "unsafe-work-root": (_unsafe_work_root, {"d601.work-root"}),
    "writable-env-file": (_writable_env_file, {"d601.env-file"}),
    "vault-down": (_vault_down, {"vault.reachable"}),
    "no-deploy-json": (_no_deploy_json, {"deploy.json"}),
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_each_broken_dependency_has_its_own_line(lab: Lab, broken: str, tmp_path: Path) -> None:
    breaks, expected = BREAKS[broken]
    breaks(lab, tmp_path)
    code, checks, _ = lab.doctor()
    assert code == 2
    assert problems(checks) == expected, {k: c["detail"] for k, c in checks.items()}
    for check_id in expected:
        assert checks[check_id]["next"], f"{check_id} says what to do next"
    # what the broken check gates is skipped, saying why; the rest still passes
    skipped = {k for k, c in checks.items() if c["status"] == "skipped"}
    for check_id in skipped:
        assert checks[check_id]["detail"].startswith("because "), checks[check_id]
    assert all(c["status"] in ("ok", "skipped") for k, c in checks.items() if k not in expected), (
        checks
    )


def test_a_silent_stream_is_a_warning_not_a_problem(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_homelab.onboarding import doctor_ci

    # a buffering proxy: the stream opens but no byte (not even the ping) arrives in the window
    silent = _silent_https(lab)
    lab.env["HOMELAB_WOODPECKER_DIAL"] = f"127.0.0.1:{silent}"
    monkeypatch.setattr(doctor_ci, "STREAM_WINDOW", 0.5)
    code, checks, _ = lab.doctor(only="ci")
    assert checks["woodpecker.stream"]["status"] == "warning", checks["woodpecker.stream"]
    assert "silent" in checks["woodpecker.stream"]["detail"]
    assert code == 0


def _silent_https(lab: Lab) -> int:
    """A Woodpecker stand-in whose /api/stream/events answers 200 and then says nothing."""
    import ssl
    from http.server import BaseHTTPRequestHandler

    from pytest_homelab.sim.server import SimHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/api/stream/events":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.flush()
                time.sleep(1.5)
                return
            bodies = {
                "/version": {"version": "3.17.0"},
                "/api/user": {"login": "homelab"},
                "/api/repos/lookup/homelab/app": {"id": 1, "full_name": "homelab/app"},
            }
            data = json.dumps(bodies.get(self.path, {})).encode()
            self.send_response(200 if self.path in bodies else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ca = trustme.CA()
    ca_file = lab.repo.parent / "silent-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    lab.env["HOMELAB_CA_BUNDLE"] = str(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("ci.example.org").configure_cert(context)
    server = SimHTTPServer(("127.0.0.1", 0), Handler, context)
    server.start()
    lab.sim._stack.callback(server.stop)
    host = lab.env["WOODPECKER_SERVER"].split("://")[1].split(":")[0]
    lab.env["WOODPECKER_SERVER"] = f"https://{host}:{server.port}"
    return int(server.port)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_everything_down_ends_in_time(lab: Lab, silent_listener: int, tmp_path: Path) -> None:
    port = silent_listener
    kubeconfig = tmp_path / "down-kubeconfig"
    lab.sim.kube.kubeconfig(kubeconfig)
    kubeconfig.write_text(kubeconfig.read_text().replace(f":{lab.sim.kube.port}", f":{port}"))
    known_hosts = tmp_path / "known_hosts"
    pub = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hostkey")],
        check=True,
        capture_output=True,
    )
    assert pub.returncode == 0
    key = (tmp_path / "hostkey.pub").read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(key)}\n")
    lab.env.update(
        HOMELAB_WOODPECKER_DIAL=f"127.0.0.1:{port}",
        KUBECONFIG=str(kubeconfig),
        HOMELAB_D601_TRANSPORT="ssh",
        HOMELAB_D601_HOST="127.0.0.1",
        HOMELAB_D601_PORT=str(port),
        HOMELAB_D601_KNOWN_HOSTS=str(known_hosts),
        HOMELAB_D601_KEY=str(tmp_path / "hostkey"),
        VAULT_ADDR=f"http://127.0.0.1:{port}",
        VAULT_TOKEN="s.silent",
    )
    del lab.env["WOODPECKER_TOKEN"]  # so the token comes from the silent Vault
    code, checks, elapsed = lab.doctor()
    assert code == 2
    assert elapsed <= 15.0, elapsed
    assert {"woodpecker.tls", "vault.auth", "kube.api", "d601.ssh"} <= problems(checks), checks


def test_over_real_ssh_with_an_unknown_host_key(lab: Lab, d601: D601, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    lab.env.update(
        HOMELAB_D601_TRANSPORT="ssh",
        HOMELAB_D601_HOST=d601.host,
        HOMELAB_D601_PORT=str(d601.port),
        HOMELAB_D601_USER=d601.user,
        HOMELAB_D601_KEY=str(d601.key_file),
        HOMELAB_D601_KNOWN_HOSTS=str(empty),
    )
    code, checks, _ = lab.doctor(only="e2e")
    assert code == 2
    assert problems(checks) == {"d601.host-key"}
    assert "ssh-keyscan" in checks["d601.host-key"]["next"]
    assert checks["d601.ssh"]["status"] == "skipped"
    # with the key known, SSH works and the checks run on D601 through it
    lab.env["HOMELAB_D601_KNOWN_HOSTS"] = str(d601.known_hosts)
    code, checks, _ = lab.doctor(only="e2e")
    assert checks["d601.ssh"]["status"] == "ok", checks["d601.ssh"]
    assert checks["d601.git"]["status"] == "ok", checks["d601.git"]


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A real ``bao server -dev`` (OpenBao, Vault's API)."""
    with running_bao(tmp_path_factory.mktemp("doctor-bao")) as server:
        yield server


def test_the_token_from_vault(lab: Lab, vault: Bao) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path="ci/doctor", secret={"woodpecker_api_token": lab.sim.token}
    )
    del lab.env["WOODPECKER_TOKEN"]
    lab.env.update(
        VAULT_ADDR=vault.addr, VAULT_TOKEN=vault.root_token, HOMELAB_VAULT_PATH="ci/doctor"
    )
    code, checks, _ = lab.doctor(only="ci")
    assert code == 0, {k: c["detail"] for k, c in checks.items() if c["status"] != "ok"}
    for check_id in ("vault.reachable", "vault.auth", "vault.secret", "woodpecker.user"):
        assert checks[check_id]["status"] == "ok", checks[check_id]
    assert "Vault secret/ci/doctor" in checks["woodpecker.user"]["detail"]
    shown = json.dumps(checks)
    assert lab.sim.token not in shown and vault.root_token not in shown
    # a token Vault refuses: its own line, the rest skipped
    lab.env["VAULT_TOKEN"] = "s.not-a-token"
    code, checks, _ = lab.doctor(only="ci")
    assert code == 2
    assert problems(checks) == {"vault.auth"}, checks
    assert checks["vault.secret"]["status"] == "skipped"
    # the secret is there but not the field
    lab.env.update(VAULT_TOKEN=vault.root_token, HOMELAB_VAULT_FIELD="nope")
    code, checks, _ = lab.doctor(only="ci")
    assert problems(checks) == {"vault.secret"}, checks
    assert "no field nope" in checks["vault.secret"]["detail"]


def test_name_resolution_fails_or_hangs(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a dial address the URL's host is resolved, with its own short timeout (the
    resolver is replaced here: tests never ask the machine's DNS)."""
    import threading

    del lab.env["HOMELAB_WOODPECKER_DIAL"]
    real = socket.getaddrinfo

    def unknown(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "ci.example.org":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    code, checks, _ = lab.doctor(only="ci")
    assert code == 2
    assert problems(checks) == {"woodpecker.dns"}
    assert "woodpecker_dial" in checks["woodpecker.dns"]["next"]
    release = threading.Event()

    def hangs(host: str, *args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hangs)
    try:
        code, checks, elapsed = lab.doctor(only="ci")
    finally:
        release.set()
    assert problems(checks) == {"woodpecker.dns"}
    assert "did not resolve within" in checks["woodpecker.dns"]["detail"]
    assert elapsed < 10


def test_outside_a_git_repository(lab: Lab, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    lab.repo = elsewhere
    code, checks, _ = lab.doctor(only="ci")
    assert code == 2
    assert problems(checks) == {"git.repository", "deploy.json"}, checks
    assert checks["git.repo-slug"]["status"] == "skipped"
    assert checks["woodpecker.repo"]["status"] == "skipped"
    assert checks["woodpecker.user"]["status"] == "ok"  # what does not need the repo still runs


def test_the_command_line(lab: Lab) -> None:
    """``homelab doctor`` as a user runs it: text lines, exit 2 on a problem, 0 when ready."""
    import sys

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        program = "import sys; from pytest_homelab.cli import main; sys.exit(main())"
        return subprocess.run(
            [sys.executable, "-c", program, "doctor", *args],
            cwd=lab.repo,
            env=lab.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    lab.env["WOODPECKER_TOKEN"] = "not-the-token"
    done = doctor("--only", "ci")
    assert done.returncode == 2, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if " woodpecker.user " in ln)
    assert line.startswith("problem") and "401" in line and "next: " in line
    assert done.stdout.splitlines()[-1].startswith("doctor: not ready")
    assert "not-the-token" not in done.stdout + done.stderr
    lab.env["WOODPECKER_TOKEN"] = lab.sim.token
    done = doctor("--only", "ci", "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["exit_code"] == 0
    bad = doctor("--only", "deploy")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_the_checks_on_d601_never_get_the_tokens(lab: Lab) -> None:
    """The local transport runs D601's env file and tools: not with our credentials."""
    spy = lab.sim.d601 / "seen-env"
    with (lab.sim.d601 / "ci.env").open("a") as env_file:
        env_file.write(f'env > "{spy}"\n')
    lab.env["VAULT_TOKEN"] = "s.vault-token-value"
    code, checks, _ = lab.doctor(only="e2e")
    assert code == 0, checks
    assert checks["d601.env-file"]["status"] == "ok", checks["d601.env-file"]
    seen = spy.read_text()
    assert "HOMELAB_E2E_WORK_ROOT" in seen  # the spy ran with the environment
    assert lab.sim.token not in seen and "s.vault-token-value" not in seen


def test_a_check_that_hangs_past_the_budget(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a check does, the run ends at its budget; what was found is kept."""
    import threading

    from pytest_homelab.onboarding import kubeapi

    release = threading.Event()

    def hangs(*args: Any, **kwargs: Any) -> tuple[bool, str]:
        release.wait(30)
        return True, ""

    import kubernetes.client  # noqa: F401 - imported before the clock starts: slow under load

    monkeypatch.setattr(kubeapi, "can_i", hangs)
    try:
        code, checks, elapsed = lab.doctor(only="rollout", budget=5.0)
    finally:
        release.set()
    assert elapsed < 5.0 + 2.0, elapsed
    assert code == 2, checks
    assert checks["kube.api"]["status"] == "ok"
    assert checks["rollout.doctor"]["status"] == "problem"


def test_each_probe_url_resolves(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The smoke phase's probe URLs: their host (or dial host) resolves; the machine's DNS is
    never asked here (the resolver is replaced)."""
    doc = json.loads((lab.repo / "deploy.json").read_text())
    web, worker = doc["environments"]["dev"]["services"]
    web["probe"] = {"url": "https://web.example.org/version"}
    worker["probe"] = {"url": "https://worker.example.org/v", "dial": "127.0.0.1:9"}
    (lab.repo / "deploy.json").write_text(json.dumps(doc))
    real = socket.getaddrinfo

    def resolver(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".example.org"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    code, checks, _ = lab.doctor(only="rollout")
    assert code == 2
    assert problems(checks) == {"probe.web"}, checks
    assert "web.example.org does not resolve" in checks["probe.web"]["detail"]
    assert "probe" in checks["probe.web"]["next"]
    assert "127.0.0.1 is an address" in checks["probe.worker"]["detail"]


def test_a_refused_setting_is_a_problem_line(lab: Lab) -> None:
    """The repository may not say where the token goes: doctor names the refused value (the
    rest of the chain is still checked with what the user set)."""
    (lab.repo / ".homelab.toml").write_text('woodpecker_dial = "127.0.0.3:443"\n')
    code, checks, _ = lab.doctor(only="ci")
    assert code == 2
    assert problems(checks) == {"settings.woodpecker_dial"}, checks
    line = checks["settings.woodpecker_dial"]
    assert "was refused" in line["detail"] and "trusted_repos" in line["next"]
    assert checks["woodpecker.user"]["status"] == "ok"  # dialed where the user said
