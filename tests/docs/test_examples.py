"""Every example in docs/ runs, or at least parses, so the docs cannot rot.

Per page, in order, in a fresh directory with a clean environment: ``python`` blocks are
executed (``python pytest`` ones as a pytest file), ``sh`` blocks run command by command and
must exit 0 (or ``exit=N``), a ``text output`` block must equal the previous command's output,
``json``/``toml``/``xml`` blocks must parse, and a deploy.json or ``[tool.homelab]`` in them must
be valid. ``no-run`` blocks are still checked: Python compiles, and every ``homelab`` command
parses with the real CLI parser and every ``pytest`` flag exists. Examples talk only to
loopback (``tests/docs/guard.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pytest_homelab.cli import build_parser
from pytest_homelab.core.manifest import validate_document
from pytest_homelab.core.settings import resolve_settings
from tests.docs.blocks import DOCS, LANGUAGES, Block, blocks, pages
from tests.docs.guard import only_loopback, write_sitecustomize

WORDS = frozenset({"no-run", "pytest", "output", "invalid"})
ATTRS = frozenset({"file", "exit"})
SEPARATORS = frozenset({"&&", "||", ";", "|"})
DROPPED = ("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBECONFIG", "WP_TOKEN", "PYTEST_", "COLUMNS")
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(scope="session")
def pytest_flags(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """Every long option ``pytest --help`` lists, the homelab plugin's included."""
    where = tmp_path_factory.mktemp("pytest-help")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    flags = re.findall(r"(?<![\w-])--[a-zA-Z0-9][\w-]*", done.stdout)
    # pytest registers some options under a second spelling its help omits (--junitxml).
    return frozenset(flags) | {"--" + f[2:].replace("-", "") for f in flags}


def commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def segments(command: str) -> list[list[str]]:
    """Each simple command of a line, without leading VAR=value assignments."""
    out: list[list[str]] = [[]]
    for token in shlex.split(command, comments=True):
        if token in SEPARATORS:
            out.append([])
        elif out[-1] or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            out[-1].append(token)
    return [s for s in out if s]


def check_command(command: str, where: str, pytest_flags: frozenset[str]) -> None:
    """A ``homelab`` command must parse; a ``pytest`` command may only use flags that exist."""
    for words in segments(command):
        program = Path(words[0]).name
        if program == "homelab":
            parse_homelab(words[1:], where)
        elif program == "pytest" or (
            program.startswith("python") and words[1:3] == ["-m", "pytest"]
        ):
            unknown = [
                w for w in words if w.startswith("--") and w.split("=")[0] not in pytest_flags
            ]
            assert not unknown, f"{where}: pytest has no option {unknown} (in {command!r})"


def parse_homelab(args: list[str], where: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(args)
        except SystemExit as exc:
            assert exc.code == 0, f"{where}: `homelab {shlex.join(args)}`: {err.getvalue()}"


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Runner:
    """Runs one page's blocks in order in its own directory."""

    def __init__(self, root: Path, pytest_flags: frozenset[str]) -> None:
        self.work = root / "work"
        self.work.mkdir()
        home = root / "home"
        home.mkdir()
        self.network_log = root / "network.log"
        guard = write_sitecustomize(root / "guard")
        self.pytest_flags = pytest_flags
        self.last_output: str | None = None
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(DROPPED) and k.lower() not in PROXIES
        }
        env.update(
            HOME=str(home),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=str(guard),
            DOCS_NETWORK_LOG=str(self.network_log),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
            GIT_AUTHOR_NAME="docs",
            GIT_AUTHOR_EMAIL="docs@example.test",
            GIT_COMMITTER_NAME="docs",
            GIT_COMMITTER_EMAIL="docs@example.test",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    def run(self, block: Block) -> None:
        unknown = [w for w in block.words if w not in WORDS and w.split("=")[0] not in ATTRS]
        assert block.lang in LANGUAGES, f"{block.where}: unknown block language {block.lang!r}"
        assert not unknown, f"{block.where}: unknown info-string words {unknown}"
        if "file" in block.attrs:
            target = self.work / block.attrs["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
        handler = getattr(self, f"run_{block.lang or 'plain'}")
        handler(block)
        assert not self.network_log.exists(), (
            f"{block.where}: talked beyond loopback: {self.network_log.read_text()}"
        )

    def run_plain(self, block: Block) -> None:
        pass

    def run_text(self, block: Block) -> None:
        if not block.has("output"):
            return
        assert self.last_output is not None, f"{block.where}: an output block needs a command"
        shown = [line.rstrip() for line in block.text.strip().splitlines()]
        actual = [line.rstrip() for line in self.last_output.strip().splitlines()]
        assert shown == actual, f"{block.where}: the command prints something else"

    def run_xml(self, block: Block) -> None:
        ET.fromstring(block.text)

    def run_json(self, block: Block) -> None:
        doc = json.loads(block.text)
        if isinstance(doc, dict) and "schemaVersion" in doc:
            issues = [str(i) for i in validate_document(doc)]
            if block.has("invalid"):
                assert issues, f"{block.where}: marked invalid but is a valid deploy.json"
            else:
                assert not issues, f"{block.where}: not a valid deploy.json: {issues}"

    def run_toml(self, block: Block) -> None:
        data = tomllib.loads(block.text)
        name = block.attrs.get("file", "pyproject.toml")
        if "homelab" not in data.get("tool", {}) and name != ".homelab.toml":
            return
        check = self.work.parent / f"toml-{block.line}"
        check.mkdir()
        (check / Path(name).name).write_text(block.text)
        settings = resolve_settings({}, environ={}, cwd=check)
        for env in settings.environments:
            settings.for_env(env)

    def run_python(self, block: Block) -> None:
        code = compile(block.text, block.where, "exec")
        if block.has("no-run") or "file" in block.attrs:
            return
        if block.has("pytest"):
            self.run_pytest_file(block)
            return
        module = types.ModuleType(f"docs_example_{block.line}")
        sys.modules[module.__name__] = module
        cwd = Path.cwd()
        try:
            with environment(self.env), only_loopback() as refused:
                os.chdir(self.work)
                exec(code, module.__dict__)
        finally:
            os.chdir(cwd)
            del sys.modules[module.__name__]
        assert not refused, f"{block.where}: talked beyond loopback: {refused}"

    def run_pytest_file(self, block: Block) -> None:
        name = f"test_docs_example_{block.line}.py"
        (self.work / name).write_text(block.text)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}: the example's tests failed:\n{output}"
        assert " passed" in output, f"{block.where}: no test ran:\n{output}"

    def run_sh(self, block: Block) -> None:
        expected = int(block.attrs.get("exit", "0"))
        for command in commands(block.text):
            check_command(command, block.where, self.pytest_flags)
            if block.has("no-run"):
                continue
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.work,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=300,
                check=False,
            )
            self.last_output = done.stdout
            assert done.returncode == expected, (
                f"{block.where}: `{command}` exited {done.returncode}, not {expected}:\n"
                f"{done.stdout}"
            )


# quickstart.md walks a user through a homelab: tests/docs/test_quickstart.py runs it against
# the simulated one.
AGAINST_A_HOMELAB = frozenset({"quickstart.md"})


@pytest.mark.parametrize("page", [p.name for p in pages() if p.name not in AGAINST_A_HOMELAB])
def test_examples(page: str, tmp_path: Path, pytest_flags: frozenset[str]) -> None:
    runner = Runner(tmp_path, pytest_flags)
    for block in blocks(DOCS / page):
        runner.run(block)


BROKEN: list[tuple[Block, type[BaseException], str]] = [
    (Block("x.md", 1, "sh", ("no-run",), "homelab ci wtach\n"), AssertionError, "invalid choice"),
    (Block("x.md", 2, "sh", ("no-run",), "pytest --no-such-flag\n"), AssertionError, "no option"),
    (Block("x.md", 3, "sh", (), "homelab manifest check nope.json\n"), AssertionError, "exited 2"),
    (Block("x.md", 4, "python", (), "raise SystemExit('rotten')\n"), SystemExit, "rotten"),
    (Block("x.md", 5, "json", (), '{"schemaVersion": 2}\n'), AssertionError, "environments"),
    (Block("x.md", 6, "toml", (), "[tool.homelab]\nci_timout = 1\n"), Exception, "ci_timout"),
    (
        Block("x.md", 7, "python", (), "import socket\nsocket.create_connection(('192.0.2.1', 9))"),
        OSError,
        "only to loopback",
    ),
    (Block("x.md", 8, "bash", (), "true\n"), AssertionError, "language"),
    (Block("x.md", 9, "sh", ("norun",), "true\n"), AssertionError, "info-string"),
    (Block("x.md", 10, "text", ("output",), "something\n"), AssertionError, "needs a command"),
    (
        Block(
            "x.md",
            11,
            "sh",
            ("exit=1",),
            "python -c \"import socket; socket.create_connection(('192.0.2.1', 9))\"\n",
            {"exit": "1"},
        ),
        AssertionError,
        "beyond loopback",
    ),
]


@pytest.mark.parametrize(("block", "error", "match"), BROKEN, ids=[m for *_, m in BROKEN])
def test_the_runner_catches_rot(
    block: Block,
    error: type[BaseException],
    match: str,
    tmp_path: Path,
    pytest_flags: frozenset[str],
) -> None:
    """The checks above are not vacuous: each kind of broken example fails."""
    with pytest.raises(error, match=match):
        Runner(tmp_path, pytest_flags).run(block)
