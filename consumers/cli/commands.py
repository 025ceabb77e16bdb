"""Command-side commands: ``relay``, ``serve-commands``, ``produce`` and ``schemas check``.

Registered on the one ``projectionist`` app (``consumers.cli`` imports this module).
The command services, outbox and relay live in ``producers``; this module only wires
settings to them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from consumers.cli import BootstrapOpt, _settings, app, console
from consumers.kafka.config import client_config, ensure_topics, producer_config
from consumers.runtime.runner import StopSignal
from consumers.settings.models import Settings
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from producers import BlogService, OrderService, OutboxRelay
    from producers.loadgen import LoadProgress
    from producers.relay import Stopper

__all__ = ["schemas_app"]

CommandDbOpt = Annotated[
    str | None,
    typer.Option(
        "--command-database-url",
        help="command services' database (state + outbox) "
        "[env PROJECTIONIST_COMMAND_DATABASE_URL, default PROJECTIONIST_DATABASE_URL]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the final counters as JSON")]

schemas_app = typer.Typer(help="Inspect and check the Avro schema files.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


def _command_engine(settings: Settings) -> Engine:
    from projections import make_engine

    return make_engine(settings.command_database_url_value())


def _services(settings: Settings, engine: Engine) -> tuple[BlogService, OrderService]:
    from producers import BlogService, OrderService, Outbox, create_command_tables
    from schemas import AvroSerde, SchemaCatalog

    outbox = Outbox(tables=create_command_tables(engine), serde=AvroSerde(SchemaCatalog.load()))
    return (
        BlogService(engine, outbox=outbox, topic=settings.blog_topic),
        OrderService(engine, outbox=outbox, topic=settings.orders_topic),
    )


def _framing(settings: Settings) -> Callable[[bytes], bytes] | None:
    if not settings.schema_registry_url:
        return None
    from producers.schema_registry import RegistryFraming, registry_client
    from schemas import SchemaCatalog

    return RegistryFraming(
        registry_client(settings.schema_registry_url),
        SchemaCatalog.load(),
        auto_register=settings.schema_registry_auto_register,
    )


def _relay(settings: Settings, engine: Engine, stop: Stopper | None) -> OutboxRelay:
    from producers import EventPublisher, OutboxRelay, RelaySettings
    from producers.command_tables import CommandTables
    from schemas import AvroSerde, SchemaCatalog

    ensure_topics(
        client_config(settings),
        [settings.blog_topic, settings.orders_topic],
        partitions=settings.topic_partitions,
    )
    publisher = EventPublisher(producer_config(settings), serde=AvroSerde(SchemaCatalog.load()))
    tables = CommandTables()
    tables.create(engine)
    return OutboxRelay(
        engine,
        publisher=publisher,
        tables=tables,
        settings=RelaySettings(
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            pause_after_ack_s=settings.relay_pause_after_ack_s,
        ),
        framing=_framing(settings),
        stop=stop,
    )


@app.command()
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
    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        command_database_url=command_database_url,
        relay_batch_size=batch_size,
    )
    stop = StopSignal()
    stop.install()
    engine = _command_engine(settings)
    try:
        runner = _relay(settings, engine, stop)
        stats = runner.drain(timeout_s=timeout) if drain else runner.run_forever()
        runner.publisher.close()
    finally:
        engine.dispose()
    if json_out:
        print(json.dumps({"relay": stats.as_dict(), "signal": stop.signal_name}))
        return
    console.print(
        f"relay: published {stats.published:,} events in {stats.rounds:,} rounds "
        f"({stats.rate:,.0f}/s), {stats.retries} retries"
    )


@app.command("serve-commands")
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

    from producers.command_api import create_command_app

    settings = _settings(
        commands_address=address,
        bootstrap_servers=bootstrap_servers,
        command_database_url=command_database_url,
    )
    host, _, port = settings.commands_address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"address {settings.commands_address!r} is not host:port")
    engine = _command_engine(settings)
    blog, orders = _services(settings, engine)
    stop = StopSignal()
    stop.install()
    relay_thread = None
    if with_relay:
        runner = _relay(settings, engine, stop)
        relay_thread = threading.Thread(target=runner.run_forever, name="relay", daemon=True)
        relay_thread.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_command_app(blog=blog, orders=orders),
            host=host,
            port=int(port),
            log_level="warning",
            access_log=False,
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
        http_thread.join(timeout=settings.shutdown_grace_s)
        if relay_thread is not None:
            relay_thread.join(timeout=settings.shutdown_grace_s)
        engine.dispose()
    if not server.started:
        raise ConfigurationError(f"could not serve on {settings.commands_address}")


def _print_progress(label: str) -> Callable[[LoadProgress], None]:
    def report(p: LoadProgress) -> None:
        refused = f", {p.refused:,} refused" if p.refused else ""
        console.print(
            f"{label}: {p.done:,}/{p.total:,} in {p.elapsed_s:,.1f} s → {p.rate:,.0f}/s{refused}"
        )

    return report


@app.command()
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
    bootstrap_servers: BootstrapOpt = None,
    command_database_url: CommandDbOpt = None,
) -> None:
    """Generate realistic load (Zipf-like tags, repeat customers) and print the throughput."""
    mode: Literal["commands", "publisher"]
    if via == "commands":
        mode = "commands"
    elif via == "publisher":
        mode = "publisher"
    else:
        raise ConfigurationError(f"--via {via!r}: use 'commands' or 'publisher'")
    settings = _settings(
        bootstrap_servers=bootstrap_servers, command_database_url=command_database_url
    )
    if mode == "publisher":
        _produce_raw(settings, count, rate, duplicates, out_of_order, seed)
        return
    from producers.loadgen import drive_commands

    engine = _command_engine(settings)
    try:
        blog, orders = _services(settings, engine)
        done = drive_commands(
            blog, orders, count=count, rate=rate, seed=seed, report=_print_progress("commands")
        )
        console.print(f"commands done: {done.done:,} at {done.rate:,.0f}/s")
        if relay_after:
            runner = _relay(settings, engine, None)
            stats = runner.drain()
            runner.publisher.close()
            console.print(
                f"relay: published {stats.published:,} events at {stats.rate:,.0f}/s "
                f"to {settings.blog_topic} and {settings.orders_topic}"
            )
    finally:
        engine.dispose()


def _produce_raw(
    settings: Settings, count: int, rate: float, duplicates: float, stale: float, seed: int
) -> None:
    from producers import EventPublisher
    from producers.loadgen import drive_publisher, noisy_sample
    from schemas import AvroSerde, SchemaCatalog

    events = noisy_sample(count=count, duplicates=duplicates, out_of_order=stale, seed=seed)
    topics = {"blog": settings.blog_topic, "orders": settings.orders_topic}
    ensure_topics(client_config(settings), topics.values(), partitions=settings.topic_partitions)
    publisher = EventPublisher(
        producer_config(settings),
        serde=AvroSerde(SchemaCatalog.load()),
        framing=_framing(settings),
    )
    done = drive_publisher(
        publisher, events, topic_for=topics.__getitem__, rate=rate, report=_print_progress("events")
    )
    console.print(f"published {done.done:,} events at {done.rate:,.0f}/s")


@schemas_app.command("check")
def schemas_check(
    path: Annotated[
        Path | None, typer.Option(help="schema folder (default: the shipped schemas)")
    ] = None,
) -> None:
    """Check every schema version is backward- and forward-compatible with its earlier ones."""
    from schemas import SchemaCatalog, check_catalog

    catalog = SchemaCatalog.load(path)
    files = sum(1 for _ in catalog)
    pairs, problems = check_catalog(catalog)
    if problems:
        for problem in problems:
            console.print(f"[red]INCOMPATIBLE[/] {problem.describe()}", soft_wrap=True)
        console.print(
            f"{len(problems)} incompatibilit{'y' if len(problems) == 1 else 'ies'} in "
            f"{pairs} version pairs of {files} schema files"
        )
        raise typer.Exit(1)
    console.print(
        f"{files} schema files, {pairs} version pairs: all backward and forward compatible"
    )
