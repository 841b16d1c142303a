"""Settings: one table of options, resolved once into an immutable object.

Precedence is flag > environment variable > the repo's settings file > the user's config file >
default. The repo's settings file is ``[tool.homelab]`` in the ``pyproject.toml`` at the root of
the repo under test, or ``.homelab.toml`` there for repos that are not Python; per-environment
values live under ``[tool.homelab.environments.<env>]``. The user's config file is
``$XDG_CONFIG_HOME/homelab/config.toml`` (else ``~/.config/homelab/config.toml``).

Trust: the content of a branch under test is not trusted. Settings that decide where credentials
go or what runs (``Option.user_only``: the Woodpecker server, dial address and CA, Vault's
location, kubeconfig and context, D601's transport, host, user, key, known_hosts and paths, the
verify command) come only from flags, the environment or the user's config file; the repo's
file may set them only when the user config lists the repo in ``trusted_repos``. This is the
only module that reads the environment or settings files; everything else gets a
:class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_homelab.core.options import (
    OPTIONS,
    OPTIONS_BY_KEY,
    USER_CONFIG_HINT,
    WOODPECKER_EVENTS,
    Option,
)
from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.secrets import Environ

__all__ = [  # the option table lives in core.options; these names stay importable here
    "OPTIONS",
    "OPTIONS_BY_KEY",
    "SETTINGS_FILES",
    "WOODPECKER_EVENTS",
    "Option",
    "Settings",
    "find_repo_root",
    "load_settings_file",
    "resolve_settings",
]

SETTINGS_FILES = ("pyproject.toml", ".homelab.toml")


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved. ``sources`` says where each value came from."""

    repo_root: Path
    commit: str = "HEAD"
    deploy_json: Path | None = None
    env: str | None = None
    remote: str | None = None
    woodpecker_server: str | None = None
    woodpecker_dial: str | None = None
    ca_bundle: Path | None = None
    woodpecker_repo: str | None = None
    ci_events: tuple[str, ...] = ("push", "manual")
    ci_branch: str | None = None
    ci_pages: int = 5
    appear_grace: float = 600.0
    ci_timeout: float = 1800.0
    ci_poll_interval: float = 5.0
    ci_stream_recheck: float = 300.0
    request_timeout: float = 20.0
    vault_mount: str = "secret"
    vault_path: str = "ci/global"
    vault_field: str = "woodpecker_api_token"
    rollout_timeout: float = 900.0
    probe_interval: float = 2.0
    own_checks: str = "add"
    rollout_crash_restarts: int = 3
    rollout_image_pull_grace: float = 30.0
    rollout_strict_terminating: bool = False
    kubeconfig: str | None = None
    kube_context: str | None = None
    namespace: str | None = None
    targets: tuple[str, ...] = ()
    d601_transport: str = "ssh"
    d601_host: str | None = None
    d601_port: int | None = None
    d601_user: str | None = None
    d601_key: str | None = None
    d601_known_hosts: str | None = None
    e2e_env: str = "dev"
    e2e_branch: str | None = None
    e2e_wait: float | None = None
    e2e_poll_interval: float = 2.0
    e2e_keep_namespace: bool = False
    e2e_work_root: str = "$HOME/.unidesk/work"
    e2e_result_root: str = "$HOME/.unidesk/runs"
    e2e_env_file: str = "$HOME/.unidesk/ci.env"
    verify_cmd: str | None = None
    land_onto: str | None = None
    push_retries: int = 3
    landing_timeout: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    environments: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )
    settings_file: Path | None = None
    # The process environment as resolved, for the token lookup; never printed.
    environ: Mapping[str, str] = field(default_factory=Environ, compare=False, repr=False)

    @property
    def deploy_json_path(self) -> Path:
        path = self.deploy_json if self.deploy_json is not None else Path("deploy.json")
        return path if path.is_absolute() else self.repo_root / path

    @property
    def landing_budget(self) -> float:
        """The overall landing deadline in seconds."""
        if self.landing_timeout is not None:
            return self.landing_timeout
        # The dev e2e wait is a phase budget too when it is asked for (else it would be cut short).
        return self.ci_timeout + self.rollout_timeout + (self.e2e_wait or 0.0)

    def require(self, key: str, purpose: str) -> Any:
        """A setting ``purpose`` cannot do without; BadInput naming every place to set it."""
        value = getattr(self, key)
        if value is None:
            option = OPTIONS_BY_KEY[key]
            raise BadInput(
                f"{purpose} needs the setting {key} ({option.help}), which is not set",
                hint=f"set it with {option.names()}",
            )
        return value

    def for_env(self, name: str) -> Settings:
        """These settings with ``[tool.homelab.environments.<name>]`` applied.

        Per-environment values beat the file's top level but not flags or environment variables.
        """
        table = self.environments.get(name)
        if not table:
            return dataclasses.replace(self, env=name)
        changes: dict[str, Any] = {"env": name}
        sources = dict(self.sources)
        where = f"[tool.homelab.environments.{name}]"
        for key, raw in table.items():
            option = OPTIONS_BY_KEY[key]
            if sources.get(key, "default").startswith(("flag", "env ")):
                continue
            changes[key] = _convert(option, raw, where)
            sources[key] = where
        changes["sources"] = MappingProxyType(sources)
        return dataclasses.replace(self, **changes)


def find_repo_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``.git`` (a repo or a worktree)."""
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _convert(option: Option, raw: object, where: str) -> Any:
    try:
        return option.convert(raw)
    except BadInput as exc:
        raise BadInput(f"{option.key} from {where}: {exc.message}", hint=exc.hint) from None
    except (ValueError, TypeError) as exc:
        shown = raw if not isinstance(raw, str) or len(raw) <= 80 else raw[:77] + "..."
        if isinstance(shown, str):  # a URL's user:password is never echoed
            shown = re.sub(r"(?<=://)[^\s'\"<>/]*@", "***@", shown)
        raise BadInput(
            f"{option.key} from {where}: {exc} (got {shown!r})",
            hint=f"fix the value; it can be set with {option.names()}",
        ) from None


def load_settings_file(root: Path) -> tuple[dict[str, Any], Path | None]:
    """The ``[tool.homelab]`` table (or ``.homelab.toml``) at ``root``, and its file."""
    found: list[tuple[dict[str, Any], Path]] = []
    for name in SETTINGS_FILES:
        path = root / name
        if not path.is_file():
            continue
        import tomllib  # only when a settings file exists

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: not valid TOML: {exc}", hint="fix the file") from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
        table = data.get("tool", {}).get("homelab") if name == "pyproject.toml" else data
        if table is None:
            continue
        if not isinstance(table, dict):
            raise BadInput(f"{path}: [tool.homelab] must be a table")
        found.append((table, path))
    if len(found) > 1:
        raise BadInput(
            f"homelab settings are in both {found[0][1]} and {found[1][1]}",
            hint="keep them in one place: [tool.homelab] in pyproject.toml or .homelab.toml",
        )
    if not found:
        return {}, None
    table, path = found[0]
    _check_table_keys(table, path)
    return table, path


def _check_table_keys(table: Mapping[str, Any], path: Path) -> None:
    known = set(OPTIONS_BY_KEY) - {"commit"}
    for key in table:
        if key == "environments":
            envs = table[key]
            if not isinstance(envs, dict) or not all(isinstance(v, dict) for v in envs.values()):
                raise BadInput(
                    f"{path}: environments must be a table of [environments.<env>] tables"
                )
            per_env = {o.key for o in OPTIONS if o.per_env}
            for env_name, env_table in envs.items():
                for env_key in env_table:
                    if env_key not in per_env:
                        raise BadInput(
                            f"{path}: environments.{env_name}.{env_key} is not a per-environment "
                            f"setting",
                            hint=f"per-environment settings are: {', '.join(sorted(per_env))}",
                        )
            continue
        if key not in known:
            raise BadInput(
                f"{path}: unknown homelab setting {key!r}",
                hint=f"known settings: {', '.join(sorted(known))}",
            )


def user_config_path(environ: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/homelab/config.toml``, else ``$HOME/.config/homelab/config.toml``;
    None when the environment names neither (tests stay hermetic: no home, no user file)."""
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "homelab" / "config.toml"
    home = environ.get("HOME", "").strip()
    return Path(home) / ".config" / "homelab" / "config.toml" if home else None


def user_config_name(environ: Mapping[str, str]) -> str:
    """The user config's path for messages (``~/.config/homelab/config.toml`` without a home)."""
    path = user_config_path(environ)
    return str(path) if path is not None else USER_CONFIG_HINT


@dataclass(frozen=True)
class UserConfig:
    """The user's own settings file: settings (every key, also those a repo may not set) and
    ``trusted_repos``, the repository roots whose own settings file may set them too."""

    path: Path | None
    table: Mapping[str, Any]
    trusted_repos: tuple[Path, ...]

    def trusts(self, root: Path) -> bool:
        resolved = root.resolve()
        return any(resolved == trusted for trusted in self.trusted_repos)


def load_user_config(environ: Mapping[str, str]) -> UserConfig:
    path = user_config_path(environ)
    if path is None or not path.is_file():
        return UserConfig(path, {}, ())
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}", hint="fix the file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    trusted_raw = data.pop("trusted_repos", [])
    if not isinstance(trusted_raw, list) or not all(isinstance(t, str) for t in trusted_raw):
        raise BadInput(f"{path}: trusted_repos must be a list of repository paths")
    home = environ.get("HOME", "")
    trusted = tuple(
        Path(home + t[1:] if t.startswith("~") and home else t).resolve() for t in trusted_raw
    )
    known = set(OPTIONS_BY_KEY) - {"commit"}
    for key in data:
        if key not in known:
            raise BadInput(
                f"{path}: unknown homelab setting {key!r}",
                hint=f"known settings: {', '.join(sorted(known))}, and trusted_repos",
            )
    return UserConfig(path, data, trusted)


def _refuse_from_repo(key: str, where: str, user: UserConfig, root: Path) -> BadInput:
    option = OPTIONS_BY_KEY[key]
    config = str(user.path) if user.path is not None else USER_CONFIG_HINT
    return BadInput(
        f"{where} sets {key}, which decides where credentials go or what runs, so the "
        "repository under test may not set it (a branch could send the token elsewhere)",
        hint=f"set it with {option.flag}, env {option.env[0]}, or {key} in {config}; or, if you "
        f"trust this repository, add it to trusted_repos in {config}: "
        f'trusted_repos = ["{root}"]',
    )


def resolve_settings(
    flags: Mapping[str, object | None],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    *,
    repo_flags: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every option once. ``flags`` maps option keys to flag values (None = not given).

    Precedence: flag > environment > the repo's settings file > the user's config file >
    default. Options that decide where credentials go or what runs (``Option.user_only``) are
    refused from the repo's file, and from flags the repo supplied (``repo_flags``: key -> where,
    e.g. pytest ``addopts`` in the repo's ini file), unless the user config trusts the repo.
    """
    # Wrapped at once: a frame that holds the environment must never print it (``-l``).
    environ = Environ(os.environ if environ is None else environ)
    cwd = Path.cwd() if cwd is None else cwd
    root = find_repo_root(cwd) or cwd
    table, settings_file = load_settings_file(root)
    user = load_user_config(environ)
    trusted = user.trusts(root)
    repo_flags = repo_flags or {}
    if not trusted:  # the repo may not even say it, whatever would win
        for key in table:
            if key in OPTIONS_BY_KEY and OPTIONS_BY_KEY[key].user_only:
                raise _refuse_from_repo(key, str(settings_file), user, root)
            if key == "environments":
                for env_name, env_table in table[key].items():
                    for env_key in env_table:
                        if OPTIONS_BY_KEY[env_key].user_only:
                            where = f"{settings_file} [environments.{env_name}]"
                            raise _refuse_from_repo(env_key, where, user, root)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        flag_value = flags.get(option.key)
        if flag_value is not None:
            if option.user_only and option.key in repo_flags and not trusted:
                raise _refuse_from_repo(option.key, repo_flags[option.key], user, root)
            values[option.key] = _convert(option, flag_value, option.flag)
            sources[option.key] = f"flag {option.flag}"
            continue
        env_name = next((n for n in option.env if environ.get(n, "").strip()), None)
        if env_name is not None:
            values[option.key] = _convert(option, environ[env_name], f"env {env_name}")
            sources[option.key] = f"env {env_name}"
            continue
        if option.key in table and option.key != "commit":
            values[option.key] = _convert(option, table[option.key], str(settings_file))
            sources[option.key] = f"file {settings_file}"
            continue
        if option.key in user.table:
            values[option.key] = _convert(option, user.table[option.key], str(user.path))
            sources[option.key] = f"user config {user.path}"
            continue
        values[option.key] = option.default
        sources[option.key] = "default"
    environments = table.get("environments", {})
    return Settings(
        repo_root=root,
        sources=MappingProxyType(sources),
        environments=MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in environments.items()}
        ),
        settings_file=settings_file,
        environ=environ,
        **values,
    )


def repo_trusted(settings: Settings) -> bool:
    """Whether the user trusts the repository under test (its settings may decide where
    credentials go, its own ``checks/`` may run): its root is listed in ``trusted_repos`` of the
    user's config file."""
    return load_user_config(settings.environ).trusts(settings.repo_root)
