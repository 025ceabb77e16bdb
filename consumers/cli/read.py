"""The read-side commands: ``serve`` (the query API) and ``reconcile`` (tag-cloud drift).

Registered on the ``projectionist`` app of :mod:`consumers.cli`, which imports this
module once at its bottom.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from consumers.app import topics_from
from consumers.cli import BootstrapOpt, DatabaseOpt, _settings, app, console
from consumers.runtime.runner import StopSignal
from consumers.settings.models import Settings
from projections import (
    BlogProjection,
    NotificationsProjection,
    OrdersProjection,
    create_projection,
    database_errors,
    make_engine,
)
from projections.generations.versions import active_generation
from projections.query.read_models import ReadModels
from schemas.errors import ConfigurationError, DatabaseUnavailable

__all__ = ["build_read_models", "produce_orders", "reconcile_tag_cloud", "serve"]


def build_read_models(settings: Settings, *, read_only: bool) -> ReadModels:
    """Reads over the tables of each projection's active generation (after rebuilds)."""
    topics = topics_from(settings)
    engine = make_engine(settings.database_url_value(), read_only=read_only)
    generations = {n: create_projection(n).version for n in ("blog", "orders", "notifications")}
    try:
        with database_errors(), engine.connect() as conn:
            generations = {n: active_generation(conn, n, v) for n, v in generations.items()}
    except DatabaseUnavailable:
        pass  # serve anyway: every request answers 503 until the database is back
    blog = create_projection("blog", topics=topics, generation=generations["blog"])
    orders = create_projection("orders", topics=topics, generation=generations["orders"])
    notifications = create_projection(
        "notifications", topics=topics, generation=generations["notifications"]
    )
    assert isinstance(blog, BlogProjection)
    assert isinstance(orders, OrdersProjection)
    assert isinstance(notifications, NotificationsProjection)
    return ReadModels(engine=engine, blog=blog, orders=orders, notifications=notifications)


@app.command()
def serve(
    address: Annotated[
        str | None,
        typer.Option("--address", "-a", help="host:port to bind [env PROJECTIONIST_API_ADDRESS]"),
    ] = None,
    database_url: DatabaseOpt = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only/--read-write",
            help="query through a read-only session [env PROJECTIONIST_API_READ_ONLY]",
        ),
    ] = None,
) -> None:
    """Serve the query API (HTTP + OpenAPI at /docs) over the read models until SIGTERM."""
    import uvicorn

    from projections.query.api import create_app

    settings = _settings(api_address=address, database_url=database_url, api_read_only=read_only)
    reads = build_read_models(settings, read_only=settings.api_read_only)
    host, _, port = settings.api_address.rpartition(":")
    api = create_app(
        reads, wait_timeout_s=settings.api_wait_timeout_s, max_limit=settings.api_max_limit
    )
    console.print(f"query API on http://{settings.api_address} (OpenAPI at /docs)")
    try:
        uvicorn.run(
            api,
            host=host.strip("[]"),
            port=int(port),
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        reads.engine.dispose()


@app.command("produce-orders")
def produce_orders(
    orders: Annotated[int, typer.Option(min=0, help="fulfilled orders to publish")] = 300,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same events")] = 2,
    duplicates: Annotated[
        float, typer.Option(min=0, max=1, help="ratio of events re-published")
    ] = 0.0,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Publish a sample of orders.OrderFulfilled events (repeat customers, three currencies)."""
    from consumers.kafka.config import producer_config
    from producers import EventPublisher, order_events, with_noise
    from schemas import AvroSerde, SchemaCatalog

    settings = _settings(bootstrap_servers=bootstrap_servers)
    events = with_noise(order_events(orders=orders, seed=seed), duplicate_ratio=duplicates)
    publisher = EventPublisher(producer_config(settings), serde=AvroSerde(SchemaCatalog.load()))
    for ev in events:
        publisher.publish(settings.orders_topic, ev.event_type, ev.record, key=ev.key)
    publisher.flush()
    console.print(f"published {len(events)} events to {settings.orders_topic}")


@app.command("reconcile")
def reconcile_tag_cloud(
    what: Annotated[str, typer.Argument(help="what to reconcile: tag-cloud")],
    repair: Annotated[bool, typer.Option("--repair", help="fix the drift it finds")] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="run every N seconds until SIGTERM [env PROJECTIONIST_RECONCILE_INTERVAL_S]",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print each report as JSON")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Recount the tag cloud from the posts table; report drift (exit 1), --repair fixes it."""
    from projections.reconcile import TagCloudReconciler

    if what != "tag-cloud":
        raise ConfigurationError(f"cannot reconcile {what!r}; known: tag-cloud")
    settings = _settings(database_url=database_url, reconcile_interval_s=interval)
    blog = create_projection("blog", topics=topics_from(settings))
    assert isinstance(blog, BlogProjection)
    engine = make_engine(settings.database_url_value())
    reconciler = TagCloudReconciler(engine=engine, projection=blog)
    stop = StopSignal()
    stop.install()
    drifted = False
    try:
        while True:
            report = reconciler.run(repair=repair)
            drifted = bool(report.drift) and not repair
            if json_out:
                print(json.dumps(report.as_dict()))
            else:
                console.print(report.summary())
            every = settings.reconcile_interval_s
            if every is None or stop.wait(every):
                break
    finally:
        engine.dispose()
    if drifted:
        raise typer.Exit(1)
