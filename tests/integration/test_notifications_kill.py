"""Notification e-mails through a real consumer process, a real broker and a real SMTP server."""

from __future__ import annotations

import os
import signal

import sqlalchemy as sa

from producers import order_events, with_noise
from tests.support import json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.servers import smtp_server

KILL_AT = 5


def test_kill_between_send_and_record_resends_only_that_message(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    """SIGKILL right as the server takes message 5: after restart every order is e-mailed, that one twice with one Message-ID."""
    events = with_noise(order_events(orders=20, seed=61), duplicate_ratio=0.3, seed=61)
    event_ids = {e.record["event_id"] for e in events}
    assert len(event_ids) < len(events)
    publish(bootstrap, topic_env["PROJECTIONIST_ORDERS_TOPIC"], events)
    with smtp_server() as smtp:
        env = {
            **topic_env,
            "PROJECTIONIST_DATABASE_URL": db_url,
            "PROJECTIONIST_SMTP_HOST": "127.0.0.1",
            "PROJECTIONIST_SMTP_PORT": str(smtp.port),
            "PROJECTIONIST_MAIL_FROM": "Shop <shop@example.test>",
            "PROJECTIONIST_MAIL_CLAIM_LEASE_S": "0.5",
        }
        first = start_cli(["consume", "notifications", "--json"], env=env)
        victim: list[str] = []

        def kill_mid_send(n: int) -> None:
            if n == KILL_AT:
                victim.append(smtp.received[-1].message_id)
                os.kill(first.pid, signal.SIGKILL)  # before the 250 reaches the consumer

        smtp.on_message = kill_mid_send
        wait_for("the kill", lambda: first.poll() is not None, timeout_s=90)
        first.communicate(timeout=10)
        assert first.returncode == -signal.SIGKILL
        assert len(smtp.received) == KILL_AT
        smtp.on_message = None

        second = start_cli(["consume", "notifications", "--json"], env=env)
        try:
            expected = {f"<{eid}@example.test>" for eid in event_ids}
            wait_for(
                "every order e-mailed",
                lambda: second.poll() is not None or set(smtp.message_ids()) >= expected,
                timeout_s=90,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            _out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err[-3000:]
        ids = smtp.message_ids()
        assert set(ids) == expected
        assert {mid: n for mid, n in ids.items() if n > 1} == {victim[0]: 2}
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT message_id, status, attempts FROM email_outbox_v1")
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == len(event_ids)
    assert {r.status for r in rows} == {"sent"}
    assert {r.message_id.strip() for r in rows if r.attempts == 2} == {victim[0]}


def test_drain_sends_the_whole_backlog_before_it_exits(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """`consume notifications --drain` returns only after every recorded e-mail was sent."""
    events = order_events(orders=230, seed=62)
    publish(bootstrap, topic_env["PROJECTIONIST_ORDERS_TOPIC"], events)
    with smtp_server() as smtp:
        env = {
            **topic_env,
            "PROJECTIONIST_DATABASE_URL": sqlite_url,
            "PROJECTIONIST_SMTP_HOST": "127.0.0.1",
            "PROJECTIONIST_SMTP_PORT": str(smtp.port),
        }
        result = run_cli(["consume", "notifications", "--drain", "--json"], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json_line(result.stdout)["extra"]["mail_sent"] == 230
        assert len(smtp.message_ids()) == 230
