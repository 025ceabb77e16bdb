"""The ``notifications`` projection: an e-mail to the customer when an order is fulfilled.

A side effect cannot join the database transaction, so it is split in two:

1. ``apply`` (inside the batch transaction, with the checkpoint and the event-id
   ledger) records one row per event in ``email_outbox``, keyed by event id, with the
   rendered message and status ``pending``. A duplicate event, at any offset, never
   makes a second row.
2. :class:`projections.notifications.delivery.MailDelivery` runs after the commit: it claims a
   pending row, sends it over SMTP, and marks it ``sent`` once the server accepted it.

**The at-most-once-resend window.** A crash after the server accepted a message and
before ``sent`` is committed leaves the row ``pending``; when its claim lease runs out
it is sent again, byte for byte, with the same ``Message-ID`` (derived from the event
id), so a downstream that dedups on ``Message-ID`` sees it once. Each such crash costs
at most one extra copy of that one message; nothing else is ever re-sent.

**Side effects are live-only.** Events of a rebuild or replay arrive with
``Event.live = False``; ``apply`` records them as ``suppressed`` and the delivery sends
nothing, so replaying history never e-mails anyone. ``send_enabled = False``
(constructor argument or attribute) suppresses every event the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from projections._base import ApplyResult, Projection
from projections._event import Event, OrderFulfilledEvent, known_events
from projections._sql import chunks, insert_for
from projections.notifications.template import message_id_for, render_order_email
from schemas.events import ORDER_FULFILLED

__all__ = ["FAILED", "PENDING", "SENT", "SUPPRESSED", "NotificationsProjection"]

PENDING = "pending"  # recorded, not yet accepted by the mail server
SENT = "sent"  # the mail server accepted it
FAILED = "failed"  # permanently rejected, or out of attempts: surfaced, never retried
SUPPRESSED = "suppressed"  # recorded during a rebuild or replay: never sent

_ROWS_PER_INSERT = 500


class NotificationsProjection(Projection):
    """Records one "order fulfilled" e-mail per event; delivery sends them after commit."""

    name = "notifications"
    version = 1
    idempotent_replay = False  # replaying would e-mail customers again
    has_side_effects = True
    needs_event_dedup = True

    def __init__(
        self,
        *,
        topic: str = "orders.orders",
        generation: int | None = None,
        mail_from: str = "Projectionist <orders@projectionist.invalid>",
        send_enabled: bool = True,
    ) -> None:
        self.topics = (topic,)
        #: the From header and the Message-ID domain of messages recorded from now on
        self.mail_from = mail_from
        #: False during rebuild/replay: record as suppressed, send nothing
        self.send_enabled = send_enabled
        super().__init__(generation=generation)

    def define_tables(self, metadata: MetaData) -> None:
        name = self.table_name("email_outbox")
        self.outbox = Table(
            name,
            metadata,
            Column("event_id", String(64), primary_key=True),
            Column("order_id", String(200), nullable=False),
            Column("recipient", String(320), nullable=False),
            Column("mail_from", String(320), nullable=False),
            Column("message_id", String(400), nullable=False),
            Column("subject", String(400), nullable=False),
            Column("body_text", Text, nullable=False),
            Column("body_html", Text, nullable=False),
            Column("status", String(16), nullable=False),
            Column("attempts", Integer, nullable=False, default=0),
            Column("next_attempt_at", DateTime(timezone=True), nullable=False),
            # a sender owns a pending row until then; after a crash the lease runs out
            Column("claimed_until", DateTime(timezone=True), nullable=True),
            Column("last_error", Text, nullable=True),
            Column("recorded_at", DateTime(timezone=True), nullable=False),
            Column("sent_at", DateTime(timezone=True), nullable=True),
            Index(f"ix_{name}_due", "status", "next_attempt_at"),
        )

    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        now = datetime.now(UTC)
        rows = {
            # ``Event.live`` is False for every event of a rebuild or replay.
            e.event_id: self._row(e, PENDING if self.send_enabled and e.live else SUPPRESSED, now)
            for e in known_events(events)
            if e.event_type == ORDER_FULFILLED
        }
        if not rows:
            return ApplyResult(applied=0)
        t = self.outbox
        recorded = 0
        for part in chunks(sorted(rows), _ROWS_PER_INSERT):
            stmt = (
                insert_for(conn, t)
                .values([rows[eid] for eid in part])
                .on_conflict_do_nothing()
                .returning(t.c.event_id)
            )
            recorded += len(conn.execute(stmt).scalars().all())
        return ApplyResult(applied=recorded, stale=len(rows) - recorded)

    def _row(self, event: OrderFulfilledEvent, status: str, now: datetime) -> dict[str, Any]:
        r = event.record
        email = render_order_email(r)
        return {
            "event_id": event.event_id,
            "order_id": r["order_id"],
            "recipient": r["customer_email"],
            "mail_from": self.mail_from,
            "message_id": message_id_for(event.event_id, self.mail_from),
            "subject": email.subject,
            "body_text": email.text,
            "body_html": email.html,
            "status": status,
            "attempts": 0,
            "next_attempt_at": now,
            "claimed_until": None,
            "last_error": None,
            "recorded_at": now,
            "sent_at": None,
        }
