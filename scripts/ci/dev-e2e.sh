#!/usr/bin/env bash
# The dev end-to-end runner. D601 runs this file as committed at the manifest commit (the
# launcher extracts it with `git show <commit>:scripts/ci/dev-e2e.sh`), so what runs is
# auditable and rolls back with the desired state.
#
# It creates a Tekton PipelineRun of the configured Pipeline in the CI namespace, with the dev
# services' commits, the run id and a temporary namespace as params; waits for the Succeeded
# condition (cancelling the PipelineRun at its timeout); saves the PipelineRun, its TaskRuns
# and their pods' logs; writes junit.xml (one testcase per TaskRun, tolerated failures labelled,
# Tekton's skipped tasks as <skipped>) and result.json telling the same story; and deletes
# the temporary namespace unless --keep-namespace. It never deploys services, and it refuses any
# namespace a service of deploy.json uses, the protected ones, and the CI namespace itself; a
# CI namespace that is a service namespace or a protected one is refused before any write.
#
# Host settings (defaults here; D601 overrides them in the env file the launcher sources):
#   HOMELAB_E2E_CI_NAMESPACE   CI namespace holding the Pipeline and PipelineRuns [unidesk-ci]
#   HOMELAB_E2E_PIPELINE       Pipeline to run                   [unidesk-dev-namespace-e2e]
#   HOMELAB_E2E_NS_PREFIX      prefix of temporary namespaces    [unidesk-e2e]
#   HOMELAB_E2E_PROTECTED      more namespaces never to touch    [unidesk unidesk-dev]
#                              (kube-system, kube-public, kube-node-lease, default: always)
#   HOMELAB_E2E_POLL           seconds between status polls      [5]
#   KUBECONFIG, KUBECTL        as kubectl users know them        [-, kubectl]
# Needs: bash, kubectl, python3.
set -euo pipefail

usage() {
  echo "usage: dev-e2e.sh --run-id ID --repo-url URL --desired-ref REF --manifest-commit SHA" \
       "--manifest-file PATH --environment ENV --result-dir DIR --timeout-ms MS" \
       "[--keep-namespace]" >&2
  exit 64
}

run_id="" repo_url="" desired_ref="" manifest_commit="" manifest_file="" environment=""
result_dir="" timeout_ms="" keep_namespace=0
while [ $# -gt 0 ]; do
  case "$1" in
    --run-id) run_id="${2:?}"; shift 2 ;;
    --repo-url) repo_url="${2:?}"; shift 2 ;;
    --desired-ref) desired_ref="${2:?}"; shift 2 ;;
    --manifest-commit) manifest_commit="${2:?}"; shift 2 ;;
    --manifest-file) manifest_file="${2:?}"; shift 2 ;;
    --environment) environment="${2:?}"; shift 2 ;;
    --result-dir) result_dir="${2:?}"; shift 2 ;;
    --timeout-ms) timeout_ms="${2:?}"; shift 2 ;;
    --keep-namespace) keep_namespace=1; shift ;;
    *) echo "dev-e2e: unknown argument: $1" >&2; usage ;;
  esac
done
for required in run_id repo_url desired_ref manifest_commit manifest_file environment \
                result_dir timeout_ms; do
  [ -n "${!required}" ] || { echo "dev-e2e: missing --${required//_/-}" >&2; usage; }
done
[[ "$run_id" =~ ^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$ ]] || { echo "dev-e2e: bad run id" >&2; exit 64; }
[[ "$manifest_commit" =~ ^[0-9a-f]{40}$ ]] || { echo "dev-e2e: bad commit" >&2; exit 64; }
# Always bounded: Tekton reads timeouts.pipeline "0s" as no timeout at all, so a run started by
# hand with --timeout-ms 0 would never end. Same range as the manifest schema and the launcher.
if ! [[ "$timeout_ms" =~ ^[0-9]{1,9}$ ]] || (( 10#$timeout_ms < 1000 || 10#$timeout_ms > 86400000 )); then
  echo "dev-e2e: --timeout-ms must be a whole number of milliseconds from 1000 (1 s) to" \
       "86400000 (24 h), got '$timeout_ms'; Tekton reads a pipeline timeout of 0 as no timeout" >&2
  exit 64
fi
timeout_ms=$(( 10#$timeout_ms ))

ci_namespace="${HOMELAB_E2E_CI_NAMESPACE:-unidesk-ci}"
pipeline="${HOMELAB_E2E_PIPELINE:-unidesk-dev-namespace-e2e}"
prefix="${HOMELAB_E2E_NS_PREFIX:-unidesk-e2e}"
protected_extra="${HOMELAB_E2E_PROTECTED:-unidesk unidesk-dev}"
always_protected="kube-system kube-public kube-node-lease default"
poll="${HOMELAB_E2E_POLL:-5}"
kubectl="${KUBECTL:-kubectl}"
temp_namespace="$prefix-$run_id"
pipeline_run=""
mkdir -p "$result_dir/logs"

log() { echo "dev-e2e $(date -u +%H:%M:%S) $*"; }

# result.json: the last word of a run. Written once; a trap writes it for unexpected exits.
write_result() {  # ok status message
  python3 - "$result_dir/result.json" "$1" "$2" "$3" "$run_id" "$manifest_commit" \
    "$pipeline_run" "$temp_namespace" <<'PY'
import json, os, sys, datetime
path, ok, status, message, run_id, commit, pr, ns = sys.argv[1:9]
doc = {"ok": ok == "true", "status": status, "runId": run_id, "manifestCommit": commit,
       "pipelineRun": pr or None, "temporaryNamespace": ns or None,
       "finishedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "message": message}
try:  # the same per-task story as junit.xml (written with it)
    tasks = json.load(open(os.path.join(os.path.dirname(path), "tasks.json")))
except (OSError, ValueError):
    tasks = None
if isinstance(tasks, list):
    doc["tasks"] = tasks
    doc["skippedTasks"] = [{"name": t["task"], "reason": t["reason"]}
                           for t in tasks if t.get("outcome") == "skipped"]
    doc["toleratedFailures"] = [{"name": t["task"], "taskRun": t["taskRun"], "reason": t["reason"],
                                 "message": t["message"]}
                                for t in tasks if t.get("outcome") == "tolerated"]
with open(path + ".tmp", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
PY
}
on_exit() {
  code=$?
  if [ ! -s "$result_dir/result.json" ]; then
    write_result false error "the runner stopped unexpectedly (exit $code); see runner.log"
  fi
}
trap on_exit EXIT
fail() {  # status message
  log "FAILED: $2"
  write_result false "$1" "$2"
  exit 1
}

log "run $run_id: $repo_url $desired_ref at $manifest_commit, environment $environment"

# Isolation: every namespace any environment's services use, the configured ones, and the CI
# namespace itself are never created or deleted here.
service_namespaces=$(python3 - "$manifest_file" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print(" ".join(sorted({s["namespace"] for env in doc.get("environments", {}).values()
                       for s in env.get("services", [])})))
PY
) || fail bad-manifest "cannot read the manifest $manifest_file"
for ns in $service_namespaces; do
  if [ "$ci_namespace" = "$ns" ]; then
    fail refused "CI namespace $ci_namespace is a service namespace; refusing to run there"
  fi
done
# The CI namespace is written to (the PipelineRun): a protected one is refused like a service's.
for ns in $always_protected $protected_extra; do
  if [ "$ci_namespace" = "$ns" ]; then
    fail refused "CI namespace $ci_namespace is protected; refusing to run there"
  fi
done
for ns in $service_namespaces $always_protected $protected_extra "$ci_namespace"; do
  if [ "$temp_namespace" = "$ns" ]; then
    fail refused "temporary namespace $temp_namespace is protected; refusing"
  fi
done
case "$temp_namespace" in
  "$prefix"-*) ;;
  *) fail refused "temporary namespace $temp_namespace lacks the CI prefix $prefix" ;;
esac

services=$(python3 - "$manifest_file" "$environment" "$manifest_commit" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
env = doc["environments"][sys.argv[2]]
print(json.dumps([{"name": s["name"], "commit": s.get("commit") or sys.argv[3]}
                  for s in env.get("services", [])]))
PY
) || fail bad-manifest "environment $environment is not in $manifest_file"

log "checking the cluster and Tekton"
"$kubectl" version >/dev/null 2>&1 \
  || fail cluster-unreachable "kubectl cannot reach the cluster (check KUBECONFIG on D601)"
"$kubectl" get pipeline "$pipeline" -n "$ci_namespace" -o name >/dev/null \
  || fail tekton-unavailable "pipeline $pipeline not found in namespace $ci_namespace"

log "creating namespace $temp_namespace"
"$kubectl" create namespace "$temp_namespace" >/dev/null \
  || fail namespace-failed "cannot create namespace $temp_namespace"
"$kubectl" label namespace "$temp_namespace" "homelab.dev/e2e-run=$run_id" >/dev/null || true

timeout_s=$(( (timeout_ms + 999) / 1000 ))
cat >"$result_dir/pipelinerun.yaml" <<YAML
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: $run_id-
  namespace: $ci_namespace
  labels:
    homelab.dev/e2e-run: $run_id
spec:
  pipelineRef:
    name: $pipeline
  params:
    - name: runId
      value: $run_id
    - name: manifestCommit
      value: "$manifest_commit"
    - name: temporaryNamespace
      value: $temp_namespace
    - name: serviceCommits
      value: '$services'
  timeouts:
    pipeline: ${timeout_s}s
YAML
pipeline_run=$("$kubectl" create -f "$result_dir/pipelinerun.yaml" -o jsonpath='{.metadata.name}') \
  || fail create-failed "kubectl create of the PipelineRun failed"
echo "$pipeline_run" >"$result_dir/pipelinerun.txt"
log "PipelineRun $pipeline_run created in $ci_namespace"

# Wait for the Succeeded condition (looked up by type). Tekton enforces the pipeline timeout;
# our own deadline, a little later, guards against a dead controller and cancels the run.
deadline=$(( $(date +%s) + timeout_s + 60 ))
condition=Unknown
last=""
while :; do
  if "$kubectl" get pipelinerun "$pipeline_run" -n "$ci_namespace" -o json \
       >"$result_dir/pipelinerun.json.tmp" 2>>"$result_dir/kubectl.err"; then
    mv "$result_dir/pipelinerun.json.tmp" "$result_dir/pipelinerun.json"
    read -r condition reason < <(python3 - "$result_dir/pipelinerun.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
cond = next((c for c in doc.get("status", {}).get("conditions", [])
             if c.get("type") == "Succeeded"), None)
print((cond or {}).get("status", "Unknown"), (cond or {}).get("reason", "Pending"))
PY
)
    if [ "$condition $reason" != "$last" ]; then log "PipelineRun $condition ($reason)"; fi
    last="$condition $reason"
    [ "$condition" = Unknown ] || break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "deadline passed: cancelling $pipeline_run"
    "$kubectl" patch pipelinerun "$pipeline_run" -n "$ci_namespace" --type merge \
      -p '{"spec":{"status":"Cancelled"}}' >/dev/null || true
    sleep "$poll"
    "$kubectl" get pipelinerun "$pipeline_run" -n "$ci_namespace" -o json \
      >"$result_dir/pipelinerun.json" 2>/dev/null || true
    condition=Timeout
    break
  fi
  sleep "$poll"
done

log "collecting TaskRuns and logs"
"$kubectl" get taskruns -n "$ci_namespace" -l "tekton.dev/pipelineRun=$pipeline_run" -o json \
  >"$result_dir/taskruns.json" || echo '{"items": []}' >"$result_dir/taskruns.json"
python3 - "$result_dir/taskruns.json" <<'PY' | while read -r pod container file; do
import json, sys
for tr in json.load(open(sys.argv[1])).get("items", []):
    task = tr["metadata"].get("labels", {}).get("tekton.dev/pipelineTask", tr["metadata"]["name"])
    pod = tr.get("status", {}).get("podName")
    for step in tr.get("status", {}).get("steps", []):
        if pod and step.get("container"):
            print(pod, step["container"], f"{task}-{step.get('name', step['container'])}.log")
PY
  "$kubectl" logs "$pod" -c "$container" -n "$ci_namespace" >"$result_dir/logs/$file" 2>&1 || true
done

# One story in junit.xml and tasks.json (merged into result.json): every TaskRun is a testcase;
# a failure names the TaskRun object; a failure Tekton ignored (the pipeline task's onError:
# continue, reason FailureIgnored) passes, labelled tolerated, with its log tail; every task in
# status.skippedTasks is a <skipped> testcase with Tekton's reason. The file follows the Jenkins
# xunit plugin's junit-10.xsd.
python3 - "$result_dir" "$pipeline_run" "$ci_namespace" "$run_id" <<'PY'
import json, os, re, socket, sys
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr
result_dir, pr, namespace, run_id = sys.argv[1:5]
ON_ERROR = "pipeline.tekton.dev/pipeline-task-on-error"  # set by the PipelineRun controller
items = json.load(open(os.path.join(result_dir, "taskruns.json"))).get("items", [])
try:
    run = json.load(open(os.path.join(result_dir, "pipelinerun.json")))
except (OSError, ValueError):
    run = {}
run_status = run.get("status") or {}
BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

def text(value):  # XML 1.0 cannot carry most control characters (terminal colours in logs)
    return BAD.sub("", str(value))

def attr(value):
    return quoteattr(text(value))

def parse(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

def seconds(status):
    try:
        return max(0.0, (parse(status["completionTime"]) - parse(status["startTime"])).total_seconds())
    except (KeyError, ValueError):
        return 0.0

def tail(task, status):
    steps = status.get("steps", [])
    failing = [s for s in steps if s.get("terminated", {}).get("exitCode", 0) != 0] or steps
    for step in failing[:1]:
        path = os.path.join(result_dir, "logs", f"{task}-{step.get('name')}.log")
        if os.path.exists(path):
            return step.get("container") or step.get("name"), \
                open(path, errors="replace").read().splitlines()[-50:]
    return "", []

cases, tasks, failures, skipped, total = [], [], 0, 0, 0.0
for tr in sorted(items, key=lambda t: t.get("status", {}).get("startTime") or ""):
    meta, status = tr["metadata"], tr.get("status", {})
    name = meta["name"]
    task = meta.get("labels", {}).get("tekton.dev/pipelineTask", name)
    cond = next((c for c in status.get("conditions", []) if c.get("type") == "Succeeded"), {})
    reason = cond.get("reason") or "NotFinished"
    message = cond.get("message") or "the TaskRun did not finish"
    where = f"kubectl get taskrun {name} -n {namespace}"
    time = seconds(status)
    total += time
    body = ""
    if cond.get("status") == "True":
        outcome = "passed"
    elif (cond.get("status") == "False" and reason != "TaskRunCancelled"
          and (meta.get("annotations") or {}).get(ON_ERROR) == "continue"):
        outcome = "tolerated"  # Tekton counts it as an ignored failure: the run still passes
        container, lines = tail(task, status)
        out = [f"tolerated failure (onError: continue): TaskRun {name} {reason}: {message} "
               f"({where})"]
        if lines:
            out += [f"--- {container}: last {len(lines)} log lines ---", *lines]
        body = f"<system-out>{escape(text(chr(10).join(out)))}</system-out>"
    else:
        outcome = "failed"
        failures += 1
        container, lines = tail(task, status)
        body = (f"<failure type={attr(reason)} "
                f"message={attr(f'TaskRun {name} {reason}: {message} ({where})')}>"
                f"{escape(text(chr(10).join(lines)))}</failure>")
    tasks.append({"task": task, "taskRun": name, "outcome": outcome, "reason": reason,
                  "message": message})
    cases.append(f'  <testcase classname="dev-e2e" name={attr(task)} time="{time:.3f}">'
                 f"{body}</testcase>")
for entry in run_status.get("skippedTasks") or []:
    skipped += 1
    why = entry.get("reason") or "skipped"
    tasks.append({"task": entry.get("name", ""), "taskRun": None, "outcome": "skipped",
                  "reason": why, "message": f"skipped by Tekton: {why}"})
    cases.append(f'  <testcase classname="dev-e2e" name={attr(entry.get("name", ""))} time="0.000">'
                 f'<skipped type="TektonSkipped" message={attr(why)}/></testcase>')
props = [("run_id", run_id), ("pipeline_run", pr), ("namespace", namespace)]
properties = "".join(f"<property name={attr(k)} value={attr(v)}/>" for k, v in props if v)
stamp = run_status.get("startTime") or datetime.now().astimezone().isoformat(timespec="seconds")
xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="dev-e2e" tests="{len(cases)}" '
       f'failures="{failures}" errors="0" skipped="{skipped}" time="{total:.3f}" '
       f"timestamp={attr(stamp)} hostname={attr(socket.gethostname())}>\n"
       f"  <properties>{properties}</properties>\n" + "\n".join(cases) + "\n</testsuite>\n")
open(os.path.join(result_dir, "junit.xml"), "w", encoding="utf-8").write(xml)
with open(os.path.join(result_dir, "tasks.json"), "w") as f:
    json.dump(tasks, f, indent=2)
PY

if [ "$keep_namespace" = 1 ]; then
  log "keeping namespace $temp_namespace (--keep-namespace)"
else
  log "deleting namespace $temp_namespace"
  "$kubectl" delete namespace "$temp_namespace" --wait=false >/dev/null || true
fi

case "$condition" in
  True)
    # Completed (some tasks skipped) and tolerated failures are a pass; the message names them.
    message=$(python3 - "$result_dir/tasks.json" "$pipeline_run" "${reason:-Succeeded}" <<'PY'
import json, sys
path, pr, reason = sys.argv[1:4]
try:
    tasks = json.load(open(path))
except (OSError, ValueError):
    tasks = []
text = f"PipelineRun {pr} succeeded ({reason})"
skipped = [f"{t['task']} ({t['reason']})" for t in tasks if t.get("outcome") == "skipped"]
tolerated = [f"{t['task']} ({t['reason']})" for t in tasks if t.get("outcome") == "tolerated"]
if skipped:
    text += "; skipped by Tekton: " + ", ".join(skipped)
if tolerated:
    text += "; tolerated failures (onError: continue): " + ", ".join(tolerated)
print(text)
PY
)
    log "$message"
    write_result true succeeded "$message"
    ;;
  Timeout) fail timeout "PipelineRun $pipeline_run did not finish within ${timeout_s}s; cancelled" ;;
  *)
    message=$(python3 - "$result_dir/pipelinerun.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
cond = next((c for c in doc.get("status", {}).get("conditions", [])
             if c.get("type") == "Succeeded"), {})
print(f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}")
PY
)
    reason=${message%%:*}
    case "$reason" in
      PipelineRunTimeout) fail timeout "$message" ;;
      Cancelled) fail cancelled "$message" ;;
      *) fail failed "$message" ;;
    esac
    ;;
esac
log "done: PipelineRun $pipeline_run succeeded"
