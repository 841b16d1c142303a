# pytest-homelab dev e2e launcher: a fixed wrapper and its parameters, nothing else.
set -u
RUN_ID=e2e-01234567-20261123101500-9f3e
REPO=https://github.com/pikasTech/unidesk
COMMIT=0123456789abcdef0123456789abcdef01234567
SCRIPT_PATH=scripts/ci/dev-e2e.sh
ENVIRONMENT=dev
TIMEOUT_MS=1800000
KEEP_NAMESPACE=1
WORK_ROOT="$HOME"/.unidesk/work
RESULT_ROOT="$HOME"/.unidesk/runs
ENV_FILE="$HOME"/.unidesk/ci.env
umask 077
me=$(id -u)
refuse() {
  echo "homelab-launcher: refusing run $RUN_ID: $1" >&2
  exit 77
}
# secure_path PATH dir|file: make a missing directory (mode 700) or check what is there, so that
# nobody else can put code or results into a run. A run's root directory and every directory
# this creates: a real directory (no symlink), owned by this user, writable by nobody else. The
# env file: a regular file (no symlink) of this user or root, writable by nobody else. Every
# directory above them: owned by root or this user, and writable by others only with the sticky
# bit (like /tmp), so nobody else can rename or swap what lies below.
secure_path() {
  local path=$1 kind=$2 built="" part owner mode n=0 mine=0 parts last
  case "$path" in /*) ;; *) refuse "$path is not an absolute path" ;; esac
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    n=$((n + 1))
    [ -n "$part" ] || continue
    built="$built/$part"
    last=0
    [ "$n" = "${#parts[@]}" ] && last=1
    if [ ! -e "$built" ] && [ ! -L "$built" ] && { [ "$kind" = dir ] || [ "$last" = 0 ]; }; then
      mkdir -m 700 "$built" 2>/dev/null || [ -d "$built" ] || refuse "cannot create $built"
      mine=1
    fi
    if [ -L "$built" ]; then refuse "$built is a symlink"; fi
    if [ "$last" = 1 ] && [ "$kind" = file ]; then
      [ -f "$built" ] || refuse "$built is not a regular file"
    elif [ ! -d "$built" ]; then
      refuse "$built is not a directory"
    fi
    read -r owner mode < <(stat -c '%u %a' -- "$built") || refuse "cannot stat $built"
    mode=$((8#$mode))
    if [ "$last" = 1 ] || [ "$mine" = 1 ]; then
      if [ "$owner" != "$me" ] && { [ "$kind" = dir ] || [ "$owner" != 0 ]; }; then
        refuse "$built is owned by uid $owner, not by this user (uid $me)"
      fi
      if ((mode & 8#022)); then
        refuse "$built is writable by group or others (mode $(printf %o "$mode"))"
      fi
    else
      if [ "$owner" != 0 ] && [ "$owner" != "$me" ]; then
        refuse "$built (above $path) is owned by uid $owner, neither root nor this user"
      fi
      if ((mode & 8#022)) && ! ((mode & 8#1000)); then
        mode=$(printf %o "$mode")
        refuse "$built (above $path) is writable by group or others and not sticky (mode $mode)"
      fi
    fi
  done
}
secure_path "$RESULT_ROOT" dir
secure_path "$WORK_ROOT" dir
if [ -e "$ENV_FILE" ] || [ -L "$ENV_FILE" ]; then secure_path "$ENV_FILE" file; fi
result="$RESULT_ROOT/$RUN_ID"
if [ -e "$result" ] || [ -L "$result" ]; then
  echo "homelab-launcher: run $RUN_ID already exists at $result" >&2
  exit 73
fi
mkdir -m 700 "$result" || exit 73
work=$(mktemp -d "$WORK_ROOT/$RUN_ID.XXXXXX") || refuse "cannot make a work directory in $WORK_ROOT"
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
  echo "launcher: run $RUN_ID of $REPO at $COMMIT ($SCRIPT_PATH, $ENVIRONMENT) in $work"
  if [ -f "$ENV_FILE" ]; then  # checked above: this user's (or root's), writable by no one else
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
  git -C "$work/repo" show "$COMMIT:deploy.json" >"$work/deploy.json" \
    || finish no-manifest "no deploy.json at $COMMIT"
  set -- --run-id "$RUN_ID" --repo-url "$REPO" --desired-ref master \
    --manifest-commit "$COMMIT" --manifest-file "$work/deploy.json" \
    --environment "$ENVIRONMENT" --result-dir "$result" --timeout-ms "$TIMEOUT_MS"
  if [ "$KEEP_NAMESPACE" = 1 ]; then set -- "$@" --keep-namespace; fi
  echo "launcher: starting the runner"
  # The runner goes from git straight into bash: it never lies in a file anyone could swap.
  git -C "$work/repo" show "$COMMIT:$SCRIPT_PATH" | bash -s -- "$@" >>"$result/runner.log" 2>&1 &
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
