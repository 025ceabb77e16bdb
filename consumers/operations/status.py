"""``projectionist status``: per projection and partition, where it is and how far behind.

Joins what the database knows (generation, role, state, pause, checkpoints, owners:
``projections.generations.status``; distinct dead letters: ``dead_letter_log``) with what
the broker reports (high watermarks of the topics and of the projection's own
dead-letter topics, via a :class:`WatermarkSource`). Dead letters are counted once per
origin: copies on the topic (a crash between ack and commit) are shown apart as
``messages``. :class:`StatusReport` is the one ``status --json`` document, for the
command and for ``GET /status`` on the query API and on each consumer's metrics port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from consumers.kafka.config import client_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.kafka.watermarks import FetchedWatermarks, Watermarks, WatermarkSource, event_times
from consumers.settings.concerns import DatabaseSettings
from consumers.settings.models import Settings
from projections import Projection, TopicPartition, database_errors, make_engine
from projections.generations.status import age_s, read_status
from projections.progress.dead_letter_log import DeadLetterLog
from projections.registry import ProjectionRegistry
from schemas.errors import ConfigurationError

__all__ = ["StatusReport", "collect_status"]


def collect_status(
    database: DatabaseSettings,
    projections: ProjectionRegistry,
    names: Iterable[str],
    *,
    dlq_suffix: str,
    watermarks: WatermarkSource,
    event_clock: EventClock | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready entry per projection (the ``--json`` shape; see the README)."""
    engine = make_engine(database.url(), read_only=True)
    now = time.time()
    out = []
    try:
        for name in names:
            projection = projections.create(name)
            with database_errors(), engine.connect() as conn:
                status = read_status(conn, name, projection.version)
                dead = DeadLetterLog().per_partition(conn, name)
            marks = _marks(watermarks, projection.topics)
            row = status.version
            entry: dict[str, Any] = {
                "projection": name,
                "active_generation": status.generations[0].generation,
                "previous_generation": row.previous_generation if row else None,
                "rebuilding_generation": row.rebuilding_generation if row else None,
                "epoch": row.epoch if row else 0,
                "paused": status.pause.as_dict() if status.pause else None,
                "dead_letters": {
                    "distinct": sum(n for n, _ in dead.values()),
                    "refused": sum(r for _, r in dead.values()),
                    "messages": _messages(watermarks, projection, dlq_suffix),
                },
                "generations": [],
            }
            for gen in status.generations:
                last_offsets = {tp: off for tp, (off, _at) in gen.checkpoints.items()}
                times = _times(event_clock, last_offsets, marks)
                partitions = []
                for tp in sorted(set(marks) | set(gen.checkpoints)):
                    stored = gen.checkpoints.get(tp)
                    last = stored[0] if stored else None
                    high = marks[tp].high if tp in marks else None
                    next_offset = last + 1 if last is not None else marks.get(tp, _ZERO).low
                    partitions.append(
                        {
                            "topic": tp[0],
                            "partition": tp[1],
                            "checkpoint": last,
                            "high_watermark": high,
                            "lag": None if high is None else max(0, high - next_offset),
                            "last_applied_age_s": round(age_s(stored[1]), 1) if stored else None,
                            "last_event_age_s": round(now - times[tp] / 1000, 1)
                            if tp in times
                            else None,
                            "dead_letters": dead.get(tp, (0, 0))[0],
                            "owner": gen.owners.get(tp),
                        }
                    )
                entry["generations"].append(
                    {
                        "generation": gen.generation,
                        "slot": gen.slot,
                        "role": gen.role,
                        "state": gen.state,
                        "instances": gen.instances,
                        "partitions": partitions,
                    }
                )
            out.append(entry)
    finally:
        engine.dispose()
    return out


class StatusReport:
    """The ``status --json`` document on request; HTTP callers within ``ttl_s`` share one.

    Each document costs a database read and a watermark fetch from the broker, so a
    dashboard polling every consumer's ``/status`` does not multiply that load.
    """

    def __init__(
        self,
        settings: Settings,
        projections: ProjectionRegistry,
        *,
        ttl_s: float = 2.0,
        timeout_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._projections = projections
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}

    def document(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """``{"projections": [...]}`` for ``names`` (default: every projection).

        An unknown name raises :class:`LookupError` (HTTP 404); a database or broker that
        does not answer raises a ``RetryableError``, a setting that cannot work (no Kafka
        to talk to) a ``ConfigurationError`` (both HTTP 503).
        """
        known = self._projections.names()
        wanted = tuple(names) if names else tuple(known)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise LookupError(f"unknown projection {unknown[0]!r}; known: {', '.join(known)}")
        with self._lock:
            cached = self._cache.get(wanted)
            if cached is not None and time.monotonic() - cached[0] < self._ttl_s:
                return cached[1]
            conf = client_config(self._settings.kafka)
            entries = collect_status(
                self._settings.database,
                self._projections,
                wanted,
                dlq_suffix=self._settings.topics.dlq_suffix,
                watermarks=FetchedWatermarks(conf, timeout_s=self._timeout_s),
                event_clock=lambda offsets: event_times(conf, offsets),
            )
            doc = {"projections": entries}
            self._cache = {wanted: (time.monotonic(), doc)}
            return doc


_ZERO = Watermarks(0, 0)

#: reads the timestamp of the event at each offset (``consumers.kafka.watermarks.event_times``)
EventClock = Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, int]]


def _times(
    clock: EventClock | None,
    offsets: Mapping[TopicPartition, int],
    marks: Mapping[TopicPartition, Watermarks],
) -> Mapping[TopicPartition, int]:
    # only offsets the topic still holds; the others have no event to read
    wanted = {tp: off for tp, off in offsets.items() if tp in marks and marks[tp].low <= off}
    return clock(wanted) if clock is not None and wanted else {}


def _marks(source: WatermarkSource, topics: Iterable[str]) -> dict[TopicPartition, Watermarks]:
    try:
        return source.watermarks(topics)
    except ConfigurationError:
        return {}  # the topic does not exist (yet): no watermarks to show


def _messages(source: WatermarkSource, projection: Projection, suffix: str) -> int:
    """Messages on the projection's own dead-letter topics (copies included)."""
    topics = [dead_letter_topic(t, projection.name, suffix) for t in projection.topics]
    return sum(m.high - m.low for m in _marks(source, topics).values())
