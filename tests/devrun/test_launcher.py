"""The launcher: exact text (golden), parameters only, quoting nothing can escape, run ids."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.refs import normalize_remote_path
from pytest_homelab.e2e.launcher import (
    LaunchParams,
    check_run_id,
    launcher_text,
    make_run_id,
    parse_tar,
    read_command,
    shell_path,
)

GOLDEN = Path(__file__).parent / "launcher.golden.sh"
SHA = "0123456789abcdef0123456789abcdef01234567"
RUNNER_MARKERS = ("kubectl", "PipelineRun", "tekton", "python3")


def params(**kw: object) -> LaunchParams:
    base: dict[str, object] = {
        "repo": "https://github.com/pikasTech/unidesk",
        "commit": SHA,
        "script_path": "scripts/ci/dev-e2e.sh",
        "run_id": "e2e-01234567-20261123101500-9f3e",
        "environment": "dev",
        "timeout_ms": 1_800_000,
    }
    base.update(kw)
    return LaunchParams(**base)  # type: ignore[arg-type]


def test_golden_launcher_text() -> None:
    text = launcher_text(params(keep_namespace=True))
    if not GOLDEN.exists():  # pragma: no cover - first run writes it; review the diff
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_launcher_carries_parameters_and_the_fixed_wrapper_only() -> None:
    text = launcher_text(params())
    assignments = [
        line for line in text.splitlines() if "=" in line.split(" ")[0] and line[:1].isupper()
    ]
    assert [a.split("=")[0] for a in assignments] == [
        "RUN_ID",
        "REPO",
        "COMMIT",
        "SCRIPT_PATH",
        "ENVIRONMENT",
        "TIMEOUT_MS",
        "KEEP_NAMESPACE",
        "WORK_ROOT",
        "RESULT_ROOT",
        "ENV_FILE",
    ]
    assert not any(marker in text for marker in RUNNER_MARKERS)  # never the runner's body
    assert 'RESULT_ROOT="$HOME"/.unidesk/runs' in text  # expanded on D601, never a quoted ~
    assert "~" not in text
    assert len(text) < 6000  # the wrapper with its directory checks (issue 19), no runner body


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "launcher.sh"
    path.write_text("#!/bin/bash\n" + launcher_text(params()))
    done = subprocess.run(
        ["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("repo", "https://h/x'; rm -rf / #", "plain git URL"),
        ("repo", "https://h/x y", "plain git URL"),
        ("repo", "file:///etc", "plain git URL"),
        ("repo", "-oProxyCommand=x@h:p", "plain git URL"),
        ("commit", SHA[:12], "40-hex"),
        ("commit", SHA.upper(), "40-hex"),
        ("script_path", "../x.sh", "scripts/ci/<name>.sh"),
        ("script_path", "scripts/ci/x.sh\n", "scripts/ci/<name>.sh"),
        ("script_path", "scripts/ci/$(id).sh", "scripts/ci/<name>.sh"),
        ("run_id", "E2E", "run id"),
        ("run_id", "x" * 41, "run id"),
        ("run_id", "e2e--x", "run id"),
        ("environment", "Dev", "DNS label"),
        ("timeout_ms", 10, "1 s to 24 h"),
        ("timeout_ms", True, "1 s to 24 h"),
        ("work_root", "relative/path", "must be absolute"),
        ("result_root", "$HOME/../etc", "remote path"),
        ("env_file", "/tmp/a b", "remote path"),
    ],
)
def test_invalid_values_are_rejected_before_anything_is_sent(
    field: str, value: object, why: str
) -> None:
    with pytest.raises(BadInput, match="refusing to launch") as info:
        params(**{field: value})
    assert why in str(info.value) and "nothing was sent" in str(info.value)


def test_run_ids() -> None:
    moment = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
    assert make_run_id(SHA, moment, "9f3e") == "e2e-01234567-20261123101500-9f3e"
    generated = {make_run_id(SHA, moment) for _ in range(50)}
    assert len(generated) > 40  # unique enough within one second
    for run_id in generated:
        assert len(run_id) <= 40 and check_run_id(run_id) == run_id
        assert len(f"unidesk-e2e-{run_id}") <= 63
    for bad in ("", "1abc", "abc-", "a_b", "a" * 41, "e2e/../x", "A"):
        with pytest.raises(BadInput):
            check_run_id(bad)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("~/.unidesk/runs", "$HOME/.unidesk/runs"),
        ("$HOME/x", "$HOME/x"),
        ("/tmp/a/", "/tmp/a"),
        ("/tmp/unidesk-ci", "/tmp/unidesk-ci"),
    ],
)
def test_remote_paths(raw: str, normal: str) -> None:
    assert normalize_remote_path(raw) == normal


@pytest.mark.parametrize("bad", ["x", "~x", "/a/../b", "/a//b", "/a b", "$HOME", "/a;b", "/"])
def test_remote_paths_rejected(bad: str) -> None:
    with pytest.raises(BadInput):
        normalize_remote_path(bad)


def bash_values(script: str, names: list[str]) -> list[str]:
    """Run the assignment part in bash and read the variables back, NUL separated."""
    probe = script + "\nprintf '%s\\0' " + " ".join(f'"${n}"' for n in names) + "\n"
    done = subprocess.run(
        ["bash", "-c", probe],
        capture_output=True,
        check=True,
        env={"HOME": "/home/d601", "PATH": "/usr/bin:/bin"},
    )
    return done.stdout.decode().split("\0")[:-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40))
def test_no_run_id_escapes(run_id: str) -> None:
    try:
        p = params(run_id=run_id)
    except BadInput:
        return
    assignments = launcher_text(p).split("\numask 077")[0]
    assert bash_values(assignments, ["RUN_ID"]) == [run_id]


repo_chars = st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["https://", "http://", "ssh://", "git@h:"]), repo_chars)
def test_no_repo_escapes(scheme: str, rest: str) -> None:
    repo = scheme + rest
    try:
        p = params(repo=repo)
    except BadInput:
        return
    assignments = launcher_text(p).split("\numask 077")[0]
    assert bash_values(assignments, ["REPO", "COMMIT"]) == [repo, SHA]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
@example(parts=["0", " "])  # "$HOME/0/ ": trimmed to "$HOME/0/", then the trailing slash goes
@example(parts=["a/", "b/"])  # "$HOME/a//b/": a trailing slash drops every empty part
def test_no_path_escapes_and_home_is_expanded_remotely(parts: list[str]) -> None:
    raw = "$HOME/" + "/".join(parts)
    try:
        path = normalize_remote_path(raw)
    except BadInput:
        return
    # Only surrounding whitespace and empty parts go; every name stays, in order.
    names = [p for p in raw.strip().removeprefix("$HOME/").split("/") if p]
    assert path == "$HOME/" + "/".join(names)
    # The shell word is that path exactly, with $HOME expanded on D601's side.
    assert bash_values(f"X={shell_path(path)}", ["X"]) == ["/home/d601/" + "/".join(names)]


def test_read_command_quotes_the_run_id_and_refuses_bad_ones() -> None:
    command = read_command("$HOME/.unidesk/runs", "e2e-01234567-20261123101500-9f3e")
    assert command.startswith(
        'r="$HOME"/.unidesk/runs; d="$HOME"/.unidesk/runs/e2e-01234567-20261123101500-9f3e;'
    )
    with pytest.raises(BadInput):
        read_command("$HOME/.unidesk/runs", "x;rm -rf /")


@pytest.mark.parametrize(("tar_exit", "expected"), [(1, 0), (2, 2)])
def test_reading_a_run_while_it_is_written(tmp_path: Path, tar_exit: int, expected: int) -> None:
    """GNU tar exits 1 when a file changed as it read it: the archive is whole, so that is a
    good read (the next poll sees the rest); any other failure stays a failure."""
    run = tmp_path / "runs" / "e2e-01234567-20261123101500-9f3e"
    run.mkdir(parents=True)
    (run / "runner.log").write_text("step 1\n")
    (run / "result.json").write_text('{"ok": true, "status": "succeeded"}\n')
    fake = tmp_path / "bin"
    fake.mkdir()
    real = shutil.which("tar")
    (fake / "tar").write_text(f'#!/bin/sh\n"{real}" "$@" || exit $?\nexit {tar_exit}\n')
    (fake / "tar").chmod(0o755)
    done = subprocess.run(
        ["sh", "-c", read_command(str(tmp_path / "runs"), run.name)],
        capture_output=True,
        env={"PATH": f"{fake}:/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == expected, done.stderr
    files = parse_tar(run.name, done.stdout)
    assert files.text("runner.log") == "step 1\n" and files.result == {
        "ok": True,
        "status": "succeeded",
    }
