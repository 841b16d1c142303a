"""Settings: precedence flag > env > file > default, aliases, per-environment tables, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.settings import OPTIONS, Settings, resolve_settings


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def write_pyproject(repo: Path, body: str) -> None:
    (repo / "pyproject.toml").write_text("[project]\nname='x'\n\n[tool.homelab]\n" + body)


def test_defaults(repo: Path) -> None:
    s = resolve_settings({}, environ={}, cwd=repo)
    assert s.commit == "HEAD" and s.ci_events == ("push", "manual") and s.ci_pages == 5
    assert s.appear_grace == 600 and s.ci_timeout == 1800 and s.rollout_timeout == 900
    assert s.landing_budget == 2700 and s.deploy_json_path == repo / "deploy.json"
    assert s.sources["ci_timeout"] == "default"
    assert s.woodpecker_server is None


def test_precedence_flag_env_file_default(repo: Path) -> None:
    write_pyproject(repo, 'ci_timeout = "20m"\nappear_grace = 30\nci_pages = 2\n')
    env = {"HOMELAB_CI_TIMEOUT": "15m", "HOMELAB_APPEAR_GRACE": "45s"}
    s = resolve_settings({"ci_timeout": "5m"}, environ=env, cwd=repo)
    assert s.ci_timeout == 300 and s.sources["ci_timeout"] == "flag --ci-timeout"
    assert s.appear_grace == 45 and s.sources["appear_grace"] == "env HOMELAB_APPEAR_GRACE"
    assert s.ci_pages == 2 and s.sources["ci_pages"].startswith("file ")
    assert s.rollout_timeout == 900


def test_settings_are_found_from_a_subdirectory(repo: Path) -> None:
    write_pyproject(repo, 'ci_timeout = "20m"\n')
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    s = resolve_settings({}, environ={}, cwd=sub)
    assert s.repo_root == repo and s.ci_timeout == 1200


def test_homelab_toml_for_repos_that_are_not_python(repo: Path) -> None:
    (repo / ".homelab.toml").write_text('env = "dev"\nci_events = ["push"]\n')
    s = resolve_settings({}, environ={}, cwd=repo)
    assert s.env == "dev" and s.ci_events == ("push",)


def test_settings_in_two_files_is_an_error(repo: Path) -> None:
    write_pyproject(repo, 'env = "dev"\n')
    (repo / ".homelab.toml").write_text('env = "prod"\n')
    with pytest.raises(BadInput, match="both"):
        resolve_settings({}, environ={}, cwd=repo)


def test_go_cli_alias_env_names(repo: Path) -> None:
    s = resolve_settings({}, environ={"HOMELAB_WP_IP": "10.0.20.203"}, cwd=repo)
    assert (
        s.woodpecker_dial == "10.0.20.203" and s.sources["woodpecker_dial"] == "env HOMELAB_WP_IP"
    )
    both = {"HOMELAB_WP_IP": "10.0.0.1", "HOMELAB_WOODPECKER_DIAL": "10.0.0.2"}
    assert resolve_settings({}, environ=both, cwd=repo).woodpecker_dial == "10.0.0.2"


def test_empty_env_values_count_as_unset(repo: Path) -> None:
    s = resolve_settings({}, environ={"HOMELAB_CI_TIMEOUT": "  "}, cwd=repo)
    assert s.ci_timeout == 1800


def test_per_environment_table(repo: Path) -> None:
    write_pyproject(
        repo,
        'rollout_timeout = "10m"\n[tool.homelab.environments.prod]\nrollout_timeout = "30m"\n',
    )
    s = resolve_settings({}, environ={}, cwd=repo)
    assert s.rollout_timeout == 600
    prod = s.for_env("prod")
    assert prod.rollout_timeout == 1800 and prod.env == "prod"
    assert prod.sources["rollout_timeout"] == "[tool.homelab.environments.prod]"
    assert s.for_env("dev").rollout_timeout == 600
    flagged = resolve_settings({"rollout_timeout": "1m"}, environ={}, cwd=repo).for_env("prod")
    assert flagged.rollout_timeout == 60  # a flag beats the per-environment table


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"ci_timeout": "soon"}, {}, r"ci_timeout from --ci-timeout: 'soon' is not a duration"),
        ({"ci_timeout": "0"}, {}, "must be greater than zero"),
        ({}, {"HOMELAB_APPEAR_GRACE": "-5"}, "appear_grace from env HOMELAB_APPEAR_GRACE"),
        ({"ci_pages": "0"}, {}, "between 1 and 1000"),
        ({"ci_pages": "many"}, {}, "whole number"),
        ({"ci_events": "push,nonsense"}, {}, "unknown event nonsense"),
        ({"ci_events": " , "}, {}, "at least one event"),
        ({"woodpecker_server": "ci.example.test"}, {}, "http"),
        ({"woodpecker_server": "https://u:p@ci.example.test"}, {}, "without credentials"),
        ({"woodpecker_server": "ftp://ci.example.test"}, {}, "http"),
        ({"woodpecker_dial": "10.0.0.1:99999"}, {}, "port must be 1-65535"),
        ({"env": "dev\nx"}, {}, "control characters"),
        ({"woodpecker_repo": "justaname"}, {}, "OWNER/NAME"),
    ],
)
def test_bad_values_name_the_option_and_where_it_came_from(
    repo: Path, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        resolve_settings(flags, environ=env, cwd=repo)


def test_bad_file_value_names_the_file(repo: Path) -> None:
    write_pyproject(repo, "ci_timeout = true\n")
    with pytest.raises(BadInput, match=r"ci_timeout from .*pyproject.toml"):
        resolve_settings({}, environ={}, cwd=repo)


def test_unknown_file_key_lists_the_known_ones(repo: Path) -> None:
    write_pyproject(repo, 'ci_timout = "5m"\n')
    with pytest.raises(BadInput, match="unknown homelab setting 'ci_timout'") as info:
        resolve_settings({}, environ={}, cwd=repo)
    assert "ci_timeout" in str(info.value)


def test_non_per_env_key_in_environment_table(repo: Path) -> None:
    write_pyproject(repo, '[tool.homelab.environments.dev]\nwoodpecker_server = "https://x"\n')
    with pytest.raises(BadInput, match="not a per-environment setting"):
        resolve_settings({}, environ={}, cwd=repo)


def test_invalid_toml(repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[tool.homelab\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        resolve_settings({}, environ={}, cwd=repo)


def test_require_names_flag_env_and_ini_key(repo: Path) -> None:
    s = resolve_settings({}, environ={}, cwd=repo)
    with pytest.raises(BadInput) as info:
        s.require("woodpecker_server", "ci watch")
    text = str(info.value)
    assert "--woodpecker-server" in text and "env WOODPECKER_SERVER" in text
    assert "woodpecker_server in ~/.config/homelab/config.toml" in text
    assert "[tool.homelab]" not in text  # the repo's file may not set it


def test_settings_are_immutable_and_never_print_the_environment(repo: Path) -> None:
    s = resolve_settings({}, environ={"WOODPECKER_TOKEN": "s3cret-tok"}, cwd=repo)
    with pytest.raises(AttributeError):
        s.commit = "x"  # type: ignore[misc]
    assert "s3cret-tok" not in repr(s)
    assert s.environ["WOODPECKER_TOKEN"] == "s3cret-tok"


def test_every_option_has_a_field_and_distinct_names() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {o.key for o in OPTIONS} <= fields
    flags = [o.flag for o in OPTIONS]
    assert len(flags) == len(set(flags))
    assert all(
        o.flag == "--commit"
        or o.flag.startswith(
            (
                "--homelab-",
                "--woodpecker-",
                "--ci-",
                "--rollout-",
                "--landing-",
                "--vault-",
                "--deploy-",
                "--appear-",
                "--ca-",
            )
        )
        for o in OPTIONS
    )


def test_landing_timeout_overrides_the_sum(repo: Path) -> None:
    s = resolve_settings({"landing_timeout": "1h"}, environ={}, cwd=repo)
    assert s.landing_budget == 3600
    assert resolve_settings({"landing_timeout": "0"}, environ={}, cwd=repo).landing_budget == 2700


def test_the_e2e_wait_counts_in_the_default_landing_budget(repo: Path) -> None:
    s = resolve_settings({"e2e_wait": "1h"}, environ={}, cwd=repo)
    assert s.landing_budget == 2700 + 3600
