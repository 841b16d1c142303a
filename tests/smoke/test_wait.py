"""Waiting for a probe: on an injected clock, against scripted answers; then over real HTTP(S)
against the serving simulator, through the LB dialer, with a trustme CA."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from pytest_homelab.core.clock import Deadline, FakeClock
from pytest_homelab.core.manifest import Probe
from pytest_homelab.core.outcomes import CheckFailed, InfraError
from pytest_homelab.sim.serving import Route, ServingSim
from pytest_homelab.smoke.phase import ProbeTarget, http_fetch, wait_for_probe, wait_for_probes
from pytest_homelab.smoke.probe import Answer

SHA = "4eacfda36766d1f0b9e2c1a0a5c3b7e8d9f00112"
OLD = "9f3c2a1b00aa11bb22cc33dd44ee55ff66778899"
URL = "https://web.apps.example.test/version"


def version(sha: str) -> Answer:
    return Answer(200, [("Content-Type", "application/json")], json.dumps({"v": sha}).encode())


def scripted(*steps: Answer | Exception) -> Callable[[], Answer]:
    """Answers in turn; the last one repeats."""
    queue = list(steps)

    def fetch() -> Answer:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(step, Exception):
            raise step
        return step

    return fetch


def target(timeout: float = 30.0, **probe: object) -> ProbeTarget:
    return ProbeTarget("web", Probe(URL, timeout=timeout, **probe), SHA)  # type: ignore[arg-type]


def test_old_then_new_passes_when_it_switches() -> None:
    clock = FakeClock()
    fetch = scripted(version(OLD), version(OLD), version(SHA))
    result = wait_for_probe(target(), fetch, deadline=Deadline.after(600, clock), clock=clock)
    assert result.outcome is None and result.attempts == 3
    assert result.matched_in == "body" and result.served == SHA
    assert result.waited == pytest.approx(4.0)  # two intervals of 2 s
    assert dict(result.properties())["waited"] == "4.0s"


def test_never_switching_fails_at_its_own_timeout_naming_both_commits() -> None:
    clock = FakeClock()
    result = wait_for_probe(
        target(timeout=20), scripted(version(OLD)), deadline=Deadline.after(600, clock), clock=clock
    )
    assert isinstance(result.outcome, CheckFailed)
    assert result.waited == pytest.approx(20.0)  # the probe's timeout, not the landing's
    message = result.outcome.render()
    assert f"serves {OLD}" in message and f"expected {SHA}" in message and URL in message
    assert "answered 200" in message and "next:" in message
    props = dict(result.properties())
    assert (props["served_commit"], props["status"], props["url"]) == (OLD, "200", URL)


def test_the_landing_deadline_bounds_a_longer_probe_timeout() -> None:
    clock = FakeClock()
    result = wait_for_probe(
        target(timeout=3600), scripted(version(OLD)), deadline=Deadline.after(7, clock), clock=clock
    )
    assert isinstance(result.outcome, CheckFailed) and result.waited == pytest.approx(7.0)


def test_refused_then_up_passes_and_errors_are_named_when_it_never_answers() -> None:
    clock = FakeClock()
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    fetch = scripted(refused, refused, version(SHA))
    result = wait_for_probe(target(), fetch, deadline=Deadline.after(60, clock), clock=clock)
    assert result.outcome is None and result.attempts == 3

    clock = FakeClock()
    down = wait_for_probe(
        target(timeout=10), scripted(refused), deadline=Deadline.after(60, clock), clock=clock
    )
    assert isinstance(down.outcome, CheckFailed)
    assert "did not answer" in str(down.outcome) and "Connection refused" in str(down.outcome)


def test_a_bad_status_at_the_end_is_named_with_the_answer() -> None:
    clock = FakeClock()
    fetch = scripted(Answer(503, [], b"upstream connect error"))
    result = wait_for_probe(
        target(timeout=6), fetch, deadline=Deadline.after(60, clock), clock=clock
    )
    assert isinstance(result.outcome, CheckFailed)
    assert "answered 503" in str(result.outcome) and "upstream connect error" in str(result.outcome)


def test_an_answer_without_any_commit_says_how_to_report_one() -> None:
    clock = FakeClock()
    fetch = scripted(Answer(200, [], b"<html>hello</html>"))
    result = wait_for_probe(
        target(timeout=4), fetch, deadline=Deadline.after(9, clock), clock=clock
    )
    assert isinstance(result.outcome, CheckFailed)
    assert "named no commit" in str(result.outcome) and "expect to ok" in result.outcome.render()


def test_an_untrusted_certificate_ends_at_once() -> None:
    clock = FakeClock()
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    error = httpx.ConnectError("certificate verify failed")
    error.__cause__ = cert
    result = wait_for_probe(
        target(), scripted(error), deadline=Deadline.after(60, clock), clock=clock
    )
    assert isinstance(result.outcome, InfraError) and result.attempts == 1
    assert "self-signed" in str(result.outcome) and "--ca-bundle" in result.outcome.render()


# -- over real HTTP(S), through the dialer -----------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def serving(ca: trustme.CA) -> Iterator[ServingSim]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("web.apps.example.test").configure_cert(context)
    with ServingSim(ssl_context=context) as sim:
        yield sim


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def test_https_through_the_dialer_matches_body_json_and_header(
    serving: ServingSim, ca_file: Path
) -> None:
    serving.route(
        "web.apps.example.test", Route(fixed=f"registry.example.test/web:main-{SHA[:12]}")
    )
    for probe in (
        Probe(URL, dial=serving.address, timeout=5),
        Probe(URL, dial=serving.address, header="X-Version", timeout=5),
        Probe(URL, dial=serving.address, expect="ok", timeout=5),
    ):
        fetch, close = http_fetch(probe, ca_bundle=ca_file, timeout=5)
        try:
            result = wait_for_probe(
                ProbeTarget("web", probe, SHA), fetch, deadline=Deadline.after(10)
            )
        finally:
            close()
        assert result.outcome is None, result.outcome
        assert result.matched_in == {"commit": "body", "ok": "status"}[probe.expect] or (
            probe.header and result.matched_in == "X-Version"
        )
    # TLS SNI and Host kept the URL's name while the TCP connection went to the dial address
    assert serving.requests[-1] == ("web.apps.example.test", "/version")


def test_the_probe_sends_no_credentials(
    serving: ServingSim, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy.json is content of the branch under test: whatever credentials the user has, the
    probe carries none of them (no token, no cookie, no netrc, no proxy auth)."""
    monkeypatch.setenv("WOODPECKER_TOKEN", "tok-should-never-travel")
    monkeypatch.setenv("VAULT_TOKEN", "vault-should-never-travel")
    netrc = ca_file.parent / ".netrc"
    netrc.write_text("machine web.apps.example.test login u password netrc-secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(ca_file.parent))
    serving.route("web.apps.example.test", Route(fixed=f"r.example.test/web:{SHA}"))
    probe = Probe(URL, dial=serving.address, timeout=5)
    fetch, close = http_fetch(probe, ca_bundle=ca_file, timeout=5)
    try:
        assert (
            wait_for_probe(
                ProbeTarget("web", probe, SHA), fetch, deadline=Deadline.after(9)
            ).outcome
            is None
        )
    finally:
        close()
    (headers,) = serving.headers_seen
    assert not {"authorization", "cookie", "x-vault-token", "proxy-authorization"} & set(headers)
    assert not any("travel" in v or "netrc-secret" in v for v in headers.values())


def test_a_switch_of_route_mid_wait_passes(serving: ServingSim, ca_file: Path) -> None:
    host = "web.apps.example.test"
    serving.route(host, Route(fixed=f"r.example.test/web:main-{OLD[:12]}"))
    probe = Probe(URL, dial=serving.address, timeout=20)
    switched = threading.Event()

    def progress(line: str) -> None:  # the first "still waiting" line: now switch the route
        serving.route(host, Route(fixed=f"r.example.test/web:main-{SHA[:12]}"))
        switched.set()

    results = wait_for_probes(
        [ProbeTarget("web", probe, SHA)],
        lambda p: http_fetch(p, ca_bundle=ca_file, timeout=5),
        deadline=Deadline.after(30),
        interval=0.05,
        progress=progress,
    )
    assert switched.is_set() and results["web"].outcome is None
    assert results["web"].attempts >= 2


def test_refused_until_the_server_listens(ca_file: Path) -> None:
    """Connection refused is retried within the timeout; the server coming up ends the wait."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    url = f"http://127.0.0.1:{port}/version"
    probe = Probe(url, timeout=20)
    started: list[ServingSim] = []

    def progress(line: str) -> None:
        if not started:
            sim = ServingSim(port=port).start()
            sim.route("127.0.0.1", Route(fixed=f"r.example.test/web:{SHA[:7]}"))
            started.append(sim)

    try:
        results = wait_for_probes(
            [ProbeTarget("web", probe, SHA)],
            lambda p: http_fetch(p, ca_bundle=None, timeout=5),
            deadline=Deadline.after(30),
            interval=0.05,
            progress=progress,
        )
    finally:
        for sim in started:
            sim.stop()
    assert results["web"].outcome is None and results["web"].attempts >= 2


def test_plain_http_off_loopback_is_fine_for_a_probe() -> None:
    """The token's rule (no plain http off loopback) is about credentials; a probe carries none,
    so ``http://web.apps.example.test`` dialed at a loopback port is allowed."""
    with ServingSim() as plain:
        plain.route("web.apps.example.test", Route(fixed=f"r.example.test/web:{SHA[:9]}"))
        probe = Probe("http://web.apps.example.test/version", dial=plain.address, timeout=5)
        fetch, close = http_fetch(probe, ca_bundle=None, timeout=5)
        try:
            result = wait_for_probe(
                ProbeTarget("web", probe, SHA), fetch, deadline=Deadline.after(9)
            )
        finally:
            close()
    assert result.outcome is None and result.matched_in == "body"
