"""Peer: the ~100-line loop a competent engineer writes by hand (issue 15's best peer).

confluent-kafka ``consume(5000)`` in a consumer group, plain fastavro
``schemaless_reader`` with the writer's (v1) schema, binary COPY into a temporary
table, one version-guarded ``INSERT … SELECT DISTINCT ON … ON CONFLICT`` merge, and the
partition offsets stored in the same transaction (read back on assignment). Posts only:
no tag cloud, no dead-letter topic, no dedup, no metrics. Imports nothing of
Projectionist, so it measures what the libraries alone give.

``python -m bench.handwritten '<json>'`` prints ``RESULT {...}`` like bench.worker.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import psycopg
from fastavro import parse_schema, schemaless_reader

from bench._peer import copy_merge, main, subscribed_consumer

SCHEMA = Path(__file__).resolve().parent.parent / "schemas/avro/blog/BlogPostUpdated.v1.avsc"

DDL = """
CREATE TABLE IF NOT EXISTS hw_posts (
  post_id text PRIMARY KEY, title text, description text, tags text NOT NULL,
  author text, created_at timestamptz, updated_at timestamptz, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS hw_offsets (
  topic text, partition int, "offset" bigint NOT NULL, PRIMARY KEY (topic, partition));
"""
MERGE = """
INSERT INTO hw_posts SELECT DISTINCT ON (post_id) * FROM hw_in ORDER BY post_id, version DESC
ON CONFLICT (post_id) DO UPDATE SET title = excluded.title, description = excluded.description,
  tags = excluded.tags, author = excluded.author, created_at = excluded.created_at,
  updated_at = excluded.updated_at, version = excluded.version
WHERE hw_posts.version < excluded.version
"""
TYPES = ["text", "text", "text", "text", "text", "timestamptz", "timestamptz", "int8"]


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    schema = parse_schema(json.loads(SCHEMA.read_text()))
    db = psycopg.connect(cfg["libpq_url"])
    db.execute(DDL)
    db.commit()
    consumer = subscribed_consumer(cfg, db, group="handwritten", offsets_table="hw_offsets")
    count, first, last = 0, None, None
    try:
        while count < cfg["expected"]:
            messages = consumer.consume(5000, 0.5)
            if not messages:
                continue
            first = first or time.monotonic()
            rows, ends = [], {}
            for m in messages:
                if m.error() is not None:
                    continue
                r = schemaless_reader(io.BytesIO(m.value()[10:]), schema, None)
                rows.append(
                    (
                        r["post_id"],
                        r["title"],
                        r["description"],
                        json.dumps(r["tags"]),
                        r["author"],
                        r["creation_date"],
                        r["updated_at"],
                        r["version"],
                    )
                )
                ends[m.partition()] = m.offset()
            with db.transaction(), db.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS hw_in (LIKE hw_posts) ON COMMIT DELETE ROWS"
                )
                copy_merge(
                    cur,
                    staging="hw_in",
                    types=TYPES,
                    rows=rows,
                    merge=MERGE,
                    offsets_table="hw_offsets",
                    topic=cfg["topic"],
                    ends=ends,
                )
            consumer.commit(asynchronous=True)
            count += len(rows)
            last = time.monotonic()
    finally:
        consumer.close()
        db.close()
    return {"events": count, "active_s": (last or 0.0) - (first or 0.0)}


if __name__ == "__main__":
    main(run)
