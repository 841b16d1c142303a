"""The tracker's watch-stream reader (kept_events, what the watches run): one JSON event a
line, whatever the chunking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_homelab.rollout.tracker import kept_events


class Chunked:
    """A response whose body arrives in the given chunks (as urllib3's ``stream`` yields)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self.chunks


def _event(kind: str, name: str, rv: str) -> bytes:
    obj = {"metadata": {"name": name, "resourceVersion": rv, "labels": {"app": "é"}}}
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


@pytest.mark.parametrize("size", [1, 3, 7, 64, 100_000])
def test_events_whatever_the_chunk_boundaries(size: int) -> None:
    body = (
        _event("ADDED", "a", "1")
        + b"\n"
        + _event("MODIFIED", "a", "2")
        + _event("DELETED", "b", "3")
    )
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    events = list(kept_events(Chunked(chunks), "pods"))
    assert [(k, o["metadata"]["name"], version) for k, version, o in events] == [
        ("ADDED", "a", "1"),
        ("MODIFIED", "a", "2"),
        ("DELETED", "b", "3"),
    ]
    assert events[0][2]["metadata"]["labels"] == {"app": "é"}  # UTF-8 split across chunks


def test_an_error_event_raises_its_code() -> None:
    # An ERROR event carries a Status whose code the official client raises, 410 when the
    # resourceVersion is too old (the tracker relists):
    # kubernetes-client/python kubernetes/watch/watch.py@v37.0.3:234-247
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    body = _event("ADDED", "a", "1") + json.dumps({"type": "ERROR", "object": gone}).encode()
    events = kept_events(Chunked([body + b"\n"]), "pods")
    assert next(events)[0] == "ADDED"
    with pytest.raises(ApiException) as caught:
        next(events)
    assert caught.value.status == 410
    assert "Expired" in str(caught.value.reason)


def test_a_line_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        list(kept_events(Chunked([b"{not json\n"]), "pods"))
