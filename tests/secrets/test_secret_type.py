"""Secret never prints, compares by value, refuses pickling, and is remembered for scrubbing."""

from __future__ import annotations

import copy
import logging
import pickle
import secrets
import subprocess
import sys
import traceback
from dataclasses import dataclass

import pytest

from pytest_homelab.core.outcomes import BadInput
from pytest_homelab.core.secrets import Secret, VaultLocation, known_secrets, scrub


def value() -> str:
    return "tok-" + secrets.token_hex(12)


def test_never_prints(caplog: pytest.LogCaptureFixture) -> None:
    raw = value()
    s = Secret(raw)

    @dataclass
    class Holder:
        token: Secret

    shown = [
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s:>30}",
        "%s %r" % (s, s),  # noqa: UP031 - the logging style must not leak either
        repr([s]),
        repr({"t": s}),
    ]
    shown.append(repr(Holder(s)))
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").warning("token=%s %r", s, s)
    shown.append(caplog.text)
    try:
        raise RuntimeError(f"bad {s}")
    except RuntimeError:
        shown.append(traceback.format_exc())
    for text in shown:
        assert raw not in text
    assert repr(s) == "Secret('***')" and str(s) == "Secret('***')"
    assert s.reveal() == raw


def test_equality_hash_and_truth() -> None:
    raw = value()
    assert Secret(raw) == Secret(raw)
    assert Secret(raw) != Secret(raw + "x")
    assert Secret(raw) != raw  # a Secret never equals a plain string
    assert len({Secret(raw), Secret(raw)}) == 1
    assert Secret(raw) and not Secret("")


def test_immutable_and_not_picklable() -> None:
    s = Secret(value())
    with pytest.raises(AttributeError):
        s._value = "other"
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(s, protocol=protocol)
    assert copy.copy(s) is s and copy.deepcopy({"a": [s]})["a"][0] is s
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_registry_and_scrub() -> None:
    raw = value()
    assert raw not in known_secrets()
    Secret(raw)
    assert raw in known_secrets()
    assert isinstance(known_secrets(), frozenset)
    assert scrub(f"a {raw} b {raw}") == "a *** b ***"
    Secret("")
    assert "" not in known_secrets()


def test_importing_does_not_import_hvac() -> None:
    code = (
        "import sys, pytest_homelab.core.secrets, pytest_homelab.core.gitrepo\n"
        "heavy = {'hvac', 'requests', 'pytest'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ("secret", "ci/global", "woodpecker_api_token")),
        ({"mount": "/kv/", "path": "/team/ci/"}, ("kv", "team/ci", "woodpecker_api_token")),
        ({"field": "token"}, ("secret", "ci/global", "token")),
    ],
)
def test_vault_location(kwargs: dict[str, str], expected: tuple[str, str, str]) -> None:
    where = VaultLocation(**kwargs)
    assert (where.mount, where.path, where.field) == expected
    assert str(where) == f"{expected[0]}/{expected[1]} field {expected[2]}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mount": ""},
        {"mount": "/"},
        {"path": ""},
        {"path": "a//b"},
        {"path": "../x"},
        {"field": " "},
    ],
)
def test_vault_location_rejects(kwargs: dict[str, str]) -> None:
    with pytest.raises(BadInput, match="vault_"):
        VaultLocation(**kwargs)
