"""The doctor's D601 checks: the host key, SSH, and on D601 (one short script, the same env file
the launcher sources): git, python3, kubectl, the egress proxy, the cluster D601 sees (its
Tekton CRDs, the CI namespace and the Pipeline), and the work and result roots."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from pytest_homelab.onboarding.doctor import Context, Degraded, Group, Problem, Skip

REMOTE_TIMEOUT = 8.0
"""Seconds the script on D601 may take; each command in it has a shorter limit."""

# Lines "<check>\t<ok|problem|warning>\t<detail>\t<next>". The defaults are the runner's
# (scripts/ci/dev-e2e.sh) and the launcher's (e2e/launcher.py): the same env file overrides them.
_SCRIPT = r"""
say() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ')" "${4:-}"; }
sourced=ok
if [ -f "$ENV_FILE" ]; then
  # shellcheck source=/dev/null
  . "$ENV_FILE" >/dev/null 2>&1 || sourced=failed
fi
kubectl="${KUBECTL:-kubectl}"
ns="${HOMELAB_E2E_CI_NAMESPACE:-unidesk-ci}"
pipeline="${HOMELAB_E2E_PIPELINE:-unidesk-dev-namespace-e2e}"
proxy="${HOMELAB_E2E_PROXY:-http://127.0.0.1:18789}"
lim() { timeout "$T" "$@"; }
if v=$(git --version 2>&1); then say git ok "$v"; else
  say git problem "git is not installed on D601" "install git on D601"; fi
if v=$(python3 --version 2>&1); then say python3 ok "$v"; else
  say python3 problem "python3 is not installed on D601 (the runner needs it)" \
    "install python3 on D601"; fi
if v=$("$kubectl" version --client 2>&1 | head -n 1) && [ -n "$v" ] \
   && command -v "$kubectl" >/dev/null 2>&1; then say kubectl ok "$kubectl: $v"; else
  say kubectl problem "kubectl ($kubectl) is not installed on D601" \
    "install kubectl on D601, or set KUBECTL in $ENV_FILE"; fi
case "$REPO" in
  http://* | https://*)
    if out=$(lim git -c http.proxy="$proxy" ls-remote -- "$REPO" HEAD 2>&1); then
      say proxy ok "$proxy answers: git ls-remote $REPO through it works"
    else
      last=$(printf '%s' "$out" | tail -n 1)
      say proxy problem "git ls-remote $REPO through the proxy $proxy failed: $last" \
        "start the egress proxy on D601, or set HOMELAB_E2E_PROXY in $ENV_FILE"
    fi ;;
  *)
    hp=${proxy#*://}; hp=${hp%%/*}
    if lim bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp##*:}" 2>/dev/null; then
      say proxy ok "$proxy accepts connections"
    else
      say proxy problem "the egress proxy $proxy does not accept connections" \
        "start the egress proxy on D601, or set HOMELAB_E2E_PROXY in $ENV_FILE"
    fi ;;
esac
k() { lim "$kubectl" --request-timeout="${T}s" "$@"; }
if out=$(k version -o json 2>&1 >/dev/null) || k get --raw /version >/dev/null 2>&1; then
  say cluster ok "kubectl on D601 reaches the cluster"
  tekton=0
  if out=$(k api-resources --api-group=tekton.dev -o name 2>&1) \
     && printf '%s\n' "$out" | grep -q '^pipelineruns' \
     && printf '%s\n' "$out" | grep -q '^taskruns'; then
    tekton=1
    say tekton ok "the cluster D601 sees serves Tekton (pipelineruns, taskruns in tekton.dev)"
  else
    say tekton problem \
      "the cluster D601 sees has no Tekton CRDs (tekton.dev pipelineruns, taskruns)" \
      "install Tekton Pipelines in that cluster, or point KUBECONFIG in $ENV_FILE at the right one"
  fi
  if k get namespace "$ns" -o name >/dev/null 2>&1; then
    if [ "$tekton" = 0 ]; then
      say ci-namespace ok "namespace $ns exists (its Pipeline cannot be looked up without Tekton)"
    elif k get pipelines.tekton.dev "$pipeline" -n "$ns" -o name >/dev/null 2>&1; then
      say ci-namespace ok "namespace $ns holds the Pipeline $pipeline"
    else
      say ci-namespace problem "namespace $ns has no Tekton Pipeline $pipeline" \
        "apply the e2e Pipeline there, or set HOMELAB_E2E_PIPELINE in $ENV_FILE"
    fi
  else
    say ci-namespace problem "the CI namespace $ns does not exist (or kubectl may not read it)" \
      "create it, or set HOMELAB_E2E_CI_NAMESPACE in $ENV_FILE"
  fi
else
  say cluster problem "kubectl on D601 cannot reach the cluster" \
    "check KUBECONFIG in $ENV_FILE on D601"
fi
me=$(id -u)
unsafe() {  # path: why another user could control it, or nothing
  set -- "$1" $(stat -c '%u %a' "$1")
  if [ "$2" != 0 ] && [ "$2" != "$me" ]; then
    echo "$1 is owned by uid $2, not by this user ($me) or root"
  elif [ $((8#$3 & 8#022)) -ne 0 ] && [ $((8#$3 & 8#1000)) -eq 0 ]; then
    echo "$1 is writable by group or others (mode $3) and not sticky"
  fi
}
root_check() {  # name path: the root and every directory above it
  if [ -L "$2" ]; then
    say "$1" problem "$2 is a symbolic link" "use a real directory you own"
    return
  fi
  if [ -e "$2" ]; then
    set -- "$1" "$2" $(stat -c '%u %a' "$2")
    if [ "$3" != "$me" ]; then
      say "$1" problem "$2 is owned by uid $3, not by this user ($me)" \
        "use a root you own (mkdir -m 700), or chown it"
      return
    elif [ $((8#$4 & 8#022)) -ne 0 ]; then
      say "$1" problem "$2 is writable by group or others (mode $4)" "chmod go-w $2"
      return
    fi
  fi
  up=$(dirname "$2")
  while :; do
    if [ -L "$up" ]; then
      say "$1" problem "$up (above $2) is a symbolic link: the launcher refuses it" \
        "use a path without symbolic links"
      return
    elif [ -e "$up" ]; then
      why=$(unsafe "$up")
      if [ -n "$why" ]; then
        say "$1" problem "$why: another user could replace $2" \
          "keep the root under directories only you (or root) can write"
        return
      fi
    fi
    [ "$up" = / ] && break
    up=$(dirname "$up")
  done
  if [ -e "$2" ]; then
    say "$1" ok "$2 is owned by this user and only it can write there"
  else
    say "$1" ok "$2 does not exist yet; the launcher creates it (only this user can write above)"
  fi
}
if [ "$sourced" = failed ]; then
  say env-file problem "sourcing $ENV_FILE failed" "fix the host settings file on D601"
elif [ -L "$ENV_FILE" ]; then
  say env-file problem "$ENV_FILE is a symbolic link: the launcher refuses it" \
    "make it a regular file"
elif [ -e "$ENV_FILE" ]; then
  set -- $(stat -c '%u %a' "$ENV_FILE")
  if [ "$1" != "$me" ] && [ "$1" != 0 ]; then
    say env-file problem "$ENV_FILE is owned by uid $1, neither this user nor root" \
      "chown it, or point e2e_env_file at a file you own"
  elif [ $((8#$2 & 8#022)) -ne 0 ]; then
    say env-file problem "$ENV_FILE is writable by group or others (mode $2)" \
      "chmod go-w $ENV_FILE"
  else
    say env-file ok "$ENV_FILE is sourced by the launcher (owned by uid $1, mode $2)"
  fi
else
  say env-file ok "$ENV_FILE does not exist: the runner's defaults apply"
fi
root_check work-root "$WORK_ROOT"
root_check result-root "$RESULT_ROOT"
"""
_CHECKS = (
    "env-file",
    "git",
    "python3",
    "kubectl",
    "proxy",
    "cluster",
    "tekton",
    "ci-namespace",
    "work-root",
    "result-root",
)


def script(ctx: Context, repo: str, timeout: float) -> str:
    from pytest_homelab.e2e.launcher import shell_path

    s = ctx.settings
    head = [
        "set -u",
        f"ENV_FILE={shell_path(s.e2e_env_file)}",
        f"WORK_ROOT={shell_path(s.e2e_work_root)}",
        f"RESULT_ROOT={shell_path(s.e2e_result_root)}",
        f"REPO={shlex.quote(repo)}",
        f"T={max(1, int(timeout))}",
    ]
    return "\n".join(head) + _SCRIPT


def local_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """What the checks on D601 run with locally: never the Woodpecker or Vault token (they
    source D601's env file and run its tools, as the launcher does)."""
    from pytest_homelab.core.secrets import TOKEN_ENV

    return {k: v for k, v in environ.items() if k not in (*TOKEN_ENV, "VAULT_TOKEN")}


def e2e_group(ctx: Context, group: Group) -> None:
    s = ctx.settings
    manifest = ctx.manifest
    env = manifest.environments.get(s.e2e_env) if manifest is not None else None
    ci = env.ci if env is not None else None
    if ci is None:
        why = (
            f"environment {s.e2e_env} of deploy.json has no ci block: no dev e2e run to check"
            if manifest is not None
            else "deploy.json is missing or invalid (see deploy.json)"
        )

        def none(_: float) -> str:
            raise Skip(why)

        group.check("d601", none)
        return
    remote: Any = None
    if s.d601_transport == "local":
        group.skip_all(("d601.host-key", "d601.ssh"), "d601_transport is local (this is D601)")
        from pytest_homelab.e2e.remote import LocalRemote

        remote = LocalRemote(environ=local_environ(s.environ))
        group.values["d601.ssh"] = True
    else:
        remote = _ssh_checks(ctx, group)
    try:
        _remote_checks(ctx, group, remote, ci.repo)
    finally:
        if remote is not None:
            remote.close()
    return


def _ssh_checks(ctx: Context, group: Group) -> Any:
    from pytest_homelab.e2e.hostkeys import known_keys
    from pytest_homelab.e2e.remote import SSHRemote
    from pytest_homelab.e2e.ssh_config import resolve_ssh_target

    s = ctx.settings
    if s.d601_host is None:

        def unset(_: float) -> str:
            raise Problem(
                "d601_host (the CI host D601: a host name or ~/.ssh/config alias) is not set",
                "export HOMELAB_D601_HOST=d601 (or --d601-host), or set d601_transport local "
                "when running on D601",
            )

        group.check("d601.host-key", unset)
        group.check("d601.ssh", lambda _: "", needs=["d601.host-key"])
        return None
    kwargs = {
        "port": s.d601_port,
        "user": s.d601_user,
        "key_file": s.d601_key,
        "known_hosts": s.d601_known_hosts,
        "environ": {k: v for k, v in s.environ.items() if k in ("HOME", "SSH_AUTH_SOCK")},
    }

    def host_key(_: float) -> str:
        target = resolve_ssh_target(s.d601_host or "", **kwargs)  # type: ignore[arg-type]
        found = known_keys(target.known_hosts, target.known_hosts_name)
        if not found:
            keyscan = "ssh-keyscan" + (f" -p {target.port}" if target.port != 22 else "")
            raise Problem(
                f"no host key for {target.known_hosts_name} in {', '.join(target.known_hosts)}: "
                "the connection would be refused (strict host key checking)",
                f"compare `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on D601 with "
                f"`{keyscan} {target.hostname} | ssh-keygen -lf -`, then append the key to "
                f"{target.known_hosts[0]}",
            )
        kinds = ", ".join(sorted({kind for _, kind, _ in found}))
        return f"{target.known_hosts_name} has a known {kinds} key in {found[0][0]}"

    group.check("d601.host-key", host_key)
    holder: list[SSHRemote] = []

    def ssh(timeout: float) -> str:
        remote = SSHRemote(s.d601_host or "", connect_timeout=timeout, **kwargs)  # type: ignore[arg-type]
        holder.append(remote)
        done = remote.run("true", timeout=timeout)
        if done.returncode != 0:
            raise Problem(f"`true` exited {done.returncode} on D601", "check D601's login shell")
        return f"{remote.description}: connected and authenticated"

    group.check("d601.ssh", ssh, needs=["d601.host-key"], timeout=4.0)
    return holder[0] if holder else None


def _remote_checks(ctx: Context, group: Group, remote: Any, repo: str) -> None:
    ids = [f"d601.{name}" for name in _CHECKS]
    if "d601.ssh" not in group.values or remote is None:
        group.skip_all(ids, "d601.ssh did not pass")
        return
    remaining = group.deadline.remaining()
    if remaining <= 1.0:
        for check_id in ids:
            group.add(
                check_id,
                "problem",
                "not checked: the doctor's time budget ran out before it",
                "the lines above say what took the time",
            )
        return
    budget = min(REMOTE_TIMEOUT, remaining - 0.5)
    step = max(2.0, min(4.0, budget / 3))  # kubectl alone takes a second or two on a busy host
    try:
        done = remote.run("bash -s", stdin=script(ctx, repo, step).encode(), timeout=budget)
    except Exception as exc:
        message = getattr(exc, "message", None) or type(exc).__name__
        group.add("d601.checks", "problem", f"the checks on D601 did not finish: {message}")
        return
    seen: dict[str, tuple[str, str, str]] = {}
    for raw in done.stdout.decode("utf-8", "replace").splitlines():
        fields = raw.split("\t")
        if len(fields) == 4 and fields[1] in ("ok", "problem", "warning"):
            seen[fields[0]] = (fields[1], fields[2], fields[3])
    for name in _CHECKS:
        if name not in seen:
            if name in ("tekton", "ci-namespace") and seen.get("cluster", ("",))[0] != "ok":
                group.add(f"d601.{name}", "skipped", "because d601.cluster did not pass")
            else:
                group.add(f"d601.{name}", "problem", "D601 gave no answer for this check")
            continue
        status, detail, hint = seen[name]
        _record(group, f"d601.{name}", status, detail, hint)


def _record(group: Group, check_id: str, status: str, detail: str, hint: str) -> None:
    def result(_: float) -> str:
        if status == "problem":
            raise Problem(detail, hint)
        if status == "warning":
            raise Degraded(detail, hint)
        return detail

    group.check(check_id, result)
