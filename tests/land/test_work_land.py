"""`homelab work land` with real git: safety refusals, rebase and merge, conflicts left for the
user, verify gating the push, retries after someone else pushed, hooks that reject, and the
landing verified by CI against the Woodpecker simulator."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.sim.kube.api import KubeSim
from pytest_homelab.sim.kube.controllers import Timing
from pytest_homelab.sim.kube.objects import deployment
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim
from tests.gitenv import git, hermetic_git
from tests.samples import deploy_text, environment, service

TOKEN = "land-token-19ab"
REGISTRY = "registry.example.test/homelab"


@dataclass
class Repos:
    bare: Path
    work: Path
    other: Path

    def commit(self, repo: Path, name: str, text: str, message: str) -> str:
        (repo / name).write_text(text)
        git(repo, "add", name)
        git(repo, "commit", "-q", "-m", message)
        return git(repo, "rev-parse", "HEAD")

    def remote_head(self, branch: str = "main") -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")

    def push_from_other(self, name: str = "other.txt") -> str:
        git(self.other, "pull", "-q", "--rebase", "origin", "main")
        sha = self.commit(self.other, name, f"{name} {os.urandom(4).hex()}\n", f"other: {name}")
        git(self.other, "push", "-q", "origin", "HEAD:main")
        return sha


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repos:
    hermetic_git(monkeypatch, tmp_path / "home")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    (seed / "app.txt").write_text("line 1\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", "origin", "HEAD:main")
    work, other = tmp_path / "work", tmp_path / "other"
    for path in (work, other):
        git(tmp_path, "clone", "-q", str(bare), str(path))
    git(work, "switch", "-q", "-c", "topic")
    monkeypatch.chdir(work)
    return Repos(bare, work, other)


def land(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["work", "land", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_lands_with_rebase_and_reports_what_landed(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    repos.commit(repos.work, "feature2.txt", "y\n", "feature 2")
    repos.push_from_other()  # the target moved on: the branch is rebased onto it
    code, out, err = land(capsys, "--verify-cmd", "test -f feature.txt", "--no-ci-watch")
    assert code == 0, out + err
    head = git(repos.work, "rev-parse", "HEAD")
    assert repos.remote_head() == head
    assert f"landed topic onto origin/main: {head[:8]} (2 commits, attempt 1)" in out
    assert "land: verifying: test -f feature.txt" in err
    assert git(repos.work, "log", "--merges", "--oneline") == ""  # rebased, not merged


def test_merge_strategy(repos: Repos, capsys: pytest.CaptureFixture[str]) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    repos.push_from_other()
    code, out, err = land(capsys, "--merge", "--no-verify", "--no-ci-watch")
    assert code == 0, out + err
    assert git(repos.work, "log", "--merges", "--oneline") != ""
    assert "--no-verify: not running the verify command" in err


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("detached", "refusing to land a detached HEAD"),
        ("on-target", "you are on main, the target branch itself"),
        ("dirty", "refusing to land with uncommitted changes: app.txt"),
        ("no-verify-configured", "no verify command"),
    ],
)
def test_refusals(
    repos: Repos, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    args = ["--no-verify", "--no-ci-watch"]
    if setup == "detached":
        git(repos.work, "switch", "-q", "--detach")
    elif setup == "on-target":
        git(repos.work, "switch", "-q", "main")
    elif setup == "dirty":
        (repos.work / "app.txt").write_text("changed\n")
    elif setup == "no-verify-configured":
        args = ["--no-ci-watch"]
    before = repos.remote_head()
    code, _out, err = land(capsys, *args)
    assert code == 2 and message in err
    assert "Traceback" not in err
    assert repos.remote_head() == before  # nothing pushed


def test_untracked_files_are_fine(repos: Repos, capsys: pytest.CaptureFixture[str]) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    (repos.work / "scratch.log").write_text("debug\n")
    assert land(capsys, "--no-verify", "--no-ci-watch")[0] == 0


def test_target_from_the_remote_head_and_onto(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repos.other, "push", "-q", "origin", "main:release")
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    code, out, _ = land(capsys, "--onto", "release", "--no-verify", "--no-ci-watch")
    assert code == 0 and "onto origin/release" in out
    assert repos.remote_head("release") == git(repos.work, "rev-parse", "HEAD")
    assert repos.remote_head("main") != git(repos.work, "rev-parse", "HEAD")


def test_conflicts_stop_and_leave_the_repo_as_git_left_it(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.commit(repos.work, "app.txt", "mine\n", "mine")
    repos.commit(repos.other, "app.txt", "theirs\n", "theirs")
    git(repos.other, "push", "-q", "origin", "HEAD:main")
    before = repos.remote_head()
    code, _out, err = land(capsys, "--no-verify", "--no-ci-watch")
    assert code == 1
    assert "stopped with conflicts" in err and "app.txt" in err
    assert "git rebase --continue" in err and "nothing was pushed" in err
    assert (repos.work / ".git" / "rebase-merge").exists()  # still mid-rebase, for the user
    assert repos.remote_head() == before


def test_a_red_verify_stops_before_pushing(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    before = repos.remote_head()
    code, _out, err = land(capsys, "--verify-cmd", "echo running tests; exit 3", "--no-ci-watch")
    assert code == 1 and "the verify command failed (exit 3)" in err
    assert repos.remote_head() == before


def test_a_push_race_resyncs_reverifies_and_retries(
    repos: Repos, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    counter = tmp_path / "verified"
    # The first verification runs while someone else pushes: our push is then rejected.
    race = (
        f"echo run >> {counter}; if [ $(wc -l < {counter}) -eq 1 ]; then "
        f"cd {repos.other} && git pull -q --rebase origin main && echo race > race.txt && "
        f"git add race.txt && git commit -q -m race && git push -q origin HEAD:main; fi"
    )
    code, out, err = land(capsys, "--verify-cmd", race, "--no-ci-watch")
    assert code == 0, out + err
    assert counter.read_text().count("run") == 2  # verified again after the re-sync
    assert "re-syncing and verifying again (1/3)" in err and "attempt 2" in out
    log = git(repos.bare, "log", "--format=%s", "main")
    assert log.splitlines()[:2] == ["feature", "race"]


def test_retries_are_bounded(repos: Repos, capsys: pytest.CaptureFixture[str]) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    always = (
        f"cd {repos.other} && git pull -q --rebase origin main && date +%N > race.txt && "
        f"git add race.txt && git commit -q -m race && git push -q origin HEAD:main"
    )
    code, _out, err = land(capsys, "--verify-cmd", always, "--push-retries", "2", "--no-ci-watch")
    assert code == 1 and "the push was rejected 3 times" in err


def test_a_rejecting_hook_is_reported_and_not_retried(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = repos.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n")
    hook.chmod(0o755)
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    code, _out, err = land(capsys, "--no-verify", "--no-ci-watch")
    assert code == 1
    assert "origin rejected the push to main" in err and "main is protected" in err
    assert "re-syncing" not in err


# -- verifying the landing with CI -----------------------------------------------------------------


@dataclass
class Ci:
    sim: WoodpeckerSim
    outcome: str = "green"  # what the next pushed commit's pipeline does: green, red, none
    kube: KubeSim | None = None  # when set, "CD" rolls the landed sha out to apps/web
    deploy: bool = True
    also_on: str | None = None  # the same sha also pushed to this branch: a green pipeline there

    def flags(self) -> list[str]:
        return ["--woodpecker-server", self.sim.base_url, "--repo", "o/app"]


@pytest.fixture
def ci(repos: Repos, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ci]:
    """A Woodpecker that starts a pipeline for every push to main, like a webhook would."""
    git(repos.work, "remote", "set-url", "--push", "origin", str(repos.bare))
    sim = WoodpeckerSim(token=TOKEN, ping_interval=1.0)
    monkeypatch.setenv("WOODPECKER_TOKEN", TOKEN)
    stop = threading.Event()
    state = Ci(sim)

    def webhook() -> None:
        seen = repos.remote_head()
        while not stop.wait(0.05):
            head = repos.remote_head()
            if head != seen and state.kube is not None and state.deploy:
                state.kube.set_image("apps", "web", f"{REGISTRY}/web:{head}")
            if head != seen and state.outcome != "none":
                sim.add_pipeline(
                    "o/app",
                    commit=head,
                    steps=[
                        StepSpec(
                            "test", 0.3, exit_code=1 if state.outcome == "red" else 0, log=["t"]
                        )
                    ],
                )
            if head != seen and state.also_on is not None:  # newer, and green
                sim.add_pipeline("o/app", commit=head, branch=state.also_on)
            seen = head

    with sim:
        sim.add_repo("o/app")
        thread = threading.Thread(target=webhook, daemon=True)
        thread.start()
        try:
            yield state
        finally:
            stop.set()
            thread.join(timeout=5)


@pytest.mark.parametrize(("outcome", "code"), [("green", 0), ("red", 1), ("none", 3)])
def test_the_landed_commit_is_watched_in_ci(
    repos: Repos, ci: Ci, capsys: pytest.CaptureFixture[str], outcome: str, code: int
) -> None:
    ci.outcome = outcome
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    result, out, err = land(
        capsys,
        "--no-verify",
        "--woodpecker-server",
        ci.sim.base_url,
        "--repo",
        "o/app",
        "--appear-grace",
        "2s",
        "--ci-poll-interval",
        "0.2s",
    )
    assert result == code, out + err
    head = git(repos.work, "rev-parse", "HEAD")
    assert out.index("landed topic onto origin/main") < out.index("verdict:")
    if outcome == "none":
        assert f"the push itself landed ({head[:8]} on origin/main)" in err


def test_the_target_branchs_pipeline_decides_not_another_branchs(
    repos: Repos, ci: Ci, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same sha pushed to two branches gets a pipeline on each (woodpecker-ci/woodpecker
    # server/api/hook.go@v3.17.0:227); the landing's is the one on the target, main
    ci.outcome, ci.also_on = "red", "release"
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    result, out, err = land(
        capsys, "--no-verify", *ci.flags(), "--appear-grace", "5s", "--ci-poll-interval", "0.2s"
    )
    assert result == 1, out + err
    assert "expected pipeline #1 of" in out


def test_without_a_ci_server_nothing_is_pushed(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    before = repos.remote_head()
    code, _, err = land(capsys, "--no-verify")
    assert code == 2 and "--no-ci-watch" in err
    assert repos.remote_head() == before


def test_json_says_what_landed_and_the_verdict(
    repos: Repos, ci: Ci, capsys: pytest.CaptureFixture[str]
) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    code, out, err = land(
        capsys, "--no-verify", "--json", *ci.flags(), "--ci-poll-interval", "0.2s"
    )
    assert code == 0, out + err
    doc = json.loads(out)  # stdout is the JSON document only; progress went to stderr
    head = git(repos.work, "rev-parse", "HEAD")
    assert doc["landed"] == {
        "sha": head,
        "remote": "origin",
        "target": "main",
        "branch": "topic",
        "strategy": "rebase",
        "commits": 1,
        "attempts": 1,
        "already": False,
    }
    assert doc["verdict"] == "PASSED" and doc["exit_code"] == 0
    assert [c["phase"] for c in doc["checks"]] == ["ci"]
    assert "landed topic onto origin/main" in err


def test_json_without_ci_watch(repos: Repos, capsys: pytest.CaptureFixture[str]) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    code, out, _ = land(capsys, "--no-verify", "--no-ci-watch", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["landed"]["sha"] == repos.remote_head() and doc["verdict"] == "LANDED"


def test_verify_command_from_the_settings_file(
    repos: Repos, capsys: pytest.CaptureFixture[str]
) -> None:
    (repos.work / ".homelab.toml").write_text('verify_cmd = "echo verified-by-settings"\n')
    git(repos.work, "add", ".homelab.toml")
    git(repos.work, "commit", "-q", "-m", "settings")
    # The repo's own file may name a command to run only when the user trusts the repo.
    code, out, err = land(capsys, "--no-ci-watch")
    assert code == 2 and "sets verify_cmd, which decides where credentials go or what runs" in err
    assert "verified-by-settings" not in out
    config = Path(os.environ["HOME"]) / ".config" / "homelab" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"trusted_repos = [{str(repos.work)!r}]\n")
    code, out, err = land(capsys, "--no-ci-watch")
    assert code == 0, out + err
    assert repos.remote_head() == git(repos.work, "rev-parse", "HEAD")
    assert "echo verified-by-settings" in out + err


@pytest.fixture
def cd(ci: Ci, repos: Repos, tmp_path: Path) -> Iterator[Path]:
    """A cluster where apps/web runs the old image; "CD" rolls out each landed sha."""
    with KubeSim(speed=4.0, timing=Timing(observe=0.05, terminate=0.1)) as kube:
        kube.create_namespace("apps")
        kube.apply(deployment("web", "apps", f"{REGISTRY}/web:{repos.remote_head()}"))
        ci.kube = kube
        web = service("web", "apps", f"{REGISTRY}/web")
        (repos.work / "deploy.json").write_text(deploy_text(prod=environment([web])))
        git(repos.work, "add", "deploy.json")
        git(repos.work, "commit", "-q", "-m", "deploy.json")
        yield kube.kubeconfig(tmp_path / "kubeconfig")


@pytest.mark.parametrize(("deploy", "code"), [(True, 0), (False, 124)])
def test_deploy_wait_verifies_the_rollout_of_the_landed_sha(
    repos: Repos,
    ci: Ci,
    cd: Path,
    capsys: pytest.CaptureFixture[str],
    deploy: bool,
    code: int,
) -> None:
    ci.deploy = deploy
    result, out, err = land(
        capsys,
        "--no-verify",
        "--deploy-wait",
        *ci.flags(),
        "--kubeconfig",
        str(cd),
        "--ci-poll-interval",
        "0.2s",
        "--rollout-timeout",
        "3s",
    )
    assert result == code, out + err
    head = git(repos.work, "rev-parse", "HEAD")
    phases = [line.split()[1] for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert phases == ["ci", "rollout"], out
    if deploy:
        assert f"PASS  rollout  apps/web (Deployment) {REGISTRY}/web:{head} 2/2 ready" in out
    else:
        assert "DeadlineExceeded" in out


def test_deploy_wait_needs_the_ci_watch(repos: Repos, capsys: pytest.CaptureFixture[str]) -> None:
    repos.commit(repos.work, "feature.txt", "x\n", "feature")
    before = repos.remote_head()
    code, _, err = land(capsys, "--no-verify", "--no-ci-watch", "--deploy-wait")
    assert code == 2 and "--deploy-wait" in err
    assert repos.remote_head() == before
