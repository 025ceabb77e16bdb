"""Peer: Quix Streams 3.28 in its best form on this job (issue 15).

An ``Application`` (consumer group, at-least-once: offsets committed after the sink
flushed), a value deserializer with plain fastavro ``schemaless_reader`` (writer's v1
schema), and a ``BatchingSink`` that collapses each flushed batch to the newest state
per key and writes one version-guarded ``executemany`` upsert. Posts only.

Runs in its own virtualenv (``.venv-quix``, pinned by ``bench/quix-requirements.txt``,
made by ``bench/run.py``) so Quix's dependencies never enter requirements.lock; it
imports nothing of Projectionist. ``python bench/quix_peer.py '<json>'`` prints
``RESULT {...}``.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from fastavro import parse_schema, schemaless_reader
from quixstreams import Application
from quixstreams.models.serializers import Deserializer
from quixstreams.sinks import BatchingSink, SinkBatch

SCHEMA = Path(__file__).resolve().parent.parent / "schemas/avro/blog/BlogPostUpdated.v1.avsc"
DDL = """
CREATE TABLE IF NOT EXISTS qx_posts (
  post_id text PRIMARY KEY, title text, description text, tags text NOT NULL,
  author text, created_at timestamptz, updated_at timestamptz, version bigint NOT NULL)
"""
UPSERT = """
INSERT INTO qx_posts VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (post_id) DO UPDATE SET title = excluded.title, description = excluded.description,
  tags = excluded.tags, author = excluded.author, created_at = excluded.created_at,
  updated_at = excluded.updated_at, version = excluded.version
WHERE qx_posts.version < excluded.version
"""
TIMES: dict[str, float] = {}


class AvroV1(Deserializer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self._schema = parse_schema(json.loads(SCHEMA.read_text()))

    def __call__(self, value: bytes, ctx: Any) -> Any:
        TIMES.setdefault("first", time.monotonic())
        return schemaless_reader(io.BytesIO(value[10:]), self._schema, None)


class PostsSink(BatchingSink):  # type: ignore[misc]
    def __init__(self, url: str) -> None:
        super().__init__()
        self._db = psycopg.connect(url)
        self._db.execute(DDL)
        self._db.commit()
        self.written = 0

    def write(self, batch: SinkBatch) -> None:
        newest: dict[str, dict[str, Any]] = {}
        for item in batch:
            r = item.value
            seen = newest.get(r["post_id"])
            if seen is None or seen["version"] < r["version"]:
                newest[r["post_id"]] = r
        with self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(
                UPSERT,
                [
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
                    for r in newest.values()
                ],
            )
        self.written += batch.size
        TIMES["last"] = time.monotonic()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        app = Application(
            broker_address=cfg["bootstrap"],
            consumer_group=f"{cfg['group_prefix']}.quix",
            auto_offset_reset="earliest",
            state_dir=state,
            use_changelog_topics=False,
            auto_create_topics=False,
            consumer_extra_config={
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "range",
            },
        )
        topic = app.topic(cfg["topic"], value_deserializer=AvroV1(), key_deserializer="str")
        sink = PostsSink(cfg["libpq_url"])
        app.dataframe(topic).sink(sink)
        app.run(count=cfg["expected"], timeout=60)
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result = {
        "events": sink.written,
        "active_s": TIMES.get("last", 0.0) - TIMES.get("first", 0.0),
        "total_s": time.monotonic() - started,
        "peak_rss_mb": round(hwm / 1024, 1),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
