"""The blog and order command services: versions, validation, concurrency, atomic outbox."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from producers import AggregateNotFound, InvalidCommand, Outbox, OutboxEvent, VersionConflict
from schemas.errors import InvalidEventError
from tests.support.commands import command_side, outbox_events, unpublished

LINES = [
    {"sku": "SKU-1", "quantity": 2, "unit_price_minor": 250},
    {"sku": "SKU-2", "quantity": 1, "unit_price_minor": 1000},
]


def test_post_lifecycle_bumps_versions_and_writes_one_event_each(db_url: str) -> None:
    """create → update → delete: versions 1, 2, 3; one outbox row per change, in order."""
    with command_side(db_url) as cs:
        created = cs.blog.create(
            title="Hello Kafka", tags=["Kafka", " python ", "kafka"], author="ann"
        )
        assert created.version == 1
        assert created.event_type == "blog.BlogPostUpdated"
        updated = cs.blog.update(
            created.aggregate_id, title="Hello again", tags=["sql"], expected_version=1
        )
        assert updated.version == 2
        deleted = cs.blog.delete(created.aggregate_id, expected_version=2)
        assert deleted.version == 3
        assert deleted.event_type == "blog.BlogPostDeleted"
        stored = cs.blog.get(created.aggregate_id)
        assert stored is not None
        assert stored["deleted_at"] is not None
        assert stored["tags"] == []
    events = outbox_events(db_url)
    assert [(e.event_type, e.record["version"]) for e in events] == [
        ("blog.BlogPostUpdated", 1),
        ("blog.BlogPostUpdated", 2),
        ("blog.BlogPostDeleted", 3),
    ]
    first = events[0].record
    assert first["tags"] == ["kafka", "python"], "tags are trimmed, lower-cased and de-duplicated"
    assert first["slug"] == "hello-kafka", "events are written with schema v2 (slug)"
    assert [str(e.record["event_id"]) for e in events] == [
        created.event_id,
        updated.event_id,
        deleted.event_id,
    ]
    assert unpublished(db_url) == 3


def test_order_place_then_fulfill_emits_order_fulfilled(db_url: str) -> None:
    """Placing writes state only; fulfilling emits OrderFulfilled with the exact total."""
    with command_side(db_url) as cs:
        placed = cs.orders.place(
            customer_id="c-1", customer_email="c1@example.test", currency="EUR", lines=LINES
        )
        assert placed.version == 1
        assert placed.event_id is None
        assert outbox_events(db_url) == []
        done = cs.orders.fulfill(placed.aggregate_id, expected_version=1)
        assert done.version == 2
        with pytest.raises(VersionConflict, match="already fulfilled"):
            cs.orders.fulfill(placed.aggregate_id)
    (event,) = outbox_events(db_url)
    assert event.event_type == "orders.OrderFulfilled"
    assert event.record["total_minor"] == 1500
    assert len(event.record["lines"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"title": "  "}, "title: must not be blank"),
        ({"title": "x" * 201}, "title: at most 200"),
        ({"author": ""}, "author: must not be blank"),
        ({"tags": ["ok", ""]}, "tags: '' must be 1-64"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags: at most 20"),
    ],
)
def test_invalid_post_is_refused_with_a_clear_problem(
    sqlite_url: str, kwargs: dict[str, Any], problem: str
) -> None:
    """Bad input raises InvalidCommand naming the field and the rule; nothing is written."""
    with command_side(sqlite_url) as cs:
        args = {"title": "fine", "author": "ann", "tags": ["a"], **kwargs}
        with pytest.raises(InvalidCommand) as info:
            cs.blog.create(**args)
        assert any(problem in p for p in info.value.problems), info.value.problems
    assert outbox_events(sqlite_url) == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"currency": "eur"}, "currency"),
        ({"customer_email": "nope"}, "customer_email"),
        ({"lines": []}, "at least one line"),
        (
            {"lines": [{"sku": "A", "quantity": 0, "unit_price_minor": 5}]},
            "quantity: must be 1-1,000,000",
        ),
        (
            {"lines": [{"sku": "A", "quantity": 1, "unit_price_minor": -5}]},
            "unit_price_minor: must be 0-",
        ),
    ],
)
def test_invalid_order_is_refused(sqlite_url: str, kwargs: dict[str, Any], problem: str) -> None:
    """Order input rules: ISO currency, e-mail, at least one line, positive quantities."""
    with command_side(sqlite_url) as cs:
        args = {
            "customer_id": "c",
            "customer_email": "c@example.test",
            "currency": "EUR",
            "lines": LINES,
            **kwargs,
        }
        with pytest.raises(InvalidCommand, match=problem):
            cs.orders.place(**args)


def test_stale_expected_version_conflicts_and_changes_nothing(db_url: str) -> None:
    """Optimistic concurrency: an edit based on an old version fails with the current one."""
    with command_side(db_url) as cs:
        post = cs.blog.create(title="v1", author="ann")
        cs.blog.update(post.aggregate_id, title="v2 by Bob", expected_version=1)
        with pytest.raises(VersionConflict) as info:
            cs.blog.update(post.aggregate_id, title="v2 by Ann", expected_version=1)
        assert info.value.current == 2
        stored = cs.blog.get(post.aggregate_id)
        assert stored is not None
        assert stored["title"] == "v2 by Bob"
        assert stored["version"] == 2
        with pytest.raises(AggregateNotFound):
            cs.blog.update("post-nope", title="x")
        cs.blog.delete(post.aggregate_id)
        with pytest.raises(AggregateNotFound, match="was deleted"):
            cs.blog.update(post.aggregate_id, title="zombie")
    assert len(outbox_events(db_url)) == 3


class _CrashAfterAppend(Outbox):
    """Writes the outbox row, then fails before the transaction commits."""

    def append(self, conn: sa.Connection, **kwargs: Any) -> OutboxEvent:
        super().append(conn, **kwargs)
        raise RuntimeError("process dies before commit")


def test_rollback_writes_neither_state_nor_event(db_url: str) -> None:
    """A command whose transaction rolls back leaves no post and no outbox row behind."""
    with command_side(db_url, outbox_class=_CrashAfterAppend) as cs:
        with pytest.raises(RuntimeError, match="before commit"):
            cs.blog.create(title="never", author="ann", post_id="post-ghost")
        assert cs.blog.get("post-ghost") is None
    assert outbox_events(db_url) == []


def test_outbox_refuses_events_the_contract_rejects(sqlite_url: str) -> None:
    """Events are validated when written, so a bad one fails the command, not the relay."""
    with (
        command_side(sqlite_url) as cs,
        pytest.raises(InvalidEventError, match="version must be >= 1"),
        cs.engine.begin() as conn,
    ):
        cs.outbox.append(
            conn,
            topic="t",
            aggregate_type="blog",
            aggregate_id="p",
            aggregate_version=0,
            event_type="blog.BlogPostDeleted",
            record={
                "event_id": Outbox.new_event_id(),
                "post_id": "p",
                "deleted_at": 0,
                "version": 0,
            },
        )
    assert outbox_events(sqlite_url) == []


def test_client_chosen_ids_are_unique(db_url: str) -> None:
    """A second create/place with an id already taken is refused and writes no event."""
    with command_side(db_url) as cs:
        cs.blog.create(title="a", author="ann", post_id="post-1")
        with pytest.raises(InvalidCommand, match="already exists"):
            cs.blog.create(title="b", author="bob", post_id="post-1")
        args = {
            "customer_id": "c",
            "customer_email": "c@example.test",
            "currency": "EUR",
            "lines": LINES,
        }
        cs.orders.place(order_id="order-1", **args)
        with pytest.raises(InvalidCommand, match="already exists"):
            cs.orders.place(order_id="order-1", **args)
    assert len(outbox_events(db_url)) == 1
