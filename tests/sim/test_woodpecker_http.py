"""Auth as session.SetUser/SetRepo/MustPull/MustPush do it, paging, list filters and their 400s,
and HTTPS with a certificate for the public hostname."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from pytest_homelab.sim.woodpecker import StepSpec, WoodpeckerSim

Call = Callable[..., httpx.Response]
TOKEN = "sim-token-123"  # the sim fixture's token
SHA = "c" * 40


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [TOKEN, "wrong", None])
def test_auth_matrix(sim: WoodpeckerSim, get: Call, post: Call, token: str | None) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, steps=[StepSpec("a", 60)])
    sim.add_pipeline("homelab/public", commit=SHA, steps=[StepSpec("a", 60)])
    step = sim.pipeline_json("homelab/app", 1)["workflows"][0]["children"][0]["id"]
    private_reads = [
        "/api/repos/lookup/homelab/app",
        "/api/repos/1",
        "/api/repos/1/pipelines",
        "/api/repos/1/pipelines/1",
        "/api/repos/1/pipelines/latest",
        f"/api/repos/1/logs/1/{step}",
    ]
    public_reads = [p.replace("homelab/app", "homelab/public") for p in private_reads[:1]] + [
        "/api/repos/2",
        "/api/repos/2/pipelines",
        "/api/repos/2/pipelines/1",
    ]
    valid = token == TOKEN
    for path in private_reads:
        response = get(sim, path, token=token)
        # A bad token is not rejected: the request runs anonymously and meets an empty 401.
        expected = (200,) if valid else (401, b"")
        assert (response.status_code, response.content)[: len(expected)] == expected, path
    for path in public_reads:
        assert get(sim, path, token=token).status_code == 200, path
    user = get(sim, "/api/user", token=token)
    assert user.status_code == (200 if valid else 401)
    # Unknown repos: a guest learns nothing (401), a user gets 404; both bodies empty.
    for path in ("/api/repos/lookup/homelab/nope", "/api/repos/99", "/api/repos/99/pipelines"):
        response = get(sim, path, token=token)
        assert (response.status_code, response.content) == (404 if valid else 401, b""), path
    # Writes need push permission: guests get 401 even on public repos.
    cancel = post(sim, "/api/repos/2/pipelines/1/cancel", token=token)
    assert cancel.status_code == (204 if valid else 401)


def test_other_credential_places(sim: WoodpeckerSim, get: Call) -> None:
    path = "/api/repos/lookup/homelab/app"
    assert get(sim, path, token=None, access_token=TOKEN).status_code == 200
    assert get(sim, path, token=None, headers={"X-Gitlab-Token": TOKEN}).status_code == 200
    cookie = {"Cookie": f"theme=dark; user_sess={TOKEN}"}
    assert get(sim, path, token=None, headers=cookie).status_code == 200
    # The Authorization header wins when present, even when it is wrong.
    assert get(sim, path, token="wrong", access_token=TOKEN).status_code == 401
    assert get(sim, path, token=None, headers={"Authorization": TOKEN}).status_code == 401
    assert (
        get(sim, path, token=None, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 401
    )
    assert [r.authenticated for r in sim.requests] == [True] * 3 + [False] * 3


def test_without_a_token_everything_is_open(get: Call) -> None:
    with WoodpeckerSim(token=None) as open_sim:
        open_sim.add_repo("o/r", private=True)
        assert get(open_sim, "/api/repos/1", token=None).status_code == 200
        assert get(open_sim, "/api/user", token="anything").status_code == 200


def test_lookup(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_repo("group/sub/deep")
    assert get(sim, "/api/repos/lookup/HomeLab/APP").json()["id"] == 1
    deep = get(sim, "/api/repos/lookup/group/sub/deep").json()
    assert (deep["owner"], deep["name"], deep["full_name"]) == (
        "group/sub",
        "deep",
        "group/sub/deep",
    )


def test_malformed_ids_are_400(sim: WoodpeckerSim, get: Call, post: Call) -> None:
    sim.add_pipeline("homelab/app", commit=SHA)
    for path in (
        "/api/repos/app/pipelines",
        "/api/repos/1/pipelines/one",
        "/api/repos/1/logs/one/1",
        "/api/repos/1/logs/1/step",
    ):
        response = get(sim, path)
        assert (response.status_code, response.content) == (400, b""), path
    assert post(sim, "/api/repos/1/pipelines/x/cancel").status_code == 400
    assert get(sim, "/api/repos/1/pipelines/2").status_code == 404
    assert get(sim, "/api/repos/1/pipelines/-1").status_code == 404
    assert get(sim, "/api/repos/1/logs/1/99999").status_code == 404


# -- paging and filters ----------------------------------------------------------------------


def numbers(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [p["number"] for p in response.json()]


def test_paging_caps_at_fifty(sim: WoodpeckerSim, get: Call) -> None:
    for n in range(120):
        sim.add_pipeline("homelab/app", commit=f"{n:040x}")
    assert numbers(get(sim, "/api/repos/1/pipelines")) == list(range(120, 70, -1))
    for per in ("500", "51", "0", "-3", "x", ""):
        assert len(numbers(get(sim, "/api/repos/1/pipelines", perPage=per))) == 50, per
    assert numbers(get(sim, "/api/repos/1/pipelines", perPage="10", page="2")) == list(
        range(110, 100, -1)
    )
    assert numbers(get(sim, "/api/repos/1/pipelines", page="3")) == list(range(20, 0, -1))
    assert get(sim, "/api/repos/1/pipelines", page="4").json() == []
    last = sim.requests[-1]
    assert (last.method, last.path, last.query, last.status) == (
        "GET",
        "/api/repos/1/pipelines",
        {"page": ["4"]},
        200,
    )
    for page in ("0", "-1", "garbage", "+1"):
        assert numbers(get(sim, "/api/repos/1/pipelines", page=page))[0] == 120, page


def test_v3_filters(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_pipeline("homelab/app", commit=SHA)  # 1 push main success
    sim.add_pipeline("homelab/app", commit=SHA, event="pull_request", branch="main")  # 2
    sim.add_pipeline("homelab/app", commit=SHA, event="tag")  # 3
    sim.add_pipeline("homelab/app", commit=SHA, branch="dev", steps=[StepSpec("a", 60)])  # 4
    sim.advance(1)
    listing = "/api/repos/1/pipelines"
    assert numbers(get(sim, listing, event="push")) == [4, 1]
    assert numbers(get(sim, listing, event="push,tag")) == [4, 3, 1]
    assert numbers(get(sim, listing, branch="dev")) == [4]
    assert numbers(get(sim, listing, ref="pull")) == [2]
    assert numbers(get(sim, listing, ref="refs/heads/")) == [4, 1]
    assert numbers(get(sim, listing, status="running")) == [4]
    assert numbers(get(sim, listing, status="success", event="push")) == [1]
    assert numbers(get(sim, listing, event="", status="")) == [4, 3, 2, 1]


def test_time_filters_are_strict_rfc3339(sim: WoodpeckerSim, get: Call) -> None:
    sim.add_pipeline("homelab/app", commit=SHA, created=1_700_000_000)
    sim.add_pipeline("homelab/app", commit=SHA, created=1_700_000_100)
    listing = "/api/repos/1/pipelines"
    at = datetime.fromtimestamp(1_700_000_100, tz=UTC)
    assert numbers(get(sim, listing, before=at.strftime("%Y-%m-%dT%H:%M:%SZ"))) == [1]
    assert numbers(get(sim, listing, after="2023-11-14T22:13:20Z")) == [2]  # strictly after 1
    assert numbers(get(sim, listing, after="2023-11-14T23:13:20+01:00")) == [2]
    assert numbers(get(sim, listing, after="2023-11-14T22:13:19.5Z")) == [2, 1]
    for bad in (
        "yesterday",
        "2023-11-14",
        "2023-11-14 22:13:20Z",
        "2023-11-14T22:13:20",
        "2023-13-01T00:00:00Z",
    ):
        response = get(sim, listing, before=bad)
        assert (response.status_code, response.content) == (400, b""), bad


@pytest.mark.parametrize(("name", "value"), [("event", "push,webhook"), ("status", "green")])
def test_unknown_filter_values_are_400(
    sim: WoodpeckerSim, get: Call, name: str, value: str
) -> None:
    response = get(sim, "/api/repos/1/pipelines", **{name: value})
    assert (response.status_code, response.content) == (400, b"")


def test_v2_ignores_the_v3_filters(v2sim: WoodpeckerSim, get: Call) -> None:
    v2sim.add_pipeline("homelab/app", commit=SHA, event="pull_request", branch="feature")
    listing = "/api/repos/1/pipelines"
    for params in ({"event": "push"}, {"event": "webhook"}, {"status": "green"}, {"branch": "x"}):
        assert numbers(get(v2sim, listing, **params)) == [1], params
    assert get(v2sim, listing, before="nonsense").status_code == 400  # these v2 does parse


# -- TLS -------------------------------------------------------------------------------------


def test_https_with_sni_for_the_public_hostname(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server, client = tls_contexts
    with WoodpeckerSim(
        host="127.0.0.2", ssl_context=server, public_host="ci.example.test", token=None
    ) as sim:
        assert sim.base_url == f"https://ci.example.test:{sim.port}"
        assert (sim.host, sim.base_url.endswith("/")) == ("127.0.0.2", False)
        with httpx.Client(verify=client) as http:
            response = http.get(
                f"https://127.0.0.2:{sim.port}/version",
                headers={"Host": "ci.example.test"},
                extensions={"sni_hostname": "ci.example.test"},
            )
        assert response.status_code == 200 and response.json()["version"] == "3.17.0"
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        with httpx.Client(verify=client) as http, pytest.raises(httpx.ConnectError):
            http.get(f"https://127.0.0.2:{sim.port}/version")  # the IP is not in the cert
