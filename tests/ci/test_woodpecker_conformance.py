"""The conformance table: real Woodpecker server behaviours, one row per test.

Each row names the source it comes from (woodpecker-ci/woodpecker, ``path@tag:lines``; facts,
not code) and runs against the simulator in the matching mode; where a verdict is concerned,
the real client (``WoodpeckerClient``, ``WoodpeckerEventStream``, ``PipelineWatch``) runs
against it too. Research notes with every citation: issue 16's notes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from pytest_homelab.ci import client as client_module
from pytest_homelab.ci.client import WoodpeckerClient
from pytest_homelab.ci.stream import WoodpeckerEventStream
from pytest_homelab.ci.watch import CiResult, PipelineWatch
from pytest_homelab.core.clock import Deadline
from pytest_homelab.core.outcomes import AuthError, CheckFailed, NotFound, Superseded
from pytest_homelab.core.secrets import Secret
from pytest_homelab.core.transport import JsonApi
from pytest_homelab.sim.woodpecker import Naming, StepSpec, WoodpeckerSim

TOKEN = "conformance-token-7d1e"
SLUG = "homelab/app"
SHA = "9f3c2a1b" + "7d4e" * 8
OTHER = "1234abcd" * 5
BOTH: list[Naming] = ["v2", "v3"]


@contextmanager
def simulator(naming: Naming = "v3", **kw: Any) -> Iterator[WoodpeckerSim]:
    sim = WoodpeckerSim(host="127.0.0.1", naming=naming, token=TOKEN, ping_interval=0.5, **kw)
    with sim:
        yield sim


def get(sim: WoodpeckerSim, path: str, token: str | None = TOKEN, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(base_url=sim.base_url, timeout=5) as http:
        return http.get(path, headers=headers, params=params)


def client_for(sim: WoodpeckerSim) -> WoodpeckerClient:
    http = httpx.Client(base_url=sim.base_url, timeout=5)
    return WoodpeckerClient(JsonApi(http, token=Secret(TOKEN), service="Woodpecker"))


def watch(
    sim: WoodpeckerSim,
    sha: str = SHA,
    *,
    branch: str | None = None,
    timeout: float = 20.0,
    poll: float = 0.5,
    recheck: float = 300.0,
    appear_grace: float = 10.0,
    stream: bool = True,
) -> tuple[CiResult, WoodpeckerEventStream | None]:
    """The real client and stream, as ``watch_ci`` wires them, against ``sim``."""
    client = client_for(sim)
    repo = client.lookup_repo(SLUG, deadline=Deadline.after(5))
    events = None
    if stream:
        events = WoodpeckerEventStream(
            httpx.Client(base_url=sim.base_url), repo, token=Secret(TOKEN)
        ).start()
    try:
        result = PipelineWatch(
            client,
            repo,
            sha,
            deadline=Deadline.after(timeout),
            branch=branch,
            appear_grace=appear_grace,
            poll_interval=poll,
            stream_recheck=recheck,
            stream=events,
        ).run()
    finally:
        if events is not None:
            events.close()
            events.http.close()
        client.close()
    return result, events


def lists(sim: WoodpeckerSim) -> list[dict[str, list[str]]]:
    return [r.query for r in sim.requests if r.path.endswith("/pipelines")]


@pytest.fixture
def quick_auth_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented retry rule (five answers in a row), on a shorter time scale."""
    monkeypatch.setattr(client_module, "AUTH_RETRY_DELAYS", (0.1, 0.2, 0.2, 0.2))


# == rows that were already right ===============================================================


@pytest.mark.parametrize("naming", BOTH)
def test_row_pagination_caps_per_page_at_50(naming: Naming) -> None:
    # server/router/middleware/session/pagination.go@v3.17.0:25-40 (maxPageSize 50; <1, >50
    # or unparseable -> 50; page <1 -> 1)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        for n in range(55):
            sim.add_pipeline(SLUG, commit=f"{n:040x}")
        assert len(get(sim, "/api/repos/1/pipelines", perPage=100).json()) == 50
        assert len(get(sim, "/api/repos/1/pipelines", page=2, perPage="x").json()) == 5
        assert get(sim, "/api/repos/1/pipelines", page=3).json() == []


@pytest.mark.parametrize("naming", BOTH)
def test_row_list_is_newest_first(naming: Naming) -> None:
    # server/store/datastore/pipeline.go@v3.17.0:100-102 (ORDER BY number DESC)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        for n in range(3):
            sim.add_pipeline(SLUG, commit=f"{n:040x}")
        assert [p["number"] for p in get(sim, "/api/repos/1/pipelines").json()] == [3, 2, 1]


@pytest.mark.parametrize(
    ("naming", "created"),
    [("v2", "created_at"), ("v3", "created")],
)
def test_row_timestamp_names_per_version(naming: Naming, created: str) -> None:
    # server/model/pipeline.go@v2.8.3:31-34 (created_at, …); @v3.17.0:35-38 (created, …)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA)
        (item,) = get(sim, "/api/repos/1/pipelines").json()
        assert isinstance(item[created], int) and item[created] > 0


def test_row_stream_framing_ping_then_data_lines() -> None:
    # server/api/stream.go@v3.17.0:70-72 (": ping\n\n" first), 119-125 ("data: <json>\n\n")
    with simulator() as sim:
        sim.add_repo(SLUG)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with (
            httpx.Client(base_url=sim.base_url, timeout=5) as http,
            http.stream("GET", "/api/stream/events", headers=headers) as response,
        ):
            assert response.headers["content-type"] == "text/event-stream"
            chunks = response.iter_bytes()
            assert next(chunks) == b": ping\n\n"
            sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 5)])
            data = next(chunks)
        assert data.startswith(b"data: {") and data.endswith(b"}\n\n")
        event = json.loads(data.removeprefix(b"data: "))
        assert event["repo"]["id"] == 1 and event["pipeline"]["commit"] == SHA


def test_row_a_bad_token_runs_anonymously() -> None:
    # server/router/middleware/session/user.go@v3.17.0:42-75 (a token that does not parse is
    # no rejection), session/repo.go@v3.17.0:78-81,170-192 (guest on a private repo: 401)
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        assert get(sim, "/api/user", token="wrong").status_code == 401
        answer = get(sim, f"/api/repos/lookup/{SLUG}", token="wrong")
        assert (answer.status_code, answer.content) == (401, b"")


def test_row_cancel_info_superseded_by_and_the_client() -> None:
    # server/pipeline/cancel.go@v3.17.0:117-146: a newer push on the same branch cancels the
    # older one with cancel_info.superseded_by = the newer number
    with simulator() as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 60)])
        sim.add_pipeline(SLUG, commit=OTHER, steps=[StepSpec("test", 60)])
        sim.cancel(SLUG, 1, superseded_by=2)
        (_, first) = get(sim, "/api/repos/1/pipelines").json()
        assert first["status"] == "killed" and first["cancel_info"] == {"superseded_by": 2}
        result, _ = watch(sim)
        assert isinstance(result.outcome, Superseded)


def test_row_logs_are_base64_and_null_before_the_first_line() -> None:
    # server/model/log.go@v3.17.0:33 (Data []byte -> base64); a step without logs yet: null
    with simulator(speed=0.001) as sim:  # scenario time moves by advance() only, in effect
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("a", 10), StepSpec("b", 60)])
        sim.advance(5)
        steps = get(sim, "/api/repos/1/pipelines/1").json()["workflows"][0]["children"]
        assert get(sim, f"/api/repos/1/logs/1/{steps[1]['id']}").json() is None
        sim.advance(6)
        (line,) = get(sim, f"/api/repos/1/logs/1/{steps[0]['id']}").json()
        assert base64.b64decode(line["data"]) == b"+ a"


# == the stream carries only repos with a permission row ========================================


def test_row_stream_skips_a_private_repo_without_a_row_and_the_verdict_still_comes() -> None:
    # server/api/stream.go@v3.17.0:81-85 with server/store/datastore/repo.go@v3.17.0:145-161:
    # the subscription is the user's perms rows (active repos); an admin reaches a repo without
    # a row (session/repo.go@v3.17.0:148-152) but its stream never mentions it.
    with simulator(admin=True) as sim:
        sim.add_repo(SLUG, private=True, perm_row=False)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 1.5)])
        result, events = watch(sim, poll=0.5, recheck=300)
        assert result.green
        assert events is not None and events.delivered == 0  # connected, never a word of it
        assert result.waited <= 1.5 + 0.5 + 2  # ≤ ci_poll_interval + 2 s after the end
        streams = [r for r in sim.requests if r.path == "/api/stream/events"]
        assert streams and all(r.status == 200 for r in streams)


def test_row_a_public_repo_without_a_row_comes_through_the_public_topic() -> None:
    # server/scheduler/impl.go@v3.17.0:129-135 (public repos also go to the "public" topic),
    # server/api/stream.go@v3.17.0:78-79 (every stream subscribes to it)
    with simulator(admin=True) as sim:
        sim.add_repo(SLUG, private=False, perm_row=False)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 1.0)])
        result, events = watch(sim)
        assert result.green and events is not None and events.delivered > 0


def test_row_a_silent_replica_stream_and_the_verdict_still_comes() -> None:
    # server/pubsub/memory/pub.go@v3.17.0:41: in-memory pubsub; a stream served by another
    # replica stays connected and never carries this server's events
    with simulator(stream_silent=True) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 1.5)])
        result, events = watch(sim, poll=0.5, recheck=300)
        assert result.green and result.waited <= 1.5 + 0.5 + 2
        assert events is not None and events.delivered == 0


def test_row_a_stream_that_carries_the_repo_saves_the_polls() -> None:
    # the same subscription rule: with a row, every state change of the repo is published
    # (server/pipeline/start.go@v3.17.0:53-56)
    with simulator() as sim:
        sim.add_repo(SLUG)
        steps = [StepSpec("clone", 0.3), StepSpec("build", 1.2), StepSpec("test", 1.5)]
        sim.add_pipeline(SLUG, commit=SHA, steps=steps, appear_after=1.0)
        result, events = watch(sim, poll=0.5, recheck=300)
        assert result.green and events is not None and events.delivered > 0
        # polled every 0.5 s until the first event (the pipeline appears at 1 s), then only the
        # look that confirms the terminal event: fewer than half the ~9 lists of polling
        assert len(lists(sim)) <= 5, lists(sim)


# == a transient 401 or 404 with a valid token ==================================================


@pytest.mark.usefixtures("quick_auth_retries")
def test_row_anonymous_answers_for_a_moment_are_retried() -> None:
    # session/user.go@v3.17.0:46-56 + shared/token/token.go@v3.17.0:47-56: when loading the
    # token's user fails, the request runs anonymously -> a private repo answers 401
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 1.0)])
        sim.answer_anonymously(2, "/api/repos/1/pipelines")
        result, _ = watch(sim, stream=False)
        assert result.green
        assert [r.status for r in sim.requests if r.path == "/api/repos/1/pipelines"][:3] == [
            401,
            401,
            200,
        ]


@pytest.mark.usefixtures("quick_auth_retries")
def test_row_a_failed_permission_sync_404_is_retried() -> None:
    # session/repo.go@v3.17.0:118-142 (re-sync from the forge) and 170-183 (MustPull: 404 for
    # an authenticated user without pull)
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 1.0)])
        sim.deny_pull(3, "/api/repos/1/pipelines")
        result, _ = watch(sim, stream=False)
        assert result.green


@pytest.mark.usefixtures("quick_auth_retries")
def test_row_a_persistent_401_ends_as_auth_error_saying_it_worked_before() -> None:
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 60)])
        sim.answer_anonymously(1000, "/api/repos/1/")
        with pytest.raises(AuthError) as raised:
            watch(sim, stream=False)
        message = raised.value.message
        assert "answered 401 5 times in a row" in message
        assert "although homelab/app was readable earlier in this run" in message
        assert "GET /api/user still accepts the token" in message
        assert TOKEN not in str(raised.value)


@pytest.mark.usefixtures("quick_auth_retries")
def test_row_a_persistent_404_ends_as_not_found() -> None:
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 60)])
        sim.deny_pull(1000, "/api/repos/1/pipelines")
        with pytest.raises(NotFound, match="answered 404 5 times in a row"):
            watch(sim, stream=False)


# == pipelines the server deletes ===============================================================


@pytest.mark.parametrize("naming", BOTH)
def test_row_a_created_pipeline_deleted_by_the_server(naming: Naming) -> None:
    # server/pipeline/create.go@v3.17.0:64-69 (stored as created), 80-86 (no config: deleted),
    # 124-131 (all workflows filtered: deleted); the first publish is at :133, after both
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, deleted_after=1.0)
        (item,) = get(sim, "/api/repos/1/pipelines").json()
        assert (
            item["status"] == "created"
            and "workflows" not in get(sim, "/api/repos/1/pipelines/1").json()
        )
        result, _ = watch(sim, poll=0.5)
        assert isinstance(result.outcome, NotFound)
        assert "#1 of 9f3c2a1b was deleted by the server" in result.outcome.message
        assert result.waited <= 1.0 + 0.5 + 2
        assert get(sim, "/api/repos/1/pipelines/1").status_code == 404
        assert get(sim, "/api/repos/1/pipelines").json() == []


# == red verdicts with their reason =============================================================


@pytest.mark.parametrize("naming", BOTH)
def test_row_a_config_error_pipeline_and_its_reason(naming: Naming) -> None:
    # server/pipeline/create.go@v3.17.0:116-118 -> pipeline_status.go@v3.17.0:65-71: status
    # error, started = finished, errors[] set (pipeline/errors/pipeline.go@v3.17.0:33-38),
    # no workflows (server/model/pipeline.go@v3.17.0:51 workflows,omitempty)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, config_errors=["steps.test.image: required"])
        detail = get(sim, "/api/repos/1/pipelines/1").json()
        assert detail["status"] == "error" and "workflows" not in detail
        assert detail["errors"] == [
            {
                "type": "linter",
                "message": "steps.test.image: required",
                "is_warning": False,
                "data": None,
            }
        ]
        result, _ = watch(sim)
        assert isinstance(result.outcome, CheckFailed)
        assert "ended error: [linter] steps.test.image: required" in result.outcome.message
        assert ("errors", "[linter] steps.test.image: required") in result.properties()


@pytest.mark.parametrize("naming", BOTH)
def test_row_errors_is_null_when_there_are_none(naming: Naming) -> None:
    # server/model/pipeline.go@v3.17.0:34: []*PipelineError without omitempty; nil -> null
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA)
        assert get(sim, "/api/repos/1/pipelines").json()[0]["errors"] is None


def test_row_warnings_do_not_turn_a_green_pipeline_red() -> None:
    # server/pipeline/items.go@v3.17.0:162-170: non-blocking errors are recorded on a pipeline
    # that runs on (is_warning: true)
    with simulator() as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, warnings=["'branches' is deprecated"])
        assert get(sim, "/api/repos/1/pipelines").json()[0]["errors"][0]["is_warning"] is True
        result, _ = watch(sim)
        assert result.green


@pytest.mark.parametrize("naming", BOTH)
def test_row_a_pipeline_is_never_skipped(naming: Naming) -> None:
    # server/pipeline/pipeline_status.go@v3.17.0:27-35 with status.go@v3.17.0:19-44 (skipped
    # ranks below success); server/model/workflow.go@v2.8.3:62-72 (only failing workflows
    # change it): an all-skipped pipeline is success
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, final_status="skipped")
        sim.advance(1)  # past its end
        detail = get(sim, "/api/repos/1/pipelines/1").json()
        assert (detail["status"], detail["workflows"][0]["state"]) == ("success", "skipped")
        result, _ = watch(sim)
        assert result.green


# == the branch =================================================================================


@pytest.mark.parametrize("naming", BOTH)
def test_row_another_branch_never_decides_the_verdict(naming: Naming) -> None:
    # one push pipeline per pushed branch (server/api/hook.go@v3.17.0:227); v3 filters the list
    # by branch (server/api/pipeline.go@v3.17.0:132-135, datastore/pipeline.go@v3.17.0:83-85);
    # v2 ignores the parameter (server/api/pipeline.go@v2.8.3:117-148): the client filters
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, branch="feature", steps=[StepSpec("t", 0.1)])
        sim.add_pipeline(
            SLUG, commit=SHA, branch="main", steps=[StepSpec("t", 0.5, 1)], appear_after=1.0
        )
        result, _ = watch(sim, branch="main")
        assert isinstance(result.outcome, CheckFailed)
        assert result.pipeline is not None and result.pipeline.number == 2
        assert all(q.get("branch") == ["main"] for q in lists(sim))
        if naming == "v2":  # the unfiltered list showed it: named as ignored
            assert [p.number for p in result.ignored] == [1]
            assert ("ignored_pipelines", "#1 on feature (success)") in result.properties()


def test_row_v3_list_filters_by_branch_v2_ignores_it() -> None:
    for naming, expected in (("v3", [1]), ("v2", [2, 1])):
        with simulator(naming) as sim:  # type: ignore[arg-type]
            sim.add_repo(SLUG)
            sim.add_pipeline(SLUG, commit=SHA, branch="main")
            sim.add_pipeline(SLUG, commit=SHA, branch="feature")
            got = get(sim, "/api/repos/1/pipelines", branch="main").json()
            assert [p["number"] for p in got] == expected


def test_row_not_found_on_the_branch_names_the_other_branches_pipelines() -> None:
    with simulator() as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, branch="feature")
        result, _ = watch(sim, branch="main", appear_grace=1.5)
        assert isinstance(result.outcome, NotFound)
        assert "on branch main" in result.outcome.message
        assert "#1 on feature" in result.outcome.message


# == the routes third-party clients call ========================================================


@pytest.mark.parametrize("naming", BOTH)
def test_row_pipeline_config_route(naming: Naming) -> None:
    # server/router/api.go@v3.17.0:118, server/api/pipeline.go@v3.17.0:400-422,
    # server/model/config.go@v3.17.0:19-25 (data []byte: base64), datastore/config.go:49 (sha256)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test")])
        answer = get(sim, "/api/repos/1/pipelines/1/config")
        assert answer.headers["content-type"].startswith("application/json")
        (config,) = answer.json()
        data = base64.b64decode(config["data"])
        assert set(config) == {"hash", "name", "data"} and b"test" in data
        assert config["hash"] == hashlib.sha256(data).hexdigest()
        assert get(sim, "/api/repos/1/pipelines/9/config").status_code == 404
        assert get(sim, "/api/repos/1/pipelines/1/config", token=None).status_code == 401


def test_row_permissions_route_answers_before_must_pull() -> None:
    # server/router/api.go@v3.17.0:100-103 (SetRepo, SetPerm, then /permissions, no MustPull),
    # server/model/perm.go@v3.17.0:19-28
    with simulator() as sim:
        sim.add_repo(SLUG, private=True)
        mine = get(sim, "/api/repos/1/permissions").json()
        assert list(mine) == ["pull", "push", "admin", "synced", "created", "updated"]
        assert (mine["pull"], mine["push"], mine["admin"]) == (True, True, False)
        guest = get(sim, "/api/repos/1/permissions", token=None)
        assert guest.status_code == 200 and guest.json()["pull"] is False


def test_row_branches_route() -> None:
    # server/router/api.go@v3.17.0:111 (MustPull), server/api/repo.go@v3.17.0:415-443 ([]string)
    with simulator() as sim:
        sim.add_repo(SLUG, default_branch="main")
        sim.add_pipeline(SLUG, commit=SHA, branch="feature")
        assert get(sim, "/api/repos/1/branches").json() == ["feature", "main"]
        assert get(sim, "/api/repos/1/branches", token=None).status_code == 401


@pytest.mark.parametrize("naming", BOTH)
def test_row_user_repos_route(naming: Naming) -> None:
    # server/router/api.go@v3.17.0:37-39 behind MustUser (session/user.go@v3.17.0:110-121);
    # v3: repos with last_pipeline (server/api/user.go@v3.17.0:181-217); v2: repos
    # (server/api/user.go@v2.8.3:137-143); only repos with a row (datastore/repo.go:145-161)
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        sim.add_repo("homelab/other", perm_row=False)
        sim.add_pipeline(SLUG, commit=SHA)
        repos = get(sim, "/api/user/repos").json()
        assert [r["full_name"] for r in repos] == [SLUG]
        assert ("last_pipeline" in repos[0]) == (naming == "v3")
        anonymous = get(sim, "/api/user/repos", token=None)
        assert (anonymous.status_code, anonymous.text) == (401, "User not authorized")


@pytest.mark.parametrize("naming", BOTH)
def test_row_queue_info_route_is_for_admins(naming: Naming) -> None:
    # server/router/api.go@v3.17.0:183-186 with MustAdmin (session/user.go@v3.17.0:77-91: 401
    # guest, 403 user); server/model/queue.go@v3.17.0:25-36, server/queue/queue.go@v2.8.3:33-45
    with simulator(naming) as sim:
        sim.add_repo(SLUG)
        assert get(sim, "/api/queue/info").status_code == 403
        assert get(sim, "/api/queue/info", token=None).status_code == 401
    with simulator(naming, admin=True) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, steps=[StepSpec("test", 60)])
        answer = get(sim, "/api/queue/info")
        info = answer.json()
        assert set(info) == {"pending", "waiting_on_deps", "running", "stats", "paused"}
        assert info["stats"]["running_count"] == 1 and len(info["running"]) == 1
        assert answer.text.startswith("{\n    ")  # gin's IndentedJSON


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_row_an_unknown_api_path_gets_the_web_ui(method: str) -> None:
    # server/router/router.go@v3.17.0:54 (NoRoute -> the web UI handler),
    # server/web/web.go@v3.17.0:65,142-150 (index.html, 200, text/html): the real server has no
    # JSON 404 for an /api/ path it does not know; the simulator answers the same
    with simulator() as sim, httpx.Client(base_url=sim.base_url, timeout=5) as http:
        answer = http.request(method, "/api/no/such/route")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/html; charset=UTF-8"
        assert answer.text.startswith("<!DOCTYPE html>")


def test_row_the_simulator_answered_every_row_without_errors() -> None:
    with simulator(admin=True) as sim:
        sim.add_repo(SLUG)
        sim.add_pipeline(SLUG, commit=SHA, config_errors=["x"])
        sim.add_pipeline(SLUG, commit=OTHER, deleted_after=0.2)
        for path in (
            "/api/repos/1/pipelines",
            "/api/repos/1/pipelines/1",
            "/api/repos/1/pipelines/1/config",
            "/api/repos/1/permissions",
            "/api/repos/1/branches",
            "/api/user/repos",
            "/api/queue/info",
        ):
            assert get(sim, path).status_code == 200, path
        time.sleep(0)  # the handlers have answered; nothing is left running
        assert sim.errors == []
