"""One measured scenario in its own process, so peak RSS is that scenario's alone.

``python -m bench.worker '<json>'`` prints ``READY`` once it owns its partitions (live
modes) and a final ``RESULT {...}`` line. Modes:

* ``ceiling`` — confluent-kafka ``consume()`` + Avro decode, no database (``plain``:
  fastavro with the writer schema at ``schema``, e.g. the orders one);
* ``naive``   — the same processor, one transaction (and checkpoint) per event;
* ``live``    — the product: ``build_runner`` in a consumer group, ``drain()``;
* ``rebuild`` — manual assignment from the beginning, large batches (bench.rebuild);
* ``latency`` — ``live`` against a paced producer; records produce→committed per event.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader

from bench.rebuild import replay
from consumers.app import build_runner
from consumers.kafka.config import consumer_config
from consumers.runtime import runner as _runner
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.runtime.transaction import CommitResult
from consumers.settings.models import Settings
from projections import BlogProjection, CheckpointStore, make_engine
from schemas import AvroSerde, SchemaCatalog

ROOT = Path(__file__).resolve().parent.parent
V1_SCHEMA = ROOT / "schemas/avro/blog/BlogPostUpdated.v1.avsc"


def _settings(cfg: dict[str, Any]) -> Settings:
    return Settings(
        bootstrap_servers=cfg["bootstrap"],
        database_url=cfg.get("database_url", "sqlite:///unused.db"),
        blog_topic=cfg["topic"],
        group_prefix=cfg.get("group_prefix", "bench"),
        # Eager assignment and a short session: ~3 s group joins on the embedded broker.
        assignment_strategy="range",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        **cfg.get("settings", {}),
    )


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over fork+exec.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _assign_all(settings: Settings, topic: str, partitions: int) -> Consumer:
    consumer = Consumer(
        consumer_config(settings.kafka, group_id=f"{settings.kafka.group_prefix}.manual")
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    settings = _settings(cfg)
    serde = AvroSerde(SchemaCatalog.load())
    # plain: fastavro's schemaless_reader with the writer's schema, nothing else (issue 15);
    # "schema": that writer schema's path under the repository (default: BlogPostUpdated v1)
    schema_path = ROOT / cfg["schema"] if cfg.get("schema") else V1_SCHEMA
    plain = parse_schema(json.loads(schema_path.read_text())) if cfg.get("plain") else None
    consumer = _assign_all(settings, cfg["topic"], cfg["partitions"])
    count, first = 0, None
    try:
        while count < cfg["expected"]:
            messages = consumer.consume(settings.loop.batch_max_messages, 0.5)
            if messages and first is None:
                first = time.monotonic()
            decode = cfg.get("decode", True)  # False: the raw consume rate, for reference
            for msg in messages:
                if msg.error() is None:
                    if plain is not None:
                        schemaless_reader(io.BytesIO(msg.value()[10:]), plain, None)
                    elif decode:
                        serde.decode(msg.value())
                    count += 1
    finally:
        consumer.close()
    return {"events": count, "active_s": time.monotonic() - (first or time.monotonic())}


def naive(cfg: dict[str, Any]) -> dict[str, Any]:
    """One transaction per event: prepare and commit each message on its own."""
    settings = _settings(cfg)
    processor = BatchProcessor(
        engine=make_engine(cfg["database_url"]),
        projection=BlogProjection(topic=cfg["topic"]),
        serde=AvroSerde(SchemaCatalog.load()),
        checkpoints=CheckpointStore(),
        dead_letters=None,
        stats=RunStats(),
    )
    processor.ensure_schema()
    consumer = _assign_all(settings, cfg["topic"], cfg["partitions"])
    positions: dict[tuple[str, int], int | None] = {
        (cfg["topic"], p): None for p in range(cfg["partitions"])
    }
    first, until = None, None
    try:
        while processor.stats.consumed < cfg["expected"]:
            if until is not None and time.monotonic() > until:
                break  # time-boxed: the rate is what matters, and it is slow
            for msg in consumer.consume(500, 0.5):
                if first is None:
                    first = time.monotonic()
                    until = first + cfg["max_seconds"]
                batch = processor.prepare([msg], positions)
                if batch:
                    positions.update(processor.commit(batch).positions)
    finally:
        consumer.close()
    active = time.monotonic() - (first or time.monotonic())
    return {"events": processor.stats.consumed, "active_s": active}


class _Probe:
    """The bench's view of a live runner, through its public seams: a wrapped Kafka client
    (when the first messages arrive), the run observer (each commit) and the batch hook."""

    def __init__(self, cfg: dict[str, Any], *, latency: bool, stop: StopSignal) -> None:
        self.cfg, self.latency, self.stop = cfg, latency, stop
        self.data: dict[str, Any] = {"first": None, "first_wall": None, "latencies_ms": []}
        self.data.update(commits=[], rebalances=0, settled_wall=None)

    def consumer(self, conf: dict[str, Any]) -> Any:
        probe = self

        class Timed(Consumer):  # type: ignore[misc]
            def consume(self, num_messages: int = 1, timeout: float = -1) -> Any:
                messages = super().consume(num_messages, timeout)
                if messages and probe.data["first"] is None:
                    probe.data["first"], probe.data["first_wall"] = time.monotonic(), time.time()
                return messages

        return Timed({**conf, **self.cfg.get("consumer_overrides", {})})  # experiments only

    def polled(self, snapshot: RunnerSnapshot) -> None:
        pass

    def committed(self, snapshot: RunnerSnapshot, commit: CommitResult, seconds: float) -> None:
        probe = self.data
        probe["last"], probe["last_wall"] = time.monotonic(), time.time()
        probe["commits"].append((probe["last_wall"], commit.batch.consumed))
        if self.latency:
            now_ms = time.time() * 1000
            probe["latencies_ms"].extend(
                now_ms - e.timestamp_ms for e in commit.batch.events if e.timestamp_ms
            )

    def on_batch(self, snapshot: RunnerSnapshot) -> None:
        probe, expected = self.data, self.cfg.get("stop_after")
        if snapshot.stats.rebalances != probe["rebalances"]:  # the group changed shape
            probe["rebalances"], probe["settled_wall"] = snapshot.stats.rebalances, time.time()
        if not probe.get("ready") and len(snapshot.positions) == self.cfg.get(
            "ready_partitions", 1
        ):
            probe["ready"] = True
            print("READY", flush=True)
        if expected is not None and snapshot.stats.consumed >= expected:
            self.stop.set()


def _instrumented_runner(
    cfg: dict[str, Any], *, latency: bool
) -> tuple[ProjectionRunner, dict[str, Any]]:
    stop = StopSignal()
    probe = _Probe(cfg, latency=latency, stop=stop)
    runner = build_runner(
        _settings(cfg),
        "blog",
        bootstrap_servers=cfg["bootstrap"],
        stop=stop,
        on_batch=probe.on_batch,
        observer=probe,
        consumer_factory=probe.consumer,
    )
    return runner, probe.data


def live(cfg: dict[str, Any], *, latency: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    runner, probe = _instrumented_runner(cfg, latency=latency)
    if cfg.get("stop_after") is not None:
        stats = runner.run_forever()
    else:
        stats = runner.drain(timeout_s=cfg.get("timeout_s", 300))
    end = time.monotonic()
    last = probe.get("last") or end  # the last commit: consumer.close() is not work
    out: dict[str, Any] = {
        "events": stats.consumed,
        "applied": stats.applied,
        "stale": stats.stale,
        "batches": stats.batches,
        "rebalances": stats.rebalances,
        "total_s": end - started,
        "active_s": last - (probe["first"] or last),
        "first_wall": probe["first_wall"],
        "end_wall": probe.get("last_wall") or time.time(),
        "settled_wall": probe["settled_wall"],
        "commits": probe["commits"],
    }
    # The first seconds measure start-up (first fetches after the join), not steady state.
    lat = sorted(probe["latencies_ms"][cfg.get("warmup_events", 0) :])
    if lat:
        out["latency_ms"] = {
            "p50": lat[len(lat) // 2],
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max": lat[-1],
            "samples": len(lat),
        }

    return out


def rebuild(cfg: dict[str, Any]) -> dict[str, Any]:
    settings = _settings(cfg)
    conf = consumer_config(settings.kafka, group_id=f"{settings.kafka.group_prefix}.rebuild")
    conf.update(cfg.get("consumer_overrides", {}))
    stats, active = replay(
        conf,
        database_url=cfg["database_url"],
        topic=cfg["topic"],
        partitions=cfg["partitions"],
        expected=cfg["expected"],
        batch_max_messages=settings.loop.batch_max_messages,
    )
    return {"events": stats.consumed, "applied": stats.applied, "active_s": active}


class _GcClock:
    """Time spent in the cyclic garbage collector, per generation (profile evidence)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0
            self.runs[info["generation"]] += 1


def main() -> None:
    import gc

    cfg = json.loads(sys.argv[1])
    clock = _GcClock()
    gc.callbacks.append(clock)
    # What ProjectionRunner does, so every mode stands on the same footing. (getattr:
    # the bench can also run against the walking skeleton, which has no such helper.)
    tune = getattr(_runner, "tune_gc_for_batches", None)
    if cfg["mode"] != "live" and tune is not None:
        tune()
    started = time.monotonic()
    mode = cfg["mode"]
    if mode == "ceiling":
        result = ceiling(cfg)
    elif mode == "naive":
        result = naive(cfg)
    elif mode == "rebuild":
        result = rebuild(cfg)
    else:
        result = live(cfg, latency=mode == "latency")
    result.setdefault("total_s", time.monotonic() - started)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    result["gc_s"] = [round(x, 2) for x in clock.seconds]
    result["gc_runs"] = clock.runs
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
