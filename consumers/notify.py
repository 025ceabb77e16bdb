"""Wiring for the ``notifications`` projection: SMTP settings in, a delivery hook out.

The consumer loop calls the hook after every poll, so recorded e-mails are sent right
after their batch commits, and deferred ones are retried once their backoff has passed
even when no new events arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from consumers.runtime.runner import ProjectionRunner
from consumers.settings.models import Settings
from projections import NotificationsProjection, Projection
from projections.notifications.delivery import MailDelivery, RetryPolicy
from projections.notifications.mail import SmtpConfig, SmtpMailer
from schemas.errors import RetryableError

__all__ = ["mail_delivery_hook", "smtp_config"]

log = structlog.get_logger(__name__)

_ROUND = 100  # messages per delivery round (one SMTP session)
_DELIVERY_BUDGET_S = 10.0


def smtp_config(settings: Settings) -> SmtpConfig:
    password = settings.smtp_password
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        ssl=settings.smtp_ssl,
        username=settings.smtp_username,
        password=password.get_secret_value() if password is not None else None,
        timeout_s=settings.smtp_timeout_s,
        ca_file=settings.smtp_ca_file,
    )


def mail_delivery_hook(
    settings: Settings, projection: Projection, engine: Engine
) -> Callable[[ProjectionRunner], None] | None:
    """For the notifications projection, a hook that delivers due e-mails; else None."""
    if not isinstance(projection, NotificationsProjection):
        return None
    projection.mail_from = settings.mail_from
    delivery = MailDelivery(
        engine=engine,
        projection=projection,
        mailer=SmtpMailer(smtp_config(settings)),
        policy=RetryPolicy(
            max_attempts=settings.mail_max_attempts,
            initial_s=settings.mail_retry_initial_s,
            max_s=settings.mail_retry_max_s,
            lease_s=settings.mail_claim_lease_s,
        ),
    )

    def deliver(runner: ProjectionRunner) -> None:
        # Rounds until nothing is due (so --drain leaves nothing behind), within a time
        # budget so a large backlog never keeps the loop from polling for long.
        until = time.monotonic() + _DELIVERY_BUDGET_S
        while True:
            try:
                report = delivery.deliver_due(limit=_ROUND)
            except RetryableError as exc:  # the database is away: the next poll tries again
                log.warning("mail delivery deferred", error=str(exc))
                return
            for name, n in report.counters().items():
                runner.stats.extra[name] = runner.stats.extra.get(name, 0) + n
            handled = report.sent + report.failed + report.retried
            if handled < _ROUND or report.unavailable or time.monotonic() > until:
                return

    return deliver
