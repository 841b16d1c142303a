#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it:
# lint, types, and pytest. Idempotent; installs apt packages only when missing (needs root then).
set -euo pipefail
cd "$(dirname "$0")/../.."

apt_needed=()
command -v git >/dev/null 2>&1 || apt_needed+=(git)
# D601 in the tests is a real OpenSSH sshd on loopback; git fetches go through a real HTTP proxy.
[ -x /usr/sbin/sshd ] || apt_needed+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || apt_needed+=(openssh-client)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/sbin/tinyproxy ] || apt_needed+=(tinyproxy)
command -v shellcheck >/dev/null 2>&1 || apt_needed+=(shellcheck)
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing ${apt_needed[*]}; install them (apt-get install ${apt_needed[*]}) or run as root" >&2
    exit 2
  fi
  apt-get update -qq
  # Packages only: the tests start their own sshd and tinyproxy on loopback, so keep apt from
  # starting system services (policy-rc.d 101 = "not allowed"), unless the machine has its own.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_needed[@]}"
  [ -z "$policy" ] || rm -f "$policy"
fi

# Real kubectl referees the Kubernetes simulator. The machine image ships the Cloud SDK's builds
# (/usr/lib/google-cloud-sdk/bin/kubectl.1.27 … 1.33); elsewhere take Debian's, unpacked locally
# rather than installed (its /usr/bin/kubectl would clash with the SDK's package).
if ! command -v kubectl >/dev/null 2>&1 && [ -z "${HOMELAB_KUBECTL:-}" ]; then
  tools="$PWD/.ci-tools"
  if [ ! -x "$tools/usr/bin/kubectl" ]; then
    mkdir -p "$tools" && (cd "$tools" && apt-get download kubernetes-client >/dev/null \
      && dpkg -x kubernetes-client_*.deb .)
  fi
  export HOMELAB_KUBECTL="$tools/usr/bin/kubectl"
fi

venv="${HOMELAB_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'

# Every check runs, and each one that fails fails the script. (Not `a && b` under `set -e`: a
# failing command on the left of `&&` is exempt from errexit, so a lint error went unnoticed.)
failed=()
step() {
  local name=$1 rc=0
  shift
  echo "== $name"
  "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "test.sh: $name failed (exit $rc)" >&2
    failed+=("$name")
  fi
}

# The suite mostly waits on servers and subprocesses, so it runs on more workers than cores;
# tests that must share a worker carry an xdist_group mark (tests/conftest.py), --dist loadgroup
# keeps each group on one worker. HOMELAB_TEST_WORKERS=0 runs everything in one process.
workers="${HOMELAB_TEST_WORKERS:-4}"

step "ruff check" "$venv/bin/ruff" check .
step "ruff format" "$venv/bin/ruff" format --check .
step mypy "$venv/bin/mypy"
step pytest "$venv/bin/python" -m pytest -q -n "$workers" --dist loadgroup "$@"

if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
