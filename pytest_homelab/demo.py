"""``homelab demo``: a landing check against the built-in simulated homelab, offline.

It makes a throw-away git repo, starts the Woodpecker simulator over TLS on loopback (its own CA,
reached through the internal-LB dialer), scripts a scenario, and runs the same ``ci watch`` path
users run: a pytest session over the checks suite whose JUnit is read back for the verdict.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_homelab.outcomes import BadInput

SLUG = "homelab/app"
HOSTNAME = "ci.demo.test"


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str


SCENARIOS = (
    Scenario("green", "the pipeline of the landed commit runs its steps and succeeds (exit 0)"),
    Scenario("red", "the test step fails; the verdict shows its log tail (exit 1)"),
    Scenario("flaky", "30% of API responses fail (empty, 5xx, 429, resets); still green (exit 0)"),
    Scenario("never", "no pipeline is ever created for the commit (exit 3)"),
    Scenario("superseded", "a newer push cancels the pipeline; its descendant goes green (exit 0)"),
)


def list_scenarios() -> list[tuple[str, str]]:
    return [(s.name, s.about) for s in SCENARIOS]


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.test",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.test",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _make_repo(root: Path) -> tuple[Path, str, str]:
    repo = root / "app"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('hello homelab')\n")
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", "app: first version")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("print('hello again, homelab')\n")
    _git(repo, "commit", "-q", "-am", "app: say hello again")
    _git(repo, "remote", "add", "origin", f"https://git.demo.test/{SLUG}.git")
    return repo, base, _git(repo, "rev-parse", "HEAD")


@contextlib.contextmanager
def _isolated_env(values: dict[str, str]) -> Iterator[None]:
    """The demo's own settings only: the user's HOMELAB_*/WOODPECKER_* must not steer it."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_")) or key == "WP_TOKEN":
            del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(name: str, *, junitxml: str | None = None, as_json: bool = False) -> int:
    scenario = next((s for s in SCENARIOS if s.name == name), None)
    if scenario is None:
        raise BadInput(
            f"unknown demo scenario {name!r}",
            hint=f"choose one of: {', '.join(s.name for s in SCENARIOS)} (homelab demo --list)",
        )
    import trustme

    from pytest_homelab.session import run_checks
    from pytest_homelab.settings import resolve_settings
    from pytest_homelab.sim.faults import FaultPlan
    from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

    token = "demo-" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory(prefix="homelab-demo-") as tmp:
        root = Path(tmp)
        repo, base, sha = _make_repo(root)
        ca = trustme.CA()
        ca_pem = root / "demo-ca.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOSTNAME).configure_cert(server_ctx)
        faults = FaultPlan(seed=7, rate=0.3, stall_seconds=1.0) if name == "flaky" else None
        sim = WoodpeckerSim(
            host="127.0.0.1",
            ssl_context=server_ctx,
            public_host=HOSTNAME,
            token=token,
            faults=faults,
            ping_interval=2.0,
        )
        steps = [
            StepSpec("clone", 0.3, log=["+ git fetch", "HEAD is now at " + sha[:8]]),
            StepSpec("lint", 0.5, log=["+ ruff check .", "All checks passed!"]),
            StepSpec("test", 1.0, log=["+ pytest -q", "42 passed in 0.9s"]),
        ]
        with sim:
            sim.add_repo(SLUG, private=True)
            sim.add_pipeline(SLUG, commit=base, steps=steps[:1])  # an older landing, green
            if name in ("green", "flaky"):
                sim.add_pipeline(SLUG, commit=sha, steps=steps, appear_after=0.8)
            elif name == "red":
                failing = StepSpec(
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
                sim.add_pipeline(SLUG, commit=sha, steps=[*steps[:2], failing], appear_after=0.8)
            elif name == "superseded":
                child = _descendant(repo)
                first = sim.add_pipeline(SLUG, commit=sha, steps=[StepSpec("test", 30.0)])
                second = sim.add_pipeline(SLUG, commit=child, steps=steps, appear_after=1.0)
                sim.advance(0.5)
                sim.cancel(SLUG, first, superseded_by=second)
            flags: dict[str, object | None] = {
                "commit": sha,
                "woodpecker_server": sim.base_url,
                "woodpecker_dial": f"127.0.0.1:{sim.port}",
                "ca_bundle": str(ca_pem),
                "woodpecker_repo": SLUG,
                "appear_grace": "3s" if name == "never" else "1m",
                "ci_timeout": "2m",
                "ci_poll_interval": "1s",
            }
            print(f"homelab demo: scenario {name}: {scenario.about}", file=sys.stderr)
            print(
                f"homelab demo: repo {repo} at {sha[:8]}; Woodpecker simulator "
                f"{sim.base_url} dialed at 127.0.0.1:{sim.port}",
                file=sys.stderr,
            )
            cwd = Path.cwd()
            with _isolated_env({"WOODPECKER_TOKEN": token}):
                os.chdir(repo)
                try:
                    settings = resolve_settings(flags)
                    return run_checks(
                        settings,
                        verb="demo",
                        markexpr="ci",
                        flags=flags,
                        junitxml=junitxml,
                        as_json=as_json,
                    )
                finally:
                    os.chdir(cwd)


def _descendant(repo: Path) -> str:
    (repo / "NOTES").write_text("follow-up\n")
    _git(repo, "add", "NOTES")
    _git(repo, "commit", "-q", "-m", "notes: a follow-up push")
    return _git(repo, "rev-parse", "HEAD")
