# pytest-homelab dev e2e launcher: a fixed wrapper and its parameters, nothing else.
set -u
RUN_ID=e2e-01234567-20261123101500-9f3e
REPO=https://github.com/pikasTech/unidesk
COMMIT=0123456789abcdef0123456789abcdef01234567
SCRIPT_PATH=scripts/ci/dev-e2e.sh
ENVIRONMENT=dev
TIMEOUT_MS=1800000
KEEP_NAMESPACE=1
WORK_ROOT=/tmp/unidesk-ci
RESULT_ROOT="$HOME"/.unidesk/runs
ENV_FILE="$HOME"/.unidesk/ci.env
work="$WORK_ROOT/$RUN_ID"
result="$RESULT_ROOT/$RUN_ID"
if [ -e "$result" ]; then
  echo "homelab-launcher: run $RUN_ID already exists at $result" >&2
  exit 73
fi
mkdir -p "$work" "$result" || exit 73
(
  trap '' HUP
  exec </dev/null >>"$result/launcher.log" 2>&1
  finish() {
    echo "launcher: $2"
    if [ ! -s "$result/result.json" ]; then
      {
        printf '{"ok": false, "status": "%s", "runId": "%s", ' "$1" "$RUN_ID"
        printf '"manifestCommit": "%s", "pipelineRun": null, ' "$COMMIT"
        printf '"temporaryNamespace": null, "finishedAt": "%s", ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf '"message": "%s"}\n' "$2"
      } >"$result/result.json.tmp" && mv "$result/result.json.tmp" "$result/result.json"
    fi
    exit 1
  }
  echo "launcher: run $RUN_ID of $REPO at $COMMIT ($SCRIPT_PATH, $ENVIRONMENT)"
  if [ -f "$ENV_FILE" ]; then
    # shellcheck source=/dev/null
    . "$ENV_FILE" || finish env-file "cannot read the host settings file (see launcher.log)"
  fi
  proxy="${HOMELAB_E2E_PROXY:-http://127.0.0.1:18789}"
  echo "launcher: fetching through $proxy"
  git init -q "$work/repo" || finish fetch-failed "git init failed"
  git -C "$work/repo" -c http.proxy="$proxy" fetch --quiet --no-tags --depth 1 "$REPO" "$COMMIT" \
    || finish fetch-failed "git fetch of the manifest commit failed (see launcher.log)"
  # Only a regular file of the commit may run: a symlink's blob is a path that points elsewhere.
  mode=$(git -C "$work/repo" ls-tree "$COMMIT" -- "$SCRIPT_PATH" | cut -d' ' -f1)
  case "$mode" in
    100644 | 100755) ;;
    120000) finish no-runner "$SCRIPT_PATH is a symlink at $COMMIT; the runner must be a file" ;;
    *) finish no-runner "no $SCRIPT_PATH at $COMMIT" ;;
  esac
  git -C "$work/repo" show "$COMMIT:$SCRIPT_PATH" >"$work/runner.sh" \
    || finish no-runner "no $SCRIPT_PATH at $COMMIT"
  git -C "$work/repo" show "$COMMIT:deploy.json" >"$work/deploy.json" \
    || finish no-manifest "no deploy.json at $COMMIT"
  set -- --run-id "$RUN_ID" --repo-url "$REPO" --desired-ref master \
    --manifest-commit "$COMMIT" --manifest-file "$work/deploy.json" \
    --environment "$ENVIRONMENT" --result-dir "$result" --timeout-ms "$TIMEOUT_MS"
  if [ "$KEEP_NAMESPACE" = 1 ]; then set -- "$@" --keep-namespace; fi
  echo "launcher: starting the runner"
  bash "$work/runner.sh" "$@" >>"$result/runner.log" 2>&1 &
  echo "$!" >"$result/runner.pid"
  wait "$!"
  code=$?
  echo "launcher: runner exited with $code"
  if [ ! -s "$result/result.json" ]; then
    finish runner-died "the runner exited with $code without writing result.json"
  fi
) &
echo "$!" >"$result/launcher.pid"
echo "homelab-launcher: started $RUN_ID"
