"""R3: bad input. Hypothesis-generated deploy.json documents, flag values, git remote URLs,
commit strings and run ids, each fed to the real ``homelab`` entry point (``cli.main``): exit 2,
a message that names what was wrong (the JSON path for deploy.json), never a traceback, and no
partial side effect — nothing connects to the Woodpecker server or D601 (both are a tripwire
listener that counts connections), no JUnit is written, the repository is left as it was.
"""

from __future__ import annotations

import json
import os
import re
import socket
import string
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_homelab.cli import main
from tests.manifest.test_properties import hostile_paths
from tests.reliability.figures import Figure, figure
from tests.reliability.leakguard import LeakGuard
from tests.samples import GOOD_DEPLOY, SHA

TOKEN = "r3-wp-token-0c4a7e91d2"
COUNTS = {  # examples per kind: (CI, soak); soak totals 640 ≥ 500
    "deploy.json": (60, 200),
    "flags": (40, 120),
    "git remote URL": (30, 100),
    "commit": (30, 100),
    "run id": (40, 120),
}
SERVICE_FIELDS = ("name", "namespace", "deployment", "container", "image", "commit", "kind")


class Tripwire:
    """A loopback listener standing in for every server: any connection is a side effect."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="r3-tripwire", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class Workspace:
    """A repo with a remote and a valid deploy.json; every server points at the tripwire."""

    root: Path
    state: Path
    tripwire: Tripwire
    capsys: pytest.CaptureFixture[str]
    fig: Figure
    guard: LeakGuard
    counts: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.tripwire.port}"

    def d601(self) -> list[str]:
        known = self.root.parent / "known_hosts"
        known.touch()
        return [
            "--d601-host",
            "127.0.0.1",
            "--d601-port",
            str(self.tripwire.port),
            "--d601-known-hosts",
            str(known),
        ]

    def done(self, kind: str, soak: bool) -> None:
        """After a kind's examples: no wrong verdict, and in soak mode the full count."""
        assert self.wrong == [], "\n".join(self.wrong[:5])
        if soak:
            assert self.counts.get(kind, 0) >= COUNTS[kind][1], self.counts

    def run(
        self, kind: str, argv: list[str], names: Callable[[str], bool], detail: str = ""
    ) -> None:
        """Run ``homelab argv``; it must exit 2, say what was wrong and touch nothing."""
        before = self.tripwire.connections
        where = f"{kind}: homelab {' '.join(argv)!r}"[:300]
        failure: str | None = None
        started = time.monotonic()
        try:
            code = main(argv)
        except SystemExit as exc:  # main() turns argparse's exits into return codes itself
            code = exc.code if isinstance(exc.code, int) else -1
        except BaseException:
            failure = traceback.format_exc()
            code = -1
        wall = time.monotonic() - started
        out, err = self.capsys.readouterr()
        self.guard.record(where, out + err)
        problem = None
        if failure is None and "Traceback" in out + err:
            failure = (out + err)[-2000:]
        if failure is not None:
            problem = "traceback"
        elif code != 2:
            problem = f"exit {code}, expected 2"
        elif not names(out + err):
            problem = "the message does not name what was wrong"
        elif self.tripwire.connections != before:
            problem = "it connected to a server (a side effect)"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if problem:
            self.wrong.append(f"{where}: {problem} {detail}\n{(out + err)[-600:]}")
        cases = self.fig.extra.setdefault("cases_by_kind", {})
        cases[kind] = cases.get(kind, 0) + 1
        self.fig.run(
            outcome=f"exit {code}",
            wall=wall,
            wrong=f"{where}: {problem} {detail}\n{(out + err)[-600:]}" if problem else None,
            traceback=f"{where}: {failure}" if failure else None,
        )


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def repo_state(root: Path) -> tuple[str, str, list[str]]:
    """Refs, status and files: what a verb must never change."""
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)").stdout
    status = git(root, "status", "--porcelain", "--ignored").stdout
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts)
    return refs, status, files


GOOD = GOOD_DEPLOY  # tests/samples.py: the known-good document, broken here one way at a time


@pytest.fixture
def workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    leak_guard: LeakGuard,
) -> Iterator[Workspace]:
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE")) or key == "WP_TOKEN":
            monkeypatch.delenv(key)
    state = home / ".state"
    for key, value in {
        "HOME": str(home),
        "XDG_STATE_HOME": str(state),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
        "WOODPECKER_TOKEN": TOKEN,
        "HOMELAB_CI_TIMEOUT": "3s",  # if a case wrongly reaches a server, it gives up soon
    }.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "deploy.json").write_text(json.dumps(GOOD, indent=2) + "\n")
    (root / "README").write_text("first\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://git.example.test/homelab/app.git")
    monkeypatch.chdir(root)
    leak_guard.watch(TOKEN)
    tripwire = Tripwire()
    fig = figure("R3 bad input", mode)
    space = Workspace(root, state, tripwire, capsys, fig, leak_guard)
    before = repo_state(root)
    try:
        yield space
    finally:
        tripwire.close()
    git(root, "remote", "set-url", "origin", "https://git.example.test/homelab/app.git")
    assert repo_state(root) == before, "a verb changed the repository"
    assert not (state / "homelab").exists(), "a verb wrote a JUnit file"
    assert tripwire.connections == 0


def examples(kind: str, soak: bool) -> settings:
    ci, long = COUNTS[kind]
    return settings(
        max_examples=long if soak else ci,
        deadline=None,
        derandomize=True,  # a fixed seed: the same examples every run
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# -- deploy.json --------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def render(parts: list[str | int]) -> str:
    """A JSON path as the docs write it: ``environments.dev.services[2].image``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def spoil(valid: str) -> st.SearchStrategy[str]:
    """Strings that break a DNS-ish rule: a bad character, a bad end, too long, empty."""
    bad_chars = st.sampled_from([*"A_ ./:@é\tＡ\n$'\"", "\u200b"])
    return st.one_of(
        st.tuples(st.integers(0, len(valid)), bad_chars).map(
            lambda t: valid[: t[0]] + t[1] + valid[t[0] :]
        ),
        st.sampled_from([f"-{valid}", f"{valid}-", "", "a" * 64, valid.upper()]),
    )


BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": spoil("web"),
    "namespace": spoil("apps"),
    "container": spoil("api"),
    "deployment": st.sampled_from(["Api", "api_server", "-api", "api.", "a..b", "x" * 254, ""]),
    "image": st.sampled_from(
        [
            "registry.example.test/h/web:1.0",
            "registry.example.test/h/web@sha256:" + "a" * 64,
            "registry.example.test/H/web",
            "web ",
            "",
            "registry.example.test/h/web/",
            "https://registry.example.test/h/web",
        ]
    ),
    "commit": st.sampled_from([SHA[:39], SHA + "0", SHA.upper(), "g" * 40, "HEAD", SHA[:12]]),
    "kind": st.sampled_from(["deployment", "Job", "", "Deployment ", "CronJob"]),
    "repo": st.sampled_from(
        [
            "file:///srv/git/app",
            "ftp://git.example.test/h/app",
            "https://git.example.test/h/app x",
            "https://git.example.test/h/app;id",
            "$(id)",
            "",
            "git.example.test/h/app",
        ]
    ),
    "scriptPath": hostile_paths(),
    "timeoutMs": st.one_of(
        st.integers(max_value=999), st.integers(min_value=86_400_001), st.sampled_from([1500000.5])
    ),
}
NOT_STRINGS: st.SearchStrategy[Any] = st.one_of(
    st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.just({})
)
NOT_INTEGERS: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
)


@st.composite
def bad_documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A deploy.json text and the JSON paths its error message must name."""
    doc = json.loads(json.dumps(GOOD))
    env = doc["environments"]["dev"]
    how = draw(st.sampled_from(["fields", "fields", "fields", "top", "text"]))
    if how == "text":  # not JSON at all: the message names the line and column
        text = json.dumps(GOOD, indent=2)
        cut = draw(st.integers(1, len(text) - 2))
        return text[:cut], [r"line \d+ column \d+|\(file\)"]
    if how == "top":
        choice = draw(st.sampled_from(["version", "missing", "unknown", "env name", "services"]))
        if choice == "version":
            doc["schemaVersion"] = draw(st.sampled_from([1, 3, "2", 2.5, None]))
            return json.dumps(doc), [re.escape("schemaVersion")]
        if choice == "missing":
            key = draw(st.sampled_from(["schemaVersion", "environments"]))
            del doc[key]
            return json.dumps(doc), [re.escape(key)]
        if choice == "unknown":
            key = draw(st.from_regex(r"\A[a-z][a-zA-Z0-9]{0,8}\Z", fullmatch=True))
            if key in doc or key == "schema":
                key += "X"
            doc[key] = 1
            return json.dumps(doc), [re.escape(key)]
        if choice == "env name":
            name = draw(st.sampled_from(["Dev", "dev_1", "dev.x", "DEV", "d" * 64]))
            doc["environments"] = {name: env}
            return json.dumps(doc), [re.escape(render(["environments", name]))]
        env["services"] = draw(st.sampled_from(["web", {"web": 1}, None, 3]))
        return json.dumps(doc), [re.escape("environments.dev.services")]
    paths: list[str] = []
    sites = draw(
        st.lists(
            st.one_of(
                st.tuples(st.integers(0, 1), st.sampled_from(SERVICE_FIELDS)),
                st.tuples(st.just(-1), st.sampled_from(["repo", "scriptPath", "timeoutMs"])),
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    for index, name in sites:
        target = env["ci"] if index < 0 else env["services"][index]
        parts: list[str | int] = (
            ["environments", "dev", "ci", name]
            if index < 0
            else ["environments", "dev", "services", index, name]
        )
        how = draw(st.sampled_from(["value", "value", "type", "missing", "unknown"]))
        required = name in ("repo", "scriptPath", "timeoutMs", "name", "namespace", "image")
        if how == "missing" and required:
            target.pop(name, None)
        elif how == "unknown":
            extra = draw(st.sampled_from(["replica", "tag", "namespaces", "Image", "script"]))
            target[extra] = "x"
            parts[-1] = extra
        elif how == "type" or (how == "missing" and not required):
            target[name] = draw(NOT_INTEGERS if name == "timeoutMs" else NOT_STRINGS)
        else:
            target[name] = draw(BAD_VALUES[name])
        paths.append(re.escape(render(parts)))
    return json.dumps(doc), paths


def test_bad_deploy_json(workspace: Workspace, soak: bool) -> None:
    """Broken documents: exit 2 naming every broken JSON path, from `manifest check` and from
    a verb that would act (`ci status`), which asks nothing of any server."""
    path = workspace.root.parent / "bad-deploy.json"

    @examples("deploy.json", soak)
    @given(bad_documents(), st.booleans())
    def check(case: tuple[str, list[str]], via_status: bool) -> None:
        text, expected = case
        path.write_text(text)
        argv = ["manifest", "check", str(path)]
        if via_status:
            argv = ["ci", "status", "--deploy-json", str(path), "--woodpecker-server"]
            argv.append(workspace.server)

        def names(output: str) -> bool:
            return all(re.search(p, output) for p in expected)

        workspace.run("deploy.json", argv, names, detail=f"{expected} in {text[:400]}")

    check()
    workspace.done("deploy.json", soak)


# -- flags --------------------------------------------------------------------------------------

DURATIONS = st.sampled_from(["soon", "-1s", "1x", "1h30", "1e999", "nan", "inf", "", " ", "5 s"])
FlagCase = tuple[list[str], str, st.SearchStrategy[str]]


def flag_cases(space: Workspace) -> list[FlagCase]:
    """(verb argv, flag, bad values); the message must name the flag or its setting."""
    status = ["ci", "status", "--woodpecker-server", space.server]
    watch = ["ci", "watch", "--woodpecker-server", space.server]
    e2e = ["ci", "run-dev-e2e", *space.d601()]
    logs = ["ci", "logs", "e2e-01234567-20261123101500-9f3e", *space.d601()]
    return [
        (
            ["ci", "status"],
            "--woodpecker-server",
            st.sampled_from(["ci.example.test", "ftp://ci", "https://", "https://h?x=1", "h h"]),
        ),
        (status, "--woodpecker-dial", st.sampled_from(["a b", "h:0", "h:99999", "[::1", "a/b"])),
        (status, "--ca-bundle", st.sampled_from(["/nonexistent/ca.pem", "/", "/etc/hostname"])),
        (status, "--repo", st.sampled_from(["x", "a//b", "a b", "../x", "o/../r", "o/"])),
        (status, "--ci-events", st.sampled_from(["pushh", ",", "push,nope", "PUSH"])),
        (status, "--ci-pages", st.sampled_from(["0", "1001", "x", "-1", "1.5"])),
        (status, "--homelab-request-timeout", DURATIONS | st.just("0")),
        (status, "--vault-mount", st.sampled_from(["..", "/", "a/../b", "./"])),
        (status, "--remote", st.sampled_from(["upstream", "nope"])),
        (watch, "--timeout", DURATIONS | st.just("0")),
        (watch, "--appear-grace", DURATIONS),
        (watch, "--ci-poll-interval", DURATIONS | st.just("0s")),
        (watch, "--ci-stream-recheck", DURATIONS | st.just("0")),
        (["deploy", "wait"], "--timeout", DURATIONS | st.just("0")),
        (["deploy", "wait"], "--env", st.sampled_from(["prod", "Dev", "nope"])),
        (["deploy", "wait"], "--namespace", st.sampled_from(["Apps", "a_b", "-x", "a" * 64])),
        (e2e, "--d601-port", st.sampled_from(["0", "70000", "x", "-1"])),
        (e2e, "--homelab-e2e-work-root", st.sampled_from(["relative", "/a/../b", "/a b", "~x"])),
        (e2e, "--transport", st.sampled_from(["telnet", "SSH", ""])),
        (e2e, "--wait-ms", st.sampled_from(["x", "-1", "1.5"])),
        (logs, "--lines", st.sampled_from(["x", "1.5"])),
    ]


def setting_names(flag: str) -> set[str]:
    from pytest_homelab.core.settings import OPTIONS

    names = {flag}
    for option in OPTIONS:
        if flag in (option.flag, option.cli):
            names |= {option.key, option.flag}
    return names


def test_bad_flag_values(workspace: Workspace, soak: bool) -> None:
    """Bad values of the verbs' flags: exit 2, the flag or its setting named, nothing reached."""
    cases = flag_cases(workspace)

    @st.composite
    def bad_flags(draw: st.DrawFn) -> tuple[list[str], str]:
        argv, flag, values = draw(st.sampled_from(cases))
        value = draw(values)
        return [*argv, f"{flag}={value}"], flag

    @examples("flags", soak)
    @given(bad_flags())
    def check(case: tuple[list[str], str]) -> None:
        argv, flag = case
        wanted = setting_names(flag) | {"CA bundle", "no git remote named", "no environment"}

        def names(output: str) -> bool:
            return any(name in output for name in wanted)

        workspace.run("flags", argv, names)

    check()
    workspace.done("flags", soak)


# -- git remote URLs ----------------------------------------------------------------------------

segment = st.from_regex(r"\A[a-z][a-z0-9_.-]{0,6}[a-z0-9]\Z", fullmatch=True)
hosts = st.sampled_from(["git.example.test", "github.com", "127.0.0.5", "h"])
PASSWORD = "r3-remote-pw-93f1c2"


@st.composite
def bad_remote_urls(draw: st.DrawFn) -> str:
    """Remote URLs that name no OWNER/NAME on a forge, each broken in its own way."""
    owner, name, host = draw(segment), draw(segment), draw(hosts)
    creds = f"bob:{PASSWORD}@" if draw(st.booleans()) else ""
    bad_segment = draw(st.sampled_from(["..", "a b", "r$x", "ö", "%2F", "a%ZZ", "~x", "(x)"]))
    return draw(
        st.sampled_from(
            [
                f"/srv/git/{owner}/{name}.git",
                f"../{name}.git",
                f"{name}",
                f"file:///srv/{owner}/{name}.git",
                f"ftp://{creds}{host}/{owner}/{name}",
                f"https://{creds}{host}",
                f"https://{creds}{host}/",
                f"https://{creds}{host}/{name}.git",
                f"git@{host}:{name}.git",
                f":{owner}/{name}",
                f"https://{creds}{host}/{owner}//{name}",
                f"https://{creds}{host}/{bad_segment}/{name}",
                f"https://{creds}{host}/{owner}/{bad_segment}",
                f"https://{creds}{host}:99999/{owner}/{name}",
                f"https://{creds}{host}:port/{owner}/{name}",
                f"ssh://{creds}{host}/{owner}/\t{name}",
                f"https:///{owner}/{name}",
            ]
        )
    )


def test_bad_git_remote_urls(workspace: Workspace, soak: bool) -> None:
    """A remote URL that names no Woodpecker repo: exit 2 naming it, its password masked."""
    workspace.guard.watch(PASSWORD)

    @examples("git remote URL", soak)
    @given(bad_remote_urls())
    def check(url: str) -> None:
        git(workspace.root, "remote", "set-url", "origin", url)

        def names(output: str) -> bool:
            return "git remote URL" in output and PASSWORD not in output

        argv = ["ci", "status", "--woodpecker-server", workspace.server]
        workspace.run("git remote URL", argv, names, detail=repr(url))

    check()
    workspace.done("git remote URL", soak)


# -- commits ------------------------------------------------------------------------------------

commit_texts = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A[0-9a-f]{7,40}\Z", fullmatch=True),
    st.sampled_from(
        [
            "HEAD~5",
            "main^^^^",
            "HEAD@{10}",
            "no-such-branch",
            ":/no such message",
            "-x",
            "--output=r3-output-file",
            "HEAD^{tree}",
            "HEAD:README",
            "main..HEAD",
            " ",
            "",
            "v1.0",
            "refs/heads/nope",
        ]
    ),
)


def resolves(root: Path, ref: str) -> bool:
    """git's own answer: does ``ref`` name a commit here?"""
    if not ref or "\0" in ref:
        return False
    done = git(
        root,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{ref}^{{commit}}",
        check=False,
    )
    return done.returncode == 0


def test_bad_commit_strings(workspace: Workspace, soak: bool) -> None:
    """A commit git cannot resolve to a commit: exit 2 naming the commit."""

    @examples("commit", soak)
    @given(commit_texts)
    def check(ref: str) -> None:
        # a good commit (or one no argv can carry) is not bad input
        assume("\0" not in ref and not resolves(workspace.root, ref.strip()))

        def names(output: str) -> bool:
            low = output.lower()
            return "commit" in low or "sha" in low

        argv = ["ci", "status", "--woodpecker-server", workspace.server, "--", ref]
        workspace.run("commit", argv, names)

    check()
    workspace.done("commit", soak)


# -- run ids ------------------------------------------------------------------------------------

RUN_ID = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
run_ids = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", max_size=50),
    st.sampled_from(
        [
            "../../etc",
            "e2e-01234567-20261123101500-9f3e/../x",
            "E2E-01234567-20261123101500-9F3E",
            "e2e_01234567",
            "x" * 41,
            "1abc",
            "abc-",
            "e2e--x",
            "$(id)",
            "e2e;rm -rf ~",
            "e2e\nx",
            "",
        ]
    ),
)


def test_bad_run_ids(workspace: Workspace, soak: bool) -> None:
    """`ci logs` with a malformed run id: exit 2 naming it, D601 never contacted."""

    @examples("run id", soak)
    @given(run_ids)
    def check(run_id: str) -> None:
        assume("\0" not in run_id)
        assume(not (RUN_ID.fullmatch(run_id) and "--" not in run_id))  # well formed: not bad

        def names(output: str) -> bool:
            low = output.lower()
            return "run id" in low or "run_id" in low

        workspace.run("run id", ["ci", "logs", *workspace.d601(), "--", run_id], names)

    check()
    workspace.done("run id", soak)


def test_the_planned_counts() -> None:
    """Soak mode plans ≥ 500 generated cases over the five kinds (CI mode runs a sample)."""
    assert sum(long for _, long in COUNTS.values()) >= 500


@pytest.mark.parametrize("where", ["deploy.json ci.repo", "--woodpecker-server"])
def test_a_credential_in_a_bad_url_is_not_echoed(
    where: str, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL refused for carrying credentials must not print them."""
    secret = "hunter2-" + "9c1e7a55"
    url = f"https://bob:{secret}@git.example.test/homelab/app"
    if where == "deploy.json ci.repo":
        doc = json.loads(json.dumps(GOOD))
        doc["environments"]["dev"]["ci"]["repo"] = url
        path = workspace.root.parent / "creds.json"
        path.write_text(json.dumps(doc))
        code = main(["manifest", "check", str(path)])
    else:
        code = main(["ci", "status", "--woodpecker-server", url])
    out, err = capsys.readouterr()
    assert code == 2
    assert secret not in out + err
