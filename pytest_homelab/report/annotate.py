"""The landing's JUnit as pytest wrote it, made into the record the CLI and other CI read.

The file must validate against the Jenkins xunit plugin's JUnit schema (junit-10.xsd, vendored in
tests/junit/): a ``<testcase>`` may carry only ``name``, ``time``, ``classname`` and ``group``
and holds no ``<properties>`` (jenkinsci/xunit-plugin src/main/resources/org/jenkinsci/plugins/
xunit/types/model/xsd/junit-10.xsd@031e285e:88-107), while pytest writes each check's
user properties inside its testcase in every family, and ``file``/``line`` in xunit1
(pytest-dev/pytest src/_pytest/junitxml.py@9.2.0:117-126, 159-196). So, whatever the family:

- each check's properties move to its testsuite's ``<properties>``, keyed
  ``<classname>::<name>::<property>`` (:func:`property_key`), and its one-line provenance is
  also written as ``<system-out>`` lines for readers that show only the testcase;
- the failure text holds the evidence after the message: the failing steps' log tails, the stuck
  pod's events, the failing TaskRuns' log tails (readers such as GitLab show only that text);
- every failure and error is typed by its outcome, and the dev e2e run's TaskRuns become a
  second suite with stable names; known secrets are scrubbed.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pytest_homelab.core.outcomes import OUTCOME_TYPES, SKIPPED_BY_TEKTON, TOLERATED

KEY_SEPARATOR = "::"
TASKRUNS_SUITE = "dev-e2e TaskRuns"
TASKRUN_CLASSNAME = "dev-e2e"
TASKRUNS_PROPERTY = "homelab_taskruns"
"""A check's property carrying the dev e2e runner's junit.xml; merged here, never written."""
EVIDENCE = {"log_tail:": "last lines of the log of", "events:": "recent events of pod"}
"""Properties whose values are evidence: shown in the failure text, under this heading."""
_TESTCASE_ATTRIBUTES = frozenset({"name", "time", "classname", "group"})
_RESULTS = ("failure", "error")
_NAMESPACE = re.compile(r"(?:^|\s)-n\s+([a-z0-9][-a-z0-9]*)")


def property_key(classname: str, name: str, prop: str) -> str:
    """The name of a check's property in its testsuite's ``<properties>``."""
    return KEY_SEPARATOR.join((classname, name, prop))


def annotate_junit(path: Path, *, hostname: str | None = None) -> None:
    """Rewrite ``path`` (pytest's JUnit of a landing session) into the landing's shape."""
    from pytest_homelab.core.secrets import known_secrets, scrub

    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    runner_files: list[tuple[ET.Element, list[tuple[str, str]], str]] = []
    provenance: set[int] = set()  # our <system-out> lines: names are ours, values scrubbed
    for suite in suites:
        for case in suite.findall("testcase"):
            props = _take_properties(case)
            taskruns = [v for k, v in props if k == TASKRUNS_PROPERTY]
            props = [(k, v) for k, v in props if k != TASKRUNS_PROPERTY]
            _type_results(suite, case, props)
            _add_evidence(case, props)
            written = _write_provenance(suite, case, props, scrub)
            if written is not None:
                provenance.add(id(written))
            runner_files += [(case, props, text) for text in taskruns if text.strip()]
        _drop_empty_properties(suite)
    for case, props, text in runner_files:
        merge_taskruns(root, text, check=case, check_properties=props, hostname=hostname)
    if known_secrets():
        # Element by element, before serializing: text, tails and attribute values are
        # scrubbed in every form a secret takes; tags, names and outcome types never are.
        for element in root.iter():
            if element.text and id(element) not in provenance:
                element.text = scrub(element.text)
            if element.tail:
                element.tail = scrub(element.tail)
            for name, value in element.attrib.items():
                if _KEYS.get(element.tag) == name:
                    continue  # a key or an outcome name of ours, never a secret's place
                element.set(name, scrub(value))
    ET.indent(root, space="  ")  # for people; element texts (failures, system-out) are kept
    # Written as it is serialized: the whole text at once (ET.tostring) held the file twice
    # over in fragments, 6 MB at the peak of a 1000-service session.
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>')
        ET.ElementTree(root).write(out, encoding="unicode")


_KEYS = {"property": "name", "failure": "type", "error": "type", "skipped": "type"}


def _take_properties(case: ET.Element) -> list[tuple[str, str]]:
    """The testcase's own ``<properties>``, removed from it, and its attributes the schema has
    no place for (``file``, ``line``, ``url``: not a path in the user's repo either)."""
    props: list[tuple[str, str]] = []
    for element in case.findall("properties"):
        props += [(p.get("name", ""), p.get("value", "")) for p in element.iter("property")]
        case.remove(element)
    for attribute in [a for a in case.attrib if a not in _TESTCASE_ATTRIBUTES]:
        del case.attrib[attribute]
    return [(k, v) for k, v in props if k]


def _type_results(suite: ET.Element, case: ET.Element, props: Sequence[tuple[str, str]]) -> None:
    outcome = next((v for k, v in props if k == "outcome"), "")
    if not outcome:
        return
    for element in case:
        if element.tag not in _RESULTS:
            continue
        element.set("type", outcome)
        cls = OUTCOME_TYPES.get(outcome)
        full = (element.text or "").strip()
        if cls is not None and full.startswith(f"{outcome}: "):
            # The whole typed message, as for an error in the check's body: pytest wraps a
            # setup error's as 'failed on setup with "…' and cuts it after one line
            # (_pytest/junitxml.py append_error, shorten_message).
            element.set("message", full)
        if element.tag == "failure" and cls is not None and cls.junit == "error":
            # Bad input, auth, unreachable infrastructure and interrupts are errors wherever
            # they were raised: other CI systems tell "the check could not run" from "it failed".
            element.tag = "error"
            _move_count(suite, "failures", "errors")


def _move_count(suite: ET.Element, src: str, dst: str) -> None:
    suite.set(src, str(max(0, int(suite.get(src, "0")) - 1)))
    suite.set(dst, str(int(suite.get(dst, "0")) + 1))


def evidence_sections(props: Iterable[tuple[str, str]]) -> list[str]:
    """The evidence properties as text sections: a heading line, then the lines."""
    sections = []
    for name, value in props:
        for prefix, heading in EVIDENCE.items():
            if name.startswith(prefix) and value.strip():
                subject = name.removeprefix(prefix)
                sections.append(f"--- {heading} {subject} ---\n{value.rstrip()}")
    return sections


def _add_evidence(case: ET.Element, props: Sequence[tuple[str, str]]) -> None:
    sections = evidence_sections(props)
    if not sections:
        return
    for element in case:
        if element.tag in _RESULTS:
            _append_text(element, sections)


def _append_text(element: ET.Element, sections: Sequence[str]) -> None:
    text = (element.text or element.get("message") or "").rstrip()
    missing = [s for s in sections if s not in text]
    if missing:
        element.text = "\n\n".join([text, *missing]) if text else "\n\n".join(missing)


def _write_provenance(
    suite: ET.Element,
    case: ET.Element,
    props: Sequence[tuple[str, str]],
    scrub: Callable[[str], str],
) -> ET.Element | None:
    """The properties, keyed, into the suite; the one-line ones as the testcase's
    ``<system-out>`` (returned), whose values are scrubbed here and names never are."""
    if not props:
        return None
    classname, name = case.get("classname", ""), case.get("name", "")
    properties = _suite_properties(suite)
    for key, value in props:
        ET.SubElement(properties, "property", name=property_key(classname, name, key), value=value)
    lines = [
        f"{key}: {scrub(value)}"
        for key, value in props
        if not any(key.startswith(prefix) for prefix in EVIDENCE) and "\n" not in value
    ]
    if not lines:
        return None
    out = ET.SubElement(case, "system-out")
    out.text = "\n".join(lines) + "\n"
    return out


def _suite_properties(suite: ET.Element) -> ET.Element:
    found = suite.find("properties")
    if found is None:
        found = ET.Element("properties")
        suite.insert(0, found)
    return found


def _drop_empty_properties(suite: ET.Element) -> None:
    for element in suite.findall("properties"):
        if len(element) == 0:
            suite.remove(element)


# -- the dev e2e run's TaskRuns -------------------------------------------------------------------


def merge_taskruns(
    root: ET.Element,
    junit: str | bytes,
    *,
    check: ET.Element | None = None,
    check_properties: Sequence[tuple[str, str]] = (),
    hostname: str | None = None,
) -> ET.Element | None:
    """Each TaskRun of the runner's junit.xml becomes a testcase of a second suite: classname
    ``dev-e2e``, named by its pipeline task (stable across runs); the run id, PipelineRun and
    TaskRun names are data. A failing TaskRun's log tail is also added to the dev e2e check."""
    try:
        runner = ET.fromstring(junit)
    except ET.ParseError:
        return None
    given = dict(check_properties)
    sessions = root if root.tag == "testsuite" else root.find("testsuite")
    runner_suites = [runner] if runner.tag == "testsuite" else list(runner.iter("testsuite"))
    runner_props = {
        p.get("name", ""): p.get("value", "")
        for s in runner_suites
        for p in s.findall("properties/property")
    }
    run_id = given.get("run_id", "")
    target = ET.SubElement(root, "testsuite", name=TASKRUNS_SUITE)
    first = runner_suites[0] if runner_suites else runner
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    properties = ET.SubElement(target, "properties")
    total = 0.0
    tails: list[str] = []
    for case in runner.iter("testcase"):
        task = case.get("name", "")
        old_class = case.get("classname", "")
        pipeline_run = (
            runner_props.get("pipeline_run")
            or runner_props.get("pipelineRun")
            or given.get("pipeline_run")
            or old_class.removeprefix(TASKRUN_CLASSNAME + ".")
        )
        if pipeline_run == old_class:
            pipeline_run = ""
        skipped = case.find("skipped") is not None  # a task Tekton skipped has no TaskRun
        taskrun = "" if skipped else _taskrun_name(case, pipeline_run, task)
        new = ET.SubElement(target, "testcase", classname=TASKRUN_CLASSNAME, name=task)
        new.set("time", case.get("time") or "0.000")
        total += _seconds(case.get("time"))
        outcome = "success"
        extra: list[tuple[str, str]] = []
        for element in case:
            if element.tag == "properties":
                continue
            copy = ET.SubElement(new, element.tag, dict(element.attrib))
            copy.text = element.text
            if element.tag in _RESULTS:
                outcome = "CheckFailed" if element.tag == "failure" else "InfraError"
                copy.set("type", outcome)
                counts["failures" if element.tag == "failure" else "errors"] += 1
                log = (element.text or "").strip()
                lead = element.get("message") or f"TaskRun {taskrun} failed"
                if taskrun and taskrun not in lead:
                    lead = f"TaskRun {taskrun}: {lead}"
                parts = [lead.rstrip()]
                if taskrun and "kubectl get taskrun" not in lead:
                    namespace = _NAMESPACE.search(lead)
                    where = f" -n {namespace.group(1)}" if namespace else ""
                    parts[0] += f"\n  next: kubectl get taskrun {taskrun}{where}"
                if log:
                    extra.append((f"log_tail:{task}", log))
                    heading = f"--- last lines of the log of TaskRun {taskrun or task} ---"
                    parts.append(f"{heading}\n{log}")
                    tails.append(parts[-1])
                copy.text = "\n\n".join(parts)
            elif element.tag == "skipped":
                # a task in the PipelineRun's skippedTasks: not a failure, the run decides
                outcome = SKIPPED_BY_TEKTON
                reason = element.get("message") or "skipped"
                copy.set("message", f"task {task} skipped by Tekton: {reason}")
                copy.set("type", SKIPPED_BY_TEKTON)
                counts["skipped"] += 1
            elif element.tag == "system-out" and (element.text or "").startswith(
                "tolerated failure"
            ):
                # a failure Tekton ignored (onError: continue): visible, not counted
                outcome = TOLERATED if outcome == "success" else outcome
                extra.append(("tolerated", element.text or ""))
        counts["tests"] += 1
        for key, value in (
            ("phase", "e2e"),
            ("outcome", outcome),
            ("task", task),
            ("taskrun", taskrun),
            ("pipeline_run", pipeline_run),
            *extra,
        ):
            if value:
                ET.SubElement(
                    properties,
                    "property",
                    name=property_key(TASKRUN_CLASSNAME, task, key),
                    value=value,
                )
    suite_level = (("run_id", run_id), ("pipeline_run", given.get("pipeline_run", "")))
    for key, value in reversed(suite_level):
        if value:
            properties.insert(0, ET.Element("property", name=key, value=value))
    if len(properties) == 0:
        target.remove(properties)
    for key, count in counts.items():
        target.set(key, str(count))
    target.set("time", f"{total:.3f}")
    stamp = first.get("timestamp") or (sessions.get("timestamp") if sessions is not None else None)
    target.set("timestamp", stamp or datetime.now(UTC).isoformat())
    target.set("hostname", first.get("hostname") or hostname or _d601_host(given.get("d601", "")))
    for element in check if check is not None and tails else ():
        if element.tag in _RESULTS:
            _append_text(element, tails)
    return target


def _taskrun_name(case: ET.Element, pipeline_run: str, task: str) -> str:
    """The TaskRun object's name: as the runner wrote it in its message, else Tekton's
    ``<pipelineRun>-<pipelineTask>`` when that fits a name (tektoncd/pipeline
    pkg/reconciler/pipelinerun/resources/pipelinerunresolution.go GetTaskRunName via
    kmeta.ChildName: longer names are shortened with a hash, so they cannot be derived)."""
    for element in case:
        words = (element.get("message") or "").split()
        if len(words) > 1 and words[0] == "TaskRun":
            return words[1].rstrip(":")
    name = f"{pipeline_run}-{task}" if pipeline_run and task else ""
    return name if len(name) <= 63 else ""


def _seconds(text: str | None) -> float:
    try:
        return float(text or 0.0)
    except ValueError:
        return 0.0


def _d601_host(d601: str) -> str:
    """The host the TaskRuns were launched from: ``ssh user@address`` names it; ``local`` is
    this machine."""
    if d601.startswith("ssh "):
        return d601.removeprefix("ssh ").rsplit("@", 1)[-1].split()[0]
    return socket.gethostname()
