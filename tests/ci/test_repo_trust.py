"""The repository under test cannot send the token elsewhere (issue 19, finding 3).

The review's shape: a branch whose ``pyproject.toml`` sets ``woodpecker_dial = "127.0.0.3:…"`` and
``ca_bundle = "evil-ca.pem"`` (committed with that CA) made ``WOODPECKER_SERVER=https://ci.example.test
homelab ci status`` send ``Authorization: Bearer …`` to the attacker's TLS server; ``ci status``
runs no repo code, so checking the branch out was enough. Here the attacker's server on
127.0.0.3 holds a certificate for ci.example.test from the committed CA and counts connections:
each way a repo can set such a setting is refused with a message naming the key and where to set
it instead, and the server sees nothing — until the user trusts the repository in their own
config file.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from pytest_homelab.cli import main
from tests.ci.conftest import HOSTNAME, SLUG, TOKEN
from tests.gitenv import git


class Attacker:
    """A TLS server for ci.example.test on 127.0.0.3, certified by the repo's evil CA."""

    def __init__(self, ca: trustme.CA) -> None:
        self.authorizations: list[str | None] = []
        seen = self.authorizations

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOSTNAME).configure_cert(context)
        self.httpd = ThreadingHTTPServer(("127.0.0.3", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def evil_ca() -> trustme.CA:
    return trustme.CA(organization_name="evil")


@pytest.fixture
def attacker(evil_ca: trustme.CA) -> Iterator[Attacker]:
    server = Attacker(evil_ca)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def hostile_repo(
    repo: tuple[Path, str],
    git_env: dict[str, str],
    evil_ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    path = repo[0]
    evil_ca.cert_pem.write_to_path(str(path / "evil-ca.pem"))
    monkeypatch.setenv("WOODPECKER_SERVER", f"https://{HOSTNAME}")
    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    monkeypatch.chdir(path)
    return path


def commit(path: Path, name: str, text: str) -> None:
    (path / name).write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", f"hostile {name}")


def user_config(text: str) -> Path:
    import os

    config = Path(os.environ["HOME"]) / ".config" / "homelab" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        # the review's: pyproject.toml with the dial address and the committed CA
        (
            "pyproject.toml",
            '[tool.homelab]\nwoodpecker_dial = "127.0.0.3:{port}"\nca_bundle = "evil-ca.pem"\n',
            "woodpecker_dial",
        ),
        (".homelab.toml", 'woodpecker_dial = "127.0.0.3:{port}"\n', "woodpecker_dial"),
        (
            "pyproject.toml",
            '[tool.homelab]\nwoodpecker_server = "https://{host}:{port}"\n',
            "woodpecker_server",
        ),
        ("pyproject.toml", '[tool.homelab]\nca_bundle = "evil-ca.pem"\n', "ca_bundle"),
        ("pyproject.toml", '[tool.homelab]\nvault_path = "ci/other"\n', "vault_path"),
        (
            "pyproject.toml",
            '[tool.homelab.environments.dev]\nkube_context = "prod"\n',
            "kube_context",
        ),
    ],
)
def test_the_repos_file_cannot_send_the_token_elsewhere(
    hostile_repo: Path,
    attacker: Attacker,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    key: str,
) -> None:
    commit(hostile_repo, name, text.format(port=attacker.port, host=HOSTNAME))
    code = main(["ci", "status", "--repo", SLUG])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert f"sets {key}, which decides where credentials go or what runs" in err
    assert f"env {'WOODPECKER_SERVER' if key == 'woodpecker_server' else ''}" in err
    assert "config.toml" in err and "trusted_repos" in err
    assert attacker.authorizations == []
    assert TOKEN not in out + err


def test_a_trusted_repo_may_set_them(
    hostile_repo: Path, attacker: Attacker, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trust mechanism: the user lists the repository in their own config file."""
    commit(
        hostile_repo,
        "pyproject.toml",
        "[tool.homelab]\n"
        f'woodpecker_dial = "127.0.0.3:{attacker.port}"\nca_bundle = "evil-ca.pem"\n',
    )
    user_config(f"trusted_repos = [{str(hostile_repo)!r}]\n")
    main(["ci", "status", "--repo", SLUG])
    capsys.readouterr()
    assert attacker.authorizations and attacker.authorizations[0] == f"Bearer {TOKEN}"


def test_the_users_own_config_may_set_them(
    hostile_repo: Path, attacker: Attacker, evil_ca: trustme.CA, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = hostile_repo.parent / "my-ca.pem"
    evil_ca.cert_pem.write_to_path(str(bundle))
    user_config(f'woodpecker_dial = "127.0.0.3:{attacker.port}"\nca_bundle = {str(bundle)!r}\n')
    main(["ci", "status", "--repo", SLUG])
    capsys.readouterr()
    assert attacker.authorizations == [f"Bearer {TOKEN}"]


def test_pytest_addopts_in_the_repo_cannot_either(
    hostile_repo: Path, attacker: Attacker, evil_ca: trustme.CA
) -> None:
    """A flag is the user's, unless the repo's own ini file supplies it through ``addopts``."""
    commit(
        hostile_repo,
        "pyproject.toml",
        "[tool.pytest.ini_options]\n"
        f'addopts = "--woodpecker-dial=127.0.0.3:{attacker.port} --ca-bundle=evil-ca.pem"\n',
    )
    (hostile_repo / "test_ci.py").write_text(
        "import pytest\n\n@pytest.mark.ci\ndef test_ci(homelab_ci):\n    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_ci.py"],
        cwd=hostile_repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "addopts in" in done.stderr and "sets woodpecker_dial" in done.stderr
    assert attacker.authorizations == []
