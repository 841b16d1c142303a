"""The simulator's JSON and HTTP framing against the real server: the OpenAPI definitions, the
field tables of woodpecker.md §3 (v3.17.0 and v2.8.3 names), content types and header quirks."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx

from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

Call = Callable[..., httpx.Response]
Conforms = Callable[[str, object], None]
SHA = "a" * 40

# What a v3.17.0 server always sends (omitempty fields only when set).
PIPELINE_V3 = {
    "id",
    "number",
    "author",
    "parent",
    "event",
    "event_reason",
    "status",
    "errors",
    "created",
    "updated",
    "started",
    "finished",
    "deploy_to",
    "deploy_task",
    "commit",
    "branch",
    "rerun_count",
    "ref",
    "refspec",
    "author_avatar",
    "forge_url",
    "reviewed_by",
    "reviewed",
    "version",
    "title",
    "message",
    "timestamp",
    "sender",
    "author_email",
}
# v2.8.3: timestamps named *_at, and no event_reason, rerun_count, version or cancel_info.
PIPELINE_V2 = (PIPELINE_V3 - {"event_reason", "rerun_count", "version"}) - {
    "created",
    "updated",
    "started",
    "finished",
    "reviewed",
} | {"created_at", "updated_at", "started_at", "finished_at", "reviewed_at"}
REPO_V3 = {
    "id",
    "forge_id",
    "forge_remote_id",
    "org_id",
    "owner",
    "name",
    "full_name",
    "avatar_url",
    "forge_url",
    "clone_url",
    "clone_url_ssh",
    "default_branch",
    "pr_enabled",
    "timeout",
    "visibility",
    "private",
    "trusted",
    "require_approval",
    "approval_allowed_users",
    "active",
    "allow_pr",
    "allow_deploy",
    "config_file",
    "cancel_previous_pipeline_events",
    "netrc_trusted",
    "config_extension_endpoint",
    "config_extension_exclusive",
    "config_extension_netrc",
    "registry_extension_endpoint",
    "registry_extension_netrc",
    "secret_extension_endpoint",
    "secret_extension_netrc",
}
REPO_V2 = REPO_V3 - {"approval_allowed_users", "netrc_trusted"} - {
    k for k in REPO_V3 if "_extension_" in k
} | {"scm", "netrc_only_trusted"}
WORKFLOW_ALWAYS = {"id", "pipeline_id", "pid", "name", "state"}
STEP_ALWAYS = {"id", "uuid", "pipeline_id", "pid", "ppid", "name", "state", "exit_code", "type"}
LOG_FIELDS = {"id", "step_id", "time", "line", "data", "type"}
TIMESTAMPS_V3 = ("created", "updated", "started", "finished", "reviewed", "timestamp")


def scenario(sim: WoodpeckerSim) -> None:
    """#1 failed, #2 running, #3 killed (superseded), #4 pending, #5 blocked; all on repo 1."""
    steps = [StepSpec("clone", 1, log=["cloning"]), StepSpec("test", 1, 2, log=["a", "b", "c"])]
    sim.add_pipeline("homelab/app", commit=SHA, steps=steps)
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("slow", 60)])
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("slow", 60)])
    sim.add_pipeline("homelab/app", commit=SHA, event="pull_request", pending_for=600)
    sim.add_pipeline("homelab/app", commit=SHA, event="pull_request", blocked=True)
    sim.advance(3)
    sim.cancel("homelab/app", 3, superseded_by=9)


def test_v3_json_conforms_to_the_spec_and_the_field_tables(
    sim: WoodpeckerSim, get: Call, conforms: Conforms
) -> None:
    scenario(sim)
    repo = get(sim, "/api/repos/lookup/homelab/app").json()
    conforms("Repo", repo)
    assert set(repo) == REPO_V3 and isinstance(repo["forge_remote_id"], str)
    assert repo["trusted"] == {"network": False, "volumes": False, "security": False}
    listed = get(sim, "/api/repos/1/pipelines").json()
    assert [p["status"] for p in listed] == ["blocked", "pending", "killed", "running", "failure"]
    for item in listed:
        conforms("Pipeline", item)
        assert set(item) - {"cancel_info"} == PIPELINE_V3  # no workflows in lists
        assert all(type(item[k]) is int for k in TIMESTAMPS_V3)
        assert len(item["commit"]) == 40 and item["version"] == "3.17.0"
    killed = listed[2]
    assert killed["cancel_info"] == {"superseded_by": 9} and killed["finished"] > 0
    assert listed[1]["ref"] == "refs/pull/1/head" and listed[4]["ref"] == "refs/heads/main"
    for number in range(1, 6):
        detail = get(sim, f"/api/repos/1/pipelines/{number}").json()
        conforms("Pipeline", detail)
        for workflow in detail["workflows"]:
            conforms("model.Workflow", workflow)
            assert set(workflow) >= WORKFLOW_ALWAYS
            for child in workflow["children"]:
                conforms("Step", child)
                assert set(child) >= STEP_ALWAYS and child["id"] != child["pid"]
    (workflow,) = get(sim, "/api/repos/1/pipelines/1").json()["workflows"]
    clone, test = workflow["children"]
    assert (clone["type"], test["type"]) == ("clone", "commands")
    assert (workflow["state"], test["state"], test["exit_code"]) == ("failure", "failure", 2)
    assert workflow["error"] == f"uuid={test['uuid']}: exit code 2"
    assert all(type(x) is int for x in (test["started"], test["finished"], workflow["started"]))
    assert test["finished"] - test["started"] == 1


def test_log_entries(sim: WoodpeckerSim, get: Call, conforms: Conforms) -> None:
    scenario(sim)
    test = get(sim, "/api/repos/1/pipelines/1").json()["workflows"][0]["children"][1]
    response = get(sim, f"/api/repos/1/logs/1/{test['id']}")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    logs = response.json()
    for entry in logs:
        conforms("LogEntry", entry)
        assert set(entry) == LOG_FIELDS and entry["step_id"] == test["id"] and entry["type"] == 0
    assert [base64.b64decode(e["data"]).decode() for e in logs] == ["a", "b", "c"]
    assert [e["line"] for e in logs] == [0, 1, 2]
    assert get(sim, f"/api/repos/1/logs/1/{test['pid']}").status_code == 404  # pid is not an id


def test_logs_grow_while_the_step_runs_and_are_null_before(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_pipeline(
        "homelab/app", commit=SHA, steps=[StepSpec("build", 10, log=[f"l{n}" for n in range(5)])]
    )
    sim.add_pipeline("homelab/app", commit=SHA, pending_for=60)
    step = get(sim, "/api/repos/1/pipelines/1").json()["workflows"][0]["children"][0]
    waiting = get(sim, "/api/repos/1/pipelines/2").json()["workflows"][0]["children"][0]
    never_ran = get(sim, f"/api/repos/1/logs/2/{waiting['id']}")
    assert never_ran.status_code == 200 and never_ran.content == b"null"
    sim.advance(4.5)  # lines come out every 2 s
    assert len(get(sim, f"/api/repos/1/logs/1/{step['id']}").json()) == 3
    sim.advance(10)
    logs = get(sim, f"/api/repos/1/logs/1/{step['id']}").json()
    assert [e["time"] for e in logs] == [0, 2, 4, 6, 8]


def test_user_version_and_health(sim: WoodpeckerSim, get: Call, conforms: Conforms) -> None:
    user = get(sim, "/api/user")
    conforms("User", user.json())
    assert set(user.json()) == {
        "id",
        "forge_id",
        "forge_remote_id",
        "login",
        "email",
        "avatar_url",
        "org_id",
    }
    version = get(sim, "/version", token=None)
    assert version.json() == {
        "source": "https://github.com/woodpecker-ci/woodpecker",
        "version": "3.17.0",
    }
    health = get(sim, "/healthz", token=None)
    assert health.status_code == 204 and health.content == b""
    assert "content-length" not in health.headers  # none on a 204, as Go does


def test_v2_names_and_shapes(v2sim: WoodpeckerSim, get: Call) -> None:
    v2sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("a", 1), StepSpec("b", 60)])
    v2sim.add_pipeline("homelab/app", commit=SHA, pending_for=60)
    v2sim.advance(2)
    v2sim.cancel("homelab/app", 1)
    v2sim.cancel("homelab/app", 2)
    items = get(v2sim, "/api/repos/1/pipelines").json()
    for item in items:
        assert set(item) == PIPELINE_V2  # no cancel_info either
        assert all(type(item[f"{k}_at"]) is int for k in ("created", "started", "finished"))
    assert [p["status"] for p in items] == ["killed", "killed"]  # v2 has no 'canceled'
    (workflow,) = get(v2sim, "/api/repos/1/pipelines/1").json()["workflows"]
    assert {"start_time", "end_time"} <= set(workflow) and "started" not in workflow
    a, b = workflow["children"]
    assert {"start_time", "end_time"} <= set(a) and "started" not in a
    assert (a["state"], b["state"], b["exit_code"]) == ("success", "killed", 137)
    pending_steps = get(v2sim, "/api/repos/1/pipelines/2").json()["workflows"][0]["children"]
    assert [c["state"] for c in pending_steps] == ["skipped"]
    repo = get(v2sim, "/api/repos/1").json()
    assert set(repo) == REPO_V2 and repo["trusted"] is False
    assert "forge_remote_id" not in get(v2sim, "/api/user").json()
    assert get(v2sim, "/version", token=None).json()["version"] == "2.8.3"
    old_stream = get(v2sim, "/stream/events")
    assert (old_stream.status_code, old_stream.text) == (410, "use /api/stream/events")


def test_http_framing(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, message="<b>fix</b> & ünïcode")
    response = get(sim, "/api/repos/1/pipelines/1")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"].startswith("no-cache, no-store")
    body = response.content.decode()
    assert "\\u003cb\\u003efix\\u003c/b\\u003e \\u0026 ünïcode" in body  # Go's encoding/json
    assert ", " not in body and ": " not in body
    assert json.loads(body)["message"] == "<b>fix</b> & ünïcode"
    anonymous = get(sim, "/api/user", token=None)
    assert (anonymous.status_code, anonymous.text) == (401, "User not authorized")
    assert anonymous.headers["content-type"] == "text/plain; charset=utf-8"
    missing = get(sim, "/api/repos/1/pipelines/99")
    assert (missing.status_code, missing.content) == (404, b"")
    assert "content-type" not in missing.headers and missing.headers["content-length"] == "0"


def test_unknown_routes_get_the_web_ui(sim: WoodpeckerSim, get: Call, post: Call) -> None:
    for response in (
        get(sim, "/api/nope"),
        get(sim, "/api/repos/1/pipelines/1/cancel"),  # cancel is a POST
        post(sim, "/api/repos/1"),
        get(sim, "/stream/events"),  # v3 dropped the old stream path
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=UTF-8"
        assert response.text.startswith("<!DOCTYPE html>")


def test_cors_preflight(sim: WoodpeckerSim) -> None:
    response = httpx.options(sim.base_url + "/api/repos/1/pipelines", timeout=5)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "authorization" in response.headers["access-control-allow-headers"]
