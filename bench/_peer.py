"""What both hand-written peers share: a consumer in a group that resumes from offsets
kept in the peer's own table (read on assignment). Imports nothing of Projectionist."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

__all__ = ["copy_merge", "main", "subscribed_consumer"]


def subscribed_consumer(
    cfg: dict[str, Any], db: psycopg.Connection[Any], *, group: str, offsets_table: str
) -> Consumer:
    """A consumer of ``cfg["topic"]`` in group ``<group_prefix>.<group>``, resuming each
    partition after the offset stored in ``offsets_table`` (topic, partition, offset)."""
    consumer = Consumer(
        {
            "bootstrap.servers": cfg["bootstrap"],
            "group.id": f"{cfg['group_prefix']}.{group}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )

    def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
        stored = dict(
            db.execute(
                f'SELECT partition, "offset" FROM {offsets_table} WHERE topic = %s',
                (cfg["topic"],),
            ).fetchall()
        )
        db.commit()
        for p in parts:
            p.offset = stored[p.partition] + 1 if p.partition in stored else OFFSET_BEGINNING
        c.assign(parts)

    consumer.subscribe([cfg["topic"]], on_assign=on_assign)
    return consumer


def copy_merge(
    cur: psycopg.Cursor[Any],
    *,
    staging: str,
    types: list[str],
    rows: list[tuple[Any, ...]],
    merge: str,
    offsets_table: str,
    topic: str,
    ends: dict[int, int],
) -> None:
    """In the caller's transaction: binary COPY of ``rows`` into ``staging``, the peer's
    merge statement(s), and each partition's last offset stored beside the rows."""
    with cur.copy(f"COPY {staging} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
    cur.execute(merge)
    cur.executemany(
        f"INSERT INTO {offsets_table} VALUES (%s, %s, %s) ON CONFLICT (topic, partition) "
        'DO UPDATE SET "offset" = excluded."offset"',
        [(topic, p, o) for p, o in ends.items()],
    )


def main(run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """``python -m bench.<peer> '<json>'``: run, then print ``RESULT {...}`` with the
    total seconds and the process's peak RSS, like bench.worker."""
    started = time.monotonic()
    result = run(json.loads(sys.argv[1]))
    result["total_s"] = time.monotonic() - started
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result["peak_rss_mb"] = round(hwm / 1024, 1)
    print("RESULT " + json.dumps(result), flush=True)
