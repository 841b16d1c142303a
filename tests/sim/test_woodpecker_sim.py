"""The Woodpecker simulator against the real server's contract: the OpenAPI definitions, the field
tables of shared/reference/woodpecker.md §3, auth quirks, paging and filters, SSE, faults, TLS."""

from __future__ import annotations

import base64
import copy
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import trustme

from pytest_homelab.sim.faults import FaultPlan
from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

SPEC = json.loads(
    (Path(__file__).parents[3] / "shared/reference/woodpecker-openapi.json").read_text()
)
TOKEN = "sim-token-123"
SHA = "a" * 40

# woodpecker.md §3: every field a real v3 server sends (omitempty ones only when set).
PIPELINE_FIELDS = {
    "id",
    "number",
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
    "ref",
    "refspec",
    "rerun_count",
    "author",
    "author_avatar",
    "author_email",
    "sender",
    "forge_url",
    "reviewed_by",
    "reviewed",
    "title",
    "message",
    "timestamp",
    "version",
}
V2_RENAMED = {
    "created": "created_at",
    "updated": "updated_at",
    "started": "started_at",
    "finished": "finished_at",
    "reviewed": "reviewed_at",
}
REPO_FIELDS = {
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
}
WORKFLOW_FIELDS = {"id", "pipeline_id", "pid", "name", "state", "children"}
STEP_FIELDS = {"id", "uuid", "pipeline_id", "pid", "ppid", "name", "state", "exit_code", "type"}
LOG_FIELDS = {"id", "step_id", "time", "line", "data", "type"}


def validator(definition: str) -> jsonschema.Draft4Validator:
    definitions = copy.deepcopy(SPEC["definitions"])
    definitions["LogEntry"]["properties"]["data"] = {"type": "string"}  # really base64
    for schema in definitions.values():  # the spec lists no extras; neither may we send any
        if "properties" in schema:
            schema["additionalProperties"] = False
    return jsonschema.Draft4Validator(
        {"definitions": definitions, "$ref": f"#/definitions/{definition}"}
    )


def conforms(definition: str, instance: object) -> None:
    errors = sorted(validator(definition).iter_errors(instance), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def sim() -> Iterator[WoodpeckerSim]:
    with WoodpeckerSim(token=TOKEN, ping_interval=0.2) as s:
        s.add_repo("homelab/app", private=True)
        s.add_repo("homelab/public", private=False)
        yield s


def get(sim: WoodpeckerSim, path: str, token: str | None = TOKEN, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(sim.base_url + path, headers=headers, params=params, timeout=5)


def two_steps(fail: bool = False) -> list[StepSpec]:
    return [
        StepSpec("clone", 0.05, log=["cloning"]),
        StepSpec("test", 0.05, exit_code=1 if fail else 0, log=["one", "two", "three"]),
    ]


# -- fidelity ------------------------------------------------------------------------------------


def test_json_conforms_to_the_openapi_spec_and_field_tables(sim: WoodpeckerSim) -> None:
    n = sim.add_pipeline("homelab/app", commit=SHA, steps=two_steps(fail=True))
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("slow", 60)])
    sim.cancel("homelab/app", 2, superseded_by=9)
    sim.advance(1)
    repo = get(sim, "/api/repos/lookup/homelab/app").json()
    conforms("Repo", repo)
    assert set(repo) >= REPO_FIELDS and isinstance(repo["forge_remote_id"], str)
    listed = get(sim, "/api/repos/1/pipelines").json()
    for item in listed:
        conforms("Pipeline", item)
        assert set(item) >= PIPELINE_FIELDS and "workflows" not in item
        assert all(isinstance(item[k], int) for k in ("created", "started", "finished"))
    assert listed[0]["cancel_info"] == {"superseded_by": 9} and "cancel_info" not in listed[1]
    detail = get(sim, f"/api/repos/1/pipelines/{n}").json()
    conforms("Pipeline", detail)
    (workflow,) = detail["workflows"]
    assert set(workflow) >= WORKFLOW_FIELDS
    for child in workflow["children"]:
        conforms("Step", child)
        assert set(child) >= STEP_FIELDS and child["id"] != child["pid"]
    clone, test = workflow["children"]
    assert (clone["state"], test["state"], test["exit_code"]) == ("success", "failure", 1)
    logs = get(sim, f"/api/repos/1/logs/{n}/{test['id']}").json()
    for entry in logs:
        conforms("LogEntry", entry)
        assert set(entry) >= LOG_FIELDS
    assert [base64.b64decode(e["data"]).decode() for e in logs] == ["one", "two", "three"]
    conforms("User", get(sim, "/api/user").json())
    assert get(sim, "/version").json()["version"] == "3.17.0"
    assert get(sim, "/healthz").status_code == 204


def test_v2_naming(sim: WoodpeckerSim) -> None:
    with WoodpeckerSim(token=None, naming="v2") as old:
        old.add_repo("o/r")
        old.add_pipeline("o/r", commit=SHA, steps=two_steps())
        old.advance(1)
        item = get(old, "/api/repos/1/pipelines", token=None).json()[0]
        for v3, v2 in V2_RENAMED.items():
            assert v2 in item and v3 not in item
        child = get(old, "/api/repos/1/pipelines/1", token=None).json()["workflows"][0]["children"][
            0
        ]
        assert "start_time" in child and "started" not in child
        assert get(old, "/version", token=None).json()["version"].startswith("2.")
        repo = get(old, "/api/repos/1", token=None).json()
        assert repo["trusted"] is False


def test_logs_are_null_before_the_step_runs(sim: WoodpeckerSim) -> None:
    n = sim.add_pipeline(
        "homelab/app", commit=SHA, steps=[StepSpec("wait", 60), StepSpec("later", 1, log=["x"])]
    )
    step_id = get(sim, f"/api/repos/1/pipelines/{n}").json()["workflows"][0]["children"][1]["id"]
    response = get(sim, f"/api/repos/1/logs/{n}/{step_id}")
    assert response.status_code == 200 and response.content == b"null"


# -- scenarios -----------------------------------------------------------------------------------


def statuses(sim: WoodpeckerSim, n: int = 1) -> tuple[str, list[str]]:
    data = get(sim, f"/api/repos/1/pipelines/{n}").json()
    return data["status"], [c["state"] for c in data["workflows"][0]["children"]]


def test_progression_failure_skips_the_rest(sim: WoodpeckerSim) -> None:
    sim.add_pipeline(
        "homelab/app",
        commit=SHA,
        pending_for=5,
        steps=[StepSpec("a", 10), StepSpec("b", 10, exit_code=2), StepSpec("c", 10)],
    )
    assert statuses(sim) == ("pending", ["pending"] * 3)
    sim.advance(6)
    assert statuses(sim) == ("running", ["running", "pending", "pending"])
    sim.advance(10)
    assert statuses(sim) == ("running", ["success", "running", "pending"])
    sim.advance(10)
    assert statuses(sim) == ("failure", ["success", "failure", "skipped"])


def test_appear_after(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, appear_after=30)
    assert get(sim, "/api/repos/1/pipelines").json() == []
    assert get(sim, "/api/repos/1/pipelines/1").status_code == 404
    sim.advance(31)
    assert [p["number"] for p in get(sim, "/api/repos/1/pipelines").json()] == [1]


def test_blocked_then_approved_or_declined(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, blocked=True, steps=[StepSpec("a", 1)])
    sim.add_pipeline("homelab/app", commit=SHA, blocked=True, steps=[StepSpec("a", 1)])
    sim.advance(100)
    assert statuses(sim)[0] == "blocked"
    approve = httpx.post(
        sim.base_url + "/api/repos/1/pipelines/1/approve",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert approve.status_code == 200
    sim.advance(2)
    assert statuses(sim)[0] == "success"
    sim.decline("homelab/app", 2)
    assert statuses(sim, 2)[0] == "declined"


def test_final_status_override_and_restart(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, final_status="error", steps=[StepSpec("a", 1)])
    sim.advance(2)
    assert statuses(sim)[0] == "error"
    restart = httpx.post(
        sim.base_url + "/api/repos/1/pipelines/1", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert restart.status_code == 200 and restart.json()["parent"] == 1
    assert restart.json()["number"] == 2 and restart.json()["commit"] == SHA


def test_cancel_before_and_after_start(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, pending_for=60)
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("long", 60)])
    sim.advance(1)
    sim.cancel("homelab/app", 1)
    sim.cancel("homelab/app", 2, superseded_by=3)
    assert statuses(sim, 1)[0] == "canceled"
    assert statuses(sim, 2) == ("killed", ["killed"])
    assert get(sim, "/api/repos/1/pipelines/2").json()["cancel_info"] == {"superseded_by": 3}


# -- paging and filters ----------------------------------------------------------------------------


def test_paging_caps_at_fifty(sim: WoodpeckerSim) -> None:
    for n in range(120):
        sim.add_pipeline("homelab/app", commit=f"{n:040x}", event="push" if n % 2 else "manual")
    numbers = [p["number"] for p in get(sim, "/api/repos/1/pipelines").json()]
    assert numbers == list(range(120, 70, -1))
    for per in ("500", "0", "-3", "x"):
        assert len(get(sim, "/api/repos/1/pipelines", perPage=per).json()) == 50
    assert len(get(sim, "/api/repos/1/pipelines", perPage="10", page="2").json()) == 10
    assert get(sim, "/api/repos/1/pipelines", page="99").json() == []
    assert get(sim, "/api/repos/1/pipelines", page="garbage").json()[0]["number"] == 120


def test_v3_filters_and_400s(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, event="push")
    sim.add_pipeline("homelab/app", commit=SHA, event="pull_request", branch="feature")
    assert [p["number"] for p in get(sim, "/api/repos/1/pipelines", event="push").json()] == [1]
    assert [p["number"] for p in get(sim, "/api/repos/1/pipelines", branch="feature").json()] == [2]
    assert get(sim, "/api/repos/1/pipelines", event="nonsense").status_code == 400
    assert get(sim, "/api/repos/1/pipelines", status="weird").status_code == 400
    assert get(sim, "/api/repos/1/pipelines", before="not-a-time").status_code == 400
    assert get(sim, "/api/repos/1/pipelines", before="2000-01-01T00:00:00Z").json() == []
    with WoodpeckerSim(token=None, naming="v2") as old:
        old.add_repo("o/r")
        old.add_pipeline("o/r", commit=SHA, event="pull_request")
        assert len(get(old, "/api/repos/1/pipelines", token=None, event="push").json()) == 1


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [TOKEN, "wrong", None])
def test_auth_matrix(sim: WoodpeckerSim, token: str | None) -> None:
    private = get(sim, "/api/repos/lookup/homelab/app", token=token)
    public = get(sim, "/api/repos/lookup/homelab/public", token=token)
    user = get(sim, "/api/user", token=token)
    assert public.status_code == 200
    if token == TOKEN:
        assert private.status_code == 200 and user.status_code == 200
    else:  # a bad token is not rejected: the request runs anonymously
        assert (private.status_code, private.content) == (401, b"")
        assert (user.status_code, user.content) == (401, b"")
    missing = get(sim, "/api/repos/lookup/homelab/nope", token=token)
    assert (missing.status_code, missing.content) == (404, b"")


def test_lookup_is_case_insensitive_and_access_token_param_works(sim: WoodpeckerSim) -> None:
    assert get(sim, "/api/repos/lookup/HomeLab/APP").json()["id"] == 1
    assert (
        get(sim, "/api/repos/lookup/homelab/app", token=None, access_token=TOKEN).status_code == 200
    )


def test_writes_need_a_valid_token(sim: WoodpeckerSim) -> None:
    sim.add_pipeline("homelab/public", commit=SHA)
    response = httpx.post(sim.base_url + "/api/repos/2/pipelines/1/cancel")
    assert response.status_code == 401


# -- SSE -----------------------------------------------------------------------------------------


def read_stream(sim: WoodpeckerSim, token: str | None, seconds: float) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    with httpx.stream(
        "GET", sim.base_url + "/api/stream/events", headers=headers, timeout=5
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-accel-buffering"] == "no"
        for line in response.iter_lines():
            lines.append(line)
            if time.monotonic() > deadline:
                break
    return lines


def test_stream_framing_and_visibility(sim: WoodpeckerSim) -> None:
    def later() -> None:
        time.sleep(0.2)
        sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("a", 0.1)])
        sim.add_pipeline("homelab/public", commit=SHA, steps=[StepSpec("a", 0.1)])

    for token, repos in ((TOKEN, {1, 2}), (None, {2})):
        threading.Thread(target=later, daemon=True).start()
        lines = read_stream(sim, token, 1.0)
        assert lines[0] == ": ping"
        events = [
            json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")
        ]
        assert {e["repo"]["id"] for e in events} == repos
        assert not any(line.startswith(("event:", "id:")) for line in lines)
        for event in events:
            conforms("Pipeline", event["pipeline"])
            assert "workflows" in event["pipeline"]
        assert ": ping" in lines[1:]  # idle pings


def test_stop_ends_open_streams_promptly_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    sim = WoodpeckerSim(token=None, ping_interval=30).start()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with httpx.stream("GET", sim.base_url + "/api/stream/events", timeout=60) as r:
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    sim.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    time.sleep(0.1)
    assert {t for t in threading.enumerate() if t.is_alive()} - before == set()


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("empty200", lambda r: r.status_code == 200 and r.content == b""),
        ("5xx", lambda r: r.status_code in (500, 502, 503) and r.content == b""),
        ("429", lambda r: r.status_code == 429 and r.headers["retry-after"] == "1"),
    ],
)
def test_http_faults(kind: str, check: Any) -> None:
    faults = FaultPlan(rate=0)
    with WoodpeckerSim(token=None, faults=faults) as sim:
        sim.add_repo("o/r")
        faults.inject(kind, path_prefix="/api/repos")
        assert check(get(sim, "/api/repos/1", token=None))
        assert get(sim, "/api/repos/1", token=None).status_code == 200  # one-shot
        assert sim.requests[0].fault == kind


@pytest.mark.parametrize("kind", ["reset", "truncated"])
def test_connection_faults(kind: str) -> None:
    faults = FaultPlan(rate=0)
    with WoodpeckerSim(token=None, faults=faults) as sim:
        sim.add_repo("o/r")
        faults.inject(kind)
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            get(sim, "/api/repos/1", token=None)


def test_stall_fault_trips_a_read_timeout() -> None:
    faults = FaultPlan(rate=0, stall_seconds=2)
    with WoodpeckerSim(token=None, faults=faults) as sim:
        sim.add_repo("o/r")
        faults.inject("stall")
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(sim.base_url + "/api/repos/1", timeout=0.3)


def test_fault_plan_is_deterministic_for_a_seed() -> None:
    paths = [f"/api/repos/1/pipelines?{n}" for n in range(200)]

    def run(seed: int) -> list[str | None]:
        plan = FaultPlan(seed=seed, rate=0.3)
        return [plan.decide(p) for p in paths]

    first, again, other = run(42), run(42), run(43)
    assert first == again and first != other
    assert 30 < sum(1 for f in first if f) < 90
    assert FaultPlan(rate=0.3).decide("/healthz") is None


# -- TLS -----------------------------------------------------------------------------------------


def test_https_with_a_trustme_ca_and_sni() -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("ci.example.test").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with WoodpeckerSim(
        host="127.0.0.2", ssl_context=server, public_host="ci.example.test", token=None
    ) as sim:
        assert sim.base_url == f"https://ci.example.test:{sim.port}"
        with httpx.Client(verify=client) as http:
            response = http.get(
                f"https://127.0.0.2:{sim.port}/version",
                headers={"Host": "ci.example.test"},
                extensions={"sni_hostname": "ci.example.test"},
            )
            assert response.status_code == 200
        with httpx.Client(verify=client) as fresh, pytest.raises(httpx.ConnectError):
            fresh.get(f"https://127.0.0.2:{sim.port}/version")  # the IP is not in the cert


def test_simulators_refuse_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        WoodpeckerSim(host="0.0.0.0")


def test_event_and_status_vocabularies_match_the_spec() -> None:
    from pytest_homelab.settings import WOODPECKER_EVENTS
    from pytest_homelab.sim.woodpecker import EVENTS, STATUSES
    from pytest_homelab.woodpecker import KNOWN_STATUSES

    spec_events = set(SPEC["definitions"]["WebhookEvent"]["enum"])
    spec_statuses = set(SPEC["definitions"]["StatusValue"]["enum"])
    assert set(EVENTS) == spec_events == set(WOODPECKER_EVENTS)
    assert set(STATUSES) == spec_statuses == set(KNOWN_STATUSES)
