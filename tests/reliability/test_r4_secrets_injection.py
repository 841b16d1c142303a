"""R4: secrets and injection.

* The leak guard (tests/reliability/leakguard.py, autouse in this directory) catches a secret in
  stdout, stderr, captured output read by the test, logs, the failure text, JUnit properties and
  files — shown here on a session of its own.
* TLS verification cannot be turned off through any option of the dialer: generated
  combinations of dial address, CA bundle, timeout, TLS context and environment never complete a
  request to a server whose certificate is untrusted, for another name, or expired.
* SSH refuses host keys known_hosts does not vouch for (beyond tests/remote): revoked entries
  and certificate-authority lines.
* Generated launcher inputs (≥ 1000 in soak mode) never escape their quoting.
* scriptPath traversal — ``..``, absolute paths, symlinks, unicode look-alikes — is refused.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_homelab.cli import build_parser, main
from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.manifest import validate_document
from pytest_homelab.core.outcomes import BadInput, HomelabError, InfraError
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.settings import OPTIONS
from pytest_homelab.core.transport import DialingTransport, JsonApi, make_http_client
from pytest_homelab.e2e.launcher import LaunchParams, launcher_text, make_run_id
from pytest_homelab.sim.gitserver import GitHttpServer
from tests.d601 import descendants
from tests.manifest.test_properties import hostile_paths
from tests.reliability.figures import figure
from tests.reliability.leakguard import LeakGuard
from tests.runs import wait_run_result
from tests.samples import ci_block, deploy_doc, environment
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.conftest import Proxy
    from tests.d601 import D601

HOSTNAME = "ci.example.test"
SHA = "0123456789abcdef0123456789abcdef01234567"
CI_LAUNCHES, SOAK_LAUNCHES = 200, 1000
CI_TLS, SOAK_TLS = 60, 300
TLS_TOKEN = "r4-tls-token-61be0f"


def fixed(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# -- the leak guard catches every way out ---------------------------------------------------------

INNER_CONFTEST = """
import pytest
from tests.reliability.leakguard import leak_guard, pytest_runtest_makereport

@pytest.fixture(autouse=True)
def _guard(leak_guard):
    return leak_guard
"""

INNER_TESTS = """
import logging, sys
from pytest_homelab.core.secrets import Secret

TOKEN = Secret("inner-token-" + "4d2f9a61c0")

def test_clean():
    print("all good", TOKEN)

def test_stdout():
    print("token is", TOKEN.reveal())

def test_stderr():
    sys.stderr.write(TOKEN.reveal() + "\\n")

def test_read_back(capsys):
    print(TOKEN.reveal())
    capsys.readouterr()  # consumed: the guard still sees it

def test_log():
    logging.getLogger("x").warning("auth %s", TOKEN.reveal())

def test_exception_text():
    raise RuntimeError("bad token " + TOKEN.reveal())

def test_junit_property(record_property):
    record_property("token", TOKEN.reveal())

def test_file(tmp_path):
    (tmp_path / "junit.xml").write_text("<x>" + TOKEN.reveal() + "</x>")

def test_env_token(monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "hvs.inner-" + "77ab31c9")
    print("hvs.inner-" + "77ab31c9")
"""


def test_the_leak_guard_catches_every_way_out(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session of its own: each leaking test errors at teardown; the clean one passes."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1 + 7  # every test but test_exception_text passes its call
    assert outcomes.get("failed") == 1
    assert outcomes.get("errors") == 8, result.stdout.str()
    text = result.stdout.str()
    for where in (
        "call stdout",
        "call stderr",
        "output read by the test",
        "call log",
        "call failure text",
        "JUnit property token",
        "junit.xml",
    ):
        assert where in text, where
    assert "a secret leaked" in text and "in***(22 chars)" in text  # named, never shown
    assert re.search(r"ERROR at teardown of test_clean", text) is None


# -- TLS verification cannot be turned off ----------------------------------------------------


@dataclass
class TlsServer:
    name: str
    port: int
    httpd: ThreadingHTTPServer
    thread: threading.Thread


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(name: str, cert: trustme.LeafCert) -> TlsServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    httpd = ThreadingHTTPServer(("127.0.0.2", 0), _Ok)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return TlsServer(name, int(httpd.server_address[1]), httpd, thread)


@dataclass
class TlsLab:
    servers: list[TlsServer]
    good: TlsServer  # trusted CA, right name: the control that must work
    bundles: dict[str, Path | None]


@pytest.fixture(scope="module")
def tls_lab(
    ca: trustme.CA, ca_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsLab]:
    """Servers whose certificates the client must refuse, and one it must accept."""
    rogue, unrelated = trustme.CA(), trustme.CA()
    root = tmp_path_factory.mktemp("tls")
    unrelated_pem = root / "unrelated.pem"
    unrelated.cert_pem.write_to_path(str(unrelated_pem))
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    servers = [
        serve("untrusted CA", rogue.issue_cert(HOSTNAME)),
        serve("another name", ca.issue_cert("other.example.test")),
        serve(
            "expired",
            ca.issue_cert(HOSTNAME, not_before=past - datetime.timedelta(days=30), not_after=past),
        ),
    ]
    good = serve("good", ca.issue_cert(HOSTNAME))
    try:
        yield TlsLab(
            servers, good, {"system": None, "trusted": ca_bundle, "unrelated": unrelated_pem}
        )
    finally:
        for server in [*servers, good]:
            server.httpd.shutdown()
            server.httpd.server_close()
            server.thread.join(timeout=5)


def weakened(kind: str, ca_bundle: Path) -> ssl.SSLContext | None:
    """A TLS context someone might pass to turn verification down."""
    if kind == "none":
        return None
    context = ssl.create_default_context(cafile=str(ca_bundle))
    if kind in ("no hostname check", "CERT_NONE"):
        context.check_hostname = False
    if kind == "CERT_NONE":
        context.verify_mode = ssl.CERT_NONE
    if kind == "CERT_OPTIONAL":
        context.verify_mode = ssl.CERT_OPTIONAL
    if kind == "default":
        context = ssl.create_default_context()
    return context


ENVIRONMENTS = [
    {},
    {"PYTHONHTTPSVERIFY": "0"},
    {"SSL_CERT_FILE": "/dev/null", "SSL_CERT_DIR": "/nonexistent"},
    {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""},
    {"HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*"},
    {"HOMELAB_INSECURE": "1", "WOODPECKER_SKIP_VERIFY": "true", "VAULT_SKIP_VERIFY": "1"},
]


def attempt(
    server: TlsServer, dial: str, bundle: Path | None, context: ssl.SSLContext | None, path: str
) -> str:
    """``ok`` if a request completed, else why it did not."""
    url = f"https://{HOSTNAME}:{server.port}"
    dial_to = {"ip": "127.0.0.2", "ip:port": f"127.0.0.2:{server.port}"}.get(dial)
    if dial == "url ip":
        url, dial_to = f"https://127.0.0.2:{server.port}", None
    try:
        client = make_http_client(url, dial=dial_to, ca_bundle=bundle, timeout=3.0, verify=context)
    except BadInput as exc:
        return f"refused at construction: {exc.message}"
    try:
        if path == "json":
            api = JsonApi(client, token=Secret(TLS_TOKEN), service="Woodpecker")
            api.get("/", deadline=Deadline.after(5))
            return "ok"
        response = client.get("/")
        return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
    except InfraError as exc:
        return f"infra: {exc.message}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def test_tls_verification_cannot_be_turned_off(
    tls_lab: TlsLab,
    ca_bundle: Path,
    soak: bool,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    """Generated option combinations never complete a request to a server they must refuse."""
    fig = figure("R4 TLS verification", mode)
    assert attempt(tls_lab.good, "ip:port", ca_bundle, None, "json") == "ok"  # the control

    @fixed(SOAK_TLS if soak else CI_TLS)
    @given(
        st.sampled_from(tls_lab.servers),
        st.sampled_from(["ip", "ip:port", "url ip"]),
        st.sampled_from(sorted(tls_lab.bundles)),
        st.sampled_from(["none", "default", "no hostname check", "CERT_NONE", "CERT_OPTIONAL"]),
        st.sampled_from(range(len(ENVIRONMENTS))),
        st.sampled_from(["raw", "json"]),
    )
    def check(server: TlsServer, dial: str, bundle: str, context: str, env: int, path: str) -> None:
        with monkeypatch.context() as patch:
            for key, value in ENVIRONMENTS[env].items():
                patch.setenv(key, value)
            started = time.monotonic()
            why = attempt(server, dial, tls_lab.bundles[bundle], weakened(context, ca_bundle), path)
        case = f"{server.name} dial={dial} bundle={bundle} context={context} env={env} {path}"
        leak_guard.record(f"TLS {case}", why)
        fig.run(
            outcome="refused" if why != "ok" else "ACCEPTED",
            wall=time.monotonic() - started,
            wrong=f"{case}: the request went through" if why == "ok" else None,
        )
        assert why != "ok", case
        if path == "json" and why.startswith("infra:"):
            assert "TLS verification" in why or "certificate" in why.lower(), why

    check()
    assert fig.wrong == []


def test_no_option_or_flag_turns_verification_off() -> None:
    """No setting, environment variable or CLI flag is about skipping TLS verification."""
    pattern = re.compile(r"insecure|skip.?verif|ssl.?verif|tls.?verif|verify.?(ssl|tls)|no.?verif")
    for option in OPTIONS:
        names = [option.key, option.flag, option.cli or "", *option.env]
        assert not [n for n in names if pattern.search(n.lower()) and n != "verify_cmd"], names

    def flags(parser: Any, verb: str) -> Iterator[tuple[str, str]]:
        for action in parser._actions:
            for flag in action.option_strings:
                yield verb, flag
            choices = getattr(action, "choices", None)
            if not isinstance(choices, dict):  # a flag's own choices (doctor --only ci|…)
                continue
            for name, sub in choices.items():
                if hasattr(sub, "_actions"):
                    yield from flags(sub, f"{verb} {name}".strip())

    found = [(verb, flag) for verb, flag in flags(build_parser(), "") if pattern.search(flag)]
    assert found == [("work land", "--no-verify")]  # skips the verify command, not TLS


def test_the_dialer_itself_refuses_a_non_verifying_context(tls_lab: TlsLab) -> None:
    server = tls_lab.servers[0]
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    try:
        transport = DialingTransport(HOSTNAME, f"127.0.0.2:{server.port}", verify=insecure)
    except BadInput:
        return
    url = f"https://{HOSTNAME}:{server.port}"
    with httpx.Client(base_url=url, transport=transport) as client, pytest.raises(httpx.HTTPError):
        client.get("/")


def test_the_cli_refuses_each_untrusted_server(
    tls_lab: TlsLab,
    ca_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    leak_guard: LeakGuard,
) -> None:
    """`homelab ci status` through the dialer: exit 2, the TLS failure named, no token shown."""
    token = "r4-cli-token-5e0c92"
    leak_guard.watch(token)
    for key in list(os.environ):
        if key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_")) or key == "WP_TOKEN":
            monkeypatch.delenv(key)
    monkeypatch.setenv("WOODPECKER_TOKEN", token)
    monkeypatch.chdir(tmp_path)
    for server in tls_lab.servers:
        code = main(
            [
                "ci",
                "status",
                SHA,
                "--repo",
                "homelab/app",
                "--woodpecker-server",
                f"https://{HOSTNAME}:{server.port}",
                "--woodpecker-dial",
                f"127.0.0.2:{server.port}",
                "--ca-bundle",
                str(ca_bundle),
            ]
        )
        out, err = capsys.readouterr()
        assert code == 2, (server.name, out, err)
        assert "TLS verification" in err and "cannot be turned off" in err, err
        assert token not in out + err


# -- SSH host keys beyond tests/remote -----------------------------------------------------------


@pytest.mark.parametrize("how", ["revoked", "cert-authority only", "revoked only"])
def test_ssh_refuses_keys_known_hosts_does_not_vouch_for(
    how: str, d601: D601, tmp_path: Path
) -> None:
    """A @revoked entry for D601's key, or the key only as a @cert-authority line: refused,
    before authentication, known_hosts untouched."""
    name = f"[{d601.host}]:{d601.port}"
    lines = {
        "revoked": [f"@revoked {name} {d601.host_key_pub}", f"{name} {d601.host_key_pub}"],
        "revoked only": [f"@revoked {name} {d601.host_key_pub}"],
        "cert-authority only": [f"@cert-authority {name} {d601.host_key_pub}"],
    }[how]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    before = known.read_bytes()
    mark = d601.log_mark()
    with d601.remote(known_hosts=str(known)) as remote, pytest.raises(HomelabError) as caught:
        remote.run("touch r4-should-never-run")
    assert type(caught.value).__name__ in ("AuthError", "BadInput"), caught.value
    # Whatever the client sent (if it connected at all), the sshd child serving it has logged it
    # before it exits: wait until the listener serves no connection.
    wait_until(lambda: not descendants(d601.pid), what="sshd to end every connection", timeout=10)
    log = d601.log_since(mark)
    assert "Accepted" not in log and "userauth-request" not in log
    assert known.read_bytes() == before
    assert not (d601.home / "r4-should-never-run").exists()


# -- the launcher's quoting ----------------------------------------------------------------------

CANARY = "r4-canary"
HOSTILE = "'\"`$\\;|&<>(){}[]*?!#~ \t\n\r\x1b\u00a0\u2028\u202e" + "$(touch r4-canary)"
hostile_text = st.text(alphabet=st.sampled_from(list(HOSTILE) + list("aZ09.-_/:@%+=")), max_size=40)
url_body = st.text(alphabet="ABCabc019._~%@:/+-", min_size=1, max_size=60)
path_part = st.text(alphabet="Aa09._-", min_size=1, max_size=12).filter(
    lambda p: p not in (".", "..")
)


@st.composite
def launch_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Launcher parameters: mostly the widest values validation accepts, sometimes hostile."""
    hostile = draw(st.booleans()) and draw(st.booleans())  # about a quarter
    scheme = draw(st.sampled_from(["https://", "http://", "ssh://"]))
    repo = draw(hostile_text) if hostile else scheme + draw(url_body)
    if draw(st.booleans()) and not hostile:
        repo = (
            draw(st.sampled_from(["git", "forgejo", "a.b-c_d"])) + "@host.example:" + draw(url_body)
        )
    parts = draw(st.lists(path_part, min_size=1, max_size=4))
    root = draw(st.sampled_from(["$HOME/", "/"])) + "/".join(parts)
    return {
        "repo": repo,
        "commit": draw(st.from_regex(r"\A[0-9a-f]{40}\Z", fullmatch=True))
        if not hostile
        else draw(st.sampled_from([SHA, SHA + "; id", "$(id)" + SHA[:34]])),
        "script_path": "scripts/ci/"
        + draw(st.text(alphabet="Aa09_", min_size=1, max_size=4))
        + draw(st.text(alphabet="Aa09_.-", max_size=20)).replace("..", "._")
        + ".sh",
        "run_id": draw(hostile_text)
        if hostile and draw(st.booleans())
        else "e2e-"
        + draw(st.from_regex(r"\A[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}\Z", fullmatch=True)),
        "environment": draw(
            st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z", fullmatch=True)
        ),
        "timeout_ms": draw(st.integers(1000, 86_400_000)),
        "keep_namespace": draw(st.booleans()),
        "work_root": root if not hostile else draw(hostile_text),
        "result_root": draw(st.sampled_from(["$HOME/.unidesk/runs", root])),
        "env_file": draw(st.sampled_from(["$HOME/.unidesk/ci.env", root + "/ci.env"])),
    }


VARIABLES = {
    "RUN_ID": "run_id",
    "REPO": "repo",
    "COMMIT": "commit",
    "SCRIPT_PATH": "script_path",
    "ENVIRONMENT": "environment",
    "TIMEOUT_MS": "timeout_ms",
    "KEEP_NAMESPACE": "keep_namespace",
    "WORK_ROOT": "work_root",
    "RESULT_ROOT": "result_root",
    "ENV_FILE": "env_file",
}
FAKE_HOME = "/home/d601"


def expected_value(key: str, value: Any) -> str:
    if key == "keep_namespace":
        return "1" if value else "0"
    text = str(value)
    return FAKE_HOME + text[len("$HOME") :] if text.startswith("$HOME/") else text


def test_generated_launcher_inputs_never_escape_quoting(
    soak: bool, mode: str, tmp_path: Path
) -> None:
    """≥ 1000 (soak) generated parameter sets: refused before anything is sent, or every value
    reads back in bash exactly as given (``$HOME`` expanded on D601), nothing executed, and the
    whole launcher parses."""
    fig = figure("R4 launcher quoting", mode)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()

    @fixed(SOAK_LAUNCHES if soak else CI_LAUNCHES)
    @given(launch_inputs())
    def check(values: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            params = LaunchParams(**values)
        except BadInput as exc:
            assert "nothing was sent" in str(exc)
            fig.run(outcome="refused", wall=time.monotonic() - started)
            return
        text = launcher_text(params)
        assignments = text.split("\numask 077")[0]
        names = list(VARIABLES)
        probe = assignments + "\nprintf '%s\\0' " + " ".join(f'"${n}"' for n in names) + "\n"
        done = subprocess.run(
            ["bash", "-c", probe],
            capture_output=True,
            cwd=sandbox,
            env={"HOME": FAKE_HOME, "PATH": "/usr/bin:/bin"},
            check=False,
            timeout=30,
        )
        syntax = subprocess.run(
            ["bash", "-n"], input=text.encode(), capture_output=True, check=False, timeout=30
        )
        got = done.stdout.decode(errors="surrogateescape").split("\0")[:-1]
        want = [expected_value(VARIABLES[n], getattr(params, VARIABLES[n])) for n in names]
        problem = None
        if done.returncode != 0 or got != want:
            problem = f"read back {got!r}, expected {want!r} ({done.stderr[-300:]!r})"
        elif syntax.returncode != 0:
            problem = f"the launcher does not parse: {syntax.stderr[-300:]!r}"
        elif list(sandbox.iterdir()):
            problem = f"something ran: {list(sandbox.iterdir())}"
        fig.run(
            outcome="quoted" if problem is None else "ESCAPED",
            wall=time.monotonic() - started,
            wrong=f"{values!r}: {problem}" if problem else None,
        )
        assert problem is None, problem

    check()
    summary = fig.summary()
    assert summary["runs"] >= (SOAK_LAUNCHES if soak else CI_LAUNCHES)
    assert fig.outcomes["quoted"] >= summary["runs"] // 2  # mostly accepted: quoting is tested
    assert not (sandbox / CANARY).exists()


# -- scriptPath traversal ------------------------------------------------------------------------

LOOK_ALIKES = [
    "scripts/ci/../../etc/passwd.sh",
    "scripts/ci/..%2f..%2fx.sh",
    "/scripts/ci/x.sh",
    "/etc/x.sh",
    "scripts/ci/./x.sh",
    "scripts//ci/x.sh",
    "scripts/ci/x.sh/",
    "scripts\\ci\\x.sh",
    "scripts/ci\\..\\x.sh",
    "scripts/ci/\u2024\u2024/x.sh",  # one dot leaders
    "scripts/ci/\uff0e\uff0e/x.sh",  # fullwidth full stops
    "scripts\u2215ci\u2215x.sh",  # division slashes
    "scripts/ci/x\u2044..\u2044y.sh",  # fraction slashes
    "scripts/ci/x.\u0455h",  # Cyrillic s
    "scripts/ci/x\u200b.sh",  # zero-width space
    "ѕcripts/ci/x.sh",  # Cyrillic s in the directory
    "scripts/ci/x.sh\u0000",
    "scripts/ci/x.sh\n../../y.sh",
    "~/scripts/ci/x.sh",
    "$HOME/scripts/ci/x.sh",
    "scripts/ci/$(id).sh",
]


def manifest_with(script: str) -> dict[str, Any]:
    return deploy_doc(dev=environment(ci=ci_block(script=script, timeout_ms=60000)))


def refused_everywhere(script: str) -> str | None:
    """None when deploy.json validation and the launcher both refuse ``script``."""
    issues = [str(i) for i in validate_document(manifest_with(script))]
    if not any(i.startswith("environments.dev.ci.scriptPath") for i in issues):
        return f"deploy.json accepts {script!r}"
    try:
        LaunchParams("https://h/x", SHA, script, "e2e-r4", "dev", 60000)
    except BadInput:
        return None
    return f"the launcher accepts {script!r}"


@pytest.mark.parametrize("script", LOOK_ALIKES)
def test_script_path_look_alikes_are_refused(script: str) -> None:
    assert refused_everywhere(script) is None


def test_generated_script_path_traversal_is_refused(soak: bool, mode: str) -> None:
    """tests/manifest's hostile scriptPaths, at both layers: deploy.json and the launcher."""
    fig = figure("R4 scriptPath traversal", mode)

    @fixed(500 if soak else 100)
    @given(hostile_paths())
    def check(script: str) -> None:
        problem = refused_everywhere(script)
        fig.run(outcome="refused" if problem is None else "accepted", wrong=problem)
        assert problem is None

    check()


@dataclass
class Forge:
    server: GitHttpServer
    url: str
    link_commit: str  # scripts/ci/link.sh is a symlink to a script outside the repository
    dir_commit: str  # scripts/ci itself is a symlink to ../elsewhere, which holds x.sh
    home: Path
    canary: Path


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Forge]:
    """A repo with two commits of symlinked runners (a file outside it, a linked directory)."""
    for key, value in {
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }.items():
        monkeypatch.setenv(key, value)

    def git(cwd: Path, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout.strip()

    canary = tmp_path / "outside-ran"
    outside = tmp_path / "outside.sh"
    outside.write_text(f"#!/bin/bash\ntouch {shlex.quote(str(canary))}\n")
    outside.chmod(0o755)
    (tmp_path / "git").mkdir()
    git(tmp_path / "git", "init", "-q", "--bare", "app.git")
    work = tmp_path / "work"
    (work / "scripts" / "ci").mkdir(parents=True)
    (work / "elsewhere").mkdir()
    (work / "elsewhere" / "x.sh").write_text(f"#!/bin/bash\ntouch {shlex.quote(str(canary))}\n")
    os.symlink(str(outside), work / "scripts" / "ci" / "link.sh")
    (work / "deploy.json").write_text(json.dumps(manifest_with("scripts/ci/link.sh")))
    git(work, "init", "-q", "-b", "master")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "a symlinked runner")
    link_commit = git(work, "rev-parse", "HEAD")
    git(work, "rm", "-q", "-r", "scripts/ci")
    (work / "scripts").mkdir(exist_ok=True)
    os.symlink("../elsewhere", work / "scripts" / "ci")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "a symlinked directory")
    git(work, "push", "-q", str(tmp_path / "git" / "app.git"), "master")
    home = tmp_path / "d601-home"
    home.mkdir()
    with GitHttpServer(tmp_path / "git") as server:
        url = server.repo_url("app.git")
        yield Forge(server, url, link_commit, git(work, "rev-parse", "HEAD"), home, canary)


def launch(forge: Forge, commit: str, script: str, proxy: Proxy) -> dict[str, Any]:
    """Run the launcher as D601 would (``bash -s``, its own HOME) and wait for result.json."""
    params = LaunchParams(
        repo=forge.url,
        commit=commit,
        script_path=script,
        run_id=make_run_id(commit),
        environment="dev",
        timeout_ms=60_000,
        work_root=str(forge.home / "work"),
    )
    settings_file = forge.home / ".unidesk" / "ci.env"
    settings_file.parent.mkdir(exist_ok=True)
    settings_file.write_text(f"HOMELAB_E2E_PROXY={proxy.url}\n")
    done = subprocess.run(
        ["bash", "-s"],
        input=launcher_text(params),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=forge.home,
        env={"HOME": str(forge.home), "PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr
    return wait_run_result(forge.home / ".unidesk" / "runs" / params.run_id)


def test_a_script_path_through_a_symlinked_directory_is_refused(forge: Forge, proxy: Proxy) -> None:
    """scripts/ci → ../elsewhere: git does not follow it, so there is no runner."""
    result = launch(forge, forge.dir_commit, "scripts/ci/x.sh", proxy)
    assert (result["ok"], result["status"]) == (False, "no-runner")
    assert not forge.canary.exists()


def test_a_symlinked_runner_is_refused(forge: Forge, proxy: Proxy) -> None:
    """scripts/ci/link.sh → a script outside the repository: refused, and it never runs."""
    result = launch(forge, forge.link_commit, "scripts/ci/link.sh", proxy)
    assert not forge.canary.exists(), "the file outside the commit was executed"
    assert result["ok"] is False and result["status"] in ("no-runner", "refused")
