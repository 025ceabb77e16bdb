"""Every projection Projectionist ships, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from projections._base import Projection
from projections.blog import BlogProjection
from projections.notifications.projection import NotificationsProjection
from projections.orders import OrdersProjection
from schemas.errors import ConfigurationError

__all__ = ["Topics", "create_projection", "projection_names"]


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names, one per aggregate (all events of an aggregate share one topic)."""

    blog: str = "blog.posts"
    orders: str = "orders.orders"


_FACTORIES: dict[str, Callable[[Topics, int | None], Projection]] = {
    "blog": lambda topics, generation: BlogProjection(topic=topics.blog, generation=generation),
    "orders": lambda topics, generation: OrdersProjection(
        topic=topics.orders, generation=generation
    ),
    "notifications": lambda topics, generation: NotificationsProjection(
        topic=topics.orders, generation=generation
    ),
}


def projection_names() -> list[str]:
    return sorted(_FACTORIES)


def create_projection(
    name: str, *, topics: Topics | None = None, generation: int | None = None
) -> Projection:
    """Build the projection called ``name``; a clear error names the known ones."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(projection_names())
        raise ConfigurationError(f"unknown projection {name!r}; known: {known}") from None
    return factory(topics or Topics(), generation)
