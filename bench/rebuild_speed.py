"""Rebuild speed (events/s) on SQLite and PostgreSQL against the embedded broker.

    .venv/bin/python bench/rebuild_speed.py --posts 50000 [--pg postgresql://postgres@127.0.0.1/test]

Publishes ~4 events per post once, then rebuilds the ``blog`` projection from the
beginning into each database and prints one line per database.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

from consumers.kafka.admin import ensure_topics
from consumers.kafka.broker import EmbeddedBroker
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.watermarks import FetchedWatermarks
from consumers.observability.logs import configure_logging
from consumers.operations.rebuild import run_rebuild
from consumers.settings.models import Settings
from producers import EventPublisher, blog_events
from schemas import AvroSerde, SchemaCatalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    configure_logging(fmt="console", level="WARNING")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(bootstrap_servers=broker.bootstrap_servers)
        conf = client_config(settings.kafka)
        ensure_topics(
            conf, [settings.topics.blog_topic], partitions=settings.topics.topic_partitions
        )
        events = blog_events(posts=args.posts, seed=1)
        publisher = EventPublisher(
            producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
        )
        for i, ev in enumerate(events):
            publisher.publish(settings.topics.blog_topic, ev.event_type, ev.record, key=ev.key)
            if i % 10_000 == 0:
                publisher.poll(0)
        publisher.flush()
        print(f"published {len(events):,} events")
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        pg = sa.engine.make_url(args.pg).set(database=name).render_as_string(hide_password=False)
        try:
            for label, url in (
                ("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}"),
                ("PostgreSQL", pg),
            ):
                run = Settings(bootstrap_servers=broker.bootstrap_servers, database_url=url)
                result = run_rebuild(
                    run, "blog", watermarks=FetchedWatermarks(conf), batch_max_messages=args.batch
                )
                print(
                    f"{label:<10} rebuilt {result.events:,} events in {result.seconds:.1f} s: "
                    f"{result.events_per_s:,.0f} events/s (batch {args.batch:,})"
                )
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
