"""A broken ``~/.ssh/config`` is BadInput naming its file and line, and never prints the
environment (issue 19, finding 5).

The review's shape: an unbalanced quote (or a bad ``Include``) raised ``ValueError`` from
``shlex.split``, uncaught; with ``-l -vv`` the frame's copy of the whole process environment —
the token included — was printed three times. OpenSSH refuses such a file with
``<file> line <n>: invalid quotes`` (openssh-portable readconf.c@V_9_9_P2:1151-1153).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.e2e.ssh_config import resolve_ssh_target, split_args

BROKEN = [
    ('Host d601\n  HostName 127.0.0.2\n  UserKnownHostsFile "~/.ssh/kh\n', "config", 3),
    ("Host d601\n  IdentityFile 'unclosed\n", "config", 2),
    ('Include "extra.conf\n', "config", 1),  # a bad Include line
    ("Include extra.conf\n", "extra.conf", 2),  # a bad line in an included file
    ("Host d601\n  HostName\n", "config", 2),  # no value
    ("Host d601\n  = 127.0.0.2\n", "config", 2),  # no keyword
    ('Host "d601\n  HostName 127.0.0.2\n', "config", 1),
]


@pytest.mark.parametrize(("text", "where", "line"), BROKEN)
def test_a_malformed_ssh_config_names_file_and_line(
    tmp_path: Path, text: str, where: str, line: int
) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "config").write_text(text)
    (ssh / "extra.conf").write_text("Host *\n  User 'ci\n")
    with pytest.raises(BadInput) as caught:
        resolve_ssh_target("d601", environ={"HOME": str(tmp_path)})
    assert f"ssh_config {ssh / where} line {line}:" in caught.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('a "b c" d', ["a", "b c", "d"]),
        ("a\\ b", ["a b"]),
        ("'x y' # comment", ["x y"]),
        ('"a\\"b"', ['a"b']),
        ("", []),
    ],
)
def test_values_split_as_openssh_does(text: str, words: list[str]) -> None:
    # openssh-portable misc.c@V_9_9_P2 argv_split
    assert split_args(text) == words


def test_with_locals_and_vv_the_environment_never_prints(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review ran the e2e check with ``-l -vv``: the whole environment, token included,
    came out three times. Now: a BadInput naming file and line, and not one value of it."""
    token = "wp-" + secrets.token_urlsafe(30)
    vault = "hvs." + secrets.token_urlsafe(24)
    home = pytester.path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text('Host d601\n  UserKnownHostsFile "unclosed\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WOODPECKER_TOKEN", token)
    monkeypatch.setenv("VAULT_TOKEN", vault)
    monkeypatch.setenv("HOMELAB_D601_HOST", "d601")
    pytester.makepyfile(
        """
        def test_d601(homelab_d601):
            homelab_d601.run("true")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-l", "-vv", "--tb=long")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert f"{home / '.ssh' / 'config'} line 2: invalid quotes" in output
    assert token not in output and vault not in output
    assert "ValueError" not in output
