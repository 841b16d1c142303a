"""Another user on D601 cannot run code as the CI user or forge a result (issue 19, finding 1).

The review's attack, with a real second uid (nobody, 65534, via ``setpriv``): it made the work
root in a shared /tmp-like directory first, swapped the new run's folder for one whose
``runner.sh`` was a named pipe, and got its code run as the CI user with a forged PASS in
``result.json``. Here the same user attacks each way in: a work root (or result root) it made
or symlinked, a root writable by others, a non-sticky shared parent, a race while runs start, and
a planted result directory that the CLI would read back. The launcher runs as it does on D601
(``bash -s`` with the launcher text); the CLI side reads runs with the product's own command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_homelab.core.outcomes import InfraError
from pytest_homelab.e2e.launcher import LaunchParams, launcher_text, make_run_id, read_command
from pytest_homelab.e2e.phase import read_run
from pytest_homelab.e2e.remote import LocalRemote
from tests.devrun.conftest import STUBS, Origin

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
FORGED = '{"ok": true, "status": "succeeded", "runId": "forged", "message": "forged"}'

# What the attacker runs, in a loop, as uid 65534: make the root first (world-writable), and in
# every run folder it can reach plant runner.sh as a named pipe feeding its own code (which
# leaves a mark and a forged PASS), a runner.sh file, and a forged result.json.
ATTACKER = r"""
root=$1 results=$2 mark=$3 stop=$4
payload="id -u >'$mark'; printf '%s\n' '$FORGED' >\"\$5\"/result.json 2>/dev/null"
while [ ! -e "$stop" ]; do
  mkdir -m 777 "$root" "$results" 2>/dev/null
  for d in "$root"/* "$results"/*; do
    [ -d "$d" ] || continue
    if [ ! -p "$d/runner.sh" ] && mkfifo -m 666 "$d/runner.sh" 2>/dev/null; then
      (printf '%s\n' "$payload" >"$d/runner.sh" &) 2>/dev/null
    fi
    printf '%s\n' '$FORGED' >"$d/result.json" 2>/dev/null
  done
  sleep 0.01
done
""".replace("$FORGED", FORGED)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory like /tmp: root's, mode 1777, reachable by uid 65534."""
    path = Path(tempfile.mkdtemp(prefix="homelab-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(script: str, *args: str) -> None:
    subprocess.run([*AS_NOBODY, "bash", "-c", script, "attack", *args], check=True, timeout=10)


@contextlib.contextmanager
def attacker(root: Path, results: Path, mark: Path) -> Iterator[None]:
    stop = root.parent / f"stop-{root.name}"
    proc = subprocess.Popen(
        [
            *AS_NOBODY,
            "bash",
            "-c",
            ATTACKER,
            "attack",
            str(root),
            str(results),
            str(mark),
            str(stop),
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        stop.touch()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # the planted pipes' writers block until someone reads: end them by group, by PID
        for pid in _children_of_nobody_in(root.parent):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _children_of_nobody_in(directory: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        uid = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "")
        if uid == str(NOBODY) and str(directory).encode() in cmdline:
            found.append(int(entry))
    return found


def launch(
    origin: Origin,
    proxy_url: str,
    work_root: str = "$HOME/.unidesk/work",
    result_root: str = "$HOME/.unidesk/runs",
) -> tuple[subprocess.CompletedProcess[str], LaunchParams]:
    params = LaunchParams(
        repo=origin.url,
        commit=origin.sha,
        script_path="scripts/ci/ok.sh",
        run_id=make_run_id(origin.sha),
        environment="dev",
        timeout_ms=60_000,
        work_root=work_root,
        result_root=result_root,
    )
    env_file = origin.home / ".unidesk" / "ci.env"
    env_file.parent.mkdir(mode=0o700, exist_ok=True)
    env_file.write_text(f"HOMELAB_E2E_PROXY={proxy_url}\n")
    done = subprocess.run(
        ["bash", "-s"],
        input=launcher_text(params),
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(origin.home), "PATH": os.environ["PATH"]},
    )
    return done, params


def wait_settled(result: Path, seconds: float = 20) -> None:
    """Until the run's launcher (and runner) has exited."""
    pid_file = result / "launcher.pid"
    deadline = time.monotonic() + seconds
    while True:
        assert time.monotonic() < deadline, "the run did not finish"
        if pid_file.is_file() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)


def test_the_review_attack_a_work_root_made_first_by_another_user(
    origin: Origin, proxy: Any, shared: Path
) -> None:
    root, mark = shared / "unidesk-ci", shared / "pwned"
    as_nobody('mkdir -m 777 "$1"', str(root))
    with attacker(root, shared / "runs", mark):
        for _ in range(5):  # the review won 5 runs out of 5
            done, params = launch(origin, proxy.url, work_root=str(root))
            assert done.returncode == 77, done.stderr
            assert f"{root} is owned by uid {NOBODY}" in done.stderr
            result = origin.home / ".unidesk" / "runs" / params.run_id
            assert not result.exists()  # refused before anything was made or fetched
    assert not mark.exists()
    assert origin.server.fetches == []


@pytest.mark.parametrize("which", ["work_root", "result_root"])
def test_a_root_that_is_another_users_symlink_is_refused(
    origin: Origin, proxy: Any, shared: Path, which: str
) -> None:
    target = shared / "mine"
    as_nobody('mkdir -m 777 "$1" && ln -s "$1" "$2"', str(target), str(shared / "root"))
    done, _ = launch(origin, proxy.url, **{which: str(shared / "root")})
    assert done.returncode == 77 and f"{shared / 'root'} is a symlink" in done.stderr
    assert list(target.iterdir()) == []


def test_a_root_of_ours_that_others_may_write_is_refused(
    origin: Origin, proxy: Any, shared: Path
) -> None:
    root = shared / "loose"
    root.mkdir()
    root.chmod(0o775)
    done, _ = launch(origin, proxy.url, work_root=str(root / "work"))
    assert done.returncode == 77
    assert f"{root} (above {root / 'work'}) is writable by group or others and not sticky" in (
        done.stderr
    )
    root.chmod(0o755)
    (root / "work").mkdir(mode=0o700)
    (root / "work").chmod(0o770)
    done, _ = launch(origin, proxy.url, work_root=str(root / "work"))
    assert done.returncode == 77 and "is writable by group or others (mode 770)" in done.stderr


def test_a_shared_parent_without_the_sticky_bit_is_refused(
    origin: Origin, proxy: Any, shared: Path
) -> None:
    loose = shared / "loose"
    loose.mkdir()
    loose.chmod(0o777)  # anyone may rename what we make in it
    done, _ = launch(origin, proxy.url, work_root=str(loose / "unidesk-ci"))
    assert done.returncode == 77 and "writable by group or others and not sticky" in done.stderr
    assert not (loose / "unidesk-ci").exists()


def test_racing_the_launcher_never_yields_a_forged_pass(
    origin: Origin, proxy: Any, shared: Path
) -> None:
    """Both roots in the shared directory, the attacker racing to make them and plant files:
    each run either is refused (the attacker made a root first) or runs our runner only."""
    root, results, mark = shared / "work", shared / "runs", shared / "pwned"
    outcomes = []
    with attacker(root, results, mark):
        for _ in range(5):
            done, params = launch(origin, proxy.url, work_root=str(root), result_root=str(results))
            if done.returncode == 77:
                outcomes.append("refused")
                continue
            assert done.returncode == 0, done.stderr
            wait_settled(results / params.run_id)
            files = read_run(LocalRemote(environ=dict(os.environ)), str(results), params.run_id)
            assert files.result is not None and files.result.get("message") != "forged"
            assert files.state == "passed"  # the stub runner's own result
            outcomes.append("ran ours")
    assert not mark.exists()
    assert outcomes  # five runs, each refused or genuine
    for directory in (root, results):
        if directory.exists() and directory.stat().st_uid == 0:
            assert directory.stat().st_mode & 0o777 == 0o700


def test_results_are_never_read_from_a_directory_another_user_could_write(
    origin: Origin, shared: Path
) -> None:
    run_id = make_run_id(origin.sha)
    remote = LocalRemote(environ=dict(os.environ))
    # a result root the other user made, holding a forged PASS for our run id
    as_nobody(
        'mkdir -m 777 "$1" "$1/$2" && printf %s "$3" >"$1/$2/result.json"',
        str(shared / "theirs"),
        run_id,
        FORGED,
    )
    assert remote.run(read_command(str(shared / "theirs"), run_id)).returncode == 4
    with pytest.raises(InfraError, match="refusing to read run"):
        read_run(remote, str(shared / "theirs"), run_id)
    # our root, but a run directory inside it that is not ours
    ours = shared / "ours"
    ours.mkdir(mode=0o755)
    ours.chmod(0o1777)
    as_nobody(
        'mkdir -m 700 "$1/$2" && printf %s "$3" >"$1/$2/result.json"', str(ours), run_id, FORGED
    )
    with pytest.raises(InfraError, match="refusing to read run"):
        read_run(remote, str(ours), run_id)
    ours.chmod(0o700)
    with pytest.raises(InfraError, match="refusing to read run"):
        read_run(remote, str(ours), run_id)  # the root is fine now, the run dir still is not ours
    # a symlinked run directory pointing at a forged one
    mine = shared / "mine"
    mine.mkdir(mode=0o700)
    (mine / run_id).symlink_to(shared / "theirs" / run_id)
    with pytest.raises(InfraError, match="refusing to read run"):
        read_run(remote, str(mine), run_id)
    assert STUBS  # the same stub runners as the other launcher runs
