"""Command-side commands: ``relay``, ``serve-commands``, ``produce`` and ``produce-orders``.

The command services, outbox and relay live in ``producers``; the composition root
(:mod:`consumers.app`) builds them from the settings.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from consumers.app import build_relay, command_engine, command_services, registry_framing
from consumers.cli.options import BootstrapOpt, command_settings, console, require_broker
from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.observability.exporter import Observability
from consumers.observability.service import RelayMetrics, ServiceHealth, ping_engine
from consumers.runtime.startup import retry_start
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings
from producers.relay import OutboxRelay, RelayStats
from projections import database_errors
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from producers.loadgen import LoadProgress

__all__ = ["produce", "produce_orders", "relay", "serve_commands"]

CommandDbOpt = Annotated[
    str | None,
    typer.Option(
        "--command-database-url",
        help="command services' database (state + outbox) "
        "[env PROJECTIONIST_COMMAND_DATABASE_URL, default PROJECTIONIST_DATABASE_URL]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the final counters as JSON")]


def relay(
    drain: Annotated[
        bool, typer.Option("--drain", help="stop once the outbox has nothing left to publish")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="give up after this many seconds")] = None,
    batch_size: Annotated[int | None, typer.Option(help="outbox rows per round")] = None,
    bootstrap_servers: BootstrapOpt = None,
    command_database_url: CommandDbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Publish the transactional outbox to Kafka, in order per aggregate (several may run).

    SIGTERM or Ctrl-C finishes the round in hand and exits 0.
    """
    settings = command_settings(
        bootstrap_servers=bootstrap_servers,
        command_database_url=command_database_url,
        relay_batch_size=batch_size,
    )
    if drain:  # one-off: a broker away fails now; the service waits it out (probes served)
        require_broker(settings)
    stop = StopSignal()
    stop.install()
    engine = command_engine(settings)
    # /healthz /readyz /metrics on PROJECTIONIST_METRICS_ADDRESS, like a consumer's pod
    obs = Observability(settings.observability)
    health = ServiceHealth(
        "outbox-relay",
        ping_database=lambda: ping_engine(engine),
        stall_timeout_s=settings.observability.stall_timeout_s,
        has_loop=True,
    )
    obs.watch_service(health)
    observer = RelayMetrics(obs.metrics, health, engine, services=("blog", "orders"))
    try:
        obs.start()
        observer.starting()

        def start() -> OutboxRelay:  # topics (broker) and outbox table (database)
            with database_errors():
                return build_relay(settings, engine, stop, observer=observer)

        # A service (a Deployment) waits out an outage at start like one mid-run (and
        # keeps measuring the outbox meanwhile: ProjectionistOutboxBacklog's input); a
        # one-off --drain fails at once with one line instead of waiting forever.
        runner = (
            start()
            if drain
            else retry_start(
                start, what="relay start", loop=settings.loop, stop=stop, waiting=observer.failed
            )
        )
        stats = RelayStats()
        if runner is not None:
            stats = runner.drain(timeout_s=timeout) if drain else runner.run_forever()
            runner.publisher.close()
    finally:
        obs.close()
        engine.dispose()
    if json_out:
        print(json.dumps({"relay": stats.as_dict(), "signal": stop.signal_name}))
        return
    console.print(
        f"relay: published {stats.published:,} events in {stats.rounds:,} rounds "
        f"({stats.rate:,.0f}/s), {stats.retries} retries"
    )


def serve_commands(
    address: Annotated[
        str | None, typer.Option(help="host:port [env PROJECTIONIST_COMMANDS_ADDRESS]")
    ] = None,
    with_relay: Annotated[
        bool, typer.Option("--with-relay", help="also run an outbox relay in this process")
    ] = False,
    bootstrap_servers: BootstrapOpt = None,
    command_database_url: CommandDbOpt = None,
) -> None:
    """Serve the command HTTP API (POST/PUT/DELETE /posts, POST /orders, …/fulfill).

    SIGTERM or Ctrl-C stops accepting requests, finishes those in flight and exits 0.
    """
    import uvicorn

    from consumers.cli.serving import server_config
    from producers.command_api import create_command_app

    settings = command_settings(
        commands_address=address,
        bootstrap_servers=bootstrap_servers,
        command_database_url=command_database_url,
    )
    host, _, port = settings.commands.commands_address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"address {settings.commands.commands_address!r} is not host:port")
    engine = command_engine(settings)
    blog, orders = command_services(settings.topics, engine)
    stop = StopSignal()
    stop.install()
    relay_thread = None
    if with_relay:
        runner = build_relay(settings, engine, stop)
        relay_thread = threading.Thread(target=runner.run_forever, name="relay", daemon=True)
        relay_thread.start()
    server = uvicorn.Server(
        server_config(
            create_command_app(blog=blog, orders=orders),
            host=host,
            port=int(port),
            api=settings.api,
            log_level="warning",
        )
    )
    # Off the main thread uvicorn leaves signals alone (it would re-raise SIGTERM after
    # shutting down and so exit non-zero); our StopSignal decides when it stops.
    http_thread = threading.Thread(target=server.run, name="http", daemon=True)
    http_thread.start()
    try:
        while http_thread.is_alive() and not stop.wait(0.2):
            pass
    finally:
        stop.set()
        server.should_exit = True
        http_thread.join(timeout=settings.loop.shutdown_grace_s)
        if relay_thread is not None:
            relay_thread.join(timeout=settings.loop.shutdown_grace_s)
        engine.dispose()
    if not server.started:
        raise ConfigurationError(f"could not serve on {settings.commands.commands_address}")


def _print_progress(label: str) -> Callable[[LoadProgress], None]:
    def report(p: LoadProgress) -> None:
        refused = f", {p.refused:,} refused" if p.refused else ""
        console.print(
            f"{label}: {p.done:,}/{p.total:,} in {p.elapsed_s:,.1f} s → {p.rate:,.0f}/s{refused}"
        )

    return report


def produce(
    count: Annotated[int, typer.Option(min=1, help="commands (or events) to produce")] = 10_000,
    via: Annotated[
        str,
        typer.Option(
            help="'commands': the command services + outbox + relay; 'publisher': raw events"
        ),
    ] = "commands",
    rate: Annotated[
        float, typer.Option(min=0, help="target operations per second (0: unlimited)")
    ] = 0.0,
    duplicates: Annotated[
        float, typer.Option(min=0, max=1, help="publisher: ratio of events re-published")
    ] = 0.0,
    out_of_order: Annotated[
        float, typer.Option(min=0, max=1, help="publisher: ratio of stale edits sent late")
    ] = 0.0,
    relay_after: Annotated[
        bool, typer.Option("--relay/--no-relay", help="commands: publish the outbox too")
    ] = True,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same load")] = 1,
    ids_file: Annotated[
        Path | None,
        typer.Option(
            "--ids-file",
            help="commands: write ids to try queries with (POST_ID=…, one per line, "
            "for `. ./file`)",
        ),
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    command_database_url: CommandDbOpt = None,
) -> None:
    """Generate realistic load (Zipf-like tags, repeat customers) and print the throughput.

    Through the command services it ends with ids to try the query API with: a live
    post (its version and a tag), an order (its fulfilment event id) and its customer.
    """
    mode: Literal["commands", "publisher"]
    if via == "commands":
        mode = "commands"
    elif via == "publisher":
        mode = "publisher"
    else:
        raise ConfigurationError(f"--via {via!r}: use 'commands' or 'publisher'")
    settings = command_settings(
        bootstrap_servers=bootstrap_servers, command_database_url=command_database_url
    )
    if mode == "publisher" or relay_after:
        require_broker(settings)
    if mode == "publisher":
        if ids_file is not None:
            raise ConfigurationError("--ids-file needs --via commands (the ids come from them)")
        _produce_raw(settings, count, rate, duplicates, out_of_order, seed)
        return
    from producers.loadgen import drive_commands

    engine = command_engine(settings)
    try:
        blog, orders = command_services(settings.topics, engine)
        done = drive_commands(
            blog, orders, count=count, rate=rate, seed=seed, report=_print_progress("commands")
        )
        console.print(f"commands done: {done.done:,} at {done.rate:,.0f}/s")
        ids = " ".join(f"{k}={v}" for k, v in done.examples.items())
        console.print(f"ids to try: {ids}", soft_wrap=True, markup=False, highlight=False)
        if ids_file is not None:
            _write_ids(ids_file, done.examples)
        if relay_after:
            runner = build_relay(settings, engine, None)
            stats = runner.drain()
            runner.publisher.close()
            console.print(
                f"relay: published {stats.published:,} events at {stats.rate:,.0f}/s "
                f"to {settings.topics.blog_topic} and {settings.topics.orders_topic}"
            )
    finally:
        engine.dispose()


def _write_ids(path: Path, ids: Mapping[str, str]) -> None:
    try:
        path.write_text("".join(f"{k}={v}\n" for k, v in ids.items()))
    except OSError as exc:
        raise ConfigurationError(f"--ids-file {path}: {exc.strerror or exc}") from None


def _produce_raw(
    settings: Settings, count: int, rate: float, duplicates: float, stale: float, seed: int
) -> None:
    from producers import EventPublisher
    from producers.loadgen import drive_publisher, noisy_sample
    from schemas import AvroSerde, SchemaCatalog

    events = noisy_sample(count=count, duplicates=duplicates, out_of_order=stale, seed=seed)
    topics = {"blog": settings.topics.blog_topic, "orders": settings.topics.orders_topic}
    ensure_topics(
        client_config(settings.kafka), topics.values(), partitions=settings.topics.topic_partitions
    )
    publisher = EventPublisher(
        producer_config(settings.kafka),
        serde=AvroSerde(SchemaCatalog.load()),
        framing=registry_framing(settings.registry),
    )
    done = drive_publisher(
        publisher, events, topic_for=topics.__getitem__, rate=rate, report=_print_progress("events")
    )
    console.print(f"published {done.done:,} events at {done.rate:,.0f}/s")


def produce_orders(
    orders: Annotated[int, typer.Option(min=0, help="fulfilled orders to publish")] = 300,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same events")] = 2,
    duplicates: Annotated[
        float, typer.Option(min=0, max=1, help="ratio of events re-published")
    ] = 0.0,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Publish a sample of orders.OrderFulfilled events (repeat customers, three currencies)."""
    from producers import EventPublisher, order_events, with_noise
    from schemas import AvroSerde, SchemaCatalog

    settings = command_settings(bootstrap_servers=bootstrap_servers)
    require_broker(settings)
    events = with_noise(order_events(orders=orders, seed=seed), duplicate_ratio=duplicates)
    publisher = EventPublisher(
        producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
    )
    for ev in events:
        publisher.publish(settings.topics.orders_topic, ev.event_type, ev.record, key=ev.key)
    publisher.flush()
    console.print(f"published {len(events)} events to {settings.topics.orders_topic}")
