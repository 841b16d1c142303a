"""The landing's JUnit as pytest wrote it, made into the record the CLI and other CI read:
each failure typed by its outcome, the dev e2e run's TaskRuns added, known secrets scrubbed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_homelab.core.outcomes import OUTCOME_TYPES, SKIPPED_BY_TEKTON, TOLERATED


def annotate_junit(path: Path, taskruns: bytes | None = None) -> None:
    """Type every failure and error by its outcome, add the dev e2e run's TaskRun testcases,
    and scrub known secrets from the file."""
    from pytest_homelab.core.secrets import known_secrets, scrub

    tree = ET.parse(path)
    if taskruns:
        merge_taskruns(tree, taskruns)
    for case in tree.iter("testcase"):
        outcome = next(
            (p.get("value") for p in case.iter("property") if p.get("name") == "outcome"), None
        )
        for element in case:
            if element.tag in ("failure", "error") and outcome:
                element.set("type", outcome)
                full = (element.text or "").strip()
                if _is_outcome(outcome) and full.startswith(f"{outcome}: "):
                    # The whole typed message, as for an error in the check's body: pytest
                    # wraps a setup error's as 'failed on setup with "…' and cuts it after
                    # one line (_pytest/junitxml.py append_error, shorten_message).
                    element.set("message", full)
                cls = OUTCOME_TYPES.get(outcome)
                if element.tag == "failure" and cls is not None and cls.junit == "error":
                    # Bad input, auth, unreachable infrastructure and interrupts are errors
                    # wherever they were raised: other CI systems tell "the check could not
                    # run" from "it failed".
                    element.tag = "error"
                    _move_count(tree, case, "failures", "errors")
    if known_secrets():
        # Element by element, before serializing: text, tails and attribute values are
        # scrubbed in every form a secret takes; tags, names and outcome types never are.
        for element in tree.iter():
            if element.text:
                element.text = scrub(element.text)
            if element.tail:
                element.tail = scrub(element.tail)
            for name, value in element.attrib.items():
                if _KEYS.get(element.tag) == name:
                    continue  # a key or an outcome name of ours, never a secret's place
                element.set(name, scrub(value))
    text = ET.tostring(tree.getroot(), encoding="unicode")
    path.write_text('<?xml version="1.0" encoding="utf-8"?>' + text, encoding="utf-8")


def _is_outcome(outcome: str) -> bool:
    return outcome in OUTCOME_TYPES


_KEYS = {"property": "name", "failure": "type", "error": "type"}


def _move_count(tree: ET.ElementTree[ET.Element], case: ET.Element, src: str, dst: str) -> None:
    for suite in tree.getroot().iter("testsuite"):
        if any(c is case for c in suite.iter("testcase")):
            suite.set(src, str(max(0, int(suite.get(src, "0")) - 1)))
            suite.set(dst, str(int(suite.get(dst, "0")) + 1))


def merge_taskruns(tree: ET.ElementTree[ET.Element], junit: bytes) -> None:
    """Each TaskRun of the runner's junit.xml becomes a testcase of this session (phase e2e).
    A failing TaskRun is a CheckFailed failure; a failure Tekton ignored (onError: continue,
    which the runner writes as a passing testcase whose system-out starts "tolerated failure")
    is outcome ``tolerated``; a task in the PipelineRun's skippedTasks keeps its ``<skipped>``
    with outcome ``skipped-by-tekton``. Neither of the last two changes the verdict."""
    try:
        suite = ET.fromstring(junit)
    except ET.ParseError:
        return
    root = tree.getroot()
    target = ET.SubElement(root, "testsuite", name="dev-e2e TaskRuns")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for case in suite.iter("testcase"):
        failure, skipped, out = case.find("failure"), case.find("skipped"), case.find("system-out")
        task = case.get("name", "")
        if failure is not None:
            outcome = "CheckFailed"
        elif skipped is not None:
            outcome = SKIPPED_BY_TEKTON
            reason = skipped.get("message") or "skipped"
            skipped.set("message", f"task {task} skipped by Tekton: {reason}")
            skipped.set("type", SKIPPED_BY_TEKTON)
            counts["skipped"] += 1
        elif out is not None and (out.text or "").startswith("tolerated failure"):
            outcome = TOLERATED
        else:
            outcome = "success"
        props = ET.Element("properties")
        for name, value in (("phase", "e2e"), ("outcome", outcome), ("task", task)):
            ET.SubElement(props, "property", name=name, value=value)
        if failure is not None and (failure.text or "").strip():
            # The failing step's log tail, where the verdict shows it (like the ci check's).
            ET.SubElement(props, "property", name=f"log_tail:{task}", value=failure.text or "")
        if outcome == TOLERATED and out is not None:
            ET.SubElement(props, "property", name="tolerated", value=out.text or "")
        case.insert(0, props)
        if failure is not None:
            failure.set("type", "CheckFailed")
            counts["failures"] += 1
        counts["tests"] += 1
        target.append(case)
    for key, count in counts.items():
        target.set(key, str(count))
