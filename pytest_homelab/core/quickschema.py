"""A quick answer to "is this document valid?" for the JSON Schema subset deploy.json's schema uses.

jsonschema judges a 1000-service deploy.json in 60 ms, and importing it costs 50-70 ms more,
on every `homelab` and `pytest checks/` run. Nearly every deploy.json is valid, and a valid
document needs no error messages. So :func:`compile_schema` turns the shipped schema itself (no
second copy of its rules) into plain Python checks, and each answers True (valid), False
(invalid) or None (not sure). Only True is trusted on its own; False and None hand the document
to jsonschema, which finds and words every problem as before.

False is as exact as True (``not`` turns one into the other). "Not sure" is the answer wherever
the subset's meaning needs care: a keyword this module does not know (so a schema that grows
one is judged by jsonschema alone until this learns it), a float or an int subclass where an
integer is expected (draft 2020-12 counts ``1.0`` as one), a bound on a number that is not an
int, a ``const`` or ``enum`` value of another Python type (jsonschema's equality tells ``True``
from ``1``), a ``$ref`` with an escape, a subschema with an ``$id`` of its own. The
meaning of each keyword follows the draft 2020-12 validation vocabulary as jsonschema applies
it (python-jsonschema jsonschema/_keywords.py and jsonschema/_types.py@v4.26.0): a keyword
about strings, objects or arrays holds for any other type, and ``pattern`` is a search, not a
full match; the caller passes the same ``$``-as-end-of-string rewrite the jsonschema path uses.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Verdict = bool | None  # True: valid; False: invalid; None: not sure (ask jsonschema)
Check = Callable[[object], Verdict]

# Keywords that say nothing about validity (draft 2020-12 meta-data and core annotations).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default"}
)


def _valid(_instance: object) -> Verdict:
    return True


def _unsure(_instance: object) -> Verdict:
    return None


def _fold(verdicts: Iterable[Verdict]) -> Verdict:
    """All of them: False at the first False, else None if any is not sure, else True."""
    verdict: Verdict = True
    for seen in verdicts:
        if seen is False:
            return False
        if seen is None:
            verdict = None
    return verdict


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _valid
    if len(checks) == 1:
        return checks[0]
    return lambda instance: _fold(one(instance) for one in checks)


class _Compiler:
    def __init__(self, root: Mapping[str, Any], pattern: Callable[[str], str]) -> None:
        self.root = root
        self.pattern = pattern
        self.refs: dict[str, Check] = {}

    def node(self, schema: object) -> Check:
        if schema is True:
            return _valid
        if not isinstance(schema, Mapping):
            return _unsure  # `false`, or not a schema at all
        if "$id" in schema and schema is not self.root:
            return _unsure  # references inside resolve against another base
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            make = _KEYWORDS.get(keyword)
            checks.append(make(self, value, schema) if make is not None else _unsure)
        return _all(checks)

    def _kw_ref(self, ref: object, _schema: Mapping[str, Any]) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#/$defs/") or ref.count("/") != 2:
            return _unsure
        if "~" in ref or "%" in ref:
            return _unsure  # a JSON pointer escape or a URI one: not looked up here
        if ref not in self.refs:
            target = self.root.get("$defs", {}).get(ref.rsplit("/", 1)[1])
            if target is None:
                return _unsure
            self.refs[ref] = _unsure  # a reference to itself stays unsure while compiling
            self.refs[ref] = self.node(target)
        refs = self.refs
        return lambda instance: refs[ref](instance)

    def _kw_type(self, kind: object, _schema: Mapping[str, Any]) -> Check:
        exact = {"string": str, "object": dict, "array": list}
        if isinstance(kind, str) and kind in exact:
            python = exact[kind]
            return lambda instance: isinstance(instance, python)
        if kind == "integer":

            def integer(instance: object) -> Verdict:
                if type(instance) is int:
                    return True
                if isinstance(instance, bool):
                    return False
                # A float with no fraction, an int subclass: jsonschema takes them for integers.
                return None if isinstance(instance, int | float) else False

            return integer
        return _unsure

    def _kw_required(self, names: object, _schema: Mapping[str, Any]) -> Check:
        if not isinstance(names, list):
            return _unsure
        wanted = tuple(names)
        return lambda instance: (
            not isinstance(instance, dict) or all(name in instance for name in wanted)
        )

    def _kw_properties(self, properties: object, _schema: Mapping[str, Any]) -> Check:
        if not isinstance(properties, Mapping):
            return _unsure
        checks = {name: self.node(sub) for name, sub in properties.items()}

        def check(instance: object) -> Verdict:
            if not isinstance(instance, dict):
                return True
            return _fold(checks[k](v) for k, v in instance.items() if k in checks)

        return check

    def _kw_additionalProperties(self, extra: object, schema: Mapping[str, Any]) -> Check:
        properties = schema.get("properties", {})
        if "patternProperties" in schema or not isinstance(properties, Mapping):
            return _unsure
        known = frozenset(properties)
        if extra is False:
            return lambda instance: not isinstance(instance, dict) or known.issuperset(instance)
        each = self.node(extra)

        def check(instance: object) -> Verdict:
            if not isinstance(instance, dict):
                return True
            return _all_of(each, (v for k, v in instance.items() if k not in known))

        return check

    def _kw_propertyNames(self, names: object, _schema: Mapping[str, Any]) -> Check:
        each = self.node(names)
        return lambda instance: not isinstance(instance, dict) or _all_of(each, instance)

    def _kw_minProperties(self, least: object, _schema: Mapping[str, Any]) -> Check:
        if type(least) is not int:
            return _unsure
        return lambda instance: not isinstance(instance, dict) or len(instance) >= least

    def _kw_items(self, items: object, _schema: Mapping[str, Any]) -> Check:
        each = self.node(items)
        return lambda instance: not isinstance(instance, list) or _all_of(each, instance)

    def _kw_maxLength(self, most: object, _schema: Mapping[str, Any]) -> Check:
        if type(most) is not int:
            return _unsure
        return lambda instance: not isinstance(instance, str) or len(instance) <= most

    def _kw_pattern(self, pattern: object, _schema: Mapping[str, Any]) -> Check:
        if not isinstance(pattern, str):
            return _unsure
        search = re.compile(self.pattern(pattern)).search
        return lambda instance: not isinstance(instance, str) or search(instance) is not None

    def _kw_not(self, sub: object, _schema: Mapping[str, Any]) -> Check:
        inner = self.node(sub)

        def check(instance: object) -> Verdict:
            seen = inner(instance)
            return None if seen is None else not seen

        return check

    def _kw_const(self, value: object, _schema: Mapping[str, Any]) -> Check:
        return self._kw_enum([value], _schema)

    def _kw_enum(self, values: object, _schema: Mapping[str, Any]) -> Check:
        if not isinstance(values, list) or not all(type(v) in (str, int) for v in values):
            return _unsure
        allowed = frozenset((type(v), v) for v in values)
        kinds = {type(v) for v in values}

        def check(instance: object) -> Verdict:
            # Another Python type might still be equal for jsonschema (2.0 and 2): not sure.
            # Of the same type (str or int, both hashable), equal means equal.
            if type(instance) not in kinds:
                return None
            return (type(instance), instance) in allowed

        return check

    def _kw_minimum(self, least: object, _schema: Mapping[str, Any]) -> Check:
        return self._bound(least, lambda value, bound: value >= bound)

    def _kw_maximum(self, most: object, _schema: Mapping[str, Any]) -> Check:
        return self._bound(most, lambda value, bound: value <= bound)

    @staticmethod
    def _bound(bound: object, holds: Callable[[int, int], bool]) -> Check:
        if type(bound) is not int:
            return _unsure

        def check(instance: object) -> Verdict:
            if type(instance) is int:
                return holds(instance, bound)
            if isinstance(instance, bool) or not isinstance(instance, numbers.Number):
                return True  # only numbers are bounded, and bools are not numbers
            return None  # a float, a Decimal: compared as jsonschema compares them

        return check


_KEYWORDS: dict[str, Callable[[_Compiler, Any, Mapping[str, Any]], Check]] = {
    ("$ref" if name == "_kw_ref" else name.removeprefix("_kw_")): method
    for name, method in vars(_Compiler).items()
    if name.startswith("_kw_")
}


def _all_of(check: Check, values: Iterable[Any]) -> Verdict:
    return _fold(check(value) for value in values)


def compile_schema(schema: Mapping[str, Any], pattern: Callable[[str], str] = lambda p: p) -> Check:
    """The schema as one check: True only for an instance it proves valid. ``pattern`` rewrites
    each ``pattern`` keyword's regular expression as the jsonschema path does."""
    return _Compiler(schema, pattern).node(schema)
