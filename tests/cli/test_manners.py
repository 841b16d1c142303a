"""CLI manners: --version, the verb's own usage and a "did you mean" on a typo, value errors
that name the flag typed, and a ``next:`` line under every error."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_homelab import __version__
from pytest_homelab.cli import main


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith(("HOMELAB_", "WOODPECKER_", "VAULT_", "KUBE")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run([flag], capsys)
    assert code == 0 and out.strip() == f"homelab {__version__}"


@pytest.mark.parametrize(
    ("args", "usage", "guess"),
    [
        (["demo", "--scenaro", "red"], "usage: homelab demo ", "--scenario"),
        (["ci", "watch", "--timout", "5m"], "usage: homelab ci watch ", "--timeout"),
        (["deploy", "wait", "--kubeconfg", "x"], "usage: homelab deploy wait ", "--kubeconfig"),
        (["ci", "stauts"], "usage: homelab ci ", "status"),
        (["demoo"], "usage: homelab ", "demo"),
        (["work", "land", "--no-verfy"], "usage: homelab work land ", "--no-verify"),
        (["doctor", "--only", "rollot"], "usage: homelab doctor ", "rollout"),  # a flag's choice
        (["init", "--dry-rn"], "usage: homelab init ", "--dry-run"),
    ],
)
def test_a_typo_prints_the_verbs_usage_and_a_guess(
    args: list[str], usage: str, guess: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith(usage), err
    assert f"did you mean {guess}?" in err
    assert err.rstrip().splitlines()[-1].lstrip().startswith("next: ")


@pytest.mark.parametrize(
    ("args", "typed", "not_named"),
    [
        (["ci", "watch", "--timeout", "banana"], "--timeout", "--ci-timeout"),
        (["deploy", "wait", "--timeout", "0"], "--timeout", "--rollout-timeout"),
        (["work", "land", "--timeout", "x"], "--timeout", "--ci-timeout"),
        (["ci", "watch", "--repo", "notarepo"], "--repo", "--woodpecker-repo"),
    ],
)
def test_a_value_error_names_the_flag_typed(
    args: list[str],
    typed: str,
    not_named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WOODPECKER_SERVER", "http://127.0.0.1:9")
    code, _out, err = run(args, capsys)
    assert code == 2, err
    assert err.startswith("homelab: BadInput: ") and typed in err and not_named not in err
    assert "\n  next: " in err


def test_ci_pages_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["ci", "watch", "--ci-pages", "-3"], capsys)
    assert code == 2 and "must be at least 1" in err and "whole number" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["ci", "run-dev-e2e", "--wait-ms", "-1"],
        ["ci", "run-dev-e2e", "--wait-ms", "soon"],
        ["manifest", "check", "nope.json"],
        ["ci", "logs", "../../etc", "--transport", "local"],
        ["demo", "--scenario", "nope"],
    ],
)
def test_every_bad_input_ends_with_next(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(args, capsys)
    assert code == 2, err
    assert "BadInput" in err or "error:" in err
    assert err.rstrip().splitlines()[-1].lstrip().startswith("next: "), err


def test_manifest_check_errors_look_like_every_verbs(
    clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean / "deploy.json").write_text(json.dumps({"schemaVersion": 2, "environments": {}}))
    code, out, err = run(["manifest", "check", "deploy.json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("homelab: BadInput: deploy.json is not a valid deploy.json")


VALID = {
    "schemaVersion": 2,
    "environments": {"dev": {"services": [{"name": "web", "namespace": "a", "image": "r/w"}]}},
}


def _repo(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, remote: bool, manifest: object = VALID
) -> Path:
    from tests.gitenv import git, hermetic_git

    hermetic_git(monkeypatch, root / "githome")
    repo = root / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "deploy.json").write_text(json.dumps(manifest))
    git(repo, "add", "deploy.json")
    git(repo, "commit", "-q", "-m", "first")
    if remote:
        git(root, "init", "-q", "--bare", "-b", "main", "forge.git")
        git(repo, "remote", "add", "origin", str(root / "forge.git"))
        git(repo, "push", "-q", "origin", "main")
    git(repo, "switch", "-q", "-c", "feature")
    monkeypatch.chdir(repo)
    return repo


def test_work_land_without_a_remote_does_not_advise_repo(
    clean: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(clean, monkeypatch, remote=False)
    args = ["work", "land", "--repo", "a/b", "--no-verify", "--no-ci-watch"]
    code, _out, err = run(args, capsys)
    assert code == 2 and "no git remote to land onto" in err
    assert "pass --repo" not in err and "\n  next: add the remote" in err


def test_run_dev_e2e_reports_every_problem_at_once(
    clean: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(clean, monkeypatch, remote=True, manifest={"schemaVersion": 2, "environments": {}})
    monkeypatch.setenv("HOMELAB_E2E_POLL_INTERVAL", "often")
    code, _out, err = run(["ci", "run-dev-e2e", "--poll-interval", "banana"], capsys)
    assert code == 2 and "3 problems" in err, err
    assert "--poll-interval" in err and "'banana'" in err  # the flag beats the env, both bad
    assert "d601_host" in err and "origin/main:deploy.json" in err
    assert err.rstrip().splitlines()[-1].startswith("  next: ")
