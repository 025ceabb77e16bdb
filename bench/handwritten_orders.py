"""Peer for the orders workload: the loop a competent engineer writes by hand.

confluent-kafka ``consume(5000)`` in a consumer group, plain fastavro
``schemaless_reader`` with the writer's (v1) schema, binary COPY of the batch into a
temporary table, then one statement of set-based merges: the event ids go into the
loop's own ledger (``ON CONFLICT DO NOTHING RETURNING``), the first fulfilment of each
new order into ``ho_order_summaries`` (``DISTINCT ON`` the batch position, ``ON CONFLICT
DO NOTHING RETURNING``), and only the orders that came back are added to
``ho_customer_stats`` and ``ho_daily_sales``. The partition offsets are stored in the
same transaction (read back on assignment). No dead-letter topic, no metrics, no
generations. Imports nothing of Projectionist, so it measures what the libraries give.

``python -m bench.handwritten_orders '<json>'`` prints ``RESULT {...}`` like bench.worker.
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

SCHEMA = Path(__file__).resolve().parent.parent / "schemas/avro/orders/OrderFulfilled.v1.avsc"

DDL = """
CREATE TABLE IF NOT EXISTS ho_events (event_id uuid PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ho_order_summaries (
  order_id text PRIMARY KEY, customer_id text NOT NULL, customer_email text NOT NULL,
  line_count int NOT NULL, lines text NOT NULL, total_minor bigint NOT NULL,
  currency text NOT NULL, fulfilled_at timestamptz NOT NULL, event_id uuid NOT NULL);
CREATE TABLE IF NOT EXISTS ho_customer_stats (
  customer_id text, currency text, orders_count int NOT NULL, revenue_minor bigint NOT NULL,
  first_order_at timestamptz NOT NULL, last_order_at timestamptz NOT NULL,
  PRIMARY KEY (customer_id, currency));
CREATE TABLE IF NOT EXISTS ho_daily_sales (
  day date, currency text, orders_count int NOT NULL, revenue_minor bigint NOT NULL,
  PRIMARY KEY (day, currency));
CREATE TABLE IF NOT EXISTS ho_offsets (
  topic text, partition int, "offset" bigint NOT NULL, PRIMARY KEY (topic, partition));
"""
TEMP = """
CREATE TEMP TABLE IF NOT EXISTS ho_in (
  seq int, event_id uuid, order_id text, customer_id text, customer_email text,
  line_count int, lines text, total_minor bigint, currency text, fulfilled_at timestamptz
) ON COMMIT DELETE ROWS
"""
TYPES = ["int4", "uuid", "text", "text", "text", "int4", "text", "int8", "text", "timestamptz"]
MERGE = """
WITH new_events AS (
  INSERT INTO ho_events SELECT DISTINCT event_id FROM ho_in
  ON CONFLICT DO NOTHING RETURNING event_id
), new_orders AS (
  INSERT INTO ho_order_summaries
  SELECT DISTINCT ON (order_id) order_id, customer_id, customer_email, line_count, lines,
         total_minor, currency, fulfilled_at, event_id
  FROM ho_in JOIN new_events USING (event_id) ORDER BY order_id, seq
  ON CONFLICT (order_id) DO NOTHING
  RETURNING customer_id, currency, total_minor, fulfilled_at
), customers AS (
  INSERT INTO ho_customer_stats
  SELECT customer_id, currency, count(*), sum(total_minor), min(fulfilled_at), max(fulfilled_at)
  FROM new_orders GROUP BY customer_id, currency ORDER BY customer_id, currency
  ON CONFLICT (customer_id, currency) DO UPDATE SET
    orders_count = ho_customer_stats.orders_count + excluded.orders_count,
    revenue_minor = ho_customer_stats.revenue_minor + excluded.revenue_minor,
    first_order_at = LEAST(ho_customer_stats.first_order_at, excluded.first_order_at),
    last_order_at = GREATEST(ho_customer_stats.last_order_at, excluded.last_order_at)
)
INSERT INTO ho_daily_sales
SELECT (fulfilled_at AT TIME ZONE 'UTC')::date AS day, currency, count(*), sum(total_minor)
FROM new_orders GROUP BY 1, currency ORDER BY 1, currency
ON CONFLICT (day, currency) DO UPDATE SET
  orders_count = ho_daily_sales.orders_count + excluded.orders_count,
  revenue_minor = ho_daily_sales.revenue_minor + excluded.revenue_minor
"""


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    schema = parse_schema(json.loads(SCHEMA.read_text()))
    db = psycopg.connect(cfg["libpq_url"])
    db.execute(DDL)
    db.commit()
    consumer = subscribed_consumer(cfg, db, group="handwritten-orders", offsets_table="ho_offsets")
    count, first, last = 0, None, None
    try:
        while count < cfg["expected"]:
            messages = consumer.consume(5000, 0.5)
            if not messages:
                continue
            first = first or time.monotonic()
            rows, ends = [], {}
            for seq, m in enumerate(messages):
                if m.error() is not None:
                    continue
                r = schemaless_reader(io.BytesIO(m.value()[10:]), schema, None)
                lines = r["lines"]  # [{sku, quantity, unit_price_minor}], the schema's order
                rows.append(
                    (
                        seq,
                        r["event_id"],
                        r["order_id"],
                        r["customer_id"],
                        r["customer_email"],
                        len(lines),
                        json.dumps(lines),
                        r["total_minor"],
                        r["currency"],
                        r["fulfilled_at"],
                    )
                )
                ends[m.partition()] = m.offset()
            with db.transaction(), db.cursor() as cur:
                cur.execute(TEMP)
                copy_merge(
                    cur,
                    staging="ho_in",
                    types=TYPES,
                    rows=rows,
                    merge=MERGE,
                    offsets_table="ho_offsets",
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
