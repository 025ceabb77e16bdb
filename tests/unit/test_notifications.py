"""Notification e-mails over a real SMTP server on loopback (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from consumers.kafka.broker import free_port
from producers import SampleEvent, order_events, with_noise
from projections import NotificationsProjection
from projections.notifications.delivery import DeliveryReport, MailDelivery, RetryPolicy
from projections.notifications.mail import SmtpConfig, SmtpMailer
from projections.notifications.projection import FAILED, PENDING, SENT, SUPPRESSED
from tests.support.folding import Folder
from tests.support.servers import RecordingSmtp, smtp_server

FAST = RetryPolicy(max_attempts=4, initial_s=0.01, max_s=0.05, lease_s=60)


@pytest.fixture
def smtp() -> Iterator[RecordingSmtp]:
    with smtp_server() as server:
        yield server


def _folder(url: str, *, send_enabled: bool = True) -> Folder:
    return Folder(url, NotificationsProjection(topic="orders.orders", send_enabled=send_enabled))


def _delivery(folder: Folder, port: int, **kwargs: object) -> MailDelivery:
    projection = folder.processor.projection
    assert isinstance(projection, NotificationsProjection)
    return MailDelivery(
        engine=folder.processor.engine,
        projection=projection,
        mailer=SmtpMailer(SmtpConfig(host="127.0.0.1", port=port, timeout_s=5)),
        policy=FAST,
        **kwargs,  # type: ignore[arg-type]
    )


def _statuses(folder: Folder) -> dict[str, tuple[str, int, str | None]]:
    projection = folder.processor.projection
    assert isinstance(projection, NotificationsProjection)
    t = projection.outbox
    with folder.processor.engine.connect() as conn:
        return {
            r.event_id: (r.status, r.attempts, r.last_error)
            for r in conn.execute(sa.select(t.c.event_id, t.c.status, t.c.attempts, t.c.last_error))
        }


def _drain(delivery: MailDelivery, rounds: int = 50) -> DeliveryReport:
    total = DeliveryReport()
    for _ in range(rounds):
        report = delivery.deliver_due()
        total.sent += report.sent
        total.failed += report.failed
        total.retried += report.retried
        if not (report.sent or report.failed or report.retried):
            return total
    return total


def test_each_event_emails_its_customer_exactly_once(db_url: str, smtp: RecordingSmtp) -> None:
    """Duplicates at new offsets and repeated delivery rounds still send one message per event."""
    events = with_noise(order_events(orders=25, seed=51), duplicate_ratio=0.3, seed=51)
    unique = {e.record["event_id"]: e for e in events}
    assert len(unique) < len(events)
    folder = _folder(db_url)
    try:
        folder.fold(events, batch=7)
        folder.fold(events[:5])  # the same events again, at new offsets
        delivery = _delivery(folder, smtp.port)
        assert _drain(delivery).sent == 25
        assert _drain(delivery).sent == 0
        ids = smtp.message_ids()
        assert set(ids.values()) == {1}
        assert set(ids) == {f"<{eid}@projectionist.invalid>" for eid in unique}
        by_id = {r.message["X-Projectionist-Event-Id"]: r for r in smtp.received}
        for eid, ev in unique.items():
            got = by_id[eid]
            assert got.recipients == [ev.record["customer_email"]]
            text = got.message.get_body(("plain",))
            html = got.message.get_body(("html",))
            assert text is not None
            assert html is not None
            total = f"{ev.record['total_minor'] // 100}.{ev.record['total_minor'] % 100:02d}"
            assert f"Total: {total} {ev.record['currency']}" in text.get_content()
            assert f"Total: {total} {ev.record['currency']}" in html.get_content()
            for line in ev.record["lines"]:
                assert line["sku"] in text.get_content()
                assert line["sku"] in html.get_content()
        assert {s for s, _, _ in _statuses(folder).values()} == {SENT}
    finally:
        folder.close()


def test_permanent_rejection_is_failed_and_does_not_block_others(
    db_url: str, smtp: RecordingSmtp
) -> None:
    """A 550 for one address marks that e-mail failed (with the answer); the rest are sent."""
    events = order_events(orders=12, seed=52)
    bad = events[3].record["customer_email"]
    smtp.reject[bad] = "550 5.1.1 no such mailbox"
    folder = _folder(db_url)
    try:
        folder.fold(events)
        report = _drain(_delivery(folder, smtp.port))
        bad_ids = {e.record["event_id"] for e in events if e.record["customer_email"] == bad}
        assert report.failed == len(bad_ids)
        assert report.sent == len(events) - len(bad_ids)
        statuses = _statuses(folder)
        for eid in bad_ids:
            status, attempts, error = statuses[eid]
            assert (status, attempts) == (FAILED, 1)
            assert error is not None
            assert "550" in error
        assert all(r.recipients != [bad] for r in smtp.received)
        assert len(smtp.received) == len(events) - len(bad_ids)
    finally:
        folder.close()


def test_transient_failures_retry_with_backoff_then_give_up(
    sqlite_url: str, smtp: RecordingSmtp
) -> None:
    """451 answers are retried after a backoff; past max_attempts the e-mail is failed."""
    events = [
        SampleEvent(
            e.aggregate,
            e.event_type,
            e.key,
            {**e.record, "customer_email": f"buyer-{i}@example.test"},
        )
        for i, e in enumerate(order_events(orders=6, seed=53))
    ]
    slow, hopeless = events[0].record["customer_email"], events[1].record["customer_email"]
    smtp.tempfail[slow] = 2
    smtp.tempfail[hopeless] = 100
    folder = _folder(sqlite_url)
    try:
        folder.fold(events)
        delivery = _delivery(folder, smtp.port)
        first = delivery.deliver_due()
        assert first.retried >= 1
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline and any(
            s == PENDING for s, _, _ in _statuses(folder).values()
        ):
            delivery.deliver_due()
        statuses = _statuses(folder)
        assert statuses[events[0].record["event_id"]][:2] == (SENT, 3)
        status, attempts, error = statuses[events[1].record["event_id"]]
        assert (status, attempts) == (FAILED, FAST.max_attempts)
        assert error is not None
        assert "gave up" in error
        assert len(smtp.received) == 5
    finally:
        folder.close()


def test_server_down_counts_no_attempt_and_delivers_later(
    sqlite_url: str, smtp: RecordingSmtp
) -> None:
    """With the server unreachable nothing is lost or counted; once it answers, all is sent."""
    events = order_events(orders=4, seed=54)
    folder = _folder(sqlite_url)
    try:
        folder.fold(events)
        down = _delivery(folder, free_port())
        report = down.deliver_due()
        assert report.unavailable
        assert {v[:2] for v in _statuses(folder).values()} == {(PENDING, 0)}
        assert _drain(_delivery(folder, smtp.port)).sent == 4
    finally:
        folder.close()


def test_send_disabled_records_suppressed_and_sends_nothing(
    db_url: str, smtp: RecordingSmtp
) -> None:
    """With send_enabled off (rebuild/replay) events are recorded as suppressed, never sent."""
    events = order_events(orders=5, seed=55)
    folder = _folder(db_url, send_enabled=False)
    try:
        folder.fold(events)
        delivery = _delivery(folder, smtp.port)
        assert _drain(delivery).sent == 0
        projection = delivery.projection
        projection.send_enabled = True  # going live does not send what replay recorded
        assert _drain(delivery).sent == 0
        assert smtp.received == []
        assert {s for s, _, _ in _statuses(folder).values()} == {SUPPRESSED}
    finally:
        folder.close()


def test_crash_between_send_and_record_resends_once_same_message_id(
    db_url: str, smtp: RecordingSmtp
) -> None:
    """A sender that dies after the server accepted re-sends that one message once, identically."""
    events = order_events(orders=3, seed=56)
    folder = _folder(db_url)
    try:
        folder.fold(events)
        crashing = _delivery(folder, smtp.port)
        victim = crashing._due(limit=1)[0]
        row = crashing._claim(victim)  # step 1: claimed (lease taken, attempt counted)
        assert row is not None
        session = crashing.mailer.connect()
        from projections.notifications.template import build_message

        session.send(  # step 2: the server accepts; then the process dies before step 3
            build_message(
                mail_from=row["mail_from"],
                to=row["recipient"],
                subject=row["subject"],
                text=row["body_text"],
                html_body=row["body_html"],
                message_id=row["message_id"],
                event_id=victim,
                date=datetime.now(UTC),
            )
        )
        session.close()
        assert _drain(_delivery(folder, smtp.port)).sent == 2, "the lease must hold the victim"
        later = _delivery(folder, smtp.port, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
        assert _drain(later).sent == 1
        ids = smtp.message_ids()
        assert sorted(ids.values()) == [1, 1, 2]
        assert ids[row["message_id"]] == 2
        bodies = [
            r.message.get_body(("plain",))
            for r in smtp.received
            if r.message_id == row["message_id"]
        ]
        assert len({b.get_content() for b in bodies if b is not None}) == 1
        assert _statuses(folder)[victim][:2] == (SENT, 2)
    finally:
        folder.close()
