"""Reading a landing session's JUnit XML back into one verdict and an exit code."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytest_homelab.core.outcomes import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_SUCCESS,
    OUTCOME_TYPES,
    SIGNAL_EXIT_CODES,
    SKIPPED_BY_TEKTON,
    SUCCESS_OUTCOMES,
    BadInput,
    Interrupted,
    fold_exit_codes,
)

Kind = Literal["passed", "failure", "error", "skipped"]
_KINDS: dict[str, Kind] = {"failure": "failure", "error": "error", "skipped": "skipped"}
_WRAPPED = re.compile(r'^failed on (?:setup|teardown) with "(.*)"$', re.DOTALL)
_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*): ", re.DOTALL)


@dataclass(frozen=True)
class CheckRecord:
    """One testcase as the CLI sees it."""

    classname: str
    name: str
    kind: Kind
    outcome: str
    message: str = ""
    time: float = 0.0
    properties: tuple[tuple[str, str], ...] = field(default=())

    @property
    def exit_code(self) -> int:
        cls = OUTCOME_TYPES.get(self.outcome)
        if cls is Interrupted:  # SIGTERM is 143, Ctrl-C 130
            return SIGNAL_EXIT_CODES.get(self.prop("signal"), EXIT_INTERRUPTED)
        if cls is not None:
            return cls.exit_code
        if self.kind == "passed":
            return EXIT_SUCCESS if self.outcome in SUCCESS_OUTCOMES | {"passed"} else EXIT_FAILED
        if self.kind == "skipped" and self.outcome == SKIPPED_BY_TEKTON:
            return EXIT_SUCCESS  # a pipeline task Tekton skipped; our checks never are
        if self.kind == "error":
            return EXIT_BAD_INPUT
        return EXIT_FAILED  # failures of plain asserts, and skips: not verified, not green

    def prop(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.properties if k == name), default)

    @property
    def phase(self) -> str:
        return self.prop("phase") or self.classname.rsplit(".", 1)[-1].removeprefix("test_")


def _clean_message(raw: str) -> str:
    text = raw.strip()
    wrapped = _WRAPPED.match(text)
    if wrapped:
        text = wrapped.group(1)
    text = re.sub(r"\n\[[^\]]*full report in element text\]$", "", text)
    match = _PREFIX.match(text)
    return text[match.end() :] if match else text


def read_junit(path: Path) -> list[CheckRecord]:
    """Every testcase of the file, in order. Raises BadInput if it is missing or not JUnit XML.

    Reads both shapes: a check's properties keyed ``<classname>::<name>::<property>`` in its
    testsuite's ``<properties>`` (written since the JUnit became schema-valid), and
    ``<properties>`` inside the testcase (files written before, and other tools' files)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise BadInput(f"no JUnit file at {path}: the session did not run") from None
    except ET.ParseError as exc:
        raise BadInput(f"{path} is not valid JUnit XML: {exc}") from None
    records = []
    for case, props in case_properties(root):
        outcome = next((v for k, v in props if k == "outcome"), "")
        kind: Kind = "passed"
        message = ""
        for element in case:
            if element.tag in _KINDS:
                kind = _KINDS[element.tag]
                message = _clean_message(element.get("message") or element.text or "")
                outcome = outcome or element.get("type", "") or element.tag
                break
        records.append(
            CheckRecord(
                classname=case.get("classname", ""),
                name=case.get("name", ""),
                kind=kind,
                outcome=outcome or ("success" if kind == "passed" else kind),
                message=message,
                time=_seconds(case.get("time")),
                properties=props,
            )
        )
    return records


def case_properties(
    root: ET.Element,
) -> list[tuple[ET.Element, tuple[tuple[str, str], ...]]]:
    """Every testcase of the document, in order, with its properties in either shape."""
    keyed: dict[int, list[tuple[str, str]]] = {}
    for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
        keyed.update(_suite_properties(suite))
    found = []
    for case in root.iter("testcase"):
        own = [
            (p.get("name", ""), p.get("value", ""))
            for element in case.findall("properties")
            for p in element.iter("property")
            if p.get("name")
        ]
        found.append((case, tuple(own + keyed.get(id(case), []))))
    return found


def _suite_properties(suite: ET.Element) -> dict[int, list[tuple[str, str]]]:
    """The suite's keyed properties by testcase (``id`` of its element); a key matches the
    longest ``<classname>::<name>::`` prefix among the suite's own testcases."""
    by_prefix: dict[str, ET.Element] = {}
    for case in suite.findall("testcase"):
        by_prefix.setdefault(f"{case.get('classname', '')}::{case.get('name', '')}::", case)
    found: dict[int, list[tuple[str, str]]] = {}
    for element in suite.findall("properties"):
        for prop in element.iter("property"):
            name = prop.get("name", "")
            # The candidate prefixes end at each '::' of the name, longest first: a lookup per
            # '::' instead of a scan of every testcase (quadratic at a thousand services).
            end = name.rfind("::")
            while end > 0:
                owner = by_prefix.get(name[: end + 2])
                if owner is not None and end + 2 < len(name):
                    found.setdefault(id(owner), []).append((name[end + 2 :], prop.get("value", "")))
                    break
                end = name.rfind("::", 0, end + 1)  # an overlapping ':::' too
    return found


def _seconds(text: str | None) -> float:
    try:
        return float(text or 0.0)
    except ValueError:
        return 0.0


def exit_code(records: list[CheckRecord]) -> int:
    """The one exit code for a session: 2 > 1 > 124 > 3 > 0; no checks at all is bad input."""
    if not records:
        return EXIT_BAD_INPUT
    return fold_exit_codes([r.exit_code for r in records])
