"""Settings: one table of options, resolved once into an immutable object.

Precedence is flag > environment variable > settings file > default. The settings file is
``[tool.homelab]`` in the ``pyproject.toml`` at the root of the repo under test, or
``.homelab.toml`` there for repos that are not Python. Per-environment values live under
``[tool.homelab.environments.<env>]``. This is the only module that reads the environment or
settings files; everything else gets a :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_homelab.clock import parse_duration
from pytest_homelab.outcomes import BadInput

WOODPECKER_EVENTS = frozenset(
    {
        "push",
        "pull_request",
        "pull_request_closed",
        "pull_request_metadata",
        "tag",
        "release",
        "deployment",
        "cron",
        "manual",
    }
)


# -- converters: each takes a str (flag, env) or a TOML value and returns the typed value ------


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 10m or 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration like 90s, 10m or 1h30m")


def _positive_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def _optional_duration(value: object) -> float | None:
    """``0``, ``none`` or ``off`` mean: no separate limit."""
    if isinstance(value, str) and value.strip().lower() in {"none", "off", ""}:
        return None
    seconds = _duration(value)
    return None if seconds == 0 else seconds


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise ValueError("must not contain control characters")
    return text


def _path(value: object) -> Path:
    return Path(_text(value)).expanduser()


def _count(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError("expected a whole number")
    if not 1 <= number <= 1000:
        raise ValueError("must be between 1 and 1000")
    return number


def _url(value: object) -> str:
    text = _text(value).rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in {"http", "https"} or not rest or rest.startswith("/"):
        raise ValueError("expected an http(s) URL like https://ci.example.org")
    if "?" in rest or "#" in rest or "@" in rest.split("/", 1)[0]:
        raise ValueError("expected a plain base URL without credentials, query or fragment")
    return text


def _dial(value: object) -> str:
    text = _text(value)
    # Validated fully by transport.parse_dial; keep a cheap syntax check here.
    from pytest_homelab.transport import parse_dial

    parse_dial(text)
    return text


def _events(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise ValueError("expected a comma-separated list like push,manual")
    items = [item for item in items if item]
    if not items:
        raise ValueError("expected at least one event, like push,manual")
    unknown = sorted(set(items) - WOODPECKER_EVENTS)
    if unknown:
        raise ValueError(
            f"unknown event {', '.join(unknown)} (known: {', '.join(sorted(WOODPECKER_EVENTS))})"
        )
    return tuple(dict.fromkeys(items))


def _label(value: object) -> str:
    text = _text(value)
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise ValueError("must be a DNS label (lowercase letters, digits and '-')")
    return text


def _targets(value: object) -> tuple[str, ...]:
    from pytest_homelab.rollout import parse_target

    items = value if isinstance(value, list | tuple) else str(value).split(",")
    targets = tuple(str(item).strip() for item in items if str(item).strip())
    for target in targets:
        parse_target(target)
    return targets


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _choice(*choices: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return convert


def _port(value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("expected a port number 1-65535")
    return int(text)


def _remote_path(value: object) -> str:
    """An absolute path, or one under the remote user's home (``~/x`` or ``$HOME/x``)."""
    from pytest_homelab.devrun import normalize_remote_path

    return normalize_remote_path(_text(value))


def _repo_slug(value: object) -> str:
    from pytest_homelab.gitrepo import parse_repo_flag

    return parse_repo_flag(_text(value))


@dataclass(frozen=True)
class Option:
    """One setting: its names in every place it can be set, and how to read it."""

    key: str  # Settings attribute and key in [tool.homelab]
    flag: str  # pytest flag
    convert: Callable[[object], Any]
    default: Any
    help: str
    env: tuple[str, ...] = ()  # first is canonical, the rest are accepted aliases
    cli: str | None = None  # the CLI verbs' short flag, when it differs from the pytest flag
    metavar: str = "VALUE"
    per_env: bool = False  # may be set under [tool.homelab.environments.<env>]
    phase: str = "general"  # for grouping in --help and docs
    boolean: bool = False  # a flag without a value (``--x`` sets true)

    @property
    def ini(self) -> str:
        return self.key

    def names(self) -> str:
        """All the places this option can be set, for error messages."""
        parts = [self.flag]
        if self.cli and self.cli != self.flag:
            parts.append(f"{self.cli} (homelab CLI)")
        parts += [f"env {name}" for name in self.env]
        parts.append(f"{self.ini} in [tool.homelab]")
        return ", ".join(parts)


OPTIONS: tuple[Option, ...] = (
    Option(
        "commit",
        "--commit",
        _text,
        "HEAD",
        "commit under test: HEAD, a branch, a tag or a sha",
        env=("HOMELAB_COMMIT",),
        metavar="REF",
    ),
    Option(
        "deploy_json",
        "--deploy-json",
        _path,
        None,
        "path of deploy.json (default: deploy.json at the repo root)",
        env=("HOMELAB_DEPLOY_JSON",),
        metavar="PATH",
    ),
    Option(
        "env",
        "--homelab-env",
        _text,
        None,
        "environment in deploy.json (default: the only one)",
        env=("HOMELAB_ENV",),
        cli="--env",
        metavar="ENV",
    ),
    Option(
        "remote",
        "--homelab-remote",
        _text,
        None,
        "git remote naming the repo (default: forgejo, then origin, then the only remote)",
        env=("HOMELAB_REMOTE",),
        cli="--remote",
        metavar="NAME",
    ),
    Option(
        "woodpecker_server",
        "--woodpecker-server",
        _url,
        None,
        "Woodpecker base URL, e.g. https://ci.example.org (required for the ci phase)",
        env=("WOODPECKER_SERVER",),
        metavar="URL",
        phase="ci",
    ),
    Option(
        "woodpecker_dial",
        "--woodpecker-dial",
        _dial,
        None,
        "connect to this HOST[:PORT] (an internal load balancer) while keeping the URL's"
        " hostname for TLS SNI, certificate and Host, like curl --resolve",
        env=("HOMELAB_WOODPECKER_DIAL", "HOMELAB_WP_IP"),
        metavar="HOST[:PORT]",
        phase="ci",
    ),
    Option(
        "ca_bundle",
        "--ca-bundle",
        _path,
        None,
        "PEM file of CA certificates to trust for the Woodpecker API instead of the system's",
        env=("HOMELAB_CA_BUNDLE",),
        metavar="PATH",
        phase="ci",
    ),
    Option(
        "woodpecker_repo",
        "--woodpecker-repo",
        _repo_slug,
        None,
        "Woodpecker repo OWNER/NAME (default: from the git remote)",
        env=("HOMELAB_WOODPECKER_REPO",),
        cli="--repo",
        metavar="OWNER/NAME",
        phase="ci",
    ),
    Option(
        "ci_events",
        "--ci-events",
        _events,
        ("push", "manual"),
        "pipeline events that count as the landing's CI",
        env=("HOMELAB_CI_EVENTS",),
        metavar="EVENT,...",
        phase="ci",
    ),
    Option(
        "ci_pages",
        "--ci-pages",
        _count,
        5,
        "pages of 50 pipelines to search for the commit",
        env=("HOMELAB_CI_PAGES",),
        metavar="N",
        phase="ci",
    ),
    Option(
        "appear_grace",
        "--appear-grace",
        _duration,
        600.0,
        "how long a pipeline may take to appear after the push",
        env=("HOMELAB_APPEAR_GRACE",),
        metavar="DURATION",
        phase="ci",
    ),
    Option(
        "ci_timeout",
        "--ci-timeout",
        _positive_duration,
        1800.0,
        "budget of the ci phase (appearing and running)",
        env=("HOMELAB_CI_TIMEOUT",),
        cli="--timeout",
        metavar="DURATION",
        phase="ci",
    ),
    Option(
        "ci_poll_interval",
        "--ci-poll-interval",
        _positive_duration,
        5.0,
        "poll interval when the event stream is unavailable",
        env=("HOMELAB_CI_POLL_INTERVAL",),
        metavar="DURATION",
        phase="ci",
    ),
    Option(
        "ci_stream_recheck",
        "--ci-stream-recheck",
        _positive_duration,
        300.0,
        "safety re-check interval while the event stream is connected",
        env=("HOMELAB_CI_STREAM_RECHECK",),
        metavar="DURATION",
        phase="ci",
    ),
    Option(
        "request_timeout",
        "--homelab-request-timeout",
        _positive_duration,
        20.0,
        "timeout of one HTTP request",
        env=("HOMELAB_REQUEST_TIMEOUT",),
        metavar="DURATION",
    ),
    Option(
        "vault_mount",
        "--vault-mount",
        _text,
        "secret",
        "Vault KV v2 mount holding the Woodpecker token",
        env=("HOMELAB_VAULT_MOUNT",),
        metavar="MOUNT",
        phase="ci",
    ),
    Option(
        "vault_path",
        "--vault-path",
        _text,
        "ci/global",
        "Vault KV v2 path holding the Woodpecker token",
        env=("HOMELAB_VAULT_PATH",),
        metavar="PATH",
        phase="ci",
    ),
    Option(
        "vault_field",
        "--vault-field",
        _text,
        "woodpecker_api_token",
        "field of the Vault secret holding the Woodpecker token",
        env=("HOMELAB_VAULT_FIELD",),
        metavar="FIELD",
        phase="ci",
    ),
    Option(
        "rollout_timeout",
        "--rollout-timeout",
        _positive_duration,
        900.0,
        "budget of the rollout phase",
        env=("HOMELAB_ROLLOUT_TIMEOUT",),
        cli="--timeout",
        metavar="DURATION",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "kubeconfig",
        "--homelab-kubeconfig",
        _text,
        None,
        "kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster)",
        env=("HOMELAB_KUBECONFIG",),
        cli="--kubeconfig",
        metavar="PATH",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "kube_context",
        "--homelab-kube-context",
        _text,
        None,
        "kube context (default: the kubeconfig's current context)",
        env=("HOMELAB_KUBE_CONTEXT",),
        cli="--kube-context",
        metavar="NAME",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "namespace",
        "--homelab-namespace",
        _label,
        None,
        "verify every service of the environment in this namespace instead of deploy.json's",
        env=("HOMELAB_NAMESPACE",),
        cli="--namespace",
        metavar="NS",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "targets",
        "--homelab-targets",
        _targets,
        (),
        "verify only these workloads (NS/NAME or NS/KIND/NAME), not every service",
        env=("HOMELAB_TARGETS",),
        metavar="NS/NAME,...",
        phase="rollout",
    ),
    Option(
        "d601_transport",
        "--homelab-d601-transport",
        _choice("ssh", "local"),
        "ssh",
        "how to reach the CI host D601: ssh, or local when running on D601 itself",
        env=("HOMELAB_D601_TRANSPORT",),
        cli="--transport",
        metavar="ssh|local",
        phase="e2e",
    ),
    Option(
        "d601_host",
        "--homelab-d601-host",
        _text,
        None,
        "the CI host D601 (a host name or ~/.ssh/config alias; required for ssh)",
        env=("HOMELAB_D601_HOST",),
        cli="--d601-host",
        metavar="HOST",
        phase="e2e",
    ),
    Option(
        "d601_port",
        "--homelab-d601-port",
        _port,
        None,
        "SSH port of D601 (default: ~/.ssh/config, else 22)",
        env=("HOMELAB_D601_PORT",),
        cli="--d601-port",
        metavar="PORT",
        phase="e2e",
    ),
    Option(
        "d601_user",
        "--homelab-d601-user",
        _text,
        None,
        "SSH user on D601 (default: ~/.ssh/config, else the local user)",
        env=("HOMELAB_D601_USER",),
        cli="--d601-user",
        metavar="USER",
        phase="e2e",
    ),
    Option(
        "d601_key",
        "--homelab-d601-key",
        _text,
        None,
        "SSH private key for D601 (default: ~/.ssh/config, the agent, the usual keys)",
        env=("HOMELAB_D601_KEY",),
        cli="--d601-key",
        metavar="PATH",
        phase="e2e",
    ),
    Option(
        "d601_known_hosts",
        "--homelab-d601-known-hosts",
        _text,
        None,
        "known_hosts file holding D601's host key (default: ~/.ssh/known_hosts)",
        env=("HOMELAB_D601_KNOWN_HOSTS",),
        cli="--d601-known-hosts",
        metavar="PATH",
        phase="e2e",
    ),
    Option(
        "e2e_env",
        "--homelab-e2e-env",
        _text,
        "dev",
        "environment of deploy.json whose ci block the dev e2e run uses",
        env=("HOMELAB_E2E_ENV",),
        metavar="ENV",
        phase="e2e",
    ),
    Option(
        "e2e_branch",
        "--homelab-e2e-branch",
        _text,
        None,
        "branch whose deploy.json the dev e2e run uses (default: the remote's default branch)",
        env=("HOMELAB_E2E_BRANCH",),
        cli="--branch",
        metavar="BRANCH",
        phase="e2e",
    ),
    Option(
        "e2e_wait",
        "--homelab-e2e-wait",
        _optional_duration,
        None,
        "wait this long for the dev e2e result (default: dispatch and return)",
        env=("HOMELAB_E2E_WAIT",),
        metavar="DURATION",
        phase="e2e",
    ),
    Option(
        "e2e_poll_interval",
        "--homelab-e2e-poll-interval",
        _positive_duration,
        2.0,
        "how often the CLI reads the run's files on D601 while waiting or following",
        env=("HOMELAB_E2E_POLL_INTERVAL",),
        cli="--poll-interval",
        metavar="DURATION",
        phase="e2e",
    ),
    Option(
        "e2e_keep_namespace",
        "--homelab-e2e-keep-namespace",
        _bool,
        False,
        "keep the run's temporary namespace for debugging",
        env=("HOMELAB_E2E_KEEP_NAMESPACE",),
        cli="--keep-namespace",
        phase="e2e",
        boolean=True,
    ),
    Option(
        "e2e_work_root",
        "--homelab-e2e-work-root",
        _remote_path,
        "/tmp/unidesk-ci",
        "work directory root on D601 (a run uses <root>/<runId>)",
        env=("HOMELAB_E2E_WORK_ROOT",),
        metavar="PATH",
        phase="e2e",
    ),
    Option(
        "e2e_result_root",
        "--homelab-e2e-result-root",
        _remote_path,
        "$HOME/.unidesk/runs",
        "result directory root on D601 (a run writes <root>/<runId>)",
        env=("HOMELAB_E2E_RESULT_ROOT",),
        metavar="PATH",
        phase="e2e",
    ),
    Option(
        "e2e_env_file",
        "--homelab-e2e-env-file",
        _remote_path,
        "$HOME/.unidesk/ci.env",
        "D601's host settings file (proxy, kubeconfig, namespaces), sourced if it exists",
        env=("HOMELAB_E2E_ENV_FILE",),
        metavar="PATH",
        phase="e2e",
    ),
    Option(
        "verify_cmd",
        "--homelab-verify-cmd",
        _text,
        None,
        "shell command work land runs before pushing (e.g. pytest -q)",
        env=("HOMELAB_VERIFY_CMD",),
        cli="--verify-cmd",
        metavar="CMD",
        phase="land",
    ),
    Option(
        "land_onto",
        "--homelab-land-onto",
        _text,
        None,
        "branch work land lands onto (default: the remote's default branch)",
        env=("HOMELAB_LAND_ONTO",),
        cli="--onto",
        metavar="BRANCH",
        phase="land",
    ),
    Option(
        "push_retries",
        "--homelab-push-retries",
        _count,
        3,
        "how often work land re-syncs, re-verifies and pushes again after a rejection",
        env=("HOMELAB_PUSH_RETRIES",),
        cli="--push-retries",
        metavar="N",
        phase="land",
    ),
    Option(
        "landing_timeout",
        "--landing-timeout",
        _optional_duration,
        None,
        "one overall deadline across phases (default: CI + rollout budgets + the e2e wait)",
        env=("HOMELAB_LANDING_TIMEOUT",),
        metavar="DURATION",
    ),
)

OPTIONS_BY_KEY: Mapping[str, Option] = MappingProxyType({o.key: o for o in OPTIONS})
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
    e2e_work_root: str = "/tmp/unidesk-ci"
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
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

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


def resolve_settings(
    flags: Mapping[str, object | None],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every option once. ``flags`` maps option keys to flag values (None = not given)."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    root = find_repo_root(cwd) or cwd
    table, settings_file = load_settings_file(root)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        flag_value = flags.get(option.key)
        if flag_value is not None:
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
        environ=MappingProxyType(dict(environ)),
        **values,
    )
