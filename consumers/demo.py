"""The main job on the embedded default: broker, sample events, projections, top tags.

Zero configuration: starts the embedded broker (unless bootstrap servers are given),
creates the topics, publishes a realistic sample, drains the ``blog`` projection into a
fresh SQLite file and prints the tag cloud with a one-line summary.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers._kafka import client_config, ensure_topics, producer_config
from consumers._settings import Settings
from consumers.app import build_runner
from consumers.broker import EmbeddedBroker
from consumers.runner import ProjectionRunner, StopSignal
from producers import EventPublisher, blog_events, with_noise
from projections import BlogProjection, make_engine
from projections.blog import top_tags
from schemas import AvroSerde, SchemaCatalog

__all__ = ["run_demo"]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_demo(settings: Settings, *, posts: int, console: Console, stop: StopSignal) -> int:
    started = time.monotonic()
    db_url = settings.database_url_value()
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):  # a fresh broker needs a fresh read model
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        console.print(f"read models  → SQLite file [bold]{path}[/]")
    with contextlib.ExitStack() as stack:
        bootstrap = settings.bootstrap_servers
        if bootstrap is None:
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap_servers
            console.print(f"Kafka broker → embedded Tansu at [bold]{bootstrap}[/]")
        ensure_topics(
            client_config(settings, bootstrap_servers=bootstrap),
            [settings.blog_topic, settings.blog_topic + settings.dlq_suffix],
            partitions=settings.topic_partitions,
        )
        events = with_noise(blog_events(posts=posts, seed=7), duplicate_ratio=0.02, seed=7)
        publisher = EventPublisher(
            producer_config(settings, bootstrap_servers=bootstrap),
            serde=AvroSerde(SchemaCatalog.load()),
        )
        with _progress(console) as progress:
            task = progress.add_task("publishing blog events", total=len(events), rate="")
            for i, ev in enumerate(events, 1):
                publisher.publish(settings.blog_topic, ev.event_type, ev.record, key=ev.key)
                if i % 500 == 0:
                    publisher.poll(0)
                    progress.update(task, completed=i)
            publisher.flush()
            progress.update(task, completed=len(events))

            apply_task = progress.add_task(
                "projecting blog (posts+tags)", total=len(events), rate=""
            )
            t0 = time.monotonic()

            def on_batch(runner: ProjectionRunner) -> None:
                done = runner.stats.consumed
                rate = done / max(1e-9, time.monotonic() - t0)
                progress.update(apply_task, completed=done, rate=f"{rate:,.0f} ev/s")

            runner = build_runner(
                settings, "blog", bootstrap_servers=bootstrap, stop=stop, on_batch=on_batch
            )
            stats = runner.drain(timeout_s=120)
        if stop.is_set():
            console.print("[yellow]interrupted[/]: progress is saved; nothing was applied twice")
            return 130
    engine = make_engine(db_url)
    projection = runner.processor.projection
    assert isinstance(projection, BlogProjection)
    with engine.connect() as conn:
        rows = top_tags(conn, projection, limit=15)
    table = Table(title="Top tags (live posts per tag)")
    table.add_column("tag")
    table.add_column("posts_count", justify="right")
    for tag, count in rows:
        table.add_row(tag, f"{count:,}")
    console.print(table)
    console.print(
        f"{stats.applied:,} events applied, {stats.duplicates_skipped:,} duplicates skipped, "
        f"{stats.stale:,} stale versions ignored, {stats.dead_lettered:,} dead-lettered, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0
