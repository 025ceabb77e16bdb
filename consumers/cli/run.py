"""Running consumers: ``consume`` (one projection's group), ``topics``, ``projections``,
``broker``."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Annotated, Any

import structlog
import typer

from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    JsonOpt,
    ProjectionArg,
    command_settings,
    console,
    require_broker,
)
from consumers.cli.progress import DrainProgress
from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config
from consumers.runtime.stop import StopSignal

__all__ = ["broker", "consume", "projections", "topics"]


def consume(
    projection: ProjectionArg,
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
        bool, typer.Option("--json", help="print the final counters as one JSON line")
    ] = False,
) -> None:
    """Run one projection's consumer group: forever (a service), or to the end with --drain.

    With --drain on a terminal, a progress line shows the group join, then events/s and
    the lag left. SIGTERM or Ctrl-C finishes the batch in hand, commits it, leaves the
    group and exits 0.
    """
    from consumers.app import projection_registry
    from consumers.observability.exporter import Observability
    from consumers.observability.service import ServiceHealth
    from consumers.operations.live import run_live
    from consumers.operations.status import StatusReport

    settings = command_settings(
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        batch_max_messages=batch_max_messages,
        group_instance_id=group_instance_id,
    )
    registry = projection_registry(settings)
    registry.create(projection)  # an unknown name fails here, before any connection
    if drain:  # one-off: a broker away fails now; the service waits it out (probes served)
        require_broker(settings)
    stop = StopSignal()
    stop.install()
    # Metrics, /healthz and /readyz on PROJECTIONIST_METRICS_ADDRESS when set; the
    # runner is rebuilt after a swap or rollback, and the new one is watched instead.
    obs = Observability(settings.observability)
    # Until the first runner is built (the database may be away at start): alive, not ready.
    starting = ServiceHealth(projection, has_loop=True, stall_timeout_s=float("inf"))
    obs.watch_service(starting)
    # the name until the runner binds its slot (the generation needs the database)
    structlog.contextvars.bind_contextvars(projection=projection)
    progress = DrainProgress(projection) if drain else None
    started = time.monotonic()
    obs.status = StatusReport(settings, registry).document  # GET /status from the start
    try:
        obs.start()
        with progress or nullcontext():
            stats = run_live(
                settings,
                projection,
                stop=stop,
                drain=drain,
                timeout_s=timeout,
                build=obs.build_runner,
                projections=registry,
                on_batch=progress,
                waiting=starting.beat,
            )
    finally:
        obs.close()
    seconds = time.monotonic() - started
    if json_out:
        summary = {"projection": projection, "signal": stop.signal_name, **stats.as_dict()}
        summary |= {"seconds": round(seconds, 3), "drain": drain}
        print(json.dumps(summary))
        return
    console.print(
        f"{projection}: consumed {stats.consumed:,}, applied {stats.applied:,}, "
        f"skipped {stats.duplicates_skipped:,} duplicates, {stats.stale:,} stale, "
        f"dead-lettered {stats.dead_lettered:,} in {seconds:.1f} s"
        + (" (caught up)" if drain and stop.signal_name is None else ""),
        soft_wrap=True,
    )


def topics(
    bootstrap_servers: BootstrapOpt = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="partitions per new topic")] = None,
) -> None:
    """Create every projection's topics and their dead-letter topics if they do not exist."""
    from consumers.app import dead_letter_topics, projection_registry

    settings = command_settings(bootstrap_servers=bootstrap_servers, topic_partitions=partitions)
    require_broker(settings)
    registry = projection_registry(settings)
    names = registry.topics()
    names += [
        dlq
        for n in registry.names()
        for dlq in dead_letter_topics(settings.topics, registry.create(n))
    ]
    created = ensure_topics(
        client_config(settings.kafka), names, partitions=settings.topics.topic_partitions
    )
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


def projections(json_out: JsonOpt = False) -> None:
    """List the projections this process knows: shipped, and yours (entry points, settings)."""
    from consumers.app import projection_registry

    registry = projection_registry(command_settings())
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        p = registry.create(name)
        tables = sorted(t.name.removesuffix(f"_v{p.generation}") for t in p.tables())
        rows.append(
            {
                "projection": name,
                "version": p.version,
                "topics": list(p.topics),
                "tables": tables,
                "origin": registry.origin(name),
            }
        )
    if json_out:
        print(json.dumps({"projections": rows}))
        return
    for r in rows:
        console.print(
            f"{r['projection']} v{r['version']}: topics {', '.join(r['topics'])}; "
            f"tables {', '.join(r['tables'])} ({r['origin']})",
            soft_wrap=True,
        )


def broker(
    port: Annotated[
        int | None, typer.Option(help="port on 127.0.0.1 (default: a free one)")
    ] = None,
) -> None:
    """Run the embedded Tansu broker in the foreground (memory only) until Ctrl-C.

    Prints the settings to export in the shell that runs ``consume`` (or ``eval`` them):
    the bootstrap address, and the session timeout and assignment strategy that make
    a group join take ~3 s on this broker instead of ~23 s with the defaults.
    """
    from consumers.kafka.broker import EMBEDDED_CONSUMER_SETTINGS, EmbeddedBroker

    stop = StopSignal()
    stop.install()
    with EmbeddedBroker(port=port) as b:
        console.print(f"export PROJECTIONIST_BOOTSTRAP_SERVERS={b.bootstrap_servers}")
        for name, value in EMBEDDED_CONSUMER_SETTINGS.items():
            console.print(f"export PROJECTIONIST_{name.upper()}={value}")
        while not stop.wait(1.0):
            pass
