#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it:
# lint, types, and pytest. Idempotent; installs apt packages only when missing (needs root then).
set -euo pipefail
cd "$(dirname "$0")/../.."

apt_needed=()
command -v git >/dev/null 2>&1 || apt_needed+=(git)
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing ${apt_needed[*]}; install them (apt-get install ${apt_needed[*]}) or run as root" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_needed[@]}"
fi

venv="${HOMELAB_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"; "$venv/bin/ruff" check . && "$venv/bin/ruff" format --check .
echo "== mypy"; "$venv/bin/mypy"
echo "== pytest"; "$venv/bin/python" -m pytest -q "$@"
