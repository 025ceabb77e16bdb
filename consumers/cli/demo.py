"""``projectionist demo``: the main job, commands → outbox → Kafka → read models → views.

Zero configuration: starts the embedded broker (unless bootstrap servers are given),
creates the topics, drives the real blog and order command services (each change
writes its event to the transactional outbox in the same transaction), relays the
outbox to Kafka, drains the ``blog`` and ``orders`` projections into a fresh SQLite
file and prints the tag cloud, sales per currency and a one-line summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from consumers.app import build_runner, dead_letter_topics, topics_from
from consumers.cli.options import BootstrapOpt, command_settings, console, require_broker
from consumers.kafka.admin import ensure_topics
from consumers.kafka.broker import EmbeddedBroker
from consumers.kafka.config import client_config, producer_config
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings
from producers import (
    BlogService,
    EventPublisher,
    OrderService,
    Outbox,
    OutboxRelay,
    create_command_tables,
)
from producers.loadgen import LoadProgress, drive_commands
from projections import create_projection, database_errors, make_engine
from projections.registry import SHIPPED
from schemas import AvroSerde, SchemaCatalog

__all__ = ["demo", "run_demo"]


def demo(
    commands: Annotated[
        int,
        typer.Option(min=10, help="commands to run: ~85% post creates/edits/deletes, ~15% orders"),
    ] = 6_500,
    bootstrap_servers: BootstrapOpt = None,
    database_url: Annotated[
        str, typer.Option("--database-url", "-d", help="SQLite file for the demo's read models")
    ] = "sqlite:///projectionist-demo.db",
    command_database_url: Annotated[
        str,
        typer.Option(help="SQLite file for the command side's state and outbox"),
    ] = "sqlite:///projectionist-demo-commands.db",
) -> None:
    """Run the main job end to end on the embedded default: commands, outbox, Kafka, views."""
    settings = command_settings(
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        command_database_url=command_database_url,
        log_level="WARNING",
        # One process on one machine: eager assignment and a short session make the
        # group join take ~3 s instead of ~20 s on the embedded broker.
        assignment_strategy="range",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
    )
    require_broker(settings)  # a cluster named and away: one line (the embedded one is started)
    stop = StopSignal()
    stop.install()
    raise typer.Exit(run_demo(settings, commands=commands, console=console, stop=stop))


_SUMMED = ("consumed", "applied", "skipped_offset", "skipped_event_id", "stale", "dead_lettered")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _fresh_sqlite(url: str) -> None:
    """A fresh in-memory broker needs fresh databases: old checkpoints would be ahead."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def _broker(settings: Settings, console: Console) -> Iterator[str]:
    if settings.kafka.bootstrap_servers:
        yield settings.kafka.bootstrap_servers
        return
    with EmbeddedBroker() as broker:
        console.print(f"Kafka broker   → embedded Tansu at [bold]{broker.bootstrap_servers}[/]")
        yield broker.bootstrap_servers


def run_demo(settings: Settings, *, commands: int, console: Console, stop: StopSignal) -> int:
    started = time.monotonic()
    read_url = settings.database.url()
    command_url = settings.command_database_url()
    _fresh_sqlite(read_url)
    _fresh_sqlite(command_url)
    console.print(f"read models    → [bold]{read_url}[/]")
    console.print(f"command side   → [bold]{command_url}[/] (state + transactional outbox)")
    totals = RunStats()
    with _broker(settings, console) as bootstrap, _progress(console) as progress:
        topics = [settings.topics.blog_topic, settings.topics.orders_topic]
        shipped = [create_projection(n, topics=topics_from(settings.topics)) for n in SHIPPED]
        ensure_topics(
            client_config(settings.kafka, bootstrap_servers=bootstrap),
            topics + [d for p in shipped for d in dead_letter_topics(settings.topics, p)],
            partitions=settings.topics.topic_partitions,
        )
        serde = AvroSerde(SchemaCatalog.load())
        command_engine = make_engine(command_url)
        tables = create_command_tables(command_engine)
        outbox = Outbox(tables=tables, serde=serde)
        blog = BlogService(command_engine, outbox=outbox, topic=settings.topics.blog_topic)
        orders = OrderService(command_engine, outbox=outbox, topic=settings.topics.orders_topic)

        task = progress.add_task("commands (posts, orders)", total=commands, rate="")

        def report(p: LoadProgress) -> None:
            progress.update(task, completed=p.done, rate=f"{p.rate:,.0f} cmd/s")

        done = drive_commands(blog, orders, count=commands, seed=7, report=report)
        report(done)

        relay = OutboxRelay(
            command_engine,
            publisher=EventPublisher(
                producer_config(settings.kafka, bootstrap_servers=bootstrap), serde=serde
            ),
            database_errors=database_errors,
            tables=tables,
        )
        relayed = relay.drain(timeout_s=120)
        relay_task = progress.add_task("outbox relay → Kafka", total=relayed.published, rate="")
        progress.update(relay_task, completed=relayed.published, rate=f"{relayed.rate:,.0f} ev/s")
        command_engine.dispose()

        for name, label in (
            ("blog", "projecting blog (posts, tags)"),
            ("orders", "projecting orders"),
        ):
            if stop.is_set():
                break
            bar = progress.add_task(label, total=None, rate="")
            t0 = time.monotonic()

            def on_batch(snapshot: RunnerSnapshot, bar: TaskID = bar, t0: float = t0) -> None:
                n = snapshot.stats.consumed
                rate = n / max(1e-9, time.monotonic() - t0)
                progress.update(bar, completed=n, total=n, rate=f"{rate:,.0f} ev/s")

            runner = build_runner(
                settings, name, bootstrap_servers=bootstrap, stop=stop, on_batch=on_batch
            )
            stats = runner.drain(timeout_s=120)
            for field in (
                "consumed",
                "applied",
                "skipped_offset",
                "skipped_event_id",
                "stale",
                "dead_lettered",
            ):
                setattr(totals, field, getattr(totals, field) + getattr(stats, field))
    if stop.is_set():
        console.print("[yellow]interrupted[/]: progress is saved; nothing was applied twice")
        return 130
    _print_views(settings, console)
    console.print(
        f"{done.done:,} commands → {relayed.published:,} events relayed; "
        f"{totals.applied:,} events applied, {totals.duplicates_skipped:,} duplicates skipped, "
        f"{totals.stale:,} stale versions ignored, {totals.dead_lettered:,} dead-lettered, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0


def _print_views(settings: Settings, console: Console) -> None:
    from consumers.app import build_read_models

    reads = build_read_models(settings.database, settings.topics, read_only=True)
    try:
        tags = Table(title="Top tags (live posts per tag)")
        tags.add_column("tag")
        tags.add_column("posts_count", justify="right")
        for row in reads.tags(15):
            tags.add_row(str(row["tag"]), f"{row['posts_count']:,}")
        console.print(tags)
        sales = Table(title="Sales by currency (from daily_sales)")
        for column in ("currency", "days", "orders", "revenue"):
            sales.add_column(column, justify="left" if column == "currency" else "right")
        by_currency: dict[str, list[int]] = {}
        for row in reads.daily_sales(start=date(2000, 1, 1), end=date(2100, 1, 1), currency=None):
            agg = by_currency.setdefault(row["currency"], [0, 0, 0])
            agg[0] += 1
            agg[1] += row["orders_count"]
            agg[2] += row["revenue_minor"]
        for currency, (days, n, minor) in sorted(by_currency.items()):
            sales.add_row(currency, f"{days:,}", f"{n:,}", f"{minor / 100:,.2f}")
        console.print(sales)
    finally:
        reads.engine.dispose()
