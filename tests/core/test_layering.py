"""The package's rooms (docs/architecture.md): core imports no phase, phases import core and not
each other, and nothing outside plugin.py, checks/ and the report's session runner imports pytest.
Every import counts, including the lazy ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_homelab"
PHASES = ("ci", "rollout", "smoke", "e2e")
# Where pytest may be imported: the plugin, the checks it runs, and the session runner.
PYTEST_ALLOWED = ("plugin.py", "checks/", "report/session.py")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pytest_homelab" else None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_stays_in_its_room(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    room = rel.split("/")[0] if "/" in rel else None
    rooms = {r for r in map(_room, _imports(path)) if r is not None}
    if room == "core":
        assert rooms <= {"core"}, f"{rel}: core imports only core, not {sorted(rooms)}"
    elif room in PHASES:
        others = rooms & (set(PHASES) - {room})
        assert not others, f"{rel}: the {room} phase imports another phase: {sorted(others)}"
        assert "plugin" not in rooms and "report" not in rooms, f"{rel} reaches up: {rooms}"
    elif room == "report":
        assert not rooms & set(PHASES), f"{rel}: the report reads JUnit, not phases: {rooms}"
    if not rel.startswith(PYTEST_ALLOWED):
        heavy = {n for n in _imports(path) if n == "pytest" or n.startswith(("pytest.", "_pytest"))}
        assert not heavy, f"{rel} imports pytest; only {PYTEST_ALLOWED} may"


def test_the_rule_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from pytest_homelab.e2e.phase import judge\n")
    assert "pytest_homelab.e2e.phase" in _imports(module)
