"""The shipped Tekton schemas, OpenAPI documents, field validation and small helpers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_homelab.sim.clock import ScenarioClock
from pytest_homelab.sim.kube.openapi import (
    OpenAPI,
    _fields,
    admit,
    decode_kubernetes_protobuf,
    tekton_crds,
)
from pytest_homelab.sim.kube.store import ApiError, Store
from pytest_homelab.sim.kube.tekton import (
    RESOURCES,
    child_name,
    format_duration,
    parse_duration,
    pipeline_run,
)

REPO = Path(__file__).parents[2]
SHARED = REPO / "../shared/reference/tekton"
SHIPPED = REPO / "pytest_homelab/sim/kube/schemas/tekton-v1.json"
PR_INFO, TR_INFO, PIPELINE_INFO = RESOURCES


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_tekton_schemas", REPO / "scripts/gen_tekton_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_schemas_match_the_shared_crds() -> None:
    if not (SHARED / "300-pipelinerun.yaml").is_file():
        pytest.fail(
            f"the Tekton CRDs are missing at {SHARED.resolve()}: check out ../shared beside "
            "this repository (CI does) to compare the shipped schemas against them"
        )
    gen = generator()
    fresh = gen.render(gen.extract(SHARED))
    assert SHIPPED.read_text() == fresh, "stale: run scripts/gen_tekton_schemas.py"


def test_extraction_keeps_structure_and_drops_descriptions() -> None:
    data = tekton_crds()
    assert data["source"]["license"] == "Apache-2.0"
    assert data["source"]["repository"] == "https://github.com/tektoncd/pipeline"
    pr = data["kinds"]["PipelineRun"]
    assert pr["shortNames"] == ["pr", "prs"] and pr["categories"] == ["tekton", "tekton-pipelines"]
    assert [c["name"] for c in pr["additionalPrinterColumns"]] == [
        "Succeeded",
        "Reason",
        "StartTime",
        "CompletionTime",
    ]
    assert data["kinds"]["TaskRun"]["shortNames"] == ["tr", "trs"]
    assert '"description": "' not in json.dumps(pr["schema"])
    spec = pr["schema"]["properties"]["spec"]["properties"]
    assert spec["timeouts"]["properties"]["pipeline"] == {"type": "string"}
    assert spec["pipelineSpec"].get("x-kubernetes-preserve-unknown-fields") is True
    # A *property* named description survives (TaskSpec.description), only the keyword goes.
    status = data["kinds"]["TaskRun"]["schema"]["properties"]["status"]
    assert "description" in status["properties"]["taskSpec"]["properties"]
    assert SHIPPED.stat().st_size < 200_000


def test_names_match_the_crds() -> None:
    assert (PR_INFO.name, PR_INFO.short, PR_INFO.categories) == (
        "pipelineruns",
        ("pr", "prs"),
        ("tekton", "tekton-pipelines"),
    )
    assert (TR_INFO.name, TR_INFO.short, TR_INFO.subresources) == (
        "taskruns",
        ("tr", "trs"),
        ("status",),
    )
    assert PIPELINE_INFO.kind == "Pipeline" and PIPELINE_INFO.group == "tekton.dev"


def _store_resources() -> list[Any]:
    store = Store(ScenarioClock(1.0))
    for info in RESOURCES:
        store.register(info)
    return list(store.resources.values())


def test_openapi_v3_documents_have_patch_with_field_validation() -> None:
    openapi = OpenAPI()
    resources = _store_resources()
    index = openapi.index(resources)["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1", "apis/tekton.dev/v1"}
    url = index["apis/tekton.dev/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/tekton.dev/v1?hash=")
    found = openapi.find(resources, "apis/tekton.dev/v1")
    assert found is not None and url.endswith(found[1])
    doc = json.loads(found[0])
    patches = {
        path: item["patch"]
        for path, item in doc["paths"].items()
        if "patch" in item and not path.endswith("/status")
    }
    kinds = {p["x-kubernetes-group-version-kind"]["kind"] for p in patches.values()}
    assert kinds == {"PipelineRun", "TaskRun", "Pipeline"}
    for op in patches.values():
        assert {"name": "fieldValidation", "in": "query"}.items() <= next(
            p for p in op["parameters"] if p["name"] == "fieldValidation"
        ).items()
    schemas = doc["components"]["schemas"]
    pr = schemas["dev.tekton.v1.PipelineRun"]
    assert pr["x-kubernetes-group-version-kind"] == [
        {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"}
    ]
    assert "timeouts" in pr["properties"]["spec"]["properties"]
    core = json.loads(openapi.find(resources, "api/v1")[0])  # type: ignore[index]
    ns_patch = core["paths"]["/api/v1/namespaces/{name}"]["patch"]
    assert ns_patch["x-kubernetes-group-version-kind"]["kind"] == "Namespace"
    assert any(p["name"] == "fieldValidation" for p in ns_patch["parameters"])


def test_openapi_v2_protobuf_is_well_formed() -> None:
    data = OpenAPI().v2(_store_resources(), protobuf=True)
    doc = _fields(data)
    assert doc[1] == [b"2.0"]
    paths = [_fields(p) for p in _fields(doc[8][0])[2]]
    names = [bytes(p[1][0]).decode() for p in paths]
    assert "/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns/{name}" in names
    item = _fields(
        paths[names.index(next(n for n in names if n.endswith("pipelineruns/{name}")))][2][0]
    )
    patch = _fields(item[8][0])
    extensions = {bytes(_fields(e)[1][0]).decode(): _fields(e) for e in patch[13]}
    gvk = json.loads(bytes(_fields(extensions["x-kubernetes-group-version-kind"][2][0])[2][0]))
    assert gvk == {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"}
    query_names = []
    for param in patch[8]:
        parameter = _fields(_fields(param)[1][0])
        if 2 in parameter:
            query_names.append(bytes(_fields(_fields(parameter[2][0])[3][0])[4][0]).decode())
    assert "fieldValidation" in query_names


def _run(**spec: Any) -> dict[str, Any]:
    body = pipeline_run("ship", "ci", name="x")
    body["spec"].update(spec)
    return body


def test_field_validation_directives() -> None:
    bad = _run(foo=1, timeouts={"pipeline": "1h", "bogus": "x"})
    with pytest.raises(ApiError) as err:
        admit(PR_INFO, json.loads(json.dumps(bad)), "Strict", create=True)
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    assert err.value.message == (
        'PipelineRun in version "v1" cannot be handled as a PipelineRun: strict decoding error: '
        'unknown field "spec.foo", unknown field "spec.timeouts.bogus"'
    )
    warned = json.loads(json.dumps(bad))
    assert admit(PR_INFO, warned, "Warn", create=True) == [
        'unknown field "spec.foo"',
        'unknown field "spec.timeouts.bogus"',
    ]
    assert warned["spec"] == {"pipelineRef": {"name": "ship"}, "timeouts": {"pipeline": "1h"}}
    ignored = json.loads(json.dumps(bad))
    assert admit(PR_INFO, ignored, "Ignore", create=True) == []
    assert "foo" not in ignored["spec"]
    assert admit(PR_INFO, json.loads(json.dumps(bad)), None, create=True)  # default: Warn
    with pytest.raises(ApiError) as err:
        admit(PR_INFO, _run(), "Loose", create=True)
    assert err.value.code == 400


def test_type_errors_are_invalid_whatever_the_directive() -> None:
    for directive in ("Strict", "Warn", "Ignore"):
        with pytest.raises(ApiError) as err:
            admit(PR_INFO, _run(timeouts={"pipeline": 30}), directive, create=True)
        assert err.value.code == 422 and err.value.reason == "Invalid"
        assert err.value.message == (
            'PipelineRun.tekton.dev "x" is invalid: spec.timeouts.pipeline: Invalid value: '
            '"integer": spec.timeouts.pipeline in body must be of type string: "integer"'
        )
        assert err.value.details["causes"][0]["field"] == "spec.timeouts.pipeline"
    with pytest.raises(ApiError) as err:
        admit(PR_INFO, _run(params=[{"name": "a"}]), "Strict", create=True)
    assert "spec.params[0].value: Required value" in err.value.message


def test_metadata_unknown_fields_status_dropped_and_preserved_subtrees() -> None:
    body = _run(pipelineSpec={"tasks": [{"name": "a", "anything": {"goes": True}}]})
    body["metadata"]["bogus"] = 1
    body["status"] = {"conditions": [{"type": "Succeeded", "status": "True"}]}
    with pytest.raises(ApiError, match=r'unknown field "metadata\.bogus"'):
        admit(PR_INFO, json.loads(json.dumps(body)), "Strict", create=True)
    del body["metadata"]["bogus"]
    assert admit(PR_INFO, body, "Strict", create=True) == []
    assert "status" not in body  # the status subresource resets status on create
    assert body["spec"]["pipelineSpec"]["tasks"][0]["anything"] == {"goes": True}
    # Kinds without a CRD schema are not validated.
    anything = {"apiVersion": "tekton.dev/v1", "kind": "Pipeline", "spec": {"x": 1}}
    assert admit(PIPELINE_INFO, anything, "Strict", create=True) == []


def test_kubernetes_protobuf_namespace() -> None:
    def ld(num: int, data: bytes) -> bytes:
        return bytes([num << 3 | 2, len(data)]) + data

    meta = ld(1, b"team-a") + ld(11, ld(1, b"env") + ld(2, b"dev"))
    namespace = ld(1, meta) + ld(2, ld(1, b"kubernetes"))
    raw = b"k8s\x00" + ld(1, ld(1, b"v1") + ld(2, b"Namespace")) + ld(2, namespace)
    assert decode_kubernetes_protobuf(raw) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"env": "dev"}},
        "spec": {"finalizers": ["kubernetes"]},
    }
    with pytest.raises(ApiError) as err:
        decode_kubernetes_protobuf(b"k8s\x00" + ld(1, ld(1, b"v1") + ld(2, b"Pod")))
    assert err.value.code == 415


def test_go_durations() -> None:
    assert parse_duration("1h0m0s") == 3600
    assert parse_duration("30m") == 1800
    assert parse_duration("90s") == 90
    assert parse_duration("1.5h") == 5400
    assert parse_duration("0") == 0
    for bad in ("", "1", "1d", "h1", "1h 2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(3600) == "1h0m0s"
    assert format_duration(1800) == "30m0s"
    assert format_duration(90) == "1m30s"
    assert format_duration(2) == "2s"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(0.5) == "500ms"
    assert format_duration(0) == "0s"


def test_child_name_follows_kmeta() -> None:
    assert child_name("ship-run-abcde", "-build") == "ship-run-abcde-build"
    long = "release-pipeline-run-for-the-homelab-landing-with-a-long-name-x"
    name = child_name(long, "-integration-test")
    assert len(name) == 63 and name.endswith("-integration-test")
    assert name.startswith(long[: 31 - len("-integration-test")])
    assert child_name(long, "-integration-test") == name  # stable
    assert child_name(long + "y", "-integration-test") != name
    suffix = "-" + "s" * 40  # longer than the 31 characters left beside a hash
    hashed = child_name("p" * 40, suffix)
    assert len(hashed) == 63 and hashed.startswith("p" * 31) and "s" not in hashed
    short = child_name("p" * 30, suffix)  # hash padded with the suffix, trailing "-" trimmed
    assert len(short) == 62 and short[-1].isalnum()
