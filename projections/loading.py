"""Users' projections and schemas, found outside the package.

* **Entry points** of installed packages: group ``projectionist.projections`` (name =
  the projection's name, object = a :class:`Projection` subclass or a factory) and group
  ``projectionist.schemas`` (object = a folder of ``<namespace>/<Name>.v<N>.avsc``).
* **``module:attr``** references (``PROJECTIONIST_PROJECTIONS``), same objects.
* **Table files** (``PROJECTIONIST_TABLE_PROJECTIONS``): declarative projections
  (:mod:`projections.declarative`).

A projection object is a :class:`Projection` subclass whose constructor takes
``generation=`` (passed on to ``Projection.__init__``), or any callable taking
``generation=`` and returning such a projection. Each one is built once here to check
it; every mistake is one :class:`ConfigurationError` line saying what and where.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from projections._base import Projection
from projections.declarative.projection import TableProjection
from projections.declarative.spec import NAME, TableSpec, read_table_specs
from projections.registry import ProjectionFactory, Registered
from schemas import SchemaCatalog
from schemas.errors import ConfigurationError

__all__ = [
    "PROJECTIONS_GROUP",
    "SCHEMAS_GROUP",
    "entry_point_projections",
    "entry_point_schema_folders",
    "referenced_projections",
    "table_projections",
]

PROJECTIONS_GROUP = "projectionist.projections"
SCHEMAS_GROUP = "projectionist.schemas"


def entry_point_projections() -> list[Registered]:
    """The projections installed packages declare in ``projectionist.projections``."""
    out = []
    for ep in sorted(entry_points(group=PROJECTIONS_GROUP), key=lambda e: e.name):
        origin = f"entry point {ep.name} = {ep.value} ({_distribution(ep)})"
        entry = _registered(_load_entry_point(ep, origin), origin)
        if entry.name != ep.name:
            raise ConfigurationError(
                f"{origin}: the entry point is named {ep.name!r} but builds projection "
                f"{entry.name!r}: use one name"
            )
        out.append(entry)
    return out


def entry_point_schema_folders() -> list[Path]:
    """The schema folders installed packages declare in ``projectionist.schemas``."""
    out = []
    for ep in sorted(entry_points(group=SCHEMAS_GROUP), key=lambda e: e.name):
        origin = f"schema entry point {ep.name} = {ep.value} ({_distribution(ep)})"
        folder = _load_entry_point(ep, origin)
        if not isinstance(folder, str | Path) and not hasattr(folder, "joinpath"):
            raise ConfigurationError(f"{origin}: expected a folder path, got {_kind(folder)}")
        out.append(Path(str(folder)))
    return out


def referenced_projections(references: Iterable[str]) -> list[Registered]:
    """``module:attr`` references (``PROJECTIONIST_PROJECTIONS``), imported and checked."""
    out = []
    for reference in references:
        origin = f"PROJECTIONIST_PROJECTIONS {reference}"
        module, sep, attr = reference.partition(":")
        if not sep or not module or not attr:
            raise ConfigurationError(f"{origin}: expected module:attribute (crm.views:Profiles)")
        loaded = _import(module, origin)
        target: Any = loaded
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigurationError(
                    f"{origin}: module {module!r} has no attribute {attr!r}"
                ) from None
        out.append(_registered(target, origin))
    return out


def table_projections(files: Iterable[Path], catalog: SchemaCatalog) -> list[Registered]:
    """The declarative projections of each TOML file."""
    out = []
    for path in files:
        for spec in read_table_specs(path, catalog):
            out.append(
                Registered(spec.name, _table_factory(spec, catalog), f"table file {path.name}")
            )
    return out


def _table_factory(spec: TableSpec, catalog: SchemaCatalog) -> ProjectionFactory:
    return lambda generation: TableProjection(spec, catalog, generation=generation)


def _registered(obj: Any, origin: str) -> Registered:
    if isinstance(obj, Projection):
        raise ConfigurationError(
            f"{origin} is a projection instance: give its class, or a factory taking generation="
        )
    if not callable(obj):
        raise ConfigurationError(
            f"{origin} is {_kind(obj)}, not a Projection subclass or a factory of one"
        )

    def factory(generation: int | None) -> Projection:
        built = obj(generation=generation)
        if not isinstance(built, Projection):
            raise ConfigurationError(f"{origin} returned {_kind(built)}, not a Projection")
        return built

    try:
        probe, other = factory(None), factory(7)
    except ConfigurationError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is a setup mistake
        raise ConfigurationError(
            f"{origin}: building it with generation= failed: {type(exc).__name__}: {exc}"
        ) from None
    name = getattr(probe, "name", None)
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigurationError(
            f"{origin}: name {name!r} must be lower-case letters, digits and _ (at most 48)"
        )
    version = getattr(probe, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigurationError(f"{origin}: version must be a whole number ≥ 1")
    topics = getattr(probe, "topics", None)
    if not isinstance(topics, tuple) or not topics or not all(isinstance(t, str) for t in topics):
        raise ConfigurationError(f"{origin}: topics must be a non-empty tuple of topic names")
    if other.generation != 7:
        raise ConfigurationError(
            f"{origin}: ignores generation=; pass it on to Projection.__init__"
        )
    return Registered(name, factory, origin)


def _import(module: str, origin: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"{origin}: no module named {exc.name!r} (is its package installed?)"
            ) from None
        raise ConfigurationError(f"{origin}: importing {module} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigurationError(
            f"{origin}: importing {module} failed: {type(exc).__name__}: {exc}"
        ) from None


def _load_entry_point(ep: EntryPoint, origin: str) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # noqa: BLE001 - the installed package is broken: say which
        raise ConfigurationError(f"{origin}: cannot load: {type(exc).__name__}: {exc}") from None


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"package {dist.name}" if dist is not None else "an installed package"


def _kind(obj: Any) -> str:
    return f"a {type(obj).__name__}"
