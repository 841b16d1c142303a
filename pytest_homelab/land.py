"""``homelab work land``: bring the current branch onto the target branch, verify, push, retry.

Safety rules, each tested with real git: never on the target branch itself, a dirty tree or a
detached HEAD; the target comes from the remote's HEAD (else main/master); a conflict stops with
the repository left exactly as git left it; a red verify stops before pushing; a non-fast-forward
rejection re-syncs, re-verifies and retries (bounded); nothing is ever force-pushed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.outcomes import BadInput, CheckFailed, InfraError

Strategy = Literal["rebase", "merge"]
Verify = Callable[[str], int]  # runs the verify command, returns its exit code


class Conflict(CheckFailed):
    """Bringing the branch onto the target hit conflicts; the repository is left as git left it."""


class VerifyFailed(CheckFailed):
    """The verify command failed: nothing was pushed."""


class PushRejected(CheckFailed):
    """The remote refused the push (a hook, a protected branch, or still behind after retries)."""


@dataclass(frozen=True)
class LandPlan:
    branch: str
    remote: str
    target: str
    strategy: Strategy
    verify_cmd: str | None  # None: --no-verify


@dataclass(frozen=True)
class Landed:
    sha: str
    target: str
    remote: str
    commits: int
    attempts: int
    already: bool = False  # HEAD was already part of the target


def shell_verify(root: str) -> Verify:
    """Run the command with ``sh -c`` in the repo root, output streaming to the terminal."""

    def run(command: str) -> int:
        return subprocess.run(["sh", "-c", command], cwd=root, check=False).returncode

    return run


def plan_landing(
    git: GitRepo,
    *,
    remote: str | None,
    onto: str | None,
    strategy: Strategy,
    verify_cmd: str | None,
    no_verify: bool,
) -> LandPlan:
    """Check the safety rules and decide what to do. Raises BadInput with what to do."""
    branch = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    if not branch:
        raise BadInput(
            "refusing to land a detached HEAD",
            hint="check out the branch you want to land (git switch <branch>)",
        )
    remote_name = git.pick_remote(remote, to_push=True)
    target = onto or git.default_branch(remote_name)
    if branch == target:
        raise BadInput(
            f"refusing to land: you are on {target}, the target branch itself",
            hint="land from a topic branch (git switch -c <topic>)",
        )
    changes = [
        line
        for line in git.run("status", "--porcelain").splitlines()
        if line and not line.startswith("??")
    ]
    if changes:
        shown = ", ".join(line[3:] for line in changes[:5]) + (" …" if len(changes) > 5 else "")
        raise BadInput(
            f"refusing to land with uncommitted changes: {shown}",
            hint="commit or stash them first (untracked files are fine)",
        )
    if no_verify:
        verify = None
    elif verify_cmd:
        verify = verify_cmd
    else:
        raise BadInput(
            "no verify command: landing runs your tests before pushing",
            hint='set verify_cmd in [tool.homelab] (e.g. "pytest -q"), pass --verify-cmd, '
            "or say --no-verify explicitly",
        )
    return LandPlan(branch, remote_name, target, strategy, verify)


def _sync(git: GitRepo, plan: LandPlan) -> None:
    """Fetch the target and bring HEAD onto it; a conflict leaves the repo as git leaves it."""
    upstream = f"refs/remotes/{plan.remote}/{plan.target}"
    git.fetch(plan.remote, f"+refs/heads/{plan.target}:{upstream}")
    if plan.strategy == "rebase":
        done = subprocess.run(
            ["git", "rebase", upstream], cwd=git.root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise Conflict(
                f"rebasing {plan.branch} onto {plan.remote}/{plan.target} stopped with "
                f"conflicts:\n{_conflicted(git)}",
                hint="resolve them, git add the files, git rebase --continue, then run "
                "homelab work land again (or git rebase --abort to back out); "
                "nothing was pushed",
            )
    else:
        done = subprocess.run(
            ["git", "merge", "--no-edit", upstream],
            cwd=git.root,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise Conflict(
                f"merging {plan.remote}/{plan.target} into {plan.branch} stopped with "
                f"conflicts:\n{_conflicted(git)}",
                hint="resolve them, git add the files, git commit, then run homelab work land "
                "again (or git merge --abort to back out); nothing was pushed",
            )


def _conflicted(git: GitRepo) -> str:
    files = git.run("diff", "--name-only", "--diff-filter=U", check=False).split()
    return "\n".join(f"  {f}" for f in files) or "  (see git status)"


def _verify(plan: LandPlan, verify: Verify, progress: Callable[[str], None]) -> None:
    if plan.verify_cmd is None:
        progress("land: --no-verify: not running the verify command")
        return
    progress(f"land: verifying: {plan.verify_cmd}")
    code = verify(plan.verify_cmd)
    if code != 0:
        raise VerifyFailed(
            f"the verify command failed (exit {code}): {plan.verify_cmd}",
            hint="fix it and land again; nothing was pushed",
        )


def _push(git: GitRepo, plan: LandPlan) -> tuple[bool, str]:
    """Push HEAD to the target. (True, "") when it landed; (False, why) on a non-fast-forward;
    PushRejected for a rejection a retry cannot fix."""
    done = subprocess.run(
        ["git", "push", "--porcelain", plan.remote, f"HEAD:refs/heads/{plan.target}"],
        cwd=git.root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return True, ""
    text = done.stdout + done.stderr
    if (
        any(mark in text for mark in ("non-fast-forward", "fetch first", "[rejected]"))
        and "remote rejected" not in text
        and "hook declined" not in text
    ):
        return False, "the target moved on (non-fast-forward)"
    lines = [line for line in text.splitlines() if line.strip()][-8:]
    if "remote rejected" in text or "hook declined" in text or "denied" in text:
        raise PushRejected(
            f"{plan.remote} rejected the push to {plan.target}:\n"
            + "\n".join(f"  {line}" for line in lines),
            hint="the remote's rules refused it (a hook or a protected branch); nothing was landed",
        )
    raise InfraError(
        f"git push to {plan.remote} failed:\n" + "\n".join(f"  {x}" for x in lines),
        hint="check the remote's URL, your access and the network",
    )


def land(
    git: GitRepo,
    plan: LandPlan,
    *,
    verify: Verify,
    retries: int = 3,
    progress: Callable[[str], None] = lambda line: None,
) -> Landed:
    """Sync, verify, push; on a non-fast-forward re-sync, re-verify and retry up to ``retries``."""
    for attempt in range(1, retries + 2):
        _sync(git, plan)
        upstream = f"refs/remotes/{plan.remote}/{plan.target}"
        commits = int(git.run("rev-list", "--count", f"{upstream}..HEAD").strip() or 0)
        sha = git.resolve_commit("HEAD")
        if commits == 0:
            progress(
                f"land: nothing to land: {plan.branch} is already in {plan.remote}/{plan.target}"
            )
            return Landed(sha, plan.target, plan.remote, 0, attempt, already=True)
        progress(
            f"land: {commits} commit{'s' if commits != 1 else ''} of {plan.branch} on "
            f"{plan.remote}/{plan.target} ({plan.strategy})"
        )
        _verify(plan, verify, progress)
        pushed, why = _push(git, plan)
        if pushed:
            return Landed(sha, plan.target, plan.remote, commits, attempt)
        if attempt > retries:
            raise PushRejected(
                f"{plan.target} kept moving: the push was rejected {attempt} times ({why})",
                hint="land again later, or raise --push-retries; nothing was landed",
            )
        progress(
            f"land: push rejected: {why}; re-syncing and verifying again ({attempt}/{retries})"
        )
    raise AssertionError("unreachable")  # pragma: no cover
