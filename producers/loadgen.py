"""The load generator behind ``projectionist produce``: realistic traffic at a target rate.

Two drivers:

* :func:`drive_commands` calls the command services (each call one transaction with
  its outbox row): posts are created, edited (tags drawn Zipf-like: a few tags are
  everywhere, most are rare) and sometimes deleted; repeat customers (Zipf-like too)
  place and fulfil orders. The relay then publishes the outbox.
* :func:`drive_publisher` publishes pre-generated sample events straight to Kafka for
  raw speed, optionally with injected duplicates (the same event at a new offset) and
  out-of-order versions (an older edit arriving after a newer one).

Both pace themselves to ``rate`` operations per second (0: as fast as possible) and
call ``report`` about once a second with the progress.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from producers._rules import normalise_tags
from producers.blog_service import BlogService
from producers.command_errors import CommandError
from producers.order_service import OrderService
from producers.publisher import EventPublisher
from producers.sample import SampleEvent, _Zipf, blog_events, order_events, tag_vocabulary
from producers.sample import with_noise as _with_noise

__all__ = ["LoadProgress", "Pacer", "drive_commands", "drive_publisher", "noisy_sample"]


@dataclass(frozen=True, slots=True)
class LoadProgress:
    done: int
    total: int
    elapsed_s: float
    refused: int = 0  # commands the services refused (e.g. a concurrent delete)
    #: ids the load left, to try the query API with (``produce --ids-file``): a live
    #: post, its version and a tag, an order, its fulfilment event id, its customer
    examples: Mapping[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


Report = Callable[[LoadProgress], None]


class Pacer:
    """Keeps ``i`` operations at ``start + i / rate``; reports once per ``every_s``."""

    def __init__(self, *, total: int, rate: float, report: Report | None, every_s: float = 1.0):
        self.total = total
        self.rate = rate
        self.report = report
        self.every_s = every_s
        self.started = time.monotonic()
        self._next_report = self.started + every_s

    def tick(self, done: int, refused: int = 0) -> None:
        now = time.monotonic()
        if self.rate > 0:
            ahead = self.started + done / self.rate - now
            if ahead > 0:
                time.sleep(ahead)
                now = time.monotonic()
        if self.report is not None and now >= self._next_report:
            self._next_report = now + self.every_s
            self.report(LoadProgress(done, self.total, now - self.started, refused))

    def finish(self, done: int, refused: int = 0) -> LoadProgress:
        progress = LoadProgress(done, self.total, time.monotonic() - self.started, refused)
        if self.report is not None:
            self.report(progress)
        return progress


def drive_commands(
    blog: BlogService,
    orders: OrderService,
    *,
    count: int,
    rate: float = 0.0,
    seed: int = 1,
    report: Report | None = None,
) -> LoadProgress:
    """``count`` commands: ~35% new posts, ~45% edits, ~5% deletes, ~15% orders."""
    rng = random.Random(seed)
    tags = _Zipf(tag_vocabulary(), rng)
    customers = _Zipf([f"customer-{i:05d}" for i in range(max(1, count // 20))], rng, s=0.8)
    live: list[tuple[str, int]] = []  # (post id, version) the generator believes current
    post_tags: dict[str, str] = {}  # a tag of each post's latest version
    order: dict[str, str] = {}
    pacer = Pacer(total=count, rate=rate, report=report)
    refused = 0
    for n in range(count):
        roll = rng.random()
        try:
            if not live or roll < 0.35:
                drawn = tags.draw(rng.randint(1, 5))
                r = blog.create(
                    title=f"Post {n}: {' and '.join(tags.draw(2))}",
                    description=f"About {', '.join(tags.draw(3))}",
                    tags=drawn,
                    author=f"author-{rng.randrange(max(1, count // 50) + 1)}",
                )
                live.append((r.aggregate_id, r.version))
                post_tags[r.aggregate_id] = normalise_tags(drawn)[0]
            elif roll < 0.80:
                i = rng.randrange(len(live))
                post_id, version = live[i]
                drawn = tags.draw(rng.randint(1, 5))
                r = blog.update(
                    post_id,
                    title=f"Post {n} (edited)",
                    description=f"Now about {', '.join(tags.draw(3))}",
                    tags=drawn,
                    expected_version=version,
                )
                live[i] = (post_id, r.version)
                post_tags[post_id] = normalise_tags(drawn)[0]
            elif roll < 0.85:
                post_id, version = live.pop(rng.randrange(len(live)))
                blog.delete(post_id, expected_version=version)
            else:
                customer = customers.draw(1)[0]
                placed = orders.place(
                    customer_id=customer,
                    customer_email=f"{customer}@example.test",
                    currency=("EUR", "USD", "GBP")[int(customer.rsplit("-", 1)[1]) % 3],
                    lines=[
                        {
                            "sku": f"SKU-{rng.randrange(500):04d}",
                            "quantity": rng.randint(1, 4),
                            "unit_price_minor": rng.randrange(199, 19_999),
                        }
                        for _ in range(rng.randint(1, 4))
                    ],
                )
                done = orders.fulfill(placed.aggregate_id, expected_version=placed.version)
                order = {
                    "ORDER_ID": done.aggregate_id,
                    "ORDER_EVENT_ID": done.event_id or "",
                    "CUSTOMER_ID": customer,
                }
        except CommandError:
            refused += 1  # another writer got there first: realistic, and counted
        pacer.tick(n + 1, refused)
    examples = dict(order)
    if live:
        post_id, version = live[-1]
        examples |= {"POST_ID": post_id, "POST_VERSION": str(version), "TAG": post_tags[post_id]}
    return replace(pacer.finish(count, refused), examples=examples)


def noisy_sample(
    *,
    count: int,
    duplicates: float = 0.0,
    out_of_order: float = 0.0,
    orders_share: float = 0.1,
    seed: int = 1,
) -> list[SampleEvent]:
    """About ``count`` sample events (blog and orders), with the requested noise."""
    n_orders = round(count * orders_share)
    blog_target = count - n_orders
    posts = max(1, math.ceil(blog_target / (4.0 * (1 + duplicates + out_of_order))))
    while True:
        events = _with_noise(
            blog_events(posts=posts, seed=seed),
            duplicate_ratio=duplicates,
            stale_ratio=out_of_order,
            seed=seed,
        )
        if len(events) >= blog_target or posts > blog_target:
            break
        posts = math.ceil(posts * 1.2)
    blog = events[:blog_target]
    mixed = blog + order_events(orders=n_orders, seed=seed + 1) if n_orders else blog
    if n_orders:
        # Orders interleave at random; each post's own events keep their order.
        rng = random.Random(seed)
        order_iter = iter(mixed[len(blog) :])
        slots = sorted(rng.sample(range(len(mixed)), n_orders))
        merged, blog_iter = [], iter(blog)
        slot_set = set(slots)
        for i in range(len(mixed)):
            merged.append(next(order_iter) if i in slot_set else next(blog_iter))
        return merged
    return mixed


def drive_publisher(
    publisher: EventPublisher,
    events: list[SampleEvent],
    *,
    topic_for: Callable[[str], str],
    rate: float = 0.0,
    report: Report | None = None,
) -> LoadProgress:
    """Publish ``events`` (aggregate → topic via ``topic_for``) at ``rate`` per second."""
    pacer = Pacer(total=len(events), rate=rate, report=report)
    for n, ev in enumerate(events, 1):
        publisher.publish(topic_for(ev.aggregate), ev.event_type, ev.record, key=ev.key)
        if n % 1_000 == 0:
            publisher.poll(0)
        pacer.tick(n)
    publisher.flush()
    return pacer.finish(len(events))
