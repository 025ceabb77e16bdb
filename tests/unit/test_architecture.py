"""Package boundaries and public surfaces (STYLE.md: dependencies point one way)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"schemas", "producers", "consumers", "projections"}
# package -> which of our packages it may import
ALLOWED = {
    "schemas": set(),
    "producers": {"schemas"},
    "projections": {"schemas"},
    "consumers": {"schemas", "producers", "projections"},
}
FORBIDDEN_THIRD_PARTY = {
    "projections": {"confluent_kafka"},
    "schemas": {"confluent_kafka", "sqlalchemy"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    """schemas ← producers; schemas ← projections ← consumers; no cycles, no kafka in projections."""
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        imported = _imports(path)
        bad = (imported & OURS) - ALLOWED[package] - {package}
        bad |= imported & FORBIDDEN_THIRD_PARTY.get(package, set())
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("package", sorted(OURS))
def test_public_all_is_sorted_and_importable(package: str) -> None:
    """Each package exports one sorted ``__all__`` whose names all exist."""
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    assert exported, f"{package} has no __all__"
    assert exported == sorted(exported, key=_isort_key), f"{package}.__all__ is not sorted"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"
