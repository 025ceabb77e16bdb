"""Every projection a process knows, by name: the shipped ones and the users' own.

:class:`ProjectionRegistry` is built once per command from the settings (the
composition root's ``consumers.app.projection_registry``) and handed to everything that
turns a projection name into a :class:`Projection`: the runner, rebuild, replay, status,
the dead-letter tools, the ``topics`` command. Users' projections come from
:mod:`projections.loading` (entry points, ``module:attr``, table files) and are treated
exactly like the shipped ones; a name or table that clashes is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from projections._base import Projection
from projections.blog import BlogProjection
from projections.generations.versions import logical_names
from projections.notifications.projection import NotificationsProjection
from projections.orders import OrdersProjection
from schemas.errors import ConfigurationError

__all__ = [
    "ProjectionFactory",
    "ProjectionRegistry",
    "Registered",
    "Topics",
    "create_projection",
    "projection_names",
]

#: builds one generation of a projection (``None``: the code's version)
ProjectionFactory = Callable[[int | None], Projection]


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of the shipped projections, one per aggregate."""

    blog: str = "blog.posts"
    orders: str = "orders.orders"


@dataclass(frozen=True, slots=True)
class Registered:
    """One projection the registry can build, and where it came from (for messages)."""

    name: str
    factory: ProjectionFactory
    origin: str


def _shipped(topics: Topics) -> list[Registered]:
    return [
        Registered("blog", lambda g: BlogProjection(topic=topics.blog, generation=g), "shipped"),
        Registered(
            "orders", lambda g: OrdersProjection(topic=topics.orders, generation=g), "shipped"
        ),
        Registered(
            "notifications",
            lambda g: NotificationsProjection(topic=topics.orders, generation=g),
            "shipped",
        ),
    ]


SHIPPED = ("blog", "notifications", "orders")


class ProjectionRegistry:
    """The shipped projections (on ``topics``) plus ``extra`` ones, by name."""

    def __init__(self, topics: Topics | None = None, extra: Iterable[Registered] = ()) -> None:
        self._entries: dict[str, Registered] = {r.name: r for r in _shipped(topics or Topics())}
        tables = {name: self._tables(name) for name in self._entries}
        for entry in extra:
            held = self._entries.get(entry.name)
            if held is not None:
                whose = "the shipped projection" if held.origin == "shipped" else held.origin
                raise ConfigurationError(
                    f"projection {entry.name!r} from {entry.origin} clashes with {whose} "
                    f"of that name: rename it"
                )
            self._entries[entry.name] = entry
            mine = self._tables(entry.name)
            for other, theirs in tables.items():
                shared = sorted(mine & theirs)
                if shared:
                    raise ConfigurationError(
                        f"projection {entry.name!r} from {entry.origin}: table(s) "
                        f"{', '.join(shared)} already belong to {other!r}: rename them"
                    )
            tables[entry.name] = mine

    def _tables(self, name: str) -> set[str]:
        return set(logical_names(self.create(name)).values())

    def names(self) -> list[str]:
        """The shipped projections first, then the users', each sorted."""
        shipped = sorted(n for n, r in self._entries.items() if r.origin == "shipped")
        return shipped + sorted(n for n, r in self._entries.items() if r.origin != "shipped")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def origin(self, name: str) -> str:
        return self._entry(name).origin

    def create(self, name: str, *, generation: int | None = None) -> Projection:
        """Build ``name`` (at ``generation``); a clear error names the known ones."""
        return self._entry(name).factory(generation)

    def topics(self) -> list[str]:
        """Every topic some projection consumes."""
        return sorted({t for name in self._entries for t in self.create(name).topics})

    def _entry(self, name: str) -> Registered:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names())
            raise ConfigurationError(f"unknown projection {name!r}; known: {known}") from None


def projection_names() -> list[str]:
    """The shipped projections (a process's full list: ``ProjectionRegistry.names``)."""
    return list(SHIPPED)


def create_projection(
    name: str, *, topics: Topics | None = None, generation: int | None = None
) -> Projection:
    """Build the shipped projection called ``name``."""
    return ProjectionRegistry(topics).create(name, generation=generation)
