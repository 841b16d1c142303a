"""The e2e phase: plan a dev run from the remote branch's deploy.json, dispatch the launcher to
D601, optionally wait for result.json, and turn the run's files into an outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline, format_duration
from pytest_homelab.core.gitrepo import GitRepo
from pytest_homelab.core.landing import Landing
from pytest_homelab.core.manifest import parse_manifest
from pytest_homelab.core.outcomes import (
    BadInput,
    CheckFailed,
    DeadlineExceeded,
    HomelabError,
    InfraError,
    NotFound,
)
from pytest_homelab.core.secrets import TOKEN_ENV, Environ
from pytest_homelab.core.settings import Settings
from pytest_homelab.e2e.launcher import (
    LaunchParams,
    RunFiles,
    check_run_id,
    launcher_text,
    make_run_id,
    parse_tar,
    read_command,
)
from pytest_homelab.e2e.remote import Remote

# result.json statuses that mean D601 itself (proxy, git, cluster, Tekton) was not usable, or
# the manifest or host settings are wrong: an error, not a red e2e run.
INFRA_STATUSES = frozenset(
    {
        "fetch-failed",
        "cluster-unreachable",
        "tekton-unavailable",
        "namespace-failed",
        "create-failed",
        "env-file",
    }
)
CONFIG_STATUSES = frozenset({"refused", "bad-manifest", "no-runner", "no-manifest"})
LOG_TAIL = 20


@dataclass(frozen=True)
class DevRunPlan:
    params: LaunchParams
    source: str  # e.g. origin/master:deploy.json


def plan_dev_run(settings: Settings, *, now: datetime | None = None) -> DevRunPlan:
    """Fetch the remote branch, read its deploy.json (never the working tree), validate it, and
    build the launch parameters. Raises BadInput."""
    git = GitRepo.discover(settings.repo_root)
    remote = git.pick_remote(settings.remote)
    branch = settings.e2e_branch or git.default_branch(remote)
    git.fetch(remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")
    commit = git.resolve_commit(f"refs/remotes/{remote}/{branch}")
    source = f"{remote}/{branch}:deploy.json"
    try:
        text = git.show_file(commit, "deploy.json")
    except NotFound:
        raise BadInput(
            f"there is no deploy.json at {remote}/{branch} ({commit[:12]})",
            hint="the dev e2e run reads the pushed desired state: commit and push deploy.json",
        ) from None
    environment = parse_manifest(text, source).environment(settings.e2e_env)
    if environment.ci is None:
        raise BadInput(
            f"{source}: environment {environment.name} has no ci block",
            hint="add environments.<env>.ci with repo, scriptPath and timeoutMs",
        )
    params = LaunchParams(
        repo=environment.ci.repo,
        commit=commit,
        script_path=environment.ci.script_path,
        run_id=make_run_id(commit, now),
        environment=environment.name,
        timeout_ms=environment.ci.timeout_ms,
        keep_namespace=settings.e2e_keep_namespace,
        work_root=settings.e2e_work_root,
        result_root=settings.e2e_result_root,
        env_file=settings.e2e_env_file,
    )
    return DevRunPlan(params, source)


def open_d601(settings: Settings) -> Remote:
    """The transport to D601 that the settings describe (not yet connected)."""
    from pytest_homelab.e2e.remote import open_remote

    s = settings
    env = s.environ if isinstance(s.environ, Environ) else Environ(s.environ)
    if s.d601_transport == "local":
        # The launcher and the runner (the repo's code) run here: never with our credentials.
        environ = env.without(*TOKEN_ENV, "VAULT_TOKEN")
    else:
        environ = env.only("HOME", "SSH_AUTH_SOCK")  # all that SSH needs
    return open_remote(
        s.d601_transport,
        s.d601_host,
        port=s.d601_port,
        user=s.d601_user,
        key_file=s.d601_key,
        known_hosts=s.d601_known_hosts,
        environ=environ,
    )


def dispatch(remote: Remote, params: LaunchParams) -> None:
    """Send the launcher; it starts the runner detached and returns at once."""
    result = remote.run("bash -s", stdin=launcher_text(params).encode(), timeout=60.0)
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode == 73:
        raise BadInput(
            f"D601 refused run {params.run_id}: {stderr or 'it already exists'}",
            hint="run it again: every run gets a fresh id",
        )
    if result.returncode == 77:
        raise BadInput(
            f"D601 refused run {params.run_id}: {stderr[-500:] or 'an unsafe work directory'}",
            hint="the work and result roots on D601 (and the env file) must belong to the CI "
            "user and be writable by nobody else, with no symlink and no directory above them "
            "that another user may write (unless sticky, like /tmp); nothing ran",
        )
    if result.returncode != 0:
        raise InfraError(
            f"the launcher failed on {remote.description} with exit {result.returncode}: "
            f"{stderr[-500:] or '(no output)'}",
            hint="check bash, git and write access to the work and result directories on D601",
        )


def read_run(remote: Remote, result_root: str, run_id: str) -> RunFiles:
    """The run's files on D601; ``exists`` is False for an unknown run id."""
    check_run_id(run_id)
    result = remote.run(read_command(result_root, run_id), timeout=60.0)
    if result.returncode == 3:
        return RunFiles(run_id, exists=False)
    if result.returncode == 4:
        raise InfraError(
            f"refusing to read run {run_id} on {remote.description}: its result directory (or "
            f"{result_root}) is a symlink, not the CI user's, or writable by others, so another "
            "user could have written what is in it",
            hint="look at who owns the result root on D601; a run's verdict is read only from "
            "the CI user's own directory",
        )
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        raise InfraError(f"cannot read run {run_id} on {remote.description}: {stderr[-300:]}")
    return parse_tar(run_id, result.stdout)


def wait_for_run(
    remote: Remote,
    params: LaunchParams,
    deadline: Deadline,
    *,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[str], None] = lambda line: None,
    poll: float = 2.0,
) -> RunFiles:
    """Poll the run until it has a result (or died) or the deadline passes."""
    started = clock.monotonic()
    last = ""
    while True:
        files = read_run(remote, params.result_root, params.run_id)
        line = (files.tail("runner.log", 1) or files.tail("launcher.log", 1) or ["starting"])[0]
        if line != last:
            last = line
            progress(
                f"e2e: {params.run_id}: {line} ({format_duration(clock.monotonic() - started)})"
            )
        if files.exists and files.state != "running":
            return files
        if deadline.expired():
            return files
        clock.sleep(min(poll, deadline.remaining()))


@dataclass(frozen=True)
class DevRunResult:
    params: LaunchParams
    source: str
    remote: str
    outcome: HomelabError | None
    files: RunFiles | None = None  # None when only dispatched

    @property
    def dispatched_only(self) -> bool:
        return self.files is None and self.outcome is None

    def properties(self) -> list[tuple[str, str]]:
        p = self.params
        result = (self.files.result if self.files is not None else None) or {}
        props = [
            ("run_id", p.run_id),
            ("manifest_commit", p.commit),
            ("manifest_source", self.source),
            ("d601", self.remote),
            ("result_dir", p.result_dir),
            ("script_path", p.script_path),
            ("environment", p.environment),
        ]
        pipeline_run = self.files.pipeline_run if self.files is not None else None
        if pipeline_run:
            props.append(("pipeline_run", pipeline_run))
        if result.get("temporaryNamespace"):
            props.append(("temporary_namespace", str(result["temporaryNamespace"])))
        status = result.get("status") or (self.files.state if self.files else "dispatched")
        props.append(("status", str(status)))
        # A pass may carry tasks Tekton skipped and failures it ignored (onError: continue):
        # named here so the verdict line shows them; neither changes the outcome.
        for key, prop in (("skippedTasks", "skipped_tasks"), ("toleratedFailures", "tolerated")):
            entries = result.get(key)
            if isinstance(entries, list) and entries:
                named = [
                    f"{e.get('name')} ({e.get('reason')})" for e in entries if isinstance(e, dict)
                ]
                props.append((prop, ", ".join(named)))
        if self.dispatched_only:
            props.append(("outcome", "dispatched"))
        props.append(("next", f"homelab ci logs {p.run_id}"))
        return props

    def check(self) -> None:
        __tracebackhide__ = True
        if self.outcome is not None:
            raise self.outcome


def judge(
    params: LaunchParams, files: RunFiles, source: str, remote: str, waited: float
) -> DevRunResult:
    """Turn a run's files into an outcome: passed, failed, an infra/config error, or running."""
    run = params.run_id
    logs = f"homelab ci logs {run}"
    if not files.exists:
        return DevRunResult(
            params,
            source,
            remote,
            NotFound(
                f"run {run} left no result directory on {remote}",
                hint="the launcher did not start; check that the result root is writable",
            ),
            files,
        )
    state = files.state
    if state == "passed":
        return DevRunResult(params, source, remote, None, files)
    if state == "running":
        return DevRunResult(
            params,
            source,
            remote,
            DeadlineExceeded(
                f"expected run {run} to finish within {format_duration(waited)}, but it is still "
                "running on D601",
                hint=f"it goes on without us: {logs} --follow",
            ),
            files,
        )
    result = files.result or {}
    status = str(result.get("status") or "died")
    message = str(result.get("message") or "")
    tail = "\n".join(files.tail("runner.log", LOG_TAIL) or files.tail("launcher.log", LOG_TAIL))
    if state == "died":
        outcome: HomelabError = CheckFailed(
            f"run {run} stopped without a result (no result.json and no process left); "
            f"last lines:\n{tail}",
            hint=f"read everything with {logs}",
        )
    elif status in INFRA_STATUSES:
        outcome = InfraError(
            f"run {run} could not run on D601 ({status}): {message}\n{tail}",
            hint=f"fix D601 (proxy, git, cluster, Tekton), then run again; {logs}",
        )
    elif status in CONFIG_STATUSES:
        outcome = BadInput(
            f"run {run} was refused ({status}): {message}",
            hint=f"fix deploy.json or D601's host settings; {logs}",
        )
    else:
        outcome = CheckFailed(
            f"expected the dev e2e run {run} to pass, but it ended {status}: {message}",
            hint=f"the failing TaskRun's log is below; {logs}",
        )
    return DevRunResult(params, source, remote, outcome, files)


def run_dev_e2e(
    landing: Landing, connect: Callable[[], Remote]
) -> tuple[DevRunResult, bytes | None]:
    """The e2e phase of a landing session: plan the run from the remote branch's deploy.json,
    dispatch it to D601 (``connect`` opens the transport only once the plan is good), and with
    ``e2e_wait`` wait for it and judge it. Returns the result and the runner's junit.xml."""
    settings = landing.settings
    plan = plan_dev_run(settings)
    remote = connect()
    params = plan.params
    dispatch(remote, params)
    landing.progress(
        f"e2e: dispatched {params.run_id} to {remote.description} ({plan.source} at "
        f"{params.commit[:8]}); result dir {params.result_dir}"
    )
    if settings.e2e_wait is None:
        return DevRunResult(params, plan.source, remote.description, None), None
    deadline = landing.deadline.sub(settings.e2e_wait)
    started = landing.clock.monotonic()
    files = wait_for_run(
        remote,
        params,
        deadline,
        clock=landing.clock,
        progress=landing.progress,
        poll=settings.e2e_poll_interval,
    )
    waited = landing.clock.monotonic() - started
    result = judge(params, files, plan.source, remote.description, waited)
    return result, files.files.get("junit.xml") or None
