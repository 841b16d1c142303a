"""The table of settings: every option's names (flag, CLI flag, environment, file key), default,
help and converter. Kept light to import: ``homelab --help`` needs this table and nothing else
of the settings, so heavier modules are imported inside the converters that use them.
:mod:`pytest_homelab.core.settings` resolves the values.
"""

from __future__ import annotations

from types import MappingProxyType

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing adds ~5 ms to `homelab --help` (P4)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any

USER_CONFIG_HINT = "~/.config/homelab/config.toml"
"""The user's own settings file (``$XDG_CONFIG_HOME/homelab/config.toml`` when that is set)."""

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
        from pytest_homelab.core.clock import parse_duration

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
    from pathlib import Path

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


def _crash_restarts(value: object) -> int:
    number = _count(value)
    if number > 5:
        raise ValueError("must be between 1 and 5")
    return number


def _pull_grace(value: object) -> float:
    seconds = _duration(value)
    if seconds > 600:
        raise ValueError("must be at most 10m")
    return seconds


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
    from pytest_homelab.core.transport import parse_dial

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
    import re

    text = _text(value)
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise ValueError("must be a DNS label (lowercase letters, digits and '-')")
    return text


def _targets(value: object) -> tuple[str, ...]:
    from pytest_homelab.core.refs import parse_target

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
    from pytest_homelab.core.refs import normalize_remote_path

    return normalize_remote_path(_text(value))


def _branch(value: object) -> str:
    """A branch name as Woodpecker stores it (``refs/heads/`` stripped), or ``*`` for any."""
    text = _text(value).removeprefix("refs/heads/")
    if text == "*":
        return text
    if (
        any(c in text for c in " ~^:?*[\\")
        or text.startswith(("-", "/"))
        or text.endswith(("/", ".lock", "."))
        or ".." in text
        or "//" in text
        or "@{" in text
    ):
        raise ValueError(f"{text!r} is not a branch name ('*' accepts any branch)")
    return text


def _repo_slug(value: object) -> str:
    from pytest_homelab.core.gitrepo import parse_repo_flag

    return parse_repo_flag(_text(value))


class Option:
    """One setting: its names in every place it can be set, and how to read it. Immutable.

    A plain class, not a dataclass: ``homelab --help`` builds its parser from this table, and
    a frozen dataclass here (dataclasses, inspect, ast, dis, tokenize, and the generated
    methods) measured 45 ms for P4 against 19 ms with this class (goal: 25 ms).
    """

    __slots__ = (
        "boolean",
        "cli",
        "convert",
        "default",
        "env",
        "flag",
        "help",
        "key",
        "metavar",
        "per_env",
        "phase",
        "user_only",
    )
    key: str  # Settings attribute and key in [tool.homelab]
    flag: str  # pytest flag
    convert: Callable[[object], Any]
    default: Any
    help: str
    env: tuple[str, ...]  # first is canonical, the rest are accepted aliases
    cli: str | None  # the CLI verbs' short flag, when it differs from the pytest flag
    metavar: str
    per_env: bool  # may be set under [tool.homelab.environments.<env>]
    phase: str  # for grouping in --help and docs
    boolean: bool  # a flag without a value (``--x`` sets true)
    user_only: bool  # decides where credentials go or what runs: never from the repo's file

    def __init__(
        self,
        key: str,
        flag: str,
        convert: Callable[[object], Any],
        default: Any,
        help: str,
        env: tuple[str, ...] = (),
        cli: str | None = None,
        metavar: str = "VALUE",
        per_env: bool = False,
        phase: str = "general",
        boolean: bool = False,
        user_only: bool = False,
    ) -> None:
        values = (
            key,
            flag,
            convert,
            default,
            help,
            env,
            cli,
            metavar,
            per_env,
            phase,
            boolean,
            user_only,
        )
        for name, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Option is immutable: cannot set {name}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Option):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Option({shown})"

    @property
    def ini(self) -> str:
        return self.key

    def names(self) -> str:
        """All the places this option can be set, for error messages."""
        parts = [self.flag]
        if self.cli and self.cli != self.flag:
            parts.append(f"{self.cli} (homelab CLI)")
        parts += [f"env {name}" for name in self.env]
        if self.user_only:
            parts.append(f"{self.ini} in {USER_CONFIG_HINT}")
        else:
            parts.append(f"{self.ini} in [tool.homelab] or {USER_CONFIG_HINT}")
        return ", ".join(parts)


_FIELDS = (
    "key",
    "flag",
    "convert",
    "default",
    "help",
    "env",
    "cli",
    "metavar",
    "per_env",
    "phase",
    "boolean",
    "user_only",
)


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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        "ci_branch",
        "--ci-branch",
        _branch,
        None,
        "branch whose pipeline counts; '*' accepts any (default: the branch that landed, the "
        "checked-out branch's upstream when it has the commit, else the remote's default branch)",
        env=("HOMELAB_CI_BRANCH",),
        metavar="BRANCH",
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        "rollout_crash_restarts",
        "--homelab-crash-restarts",
        _crash_restarts,
        3,
        "fail a new pod in CrashLoopBackOff once its container has restarted this often (1-5)",
        env=("HOMELAB_CRASH_RESTARTS",),
        cli="--crash-restarts",
        metavar="N",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "rollout_image_pull_grace",
        "--homelab-image-pull-grace",
        _pull_grace,
        30.0,
        "fail a new pod whose image pull (ErrImagePull, ImagePullBackOff) still fails after this",
        env=("HOMELAB_IMAGE_PULL_GRACE",),
        cli="--image-pull-grace",
        metavar="DURATION",
        phase="rollout",
        per_env=True,
    ),
    Option(
        "rollout_strict_terminating",
        "--homelab-strict-terminating",
        _bool,
        False,
        "also wait for old pods to finish terminating (status.terminatingReplicas; kubectl "
        "does not)",
        env=("HOMELAB_STRICT_TERMINATING",),
        cli="--strict-terminating",
        phase="rollout",
        per_env=True,
        boolean=True,
    ),
    Option(
        "own_checks",
        "--homelab-own-checks",
        _choice("add", "replace"),
        "add",
        "what the repo's own checks/ (run only in a repository the user trusts) do to the "
        "shipped checks: add to them, or replace them",
        env=("HOMELAB_OWN_CHECKS",),
        metavar="add|replace",
    ),
    Option(
        "probe_interval",
        "--homelab-probe-interval",
        _positive_duration,
        2.0,
        "how often the smoke phase asks a service's probe URL until it serves the commit",
        env=("HOMELAB_PROBE_INTERVAL",),
        metavar="DURATION",
        phase="smoke",
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        "$HOME/.unidesk/work",
        "work directory root on D601 (a run uses <root>/<runId>)",
        env=("HOMELAB_E2E_WORK_ROOT",),
        metavar="PATH",
        phase="e2e",
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
        user_only=True,
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
