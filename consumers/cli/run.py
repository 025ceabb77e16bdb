"""Running consumers: ``consume`` (a projection's group), ``topics`` and ``broker``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from consumers.cli.options import BootstrapOpt, DatabaseOpt, command_settings, console
from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config
from consumers.runtime.stop import StopSignal
from projections import projection_names

__all__ = ["broker", "consume", "topics"]


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
    from consumers.operations.live import run_live

    settings = command_settings(
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        batch_max_messages=batch_max_messages,
        group_instance_id=group_instance_id,
    )
    stop = StopSignal()
    stop.install()
    # Metrics, /healthz and /readyz on PROJECTIONIST_METRICS_ADDRESS when set; the
    # runner is rebuilt after a swap or rollback, and the new one is watched instead.
    obs = Observability(settings.observability)
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


def topics(
    bootstrap_servers: BootstrapOpt = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="partitions per new topic")] = None,
) -> None:
    """Create the event topics and their dead-letter topics if they do not exist."""
    settings = command_settings(bootstrap_servers=bootstrap_servers, topic_partitions=partitions)
    names = [settings.topics.blog_topic, settings.topics.orders_topic]
    names += [n + settings.topics.dlq_suffix for n in names]
    created = ensure_topics(
        client_config(settings.kafka), names, partitions=settings.topics.topic_partitions
    )
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


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
