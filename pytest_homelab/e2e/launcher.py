"""The dev end-to-end run: its id, the launcher sent to D601, and reading a run's files back.

The launcher is a short fixed wrapper plus only the seed's parameters (repo, full commit,
script path, run id, environment, timeout, keep-namespace, workspace paths), each validated and
shell-quoted. It never carries the runner's body: D601 fetches the manifest commit itself and
pipes ``git show <commit>:<scriptPath>`` into ``bash -s``. The work and result roots (under
D601's ``$HOME`` by default) must be this user's and writable by nobody else, each run's work
directory is made by ``mktemp -d``, and results are read back only from a directory of the same
kind: another user on D601 can neither run code as the CI user nor forge a result. See
``shared/seeds/003_*.txt``, docs/dev-e2e.md and docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.refs import HOME_PREFIX, normalize_remote_path

RUN_ID_MAX = 40  # so <prefix>-<runId> namespaces and PipelineRun names stay 63-char labels
RUN_ID = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
SHA = re.compile(r"[0-9a-f]{40}")
SCRIPT = re.compile(r"scripts/ci/[A-Za-z0-9_][A-Za-z0-9_.-]*\.sh")
ENVIRONMENT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
REPO = re.compile(
    r"((https?|ssh)://[A-Za-z0-9._~%@:/+-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~%/+-]+)"
)


def make_run_id(commit: str, now: datetime | None = None, suffix: str | None = None) -> str:
    """``e2e-<sha8>-<UTC yyyymmddhhmmss>-<4 random hex>``: DNS-safe, unique, ≤ 40 chars."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    tail = suffix if suffix is not None else secrets.token_hex(2)
    run_id = f"e2e-{commit[:8].lower()}-{moment:%Y%m%d%H%M%S}-{tail}"
    check_run_id(run_id)
    return run_id


def check_run_id(run_id: str) -> str:
    if len(run_id) > RUN_ID_MAX or not RUN_ID.fullmatch(run_id) or "--" in run_id:
        raise BadInput(
            f"run id {run_id!r} is not valid",
            hint=f"a run id is a DNS label of at most {RUN_ID_MAX} characters: lowercase "
            "letters, digits and '-', starting with a letter (homelab prints them, e.g. "
            "e2e-1a2b3c4d-20261123101500-9f3e)",
        )
    return run_id


def shell_path(path: str) -> str:
    """A remote path as a shell word: ``$HOME`` stays live, everything else is quoted."""
    if path.startswith(HOME_PREFIX):
        return '"$HOME"/' + shlex.quote(path[len(HOME_PREFIX) :])
    return shlex.quote(path)


@dataclass(frozen=True)
class LaunchParams:
    """Everything the launcher carries; validated on construction, before anything is sent."""

    repo: str
    commit: str
    script_path: str
    run_id: str
    environment: str
    timeout_ms: int
    keep_namespace: bool = False
    work_root: str = "$HOME/.unidesk/work"
    result_root: str = "$HOME/.unidesk/runs"
    env_file: str = "$HOME/.unidesk/ci.env"

    def __post_init__(self) -> None:
        problems = []
        if not REPO.fullmatch(self.repo) or len(self.repo) > 512:
            problems.append(f"repo {self.repo[:80]!r} is not a plain git URL")
        if not SHA.fullmatch(self.commit):
            problems.append(f"commit {self.commit[:60]!r} is not a full 40-hex sha")
        if not SCRIPT.fullmatch(self.script_path) or ".." in self.script_path:
            problems.append(f"script path {self.script_path[:80]!r} is not scripts/ci/<name>.sh")
        if not ENVIRONMENT.fullmatch(self.environment):
            problems.append(f"environment {self.environment[:80]!r} is not a DNS label")
        if isinstance(self.timeout_ms, bool) or not 1000 <= self.timeout_ms <= 86_400_000:
            problems.append(f"timeout {self.timeout_ms!r} ms is not within 1 s to 24 h")
        try:
            check_run_id(self.run_id)
            for value in (self.work_root, self.result_root, self.env_file):
                if normalize_remote_path(value) != value:
                    problems.append(f"remote path {value!r} is not normalized")
        except BadInput as exc:
            problems.append(exc.message)
        if problems:
            raise BadInput(
                "refusing to launch: " + "; ".join(problems),
                hint="fix deploy.json or the e2e settings; nothing was sent to D601",
            )

    @property
    def result_dir(self) -> str:
        return f"{self.result_root}/{self.run_id}"


_WRAPPER = r"""
umask 077
me=$(id -u)
refuse() {
  echo "homelab-launcher: refusing run $RUN_ID: $1" >&2
  exit 77
}
# secure_path PATH dir|file: make a missing directory (mode 700) or check what is there, so that
# nobody else can put code or results into a run. A run's root directory and every directory
# this creates: a real directory (no symlink), owned by this user, writable by nobody else. The
# env file: a regular file (no symlink) of this user or root, writable by nobody else. Every
# directory above them: owned by root or this user, and writable by others only with the sticky
# bit (like /tmp), so nobody else can rename or swap what lies below.
secure_path() {
  local path=$1 kind=$2 built="" part owner mode n=0 mine=0 parts last
  case "$path" in /*) ;; *) refuse "$path is not an absolute path" ;; esac
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    n=$((n + 1))
    [ -n "$part" ] || continue
    built="$built/$part"
    last=0
    [ "$n" = "${#parts[@]}" ] && last=1
    if [ ! -e "$built" ] && [ ! -L "$built" ] && { [ "$kind" = dir ] || [ "$last" = 0 ]; }; then
      mkdir -m 700 "$built" 2>/dev/null || [ -d "$built" ] || refuse "cannot create $built"
      mine=1
    fi
    if [ -L "$built" ]; then refuse "$built is a symlink"; fi
    if [ "$last" = 1 ] && [ "$kind" = file ]; then
      [ -f "$built" ] || refuse "$built is not a regular file"
    elif [ ! -d "$built" ]; then
      refuse "$built is not a directory"
    fi
    read -r owner mode < <(stat -c '%u %a' -- "$built") || refuse "cannot stat $built"
    mode=$((8#$mode))
    if [ "$last" = 1 ] || [ "$mine" = 1 ]; then
      if [ "$owner" != "$me" ] && { [ "$kind" = dir ] || [ "$owner" != 0 ]; }; then
        refuse "$built is owned by uid $owner, not by this user (uid $me)"
      fi
      if ((mode & 8#022)); then
        refuse "$built is writable by group or others (mode $(printf %o "$mode"))"
      fi
    else
      if [ "$owner" != 0 ] && [ "$owner" != "$me" ]; then
        refuse "$built (above $path) is owned by uid $owner, neither root nor this user"
      fi
      if ((mode & 8#022)) && ! ((mode & 8#1000)); then
        mode=$(printf %o "$mode")
        refuse "$built (above $path) is writable by group or others and not sticky (mode $mode)"
      fi
    fi
  done
}
secure_path "$RESULT_ROOT" dir
secure_path "$WORK_ROOT" dir
if [ -e "$ENV_FILE" ] || [ -L "$ENV_FILE" ]; then secure_path "$ENV_FILE" file; fi
result="$RESULT_ROOT/$RUN_ID"
if [ -e "$result" ] || [ -L "$result" ]; then
  echo "homelab-launcher: run $RUN_ID already exists at $result" >&2
  exit 73
fi
mkdir -m 700 "$result" || exit 73
work=$(mktemp -d "$WORK_ROOT/$RUN_ID.XXXXXX") || refuse "cannot make a work directory in $WORK_ROOT"
(
  trap '' HUP
  exec </dev/null >>"$result/launcher.log" 2>&1
  finish() {
    echo "launcher: $2"
    if [ ! -s "$result/result.json" ]; then
      {
        printf '{"ok": false, "status": "%s", "runId": "%s", ' "$1" "$RUN_ID"
        printf '"manifestCommit": "%s", "pipelineRun": null, ' "$COMMIT"
        printf '"temporaryNamespace": null, "finishedAt": "%s", ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf '"message": "%s"}\n' "$2"
      } >"$result/result.json.tmp" && mv "$result/result.json.tmp" "$result/result.json"
    fi
    exit 1
  }
  echo "launcher: run $RUN_ID of $REPO at $COMMIT ($SCRIPT_PATH, $ENVIRONMENT) in $work"
  if [ -f "$ENV_FILE" ]; then  # checked above: this user's (or root's), writable by no one else
    # shellcheck source=/dev/null
    . "$ENV_FILE" || finish env-file "cannot read the host settings file (see launcher.log)"
  fi
  proxy="${HOMELAB_E2E_PROXY:-http://127.0.0.1:18789}"
  echo "launcher: fetching through $proxy"
  git init -q "$work/repo" || finish fetch-failed "git init failed"
  git -C "$work/repo" -c http.proxy="$proxy" fetch --quiet --no-tags --depth 1 "$REPO" "$COMMIT" \
    || finish fetch-failed "git fetch of the manifest commit failed (see launcher.log)"
  # Only a regular file of the commit may run: a symlink's blob is a path that points elsewhere.
  mode=$(git -C "$work/repo" ls-tree "$COMMIT" -- "$SCRIPT_PATH" | cut -d' ' -f1)
  case "$mode" in
    100644 | 100755) ;;
    120000) finish no-runner "$SCRIPT_PATH is a symlink at $COMMIT; the runner must be a file" ;;
    *) finish no-runner "no $SCRIPT_PATH at $COMMIT" ;;
  esac
  git -C "$work/repo" show "$COMMIT:deploy.json" >"$work/deploy.json" \
    || finish no-manifest "no deploy.json at $COMMIT"
  set -- --run-id "$RUN_ID" --repo-url "$REPO" --desired-ref master \
    --manifest-commit "$COMMIT" --manifest-file "$work/deploy.json" \
    --environment "$ENVIRONMENT" --result-dir "$result" --timeout-ms "$TIMEOUT_MS"
  if [ "$KEEP_NAMESPACE" = 1 ]; then set -- "$@" --keep-namespace; fi
  echo "launcher: starting the runner"
  # The runner goes from git straight into bash: it never lies in a file anyone could swap.
  git -C "$work/repo" show "$COMMIT:$SCRIPT_PATH" | bash -s -- "$@" >>"$result/runner.log" 2>&1 &
  echo "$!" >"$result/runner.pid"
  wait "$!"
  code=$?
  echo "launcher: runner exited with $code"
  if [ ! -s "$result/result.json" ]; then
    finish runner-died "the runner exited with $code without writing result.json"
  fi
) &
echo "$!" >"$result/launcher.pid"
echo "homelab-launcher: started $RUN_ID"
"""


def launcher_text(p: LaunchParams) -> str:
    """The exact text sent to ``bash -s`` on D601."""
    lines = [
        "# pytest-homelab dev e2e launcher: a fixed wrapper and its parameters, nothing else.",
        "set -u",
        f"RUN_ID={shlex.quote(p.run_id)}",
        f"REPO={shlex.quote(p.repo)}",
        f"COMMIT={shlex.quote(p.commit)}",
        f"SCRIPT_PATH={shlex.quote(p.script_path)}",
        f"ENVIRONMENT={shlex.quote(p.environment)}",
        f"TIMEOUT_MS={shlex.quote(str(p.timeout_ms))}",
        f"KEEP_NAMESPACE={1 if p.keep_namespace else 0}",
        f"WORK_ROOT={shell_path(p.work_root)}",
        f"RESULT_ROOT={shell_path(p.result_root)}",
        f"ENV_FILE={shell_path(p.env_file)}",
    ]
    return "\n".join(lines) + "\n" + _WRAPPER.lstrip("\n")


# -- reading a run back ---------------------------------------------------------------------------


@dataclass
class RunFiles:
    """What a run left in its result directory on D601."""

    run_id: str
    exists: bool
    files: dict[str, bytes] = field(default_factory=dict)
    alive: bool = False  # the launcher or runner process is still running

    def text(self, name: str) -> str:
        return self.files.get(name, b"").decode("utf-8", "replace")

    def tail(self, name: str, lines: int = 20) -> list[str]:
        return self.text(name).splitlines()[-lines:]

    @property
    def result(self) -> dict[str, Any] | None:
        raw = self.files.get("result.json")
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def state(self) -> str:
        """passed, failed, running, or died (no result.json and nothing running)."""
        result = self.result
        if result is not None:
            return "passed" if result.get("ok") is True else "failed"
        return "running" if self.alive else "died"

    @property
    def pipeline_run(self) -> str | None:
        result = self.result or {}
        name = result.get("pipelineRun") or self.text("pipelinerun.txt").strip()
        return str(name) if name else None


def read_command(result_root: str, run_id: str) -> str:
    """A shell command that prints the run's directory as a tar stream, or exits 3 if absent.

    It also reports whether the launcher or runner is alive, as a file ``.alive`` in the tar.
    It reads only a directory this user owns and nobody else can write, under a root of the same
    kind (exit 4 otherwise): what another user could have put there is never read.
    """
    check_run_id(run_id)
    root = shell_path(result_root)
    directory = f"{root}/{shlex.quote(run_id)}"
    return (
        f"r={root}; d={directory}; "
        '[ -e "$d" ] || [ -L "$d" ] || exit 3; '
        'for p in "$r" "$d"; do '
        '[ ! -L "$p" ] && [ -d "$p" ] && [ -O "$p" ] || exit 4; '
        # POSIX sh (D601's login shell may be dash): the group and other digits of the mode
        'm=$(stat -c %a -- "$p") || exit 4; case ${m#"${m%??}"} in *[2367]*) exit 4 ;; esac; '
        "done; "
        'cd "$d" || exit 3; '
        "alive=0; for f in launcher.pid runner.pid; do "
        '[ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done; '
        'tmp=$(mktemp -d) && echo "$alive" >"$tmp/.alive" && '
        'tar -cf - --exclude=./repo . -C "$tmp" .alive; s=$?; rm -rf "$tmp"; '
        # GNU tar exits 1 when a file changed or vanished while it was read: the archive is
        # still whole, and the next read sees the rest (result.json is replaced atomically).
        '[ "$s" = 1 ] && s=0; exit $s'
    )


def parse_tar(run_id: str, data: bytes) -> RunFiles:
    import io
    import tarfile

    files: dict[str, bytes] = {}
    alive = False
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            if not member.isfile() or member.size > 8 * 1024 * 1024:
                continue
            name = member.name.removeprefix("./")
            handle = archive.extractfile(member)
            content = handle.read() if handle is not None else b""
            if name == ".alive":
                alive = content.strip() == b"1"
            else:
                files[name] = content
    return RunFiles(run_id, True, files, alive)


def reference_runner() -> Path:
    """The reference runner scripts/ci/dev-e2e.sh: packaged in wheels, else the source tree's."""
    packaged = Path(__file__).parents[1] / "runner" / "dev-e2e.sh"
    if packaged.is_file():
        return packaged
    return Path(__file__).parents[2] / "scripts" / "ci" / "dev-e2e.sh"
