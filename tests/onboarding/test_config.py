"""``homelab config``: every setting with its value and origin; secrets only as set or unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TOKEN = "wp-" + "7f3c9a" * 5


def homelab(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pytest_homelab.cli import main; sys.exit(main())",
            *args,
        ],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_origin_is_shown(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".homelab.toml").write_text('ci_pages = 7\nverify_cmd = "pytest -q"\n')
    done = homelab(
        tmp_path,
        {"WOODPECKER_TOKEN": TOKEN, "HOMELAB_CI_TIMEOUT": "45m", "KUBECONFIG": "/k/config"},
        "config",
        "--json",
        "--appear-grace",
        "2m",
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    doc = json.loads(done.stdout)
    rows = {row["key"]: row for row in doc["settings"]}
    assert rows["appear_grace"]["source"] == "flag --appear-grace"
    assert rows["appear_grace"]["value"] == "2m00s"
    assert rows["ci_timeout"]["source"] == "env HOMELAB_CI_TIMEOUT"
    assert rows["ci_pages"] == {
        "key": "ci_pages",
        "value": "7",
        "source": f"file {tmp_path / '.homelab.toml'}, key ci_pages",
        "secret": False,
    }
    assert rows["ci_poll_interval"]["source"] == "default"
    assert rows["woodpecker_server"]["value"] is None
    assert rows["woodpecker_token"] == {
        "key": "woodpecker_token",
        "value": "set",
        "source": "env WOODPECKER_TOKEN",
        "secret": True,
    }
    assert rows["KUBECONFIG"]["value"] == "/k/config"
    assert doc["files"] == [str(tmp_path / ".homelab.toml")]
    # verify_cmd decides what runs: the repository may not set it (the trust rules)
    assert [(r["key"], r["source"]) for r in doc["refused"]] == [
        ("verify_cmd", str(tmp_path / ".homelab.toml"))
    ]


def test_text_and_unset_secrets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".vault-token").write_text("hvs.secret-vault-token\n")
    done = homelab(
        tmp_path, {"HOME": str(home), "VAULT_ADDR": "https://vault.example.org:8200"}, "config"
    )
    assert done.returncode == 0, done.stderr
    assert "hvs.secret-vault-token" not in done.stdout
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "[Vault secret/ci/global field woodpecker_api_token]" in lines["woodpecker_token"]
    assert "set (secret, not shown)" in lines["vault_token"]
    assert f"file {home / '.vault-token'}" in lines["vault_token"]
    assert "(unset)" in lines["woodpecker_server"] and "[default]" in lines["woodpecker_server"]


def test_the_environment_table_applies(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".homelab.toml").write_text('[environments.dev]\nrollout_timeout = "5m"\n')
    doc = {"schemaVersion": 2, "environments": {"dev": {"services": []}}}
    (tmp_path / "deploy.json").write_text(json.dumps(doc))
    done = homelab(tmp_path, {}, "config", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["key"]: row for row in json.loads(done.stdout)["settings"]}
    assert rows["rollout_timeout"]["value"] == "5m00s"
    assert rows["rollout_timeout"]["source"] == (
        f"file {tmp_path / '.homelab.toml'}, [environments.dev] rollout_timeout"
    )
    assert rows["env"] == {
        "key": "env",
        "value": "dev",
        "source": "the only environment of deploy.json",
        "secret": False,
    }
    flagged = homelab(tmp_path, {}, "config", "--json", "--rollout-timeout", "7m")
    rows = {row["key"]: row for row in json.loads(flagged.stdout)["settings"]}
    assert rows["rollout_timeout"]["source"] == "flag --rollout-timeout"


def test_refused_settings_are_listed_with_the_reason(tmp_path: Path) -> None:
    """A value a source may not give (the trust rules) is shown as refused, with why; the
    settings carry them as ``refused``: key -> [(source, reason)]."""
    import dataclasses
    import io
    from collections.abc import Mapping
    from contextlib import redirect_stdout
    from typing import Any

    from pytest_homelab.core.settings import Settings
    from pytest_homelab.onboarding.config import show_config

    @dataclasses.dataclass(frozen=True)
    class WithRefusals(Settings):
        refused: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    why = "decides where credentials go: set it in the environment or a flag, not in the repo"
    settings = WithRefusals(
        repo_root=tmp_path,
        refused={"woodpecker_dial": [(f"file {tmp_path / 'pyproject.toml'}", why)]},
    )
    out = io.StringIO()
    with redirect_stdout(out):
        assert show_config(settings) == 0
    assert f"refused: woodpecker_dial from file {tmp_path / 'pyproject.toml'}: {why}" in (
        out.getvalue()
    )
    out = io.StringIO()
    with redirect_stdout(out):
        show_config(settings, as_json=True)
    assert json.loads(out.getvalue())["refused"] == [
        {"key": "woodpecker_dial", "source": f"file {tmp_path / 'pyproject.toml'}", "reason": why}
    ]


def test_a_pyproject_key_is_named_with_its_table(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.homelab]\nci_pages = 3\n[tool.homelab.environments.prod]\nnamespace = "shop"\n'
    )
    done = homelab(tmp_path, {"HOMELAB_ENV": "prod"}, "config", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["key"]: row for row in json.loads(done.stdout)["settings"]}
    pyproject = tmp_path / "pyproject.toml"
    assert rows["ci_pages"]["source"] == f"file {pyproject}, [tool.homelab] ci_pages"
    assert rows["namespace"]["source"] == (
        f"file {pyproject}, [tool.homelab.environments.prod] namespace"
    )
    assert rows["env"]["source"] == "env HOMELAB_ENV"


def test_a_value_the_repository_may_not_give_is_listed_as_refused(tmp_path: Path) -> None:
    """The trust rules: a repo's settings file may not say where credentials go. config lists
    the refused value with its reason instead of failing, and it is not applied."""
    (tmp_path / ".git").mkdir()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.homelab]\nwoodpecker_dial = "127.0.0.3"\nci_pages = 4\n'
        '[tool.homelab.environments.dev]\nkubeconfig = "/elsewhere/config"\n'
    )
    home = tmp_path / "home"
    (home / ".config" / "homelab").mkdir(parents=True)
    user = home / ".config" / "homelab" / "config.toml"
    user.write_text('woodpecker_server = "https://ci.example.org"\n')
    done = homelab(tmp_path, {"HOME": str(home)}, "config", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    refused = {(r["key"], r["source"]): r["reason"] for r in doc["refused"]}
    assert set(refused) == {
        ("woodpecker_dial", str(pyproject)),
        ("kubeconfig", f"{pyproject} [environments.dev]"),
    }
    assert "decides where credentials go" in refused[("woodpecker_dial", str(pyproject))]
    assert "trusted_repos" in refused[("woodpecker_dial", str(pyproject))]
    rows = {row["key"]: row for row in doc["settings"]}
    assert rows["woodpecker_dial"]["value"] is None  # refused, so not applied
    assert rows["ci_pages"]["value"] == "4"  # the repository's to say
    assert rows["woodpecker_server"]["source"] == f"user config {user}, key woodpecker_server"
    assert doc["files"] == [str(pyproject), str(user)]
    text = homelab(tmp_path, {"HOME": str(home)}, "config")
    assert f"refused: woodpecker_dial from {pyproject}: " in text.stdout
    # the landing verbs still refuse it outright
    status = homelab(tmp_path, {"HOME": str(home)}, "ci", "status")
    assert status.returncode == 2 and "woodpecker_dial" in status.stderr
