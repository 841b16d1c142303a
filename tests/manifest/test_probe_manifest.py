"""deploy.json's ``probe``: every bad value is named by its JSON path, good ones parse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_homelab.core.manifest import Probe, parse_manifest, validate_document

P = "environments.dev.services[0].probe"


def doc(probe: object) -> dict[str, Any]:
    service: dict[str, object] = {
        "name": "web",
        "namespace": "apps",
        "image": "registry.example.test/web",
    }
    if probe is not None:
        service["probe"] = probe
    return {"schemaVersion": 2, "environments": {"dev": {"services": [service]}}}


def messages(probe: object) -> list[str]:
    return [str(issue) for issue in validate_document(doc(probe))]


def test_a_full_probe_parses_to_typed_values() -> None:
    probe = {
        "url": "https://web.example.org/version",
        "expect": "ok",
        "header": "X-Version",
        "dial": "127.0.0.1:8443",
        "timeoutMs": 5000,
    }
    manifest = parse_manifest(json.dumps(doc(probe)), "deploy.json")
    (service,) = manifest.environment("dev").services
    assert service.probe == Probe(
        "https://web.example.org/version", "ok", "X-Version", "127.0.0.1:8443", 5.0
    )


def test_defaults_and_no_probe() -> None:

    parsed = parse_manifest(json.dumps(doc({"url": "http://w.example.org/v"})), "d.json")
    assert parsed.environment("dev").services[0].probe == Probe("http://w.example.org/v")
    assert Probe("http://x").timeout == 120.0 and Probe("http://x").expect == "commit"
    assert parse_manifest(json.dumps(doc(None)), "d").environment(None).services[0].probe is None


URL_RULE = f"{P}.url: must be an http:// or https:// URL without credentials or spaces"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({}, f"{P}.url: is required"),
        ("https://w.example.org", f"{P}: must be an object with url"),
        ({"url": "ftp://w.example.org/v"}, URL_RULE),
        ({"url": "file:///etc/passwd"}, URL_RULE),
        ({"url": "https://user:secret@w.example.org/v"}, URL_RULE),
        ({"url": "https://token@w.example.org/v"}, URL_RULE),
        ({"url": "https://w.example.org/a b"}, URL_RULE),
        ({"url": "https://w.example.org/\n"}, URL_RULE),
        ({"url": "w.example.org/version"}, URL_RULE),
        ({"url": 7}, URL_RULE),
        ({"url": "https://w.example.org:99999/v"}, f"{P}.url: port 99999 is not 1-65535"),
        ({"url": "https://w.example.org/v", "expect": "sha"}, f"{P}.expect: must be commit or ok"),
        ({"url": "https://w.example.org/v", "header": "X Version"}, f"{P}.header: must be an HTTP"),
        ({"url": "https://w.example.org/v", "dial": "a b"}, f"{P}.dial: must be HOST or HOST:PORT"),
        ({"url": "https://w.example.org/v", "dial": "h:0"}, f"{P}.dial: port 0 is not 1-65535"),
        ({"url": "https://w.example.org/v", "timeoutMs": 999}, f"{P}.timeoutMs: must be a whole"),
        ({"url": "https://w.example.org/v", "timeoutMs": 3600001}, f"{P}.timeoutMs: must be"),
        ({"url": "https://w.example.org/v", "timeoutMs": "5s"}, f"{P}.timeoutMs: must be"),
        (
            {"url": "https://w.example.org/v", "token": "x"},
            f"{P}.token: unknown key (allowed: dial, expect, header, timeoutMs, url)",
        ),
    ],
)
def test_each_bad_value_names_its_path(probe: object, expected: str) -> None:
    found = messages(probe)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_at_once() -> None:
    found = messages({"url": "ftp://x", "expect": "no", "timeoutMs": 1})
    assert [m.split(":")[0] for m in found] == [f"{P}.expect", f"{P}.timeoutMs", f"{P}.url"]
