"""The smoke phase: poll each service's probe URL until it answers with the landed commit.

A landing is done when the service *answers* with the commit, not only when its pods run it: an
ingress still routed to an old Service, a cache or a second Deployment behind the same host all
make "rolled out" and "serving" differ. Probes send no credentials (deploy.json is content of the
branch under test); they dial through the same LB dialer and CA settings as Woodpecker.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_homelab.core.clock import SYSTEM_CLOCK, Clock, Deadline, format_duration
from pytest_homelab.core.landing import commit_under_test
from pytest_homelab.core.manifest import Probe, load_manifest
from pytest_homelab.core.outcomes import CheckFailed, HomelabError, InfraError
from pytest_homelab.core.refs import parse_target
from pytest_homelab.core.settings import Settings
from pytest_homelab.smoke.probe import BODY_LIMIT, Answer, Verdict, judge_answer


@dataclass(frozen=True)
class ProbeTarget:
    """One service's probe and the commit it must serve."""

    service: str
    probe: Probe
    sha: str


@dataclass
class ProbeResult:
    """How a probe ended: ``outcome`` is None when the service served the commit."""

    target: ProbeTarget
    outcome: HomelabError | None
    status: int | None = None
    served: str | None = None
    matched_in: str | None = None
    waited: float = 0.0
    attempts: int = 0
    notes: list[str] = field(default_factory=list)

    def properties(self) -> list[tuple[str, str]]:
        probe = self.target.probe
        props = [
            ("service", self.target.service),
            ("url", probe.url),
            ("expect", probe.expect),
            ("expected_sha", self.target.sha),
            ("status", "" if self.status is None else str(self.status)),
            ("served_commit", self.served or ""),
            ("matched_in", self.matched_in or ""),
            ("waited", format_duration(self.waited)),
            ("attempts", str(self.attempts)),
        ]
        if probe.dial:
            props.append(("dial", probe.dial))
        return props

    def check(self) -> None:
        if self.outcome is not None:
            raise self.outcome


Fetch = Callable[[], Answer]


def http_fetch(
    probe: Probe, *, ca_bundle: Path | None, timeout: float, verify: ssl.SSLContext | None = None
) -> tuple[Fetch, Callable[[], None]]:
    """A GET of the probe URL with no credential of any kind, and a way to close it."""
    # httpx is imported by the probes that run, not by the smoke plan: `homelab deploy wait`
    # makes the plan (usually empty) in every session.
    from pytest_homelab.core.transport import make_http_client

    client = make_http_client(
        probe.url,
        dial=probe.dial,
        ca_bundle=ca_bundle,
        timeout=timeout,
        verify=verify,
        credentials=False,
    )

    def fetch() -> Answer:
        with client.stream("GET", probe.url, headers={"Accept": "*/*"}) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= BODY_LIMIT:
                    break
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
            return Answer(response.status_code, raw, body)

    return fetch, client.close


def _tls_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def wait_for_probe(
    target: ProbeTarget,
    fetch: Fetch,
    *,
    deadline: Deadline,
    clock: Clock = SYSTEM_CLOCK,
    interval: float = 2.0,
    progress: Callable[[str], None] = lambda line: None,
    stop: threading.Event | None = None,
) -> ProbeResult:
    """Poll until an answer matches, or the probe's own timeout (inside ``deadline``) ends.

    A 2xx answer naming another commit keeps waiting (a rollout behind a cache or a slow route
    switch); so do other statuses and connection errors, which the final message names. A TLS
    certificate failure ends at once: waiting cannot fix trust.
    """
    import httpx

    probe = target.probe
    own = deadline.sub(probe.timeout)
    started = clock.monotonic()
    result = ProbeResult(target, None)
    last: Verdict | None = None
    last_error: str | None = None
    while True:
        result.attempts += 1
        try:
            answer = fetch()
        except httpx.HTTPError as exc:
            tls = _tls_failure(exc)
            if tls is not None:
                result.waited = clock.monotonic() - started
                result.outcome = InfraError(
                    f"{target.service}: the TLS certificate of {probe.url} was not accepted "
                    f"({tls.verify_message or tls.reason})",
                    hint="trust its CA with --ca-bundle, or fix the probe's url or dial",
                )
                return result
            last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            last_error = None
            result.status = answer.status
            last = judge_answer(answer, target.sha, expect=probe.expect, header=probe.header)
            result.served = last.served
            if last.matched:
                result.matched_in = last.matched_in
                result.served = target.sha if probe.expect == "commit" else None
                result.waited = clock.monotonic() - started
                return result
        remaining = own.remaining()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            break
        if result.attempts == 1 or result.attempts % 10 == 0:
            seen = last_error or (
                f"{result.status}" + (f", serves {last.served}" if last and last.served else "")
            )
            progress(
                f"smoke: {target.service}: waiting for {probe.url} to serve "
                f"{target.sha[:12]} (last: {seen})"
            )
        clock.sleep(min(interval, remaining))
    result.waited = clock.monotonic() - started
    result.outcome = _failure(target, result, last, last_error)
    return result


def _failure(
    target: ProbeTarget, result: ProbeResult, last: Verdict | None, error: str | None
) -> HomelabError:
    probe = target.probe
    waited = format_duration(result.waited)
    hint = (
        "check what answers at the URL (the route, Service, ingress or cache in front of the "
        "new pods); rerun with -m smoke once it serves the commit"
    )
    if error is not None and last is None:
        return CheckFailed(
            f"{target.service}: {probe.url} did not answer in {waited} "
            f"({result.attempts} tries): {error}",
            hint="check that the service is reachable at the URL (and the probe's dial "
            "address, if it has one)",
        )
    status = result.status
    tail = f"; the last try failed: {error}" if error is not None else ""
    if last is not None and status is not None and not 200 <= status < 300:
        text = f" — {last.excerpt}" if last.excerpt else ""
        return CheckFailed(
            f"{target.service}: {probe.url} answered {status}, expected a 2xx answer "
            f"serving {target.sha[:12]}, after {waited}{text}{tail}",
            hint=hint,
        )
    if last is not None and last.served is not None:
        return CheckFailed(
            f"{target.service}: serves {last.served}, expected {target.sha} — {probe.url} "
            f"answered {status} with it in the {last.served_in}: {last.excerpt!r}, "
            f"still after {waited}{tail}",
            hint=hint,
        )
    where = f"header {probe.header}" if probe.header else "body or headers"
    excerpt = f": {last.excerpt!r}" if last is not None and last.excerpt else ""
    return CheckFailed(
        f"{target.service}: {probe.url} answered {status} but its {where} named no commit "
        f"(expected {target.sha[:12]} or the full sha) after {waited}{excerpt}{tail}",
        hint="make the service report its commit (a /version body, or a header such as "
        "X-Version), or set the probe's expect to ok",
    )


def wait_for_probes(
    targets: Iterable[ProbeTarget],
    open_fetch: Callable[[Probe], tuple[Fetch, Callable[[], None]]],
    *,
    deadline: Deadline,
    clock: Clock = SYSTEM_CLOCK,
    interval: float = 2.0,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, ProbeResult]:
    """Every probe at once, each in its own thread ("wait once, assert many")."""
    results: dict[str, ProbeResult] = {}
    lock = threading.Lock()

    def one(target: ProbeTarget) -> None:
        try:
            fetch, close = open_fetch(target.probe)
        except HomelabError as exc:
            result = ProbeResult(target, exc)
        else:
            try:
                result = wait_for_probe(
                    target,
                    fetch,
                    deadline=deadline,
                    clock=clock,
                    interval=interval,
                    progress=progress,
                )
            finally:
                close()
        with lock:
            results[target.service] = result

    threads = [
        threading.Thread(target=one, args=(t,), name=f"probe-{t.service}", daemon=True)
        for t in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def smoke_plan(settings: Settings) -> tuple[ProbeTarget, ...]:
    """The probes of the environment's services (those named by explicit targets, if any), each
    with the commit it must serve. Raises BadInput (deploy.json, environment or commit)."""
    if settings.targets and not settings.deploy_json_path.exists():
        return ()  # explicit NS/NAME targets without a deploy.json have no probes
    environment = load_manifest(settings.deploy_json_path).environment(settings.env)
    services = [s for s in environment.services if s.probe is not None]
    if settings.targets:
        named = {parse_target(t) for t in settings.targets}
        services = [s for s in services if (s.namespace, s.kind, s.deployment) in named]
    if not services:
        return ()
    sha = commit_under_test(settings).sha
    return tuple(ProbeTarget(s.name, s.probe, s.commit or sha) for s in services if s.probe)
