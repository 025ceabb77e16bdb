"""Public surfaces: every package's ``__all__`` names exactly its public members (httpx's test).

The import-layer contract itself (directions, no cycles, no Kafka in ``projections``)
is checked by ``lint-imports`` in ``make lint`` (pyproject.toml ``[tool.importlinter]``).
"""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import re
from types import ModuleType

import grimp
import pytest

ROOTS = ("schemas", "producers", "projections", "consumers")


def _packages() -> list[str]:
    names = []
    for root in ROOTS:
        names.append(root)
        module = importlib.import_module(root)
        names += [m.name for m in pkgutil.walk_packages(module.__path__, f"{root}.") if m.ispkg]
    return sorted(names)


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("package", _packages())
def test_all_lists_every_public_member(package: str) -> None:
    """``__all__`` is sorted and names every public member of the package, and only those."""
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)  # sub-modules are reached by their path
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported, key=_isort_key), f"{package}.__all__ is not sorted"
    assert set(exported) == public, (
        f"{package}: public but not in __all__: {sorted(public - set(exported))}; "
        f"in __all__ but missing: {sorted(set(exported) - public)}"
    )


def test_no_module_imports_a_package_that_contains_it() -> None:
    """A package's ``__init__`` imports its modules, so a module importing its own package
    (``from projections import X`` inside ``projections``) is an import cycle."""
    graph = grimp.build_graph(*ROOTS)
    offenders = sorted(
        f"{module} imports {imported}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if module.startswith(imported + ".")
    )
    assert not offenders, "\n".join(offenders)


def test_every_exception_class_is_drawn_in_the_error_tree() -> None:
    """The docstring of schemas.errors draws the whole tree (httpx's ``_exceptions.py``)."""
    import inspect

    import schemas.errors

    tree = schemas.errors.__doc__ or ""
    missing = []
    for name in _packages():
        for module in pkgutil.walk_packages(importlib.import_module(name).__path__, f"{name}."):
            if module.ispkg:
                continue
            for cls_name, cls in inspect.getmembers(importlib.import_module(module.name)):
                if (
                    inspect.isclass(cls)
                    and issubclass(cls, BaseException)
                    and cls.__module__ == module.name
                    and not re.search(rf"\b{cls_name}\b", tree)
                ):
                    missing.append(f"{module.name}.{cls_name}")
    assert not missing, f"not drawn in schemas/errors.py: {missing}"
