"""The ``projectionist`` command.

Every command reads the same typed settings (``PROJECTIONIST_*`` environment variables)
and lets flags override them. User mistakes end with a one-line message and exit code
2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from consumers.kafka.config import client_config, ensure_topics
from consumers.observability.logs import configure_logging
from consumers.runtime.runner import StopSignal
from consumers.settings.models import Settings, load_settings
from projections import projection_names
from schemas.errors import ConfigurationError, DataLossError, ProjectionistError

__all__ = ["app", "main"]

app = typer.Typer(
    name="projectionist",
    help=(
        "The read side of CQRS on Kafka: fold Avro events into exactly-once SQL read models.\n\n"
        "Settings come from PROJECTIONIST_* environment variables; flags override them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka bootstrap servers [env PROJECTIONIST_BOOTSTRAP_SERVERS]",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", "-d", help="read-model database URL [env PROJECTIONIST_DATABASE_URL]"
    ),
]
console = Console(stderr=False)


def _settings(**overrides: object) -> Settings:
    settings = load_settings(**overrides)
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return settings


@app.command()
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
    from consumers.cli.demo import run_demo

    settings = _settings(
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
    stop = StopSignal()
    stop.install()
    raise typer.Exit(run_demo(settings, commands=commands, console=console, stop=stop))


@app.command()
def consume(
    projection: Annotated[
        str, typer.Argument(help=f"projection to run: {', '.join(projection_names())}")
    ],
    drain: Annotated[
        bool, typer.Option("--drain", help="stop once caught up with the high watermark")
    ] = False,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    batch_max_messages: Annotated[
        int | None, typer.Option(help="messages per batch (transaction)")
    ] = None,
    group_instance_id: Annotated[
        str | None, typer.Option(help="static membership id, e.g. the pod name")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="with --drain: give up after this many seconds")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the final counters as JSON")
    ] = False,
) -> None:
    """Run one projection's consumer group: forever (a service), or to the end with --drain.

    SIGTERM or Ctrl-C finishes the batch in hand, commits it, leaves the group and exits 0.
    """
    from consumers.observability.exporter import Observability
    from consumers.runtime.control import run_live

    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        batch_max_messages=batch_max_messages,
        group_instance_id=group_instance_id,
    )
    stop = StopSignal()
    stop.install()
    # Metrics, /healthz and /readyz on PROJECTIONIST_METRICS_ADDRESS when set; the
    # runner is rebuilt after a swap or rollback, and the new one is watched instead.
    obs = Observability(settings)
    try:
        stats = run_live(
            settings, projection, stop=stop, drain=drain, timeout_s=timeout, build=obs.build_runner
        )
    finally:
        obs.close()
    if json_out:
        print(json.dumps({"projection": projection, "signal": stop.signal_name, **stats.as_dict()}))
        return
    console.print(
        f"{projection}: consumed {stats.consumed}, applied {stats.applied}, "
        f"skipped {stats.duplicates_skipped} duplicates, {stats.stale} stale, "
        f"dead-lettered {stats.dead_lettered}"
    )


@app.command()
def topics(
    bootstrap_servers: BootstrapOpt = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="partitions per new topic")] = None,
) -> None:
    """Create the event topics and their dead-letter topics if they do not exist."""
    settings = _settings(bootstrap_servers=bootstrap_servers, topic_partitions=partitions)
    names = [settings.blog_topic, settings.orders_topic]
    names += [n + settings.dlq_suffix for n in names]
    created = ensure_topics(client_config(settings), names, partitions=settings.topic_partitions)
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@app.command()
def broker(
    port: Annotated[
        int | None, typer.Option(help="port on 127.0.0.1 (default: a free one)")
    ] = None,
) -> None:
    """Run the embedded Tansu broker in the foreground (memory only) until Ctrl-C."""
    from consumers.kafka.broker import EmbeddedBroker

    stop = StopSignal()
    stop.install()
    with EmbeddedBroker(port=port) as b:
        console.print(f"export PROJECTIONIST_BOOTSTRAP_SERVERS={b.bootstrap_servers}")
        while not stop.wait(1.0):
            pass


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except DataLossError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]data loss detected:[/] {exc}")
        sys.exit(3)
    except ProjectionistError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        sys.exit(1)


# Command modules register themselves on ``app`` when imported.
import consumers.cli.commands  # noqa: E402
import consumers.cli.dlq  # noqa: E402
import consumers.cli.read  # noqa: E402
import consumers.cli.rebuild  # noqa: E402,F401
