"""``homelab config``: every resolved setting, its value and where it came from, like
``git config --show-origin``. Secrets show as set or unset and from where, never their value."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_homelab.core.options import OPTIONS
from pytest_homelab.core.settings import Settings

UNSET = "(unset)"


@dataclass(frozen=True)
class Row:
    key: str
    value: str | None  # None: unset; for secrets only "set"
    source: str
    secret: bool = False
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "source": self.source,
            "secret": self.secret,
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True)
class Refusal:
    key: str
    source: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "source": self.source, "reason": self.reason}


def shown(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) if value else None
    if isinstance(value, float):
        from pytest_homelab.core.clock import format_duration

        return format_duration(value)
    return str(value)


def origin(key: str, source: str, settings_file: Path | None) -> str:
    """``source`` as settings record it, with the file's key spelled out: ``file PATH, key K``
    (``[tool.homelab] K`` in a pyproject.toml), or the environment's table in its file."""
    if source.startswith("file "):
        path = source.removeprefix("file ")
        table = "[tool.homelab] " if path.endswith("pyproject.toml") else "key "
        return f"file {path}, {table}{key}"
    if source.startswith("user config "):
        return f"{source}, key {key}"
    prefix = "[tool.homelab.environments."
    if source.startswith(prefix) and settings_file is not None:
        table = source if settings_file.name == "pyproject.toml" else "[" + source[14:]
        return f"file {settings_file}, {table} {key}"
    return source


def setting_rows(settings: Settings) -> list[Row]:
    rows = []
    for option in OPTIONS:
        source = settings.sources.get(option.key, "default")
        source = origin(option.key, source, settings.settings_file)
        rows.append(Row(option.key, shown(getattr(settings, option.key)), source))
    return rows


def secret_rows(environ: Mapping[str, str], settings: Settings) -> list[Row]:
    """Where the Woodpecker token (and the Vault token that would read it) comes from."""
    from pytest_homelab.core.secrets import TOKEN_ENV

    rows = []
    token_from = next((n for n in TOKEN_ENV if environ.get(n, "").strip()), None)
    vault_at = f"{settings.vault_mount}/{settings.vault_path} field {settings.vault_field}"
    addr = environ.get("VAULT_ADDR", "").strip()
    if token_from is not None:
        rows.append(Row("woodpecker_token", "set", f"env {token_from}", secret=True))
    elif addr:
        rows.append(
            Row(
                "woodpecker_token",
                None,
                f"Vault {vault_at}",
                secret=True,
                note="read from Vault when needed (homelab doctor checks it)",
            )
        )
    else:
        rows.append(
            Row(
                "woodpecker_token",
                None,
                "unset",
                secret=True,
                note=f"set WOODPECKER_TOKEN, or VAULT_ADDR and VAULT_TOKEN (Vault {vault_at})",
            )
        )
    if token_from is None:
        rows.append(Row("vault_addr", addr or None, "env VAULT_ADDR" if addr else "unset"))
        home = environ.get("HOME", "")
        token_file = Path(home) / ".vault-token" if home else None
        if environ.get("VAULT_TOKEN", "").strip():
            rows.append(Row("vault_token", "set", "env VAULT_TOKEN", secret=True))
        elif token_file is not None and token_file.is_file():
            rows.append(Row("vault_token", "set", f"file {token_file}", secret=True))
        else:
            rows.append(Row("vault_token", None, "unset", secret=True))
    kube_env = environ.get("KUBECONFIG", "").strip()
    if settings.kubeconfig is None and kube_env:
        rows.append(Row("KUBECONFIG", kube_env, "env KUBECONFIG", note="used as kubeconfig"))
    return rows


def refusals(settings: Settings) -> list[Refusal]:
    """Values a source gave that the trust rules refused (see docs/configuration.md)."""
    found = getattr(settings, "refused", None) or {}
    out = []
    items = found.items() if isinstance(found, Mapping) else ()
    for key, value in items:
        entries = value if isinstance(value, list | tuple) else [value]
        for entry in entries:
            source = str(
                getattr(entry, "source", "") or (entry[0] if isinstance(entry, tuple) else "")
            )
            reason = str(
                getattr(entry, "reason", "") or (entry[1] if isinstance(entry, tuple) else entry)
            )
            out.append(Refusal(str(key), source, reason))
    return out


def scoped(settings: Settings) -> Settings:
    """The settings as the rollout phase sees them: with the per-environment table of the
    chosen environment (``env``, else the only one of deploy.json) applied."""
    name = settings.env
    if name is None and settings.deploy_json_path.is_file():
        from pytest_homelab.core.manifest import load_manifest

        try:
            names = list(load_manifest(settings.deploy_json_path).environments)
        except Exception:  # homelab doctor reports an invalid deploy.json
            names = []
        name = names[0] if len(names) == 1 else None
    if name is None:
        return settings
    chosen = settings.for_env(name)
    if settings.env is None:  # say where the environment itself came from
        sources = dict(chosen.sources)
        sources["env"] = "the only environment of deploy.json"
        chosen = dataclasses.replace(chosen, sources=MappingProxyType(sources))
    return chosen


def show_config(
    settings: Settings, *, as_json: bool = False, out: Callable[[str], None] = print
) -> int:
    rows = setting_rows(settings) + secret_rows(settings.environ, settings)
    refused = refusals(settings)
    from pytest_homelab.core.settings import user_config_path

    files = [str(settings.settings_file)] if settings.settings_file is not None else []
    user = user_config_path(settings.environ)
    if user is not None and user.is_file():
        files.append(str(user))
    if as_json:
        out(
            json.dumps(
                {
                    "repo_root": str(settings.repo_root),
                    "files": files,
                    "settings": [r.as_json() for r in rows],
                    "refused": [r.as_json() for r in refused],
                },
                indent=2,
            )
        )
        return 0
    out(f"# repository {settings.repo_root}; settings files: {', '.join(files) or 'none'}")
    width = max(len(r.key) for r in rows)
    for row in rows:
        value = row.value if row.value is not None else UNSET
        if row.secret and row.value is not None:
            value = "set (secret, not shown)"
        note = f"  ({row.note})" if row.note else ""
        out(f"{row.key:{width}}  {value}  [{row.source}]{note}")
    for refusal in refused:
        out(f"refused: {refusal.key} from {refusal.source}: {refusal.reason}")
    return 0
