"""An interrupted landing session in its JUnit: nothing that did not finish passing looks passed.

pytest re-raises KeyboardInterrupt out of the running test, so that test gets no report, and the
tests after it are never run (``_pytest/runner.py`` ``get_reraise_exceptions``); its junitxml
then writes only what finished (``_pytest/junitxml.py`` ``LogXML.pytest_sessionfinish``), and a
test whose setup passed before the interrupt even looks passed. :func:`mark_interrupted` gives
the running check and every check not reached an ``<error type="Interrupted">``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pytest_homelab.core.outcomes import Interrupted

SIGNAL_WORDS = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM"}


@dataclass
class Unfinished:
    """A check the interrupt left without a verdict: the running one, or one not reached."""

    classname: str
    name: str
    running: bool
    seconds: float = 0.0
    properties: list[tuple[str, str]] = field(default_factory=list)
    message: str | None = None  # instead of the usual one (e.g. what a push may have done)

    def prop(self, name: str) -> str:
        return next((v for k, v in self.properties if k == name), "")


def interrupted_message(check: Unfinished, signal_name: str) -> tuple[str, str | None]:
    """The element's message, and the command to run next (if there is one)."""
    how = SIGNAL_WORDS.get(signal_name, signal_name)
    if check.message is not None:
        return f"{Interrupted.outcome}: interrupted by {how} {check.message}", None
    run_id = check.prop("run_id")
    if not check.running:
        return (
            f"not run: the session was interrupted by {how} before this check started",
            None,
        )
    text = (
        f"{Interrupted.outcome}: interrupted by {how} after {check.seconds:.1f}s, "
        "before this check finished; it verified nothing"
    )
    if run_id:
        follow = f"homelab ci logs {run_id}"
        text += (
            f"\nthe dev e2e run {run_id} was already dispatched and keeps running on D601 "
            f"(it is independent of this session)\n  next: {follow}"
        )
        return text, follow
    return text + "\n  next: run the check again and let it finish", None


def mark_interrupted(path: Path, signal_name: str, unfinished: list[Unfinished]) -> None:
    """Rewrite the JUnit at ``path``: each unfinished check becomes (or is added as) a testcase
    with ``<error type="Interrupted">`` and the properties ``outcome`` and ``signal``."""
    tree = ET.parse(path)
    root = tree.getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name="pytest")
    for parent in list(root.iter("testsuite")):
        for nameless in parent.findall("testcase"):
            if not nameless.get("name") and not nameless.get("classname"):
                # pytest's reporter of a check interrupted after its setup passed: it has only
                # the setup's duration (_pytest/junitxml.py update_testcase_duration) and no
                # name; the check is among the unfinished and gets its own testcase below.
                parent.remove(nameless)
    cases = {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}
    for check in unfinished:
        case = cases.get((check.classname, check.name))
        if case is None:
            case = ET.SubElement(
                suite, "testcase", classname=check.classname, name=check.name, time="0.000"
            )
            suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        else:
            case.set("time", f"{check.seconds:.3f}")
        for element in list(case):
            if element.tag in ("failure", "error", "skipped"):
                case.remove(element)
                count = {"failure": "failures", "error": "errors", "skipped": "skipped"}
                key = count[element.tag]
                suite.set(key, str(max(0, int(suite.get(key, "0")) - 1)))
        props = case.find("properties")
        if props is None:
            props = ET.Element("properties")
            case.insert(0, props)
        have = {p.get("name") for p in props.iter("property")}
        for name, value in check.properties:
            if name not in have and name not in ("outcome", "signal"):
                ET.SubElement(props, "property", name=name, value=value)
        for prop in list(props):
            if prop.get("name") in ("outcome", "signal", "next"):
                props.remove(prop)
        message, follow = interrupted_message(check, signal_name)
        if follow:
            ET.SubElement(props, "property", name="next", value=follow)
        ET.SubElement(props, "property", name="signal", value=signal_name)
        ET.SubElement(props, "property", name="outcome", value=Interrupted.outcome)
        error = ET.SubElement(case, "error", type=Interrupted.outcome, message=message)
        error.text = message
        suite.set("errors", str(int(suite.get("errors", "0")) + 1))
    tree.write(path, encoding="utf-8", xml_declaration=True)


def write_interrupted(path: Path, signal_name: str, checks: list[Unfinished]) -> None:
    """A JUnit for a verb interrupted before its session started (``work land`` during its
    verify or push): the step that was running, and every check not reached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="homelab"><testsuite '
        'name="homelab" errors="0" failures="0" skipped="0" tests="0"/></testsuites>',
        encoding="utf-8",
    )
    mark_interrupted(path, signal_name, checks)
