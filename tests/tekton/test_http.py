"""Discovery, OpenAPI routes and server-side field validation over HTTP."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pytest_homelab.sim.kube.tekton import pipeline_run

if TYPE_CHECKING:
    from tests.tekton.conftest import Api

PRS = "/apis/tekton.dev/v1/namespaces/ci/pipelineruns"


def test_discovery_lists_tekton(api: Api) -> None:
    groups = {g["name"]: g for g in api.get("/apis").json()["groups"]}
    assert groups["tekton.dev"]["preferredVersion"] == {
        "groupVersion": "tekton.dev/v1",
        "version": "v1",
    }
    assert api.get("/apis/tekton.dev").json()["name"] == "tekton.dev"
    resources = {r["name"]: r for r in api.get("/apis/tekton.dev/v1").json()["resources"]}
    assert set(resources) == {
        "pipelineruns",
        "pipelineruns/status",
        "taskruns",
        "taskruns/status",
        "pipelines",
        "pipelines/status",
    }
    pr = resources["pipelineruns"]
    assert (pr["kind"], pr["singularName"], pr["namespaced"]) == (
        "PipelineRun",
        "pipelinerun",
        True,
    )
    assert pr["shortNames"] == ["pr", "prs"] and pr["categories"] == ["tekton", "tekton-pipelines"]
    assert resources["taskruns"]["shortNames"] == ["tr", "trs"]
    assert {"create", "get", "list", "patch", "watch", "delete"} <= set(pr["verbs"])


def test_openapi_routes(api: Api) -> None:
    index = api.get("/openapi/v3")
    assert index.status_code == 200 and index.headers["etag"]
    paths = index.json()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/tekton.dev/v1"} <= set(paths)
    url = paths["apis/tekton.dev/v1"]["serverRelativeURL"]
    doc = api.client.get(url)
    assert doc.status_code == 200 and doc.headers["cache-control"] == "public, immutable"
    assert doc.json()["openapi"].startswith("3.")
    again = api.client.get(url, headers={"If-None-Match": doc.headers["etag"]})
    assert again.status_code == 304
    stale = api.client.get("/openapi/v3/apis/tekton.dev/v1?hash=0000")
    assert stale.status_code == 301 and stale.headers["location"] == url
    assert api.get("/openapi/v3/apis/nope/v1").status_code == 404
    v2 = api.client.get("/openapi/v2", headers={"Accept": "application/json"})
    assert v2.json()["swagger"] == "2.0"
    assert "dev.tekton.v1.PipelineRun" in v2.json()["definitions"]
    proto = api.client.get(
        "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )
    assert proto.headers["content-type"].endswith("+protobuf") and proto.content[:5] == b"\n\x032.0"


def test_field_validation_on_create_update_and_patch(api: Api) -> None:
    body = pipeline_run("ship", "ci", name="checked")
    body["spec"]["surprise"] = True
    strict = api.create_run(body, fieldValidation="Strict")
    assert strict.status_code == 400
    assert strict.json()["reason"] == "BadRequest"
    assert strict.json()["message"].endswith('strict decoding error: unknown field "spec.surprise"')
    warn = api.create_run(body)  # no directive: Warn, as the API server defaults
    assert warn.status_code == 201
    assert warn.headers.get_list("warning") == ['299 - "unknown field \\"spec.surprise\\""']
    assert "surprise" not in warn.json()["spec"]  # pruned, not stored
    body["metadata"]["name"] = "ignored"
    ignored = api.create_run(body, fieldValidation="Ignore")
    assert ignored.status_code == 201 and "warning" not in ignored.headers
    patch = api.client.patch(
        f"{PRS}/checked",
        params={"fieldValidation": "Strict"},
        content=json.dumps({"spec": {"bogus": 1}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 400 and 'unknown field "spec.bogus"' in patch.json()["message"]
    current = api.pr("checked")
    current["spec"]["timeouts"] = {"pipeline": 60}
    put = api.client.put(f"{PRS}/checked", json=current, params={"fieldValidation": "Ignore"})
    assert put.status_code == 422 and put.json()["reason"] == "Invalid"
    assert put.json()["details"]["causes"][0]["field"] == "spec.timeouts.pipeline"
    bad_directive = api.create_run(pipeline_run("ship", "ci"), fieldValidation="strict")
    assert bad_directive.status_code == 400


def test_status_in_a_create_is_dropped(api: Api) -> None:
    body = pipeline_run("nope", "ci", name="faked")
    body["status"] = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Faked"}]}
    created = api.create_run(body, fieldValidation="Strict")
    assert created.status_code == 201 and "status" not in created.json()
