"""A realistic, seeded stream of domain events for the demo, tests and benchmarks.

Posts are created and edited with tags drawn from a Zipf-like vocabulary (a few tags
are everywhere, most are rare), some posts are deleted; orders are fulfilled for
repeat customers. Optional noise re-publishes duplicates (same event, new offset)
and stale versions (an older edit arriving after a newer one).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import BLOG_POST_DELETED as POST_DELETED
from schemas.events import BLOG_POST_UPDATED as POST_UPDATED
from schemas.events import ORDER_FULFILLED

__all__ = [
    "SampleEvent",
    "SampleStream",
    "blog_events",
    "order_events",
    "tag_vocabulary",
    "with_noise",
]


_WORDS = [
    "python",
    "kafka",
    "sql",
    "postgres",
    "sqlite",
    "cqrs",
    "events",
    "streaming",
    "avro",
    "schemas",
    "testing",
    "devops",
    "kubernetes",
    "docker",
    "linux",
    "rust",
    "go",
    "java",
    "performance",
    "security",
    "observability",
    "prometheus",
    "grafana",
    "design",
    "architecture",
    "databases",
    "caching",
    "queues",
    "microservices",
    "api",
    "http",
    "rest",
    "graphql",
    "frontend",
    "css",
    "javascript",
    "typescript",
    "react",
    "career",
    "writing",
    "productivity",
    "opensource",
    "cloud",
    "aws",
    "networking",
    "distributed",
    "consensus",
    "raft",
    "paxos",
    "storage",
    "indexing",
    "compilers",
    "math",
]
_CURRENCIES = ("EUR", "USD", "GBP")
_BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """One event to publish: ``aggregate`` is ``blog`` or ``orders`` (selects the topic)."""

    aggregate: str
    event_type: str
    key: str
    record: dict[str, Any]


def tag_vocabulary(size: int = 300) -> list[str]:
    extra = (f"topic-{i}" for i in itertools.count())
    return list(itertools.islice(itertools.chain(_WORDS, extra), size))


class _Zipf:
    def __init__(self, items: list[str], rng: random.Random, s: float = 1.1) -> None:
        self._items = items
        self._rng = rng
        self._cum = list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, len(items) + 1)))

    def draw(self, k: int) -> list[str]:
        picked = self._rng.choices(self._items, cum_weights=self._cum, k=k)
        return list(dict.fromkeys(picked))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def blog_events(
    *, posts: int, edits_per_post: float = 3.0, delete_ratio: float = 0.05, seed: int = 1
) -> list[SampleEvent]:
    """Create/edit/delete events for ``posts`` posts, interleaved, per-post order kept."""
    rng = random.Random(seed)
    tags = _Zipf(tag_vocabulary(), rng)
    streams: list[list[SampleEvent]] = []
    for n in range(posts):
        post_id = f"post-{n:07d}"
        created = _BASE_TIME + timedelta(minutes=n)
        author = f"author-{rng.randrange(max(1, posts // 20) + 1)}"
        events = []
        edits = max(0, round(rng.expovariate(1 / edits_per_post))) if edits_per_post else 0
        for version in range(1, edits + 2):
            events.append(
                SampleEvent(
                    "blog",
                    POST_UPDATED,
                    post_id,
                    {
                        "event_id": _uuid(rng),
                        "post_id": post_id,
                        "title": f"Post {n} rev {version}",
                        "description": f"About {' and '.join(tags.draw(2))}",
                        "tags": tags.draw(rng.randint(1, 5)),
                        "author": author,
                        "creation_date": created,
                        "updated_at": created + timedelta(hours=version),
                        "version": version,
                    },
                )
            )
        if rng.random() < delete_ratio:
            events.append(
                SampleEvent(
                    "blog",
                    POST_DELETED,
                    post_id,
                    {
                        "event_id": _uuid(rng),
                        "post_id": post_id,
                        "deleted_at": created + timedelta(days=1),
                        "version": len(events) + 1,
                    },
                )
            )
        streams.append(events)
    return _interleave(streams, rng)


def order_events(*, orders: int, customers: int | None = None, seed: int = 2) -> list[SampleEvent]:
    """``orders`` fulfilled orders; customers repeat (a few buy often)."""
    rng = random.Random(seed)
    n_customers = customers or max(1, orders // 4)
    people = _Zipf([f"customer-{i:06d}" for i in range(n_customers)], rng, s=0.8)
    out = []
    for n in range(orders):
        customer = people.draw(1)[0]
        currency = _CURRENCIES[int(customer.rsplit("-", 1)[1]) % len(_CURRENCIES)]
        lines: list[dict[str, Any]] = [
            {
                "sku": f"SKU-{rng.randrange(500):04d}",
                "quantity": rng.randint(1, 4),
                "unit_price_minor": rng.randrange(199, 19_999),
            }
            for _ in range(rng.randint(1, 4))
        ]
        out.append(
            SampleEvent(
                "orders",
                ORDER_FULFILLED,
                f"order-{n:07d}",
                {
                    "event_id": _uuid(rng),
                    "order_id": f"order-{n:07d}",
                    "customer_id": customer,
                    "customer_email": f"{customer}@example.test",
                    "lines": lines,
                    "total_minor": sum(x["quantity"] * x["unit_price_minor"] for x in lines),
                    "currency": currency,
                    "fulfilled_at": _BASE_TIME + timedelta(minutes=7 * n),
                },
            )
        )
    return out


def with_noise(
    events: list[SampleEvent],
    *,
    duplicate_ratio: float = 0.0,
    stale_ratio: float = 0.0,
    seed: int = 3,
) -> list[SampleEvent]:
    """Re-publish some events later in the stream: exact duplicates, and stale edits."""
    rng = random.Random(seed)
    out = list(events)
    for i, event in enumerate(events):
        if rng.random() < duplicate_ratio:
            out.insert(min(len(out), i + rng.randint(1, 50)), event)
        if event.event_type == POST_UPDATED and rng.random() < stale_ratio:
            out.append(event)  # arrives after every newer version of its post
    return out


def _interleave(streams: list[list[SampleEvent]], rng: random.Random) -> list[SampleEvent]:
    """Merge per-post streams at random, keeping each post's own order."""
    iters: list[Iterator[SampleEvent]] = [iter(s) for s in streams if s]
    heads = [next(it) for it in iters]
    out: list[SampleEvent] = []
    while iters:
        i = rng.randrange(len(iters))
        out.append(heads[i])
        nxt = next(iters[i], None)
        if nxt is None:
            iters[i], heads[i] = iters[-1], heads[-1]
            iters.pop()
            heads.pop()
        else:
            heads[i] = nxt
    return out


class SampleStream:
    """The demo's default mix."""

    def __init__(self, *, posts: int = 1_500, orders: int = 500, seed: int = 1) -> None:
        self.blog = blog_events(posts=posts, seed=seed)
        self.orders = order_events(orders=orders, seed=seed + 1)
