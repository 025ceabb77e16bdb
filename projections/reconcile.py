"""Tag-cloud reconciliation: recount the cloud from ``posts`` and report or repair drift.

The ``blog`` projection maintains ``tag_cloud`` incrementally from tag differences, so a
bug, a manual edit or a restore of one table alone leaves it drifting from the truth
(the tags of live posts) for good. This recounts from scratch, reports each tag whose
stored count differs (as data, for logs and metrics), and with ``repair`` writes the
recount.

Consistency with a live consumer: on PostgreSQL the check runs under ``LOCK TABLE
posts IN SHARE MODE``. A batch writes ``posts`` before it applies tag deltas, in one
transaction, so once the lock is granted no batch is half-way: a batch that already
wrote ``posts`` has committed, and one that has not will apply its deltas on top of
the repaired counts, which were computed from the same ``posts`` it read. On SQLite the
transaction starts with ``BEGIN IMMEDIATE`` and writers queue behind it anyway.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select, text

from projections._db import database_errors
from projections._sql import MAX_PARAMS, chunks, insert_for
from projections.blog import BlogProjection
from schemas.errors import RetryableError

__all__ = ["DriftReport", "ReconcileSchedule", "TagCloudReconciler", "TagDrift"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TagDrift:
    stored: int  # 0 when the tag is missing from the cloud
    expected: int  # 0 when no live post carries the tag

    @property
    def delta(self) -> int:
        """What the repair adds to the stored count."""
        return self.expected - self.stored


@dataclass(frozen=True, slots=True)
class DriftReport:
    """One reconciliation: what differed, and whether it was written back."""

    table: str
    posts_scanned: int
    tags_expected: int
    drift: dict[str, TagDrift] = field(default_factory=dict)
    repaired: bool = False
    duration_s: float = 0.0

    @property
    def total_abs_delta(self) -> int:
        return sum(abs(d.delta) for d in self.drift.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "posts_scanned": self.posts_scanned,
            "tags_expected": self.tags_expected,
            "drifted_tags": len(self.drift),
            "total_abs_delta": self.total_abs_delta,
            "repaired": self.repaired,
            "duration_s": round(self.duration_s, 3),
            "drift": {
                tag: {"stored": d.stored, "expected": d.expected, "delta": d.delta}
                for tag, d in sorted(self.drift.items())
            },
        }

    def summary(self) -> str:
        head = (
            f"{self.table}: {self.posts_scanned} live posts, {self.tags_expected} tags, "
            f"{len(self.drift)} drifted"
        )
        if not self.drift:
            return head + " (no drift)"
        shown = ", ".join(f"{t} {d.delta:+d}" for t, d in sorted(self.drift.items())[:10])
        more = "" if len(self.drift) <= 10 else f" … {len(self.drift) - 10} more"
        return f"{head} ({shown}{more}){' — repaired' if self.repaired else ''}"


class TagCloudReconciler:
    """Recounts ``tag_cloud`` from the live posts of one ``blog`` projection generation.

    With ``follow`` (the CLI's way), each run first asks it for the generation to check
    (the active one, resolved in the run's transaction), so a rebuild, a rollback or a
    cleanup between two runs is followed; without it, ``projection`` is checked always.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        projection: BlogProjection,
        follow: Callable[[Connection], BlogProjection] | None = None,
    ) -> None:
        self.engine = engine
        self.projection = projection
        self._follow = follow

    def run(self, *, repair: bool = False) -> DriftReport:
        started = time.monotonic()
        with database_errors(), self.engine.begin() as conn:
            if self._follow is not None:
                self.projection = self._follow(conn)
            if conn.dialect.name == "postgresql":
                posts = conn.dialect.identifier_preparer.quote(self.projection.posts.name)
                conn.execute(text(f"LOCK TABLE {posts} IN SHARE MODE"))
            expected, scanned = self._recount(conn)
            stored = self._stored(conn)
            drift = {
                tag: TagDrift(stored.get(tag, 0), expected.get(tag, 0))
                for tag in expected.keys() | stored.keys()
                if stored.get(tag, 0) != expected.get(tag, 0)
            }
            if repair and drift:
                self._write(conn, drift)
        return DriftReport(
            table=self.projection.tag_cloud.name,
            posts_scanned=scanned,
            tags_expected=len(expected),
            drift=drift,
            repaired=repair and bool(drift),
            duration_s=time.monotonic() - started,
        )

    def _recount(self, conn: Connection) -> tuple[Counter[str], int]:
        p = self.projection.posts
        counts: Counter[str] = Counter()
        scanned = 0
        # Streamed (server-side cursor on PostgreSQL); options on the statement, not the
        # connection, so the repair's statements after it run on ordinary cursors.
        rows = conn.execute(
            select(p.c.tags).where(p.c.deleted_at.is_(None)).execution_options(yield_per=5_000)
        )
        for (tags,) in rows:
            scanned += 1
            counts.update(set(json.loads(tags)))
        return counts, scanned

    def _stored(self, conn: Connection) -> dict[str, int]:
        t = self.projection.tag_cloud
        return {row.tag: row.posts_count for row in conn.execute(select(t.c.tag, t.c.posts_count))}

    def _write(self, conn: Connection, drift: dict[str, TagDrift]) -> None:
        t = self.projection.tag_cloud
        gone = sorted(tag for tag, d in drift.items() if d.expected == 0)
        fixed = [
            {"tag": tag, "posts_count": d.expected}
            for tag, d in sorted(drift.items())
            if d.expected > 0
        ]
        if fixed:
            insert = insert_for(conn, t)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[t.c.tag], set_={"posts_count": insert.excluded.posts_count}
                ),
                fixed,
            )
        for part in chunks(gone, MAX_PARAMS):
            conn.execute(t.delete().where(t.c.tag.in_(part)))


class ReconcileSchedule:
    """Runs a reconciler every ``interval_s`` on a daemon thread inside a service.

    Each report goes to ``on_report`` (the metrics exporter hooks in there). A database
    outage is logged and retried at the next tick; the service keeps running.
    """

    def __init__(
        self,
        reconciler: TagCloudReconciler,
        *,
        interval_s: float,
        repair: bool = True,
        on_report: Callable[[DriftReport], None] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.interval_s = interval_s
        self.repair = repair
        self.on_report = on_report
        self.last_report: DriftReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reconcile-tag-cloud", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                report = self.reconciler.run(repair=self.repair)
            except RetryableError as exc:
                log.warning("tag-cloud reconciliation failed; next tick retries", error=str(exc))
                continue
            self.last_report = report
            if report.drift:
                log.warning("tag-cloud drift", **report.as_dict())
            if self.on_report is not None:
                self.on_report(report)
