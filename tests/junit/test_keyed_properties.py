"""Reading a suite's keyed properties (``<classname>::<name>::<key>``) back to their testcases:
the longest matching prefix wins, as in the first version, which scanned every testcase per
property (0.7 s of CPU after the verdict at 1000 services; the time is benchmarks/' business,
P3 growth)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import example, given
from hypothesis import strategies as st

from pytest_homelab.report.junit import _suite_properties

# Names made of the characters that make prefixes ambiguous.
_PART = st.text(alphabet=":ab[]", min_size=0, max_size=6)


def _reference(suite: ET.Element) -> dict[int, list[tuple[str, str]]]:
    """The rule as first written: every testcase's prefix, longest first, first match wins."""
    prefixes = sorted(
        (
            (f"{c.get('classname', '')}::{c.get('name', '')}::", c)
            for c in suite.findall("testcase")
        ),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    found: dict[int, list[tuple[str, str]]] = {}
    for element in suite.findall("properties"):
        for prop in element.iter("property"):
            name = prop.get("name", "")
            for prefix, case in prefixes:
                if name.startswith(prefix) and len(name) > len(prefix):
                    found.setdefault(id(case), []).append(
                        (name[len(prefix) :], prop.get("value", ""))
                    )
                    break
    return found


def _suite(cases: list[tuple[str, str]], props: list[str]) -> ET.Element:
    suite = ET.Element("testsuite")
    properties = ET.SubElement(suite, "properties")
    for i, name in enumerate(props):
        ET.SubElement(properties, "property", name=name, value=str(i))
    for classname, name in cases:
        ET.SubElement(suite, "testcase", classname=classname, name=name)
    return suite


@given(
    cases=st.lists(st.tuples(_PART, _PART), max_size=5),
    keys=st.lists(st.tuples(st.integers(0, 4), _PART), max_size=8),
    stray=st.lists(st.text(alphabet=":ab", max_size=8), max_size=3),
)
@example(cases=[("a", "b:"), ("a", "b")], keys=[(0, "k"), (1, ":k")], stray=[])
@example(cases=[("a", "b"), ("a", "b")], keys=[(0, "k")], stray=["a::b::"])
def test_same_matches_as_the_reference(
    cases: list[tuple[str, str]], keys: list[tuple[int, str]], stray: list[str]
) -> None:
    props = [f"{cases[i][0]}::{cases[i][1]}::{key}" for i, key in keys if i < len(cases)]
    suite = _suite(cases, props + stray)
    assert _suite_properties(suite) == _reference(suite)
