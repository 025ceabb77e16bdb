"""Delivering the recorded notification e-mails: claim, send, mark — one row at a time.

Runs after the batch transaction committed (the consumer calls :meth:`deliver_due`
after every poll). Per message:

1. **claim** (own transaction): a compare-and-set that takes a lease on a due
   ``pending`` row and counts the attempt; another consumer of the group skips it;
2. **send** over the :class:`~projections.notifications.mail.Mailer`;
3. **record** (own transaction): ``sent``; or, for a permanent 5xx rejection,
   ``failed`` with the server's answer (surfaced, never retried, other customers go
   on); or, for a transient failure, back to ``pending`` with exponential backoff
   until ``max_attempts``, then ``failed``.

A crash between 2 and 3 leaves the row ``pending`` with a lease; when the lease runs
out the message is sent again with the same ``Message-ID``. See
:mod:`projections.notifications.projection` for the window this leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, and_, or_, select, update

from projections._db import database_errors
from projections.notifications.mail import MailConnection, Mailer, MailRejected, MailUnavailable
from projections.notifications.projection import FAILED, PENDING, SENT, NotificationsProjection
from projections.notifications.template import build_message
from schemas import check_email_address
from schemas.backoff import Backoff
from schemas.utc import as_utc

__all__ = ["DeliveryReport", "MailDelivery", "RetryPolicy"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    initial_s: float = 5.0
    max_s: float = 900.0
    #: how long a claimed row stays with its sender; must exceed one SMTP send
    lease_s: float = 120.0

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones (no jitter: the
        delay is stored as the row's next attempt time)."""
        return Backoff(self.initial_s, self.max_s, jitter=False).delay(attempts)


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # permanently rejected or out of attempts, this round
    retried: int = 0  # transient failure, back to pending with backoff
    unavailable: bool = False  # could not open a session at all
    failures: list[dict[str, Any]] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        return {"mail_sent": self.sent, "mail_failed": self.failed, "mail_retried": self.retried}


class MailDelivery:
    """Sends the due ``pending`` rows of one notifications projection generation."""

    def __init__(
        self,
        *,
        engine: Engine,
        projection: NotificationsProjection,
        mailer: Mailer,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.projection = projection
        self.mailer = mailer
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self._session_failures = 0
        self._paused_until = 0.0  # monotonic: no session attempts before then

    def deliver_due(self, *, limit: int = 100) -> DeliveryReport:
        """Send up to ``limit`` due messages; nothing at all when sending is disabled."""
        report = DeliveryReport()
        if not self.projection.send_enabled or time.monotonic() < self._paused_until:
            return report
        due = self._due(limit)
        if not due:
            return report
        try:
            session = self.mailer.connect()
        except MailUnavailable as exc:
            self._session_failed(report, exc)
            return report
        self._session_failures = 0
        try:
            for event_id in due:
                if not self._deliver_one(session, event_id, report):
                    break  # the session is broken: the rest waits for the next round
        finally:
            session.close()
        return report

    def _deliver_one(self, session: MailConnection, event_id: str, report: DeliveryReport) -> bool:
        row = self._claim(event_id)
        if row is None:
            return True  # another sender has it, or it is no longer pending
        if row["attempts"] > 1 and row["last_error"] is None:  # the last sender died mid-way
            log.info("re-sending; an earlier attempt may have been delivered", event_id=event_id)
        try:
            # One recipient per order, whatever an older row holds ("a@x, b@x" would
            # reach both); the event rules refuse such addresses before they are recorded.
            problem = check_email_address(row["recipient"])
            if problem is not None:
                raise ValueError(f"recipient {problem}")
            message = build_message(
                mail_from=row["mail_from"],
                to=row["recipient"],
                subject=row["subject"],
                text=row["body_text"],
                html_body=row["body_html"],
                message_id=row["message_id"],
                event_id=event_id,
                date=as_utc(row["recorded_at"]),
            )
            session.send(message)
        except (MailRejected, ValueError) as exc:  # ValueError: an address no header takes
            self._finish(event_id, FAILED, error=str(exc))
            report.failed += 1
            report.failures.append(
                {"event_id": event_id, "order_id": row["order_id"], "error": str(exc)}
            )
            log.warning("notification rejected for good", event_id=event_id, error=str(exc))
            return True
        except MailUnavailable as exc:
            self._retry_later(event_id, row["attempts"], str(exc), report)
            return False
        self._finish(event_id, SENT)
        report.sent += 1
        return True

    # -- the ledger transitions ------------------------------------------------------------
    def _due(self, limit: int) -> list[str]:
        t = self.projection.outbox
        now = self.clock()
        query = (
            select(t.c.event_id)
            .where(
                and_(
                    t.c.status == PENDING,
                    t.c.next_attempt_at <= now,
                    or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
                )
            )
            .order_by(t.c.next_attempt_at, t.c.event_id)
            .limit(limit)
        )
        with database_errors(), self.engine.begin() as conn:
            return list(conn.execute(query).scalars())

    def _claim(self, event_id: str) -> dict[str, Any] | None:
        t = self.projection.outbox
        now = self.clock()
        with database_errors(), self.engine.begin() as conn:
            won = conn.execute(
                update(t)
                .where(
                    and_(
                        t.c.event_id == event_id,
                        t.c.status == PENDING,
                        or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
                    )
                )
                .values(
                    attempts=t.c.attempts + 1,
                    claimed_until=now + timedelta(seconds=self.policy.lease_s),
                )
            )
            if won.rowcount != 1:
                return None
            row = conn.execute(select(t).where(t.c.event_id == event_id)).mappings().one()
            return dict(row)

    def _finish(self, event_id: str, status: str, *, error: str | None = None) -> None:
        t = self.projection.outbox
        values: dict[str, Any] = {"status": status, "claimed_until": None, "last_error": error}
        if status == SENT:
            values["sent_at"] = self.clock()
        with database_errors(), self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.event_id == event_id).values(**values))

    def _retry_later(
        self, event_id: str, attempts: int, error: str, report: DeliveryReport
    ) -> None:
        if attempts >= self.policy.max_attempts:
            self._finish(event_id, FAILED, error=f"gave up after {attempts} attempts: {error}")
            report.failed += 1
            report.failures.append({"event_id": event_id, "error": error})
            log.warning("notification failed after retries", event_id=event_id, error=error)
            return
        t = self.projection.outbox
        later = self.clock() + timedelta(seconds=self.policy.backoff(attempts))
        with database_errors(), self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.event_id == event_id)
                .values(claimed_until=None, next_attempt_at=later, last_error=error)
            )
        report.retried += 1
        log.info(
            "notification deferred", event_id=event_id, error=error, retry_at=later.isoformat()
        )

    def _session_failed(self, report: DeliveryReport, exc: MailUnavailable) -> None:
        # The server is away: no row is at fault, so no attempt is counted; back off.
        self._session_failures += 1
        pause = self.policy.backoff(self._session_failures)
        self._paused_until = time.monotonic() + pause
        report.unavailable = True
        log.warning("mail server unavailable", error=str(exc), retry_in_s=pause)
