"""Scrubbing: every form of a secret goes, nothing else changes (issue 19, finding 6).

The review: a token with ``&`` survived in the JUnit as ``&amp;``; ``WOODPECKER_TOKEN=x`` turned
``"outcome": "DeadlineExceeded"`` into ``DeadlineE***ceeded``, and with ``=e`` even the XML tags
(``<t***stsuit***s``), so the CLI could not read its own JUnit and said "no checks ran".
"""

from __future__ import annotations

import json
import secrets
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_homelab.cli import main
from pytest_homelab.core.secrets import Secret, scrub
from pytest_homelab.report.annotate import annotate_junit

SHA = "9f3c2a1b7d4e5f60718293a4b5c6d7e8f9012345"


@pytest.mark.parametrize("value", ["x", "e", "s", "t", "Exceeded", "Deadline", "uite"])
def test_a_short_or_wordlike_secret_never_alters_names_keys_or_words(value: str) -> None:
    Secret(value)
    text = (
        '<testsuites><testsuite name="pytest"><testcase name="test_ci">'
        '<failure type="DeadlineExceeded" message="expected one, e.g. a test">'
        '{"outcome": "DeadlineExceeded"}</failure></testcase></testsuite></testsuites>'
    )
    assert scrub(text) == text
    assert scrub(f"token: {value}\n") == "token: ***\n"  # standing alone it is still a secret
    assert scrub(f"Bearer {value}") == "Bearer ***"


@pytest.mark.parametrize("special", ["&", "<", ">", '"', "'", "\\", "%", "+"])
def test_every_written_form_of_a_secret_is_scrubbed(special: str) -> None:
    value = f"wp{secrets.token_hex(8)}{special}tail{secrets.token_hex(4)}"
    Secret(value)
    from html import escape
    from urllib.parse import quote

    forms = [
        value,
        repr(value),
        json.dumps(value),
        escape(value, quote=True),
        escape(value, quote=False),
        quote(value, safe=""),
        repr(value.encode()),
    ]
    for form in forms:
        assert value not in scrub(form) and scrub(form).count("***") == 1, form


def test_junit_is_scrubbed_in_text_and_attributes_before_it_is_written(tmp_path: Path) -> None:
    value = "SUPER&SECRET<" + secrets.token_hex(8)
    Secret(value)
    Secret("e")
    Secret("outcome")  # a token that is also a key: the key stays
    suite = ET.Element("testsuites")
    case = ET.SubElement(ET.SubElement(suite, "testsuite", name="pytest"), "testcase", name="t")
    props = ET.SubElement(case, "properties")
    ET.SubElement(props, "property", name="outcome", value="DeadlineExceeded")
    ET.SubElement(props, "property", name="seen", value=f"Bearer {value}")
    failure = ET.SubElement(case, "failure", message=f"token {value}")
    failure.text = f"headers = {{'Authorization': 'Bearer {value}'}}"
    path = tmp_path / "junit.xml"
    ET.ElementTree(suite).write(path, encoding="unicode")
    assert "&amp;SECRET" in path.read_text()  # the escaped form the review found
    annotate_junit(path)
    written = path.read_text()
    assert value not in written and "SUPER&amp;SECRET" not in written
    root = ET.parse(path).getroot()  # still XML, tags and names intact
    failure_after = next(root.iter("failure"))
    assert failure_after.get("type") == "DeadlineExceeded"
    names = [p.get("name", "") for p in root.iter("property")]  # keyed <class>::<case>::<name>
    assert [n.split("::")[-1] for n in names[:2]] == ["outcome", "seen"]
    assert "testsuite" in written and "DeadlineExceeded" in written


@pytest.mark.parametrize("token", ["x", "e"])
def test_the_cli_keeps_its_outcomes_and_reads_its_junit_with_a_one_letter_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str,
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WOODPECKER_TOKEN", token)
    for name in ("WP_TOKEN", "VAULT_ADDR", "VAULT_TOKEN", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    junit = tmp_path / "ci.xml"
    code = main(
        [
            "ci",
            "watch",
            SHA,
            "--repo",
            "homelab/app",
            "--woodpecker-server",
            f"http://127.0.0.1:{port}",
            "--timeout",
            "2s",
            "--junitxml",
            str(junit),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert "no checks ran" not in err
    doc = json.loads(out)
    outcomes = json.dumps(doc)
    assert "***" not in outcomes, outcomes
    assert "DeadlineExceeded" in outcomes or "InfraError" in outcomes
    ET.parse(junit)  # its own JUnit is XML
    assert "***" not in junit.read_text()
    assert code != 0
