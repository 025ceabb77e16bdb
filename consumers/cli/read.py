"""The read-side commands: ``serve`` (the query API) and ``reconcile`` (tag-cloud drift)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import Connection

from consumers.app import build_read_models, topics_from
from consumers.cli.options import DatabaseOpt, command_settings, console
from consumers.runtime.stop import StopSignal
from projections import (
    BlogProjection,
    Topics,
    create_projection,
    make_engine,
)
from projections.generations.versions import active_generations
from schemas.errors import ConfigurationError

__all__ = ["reconcile_tag_cloud", "serve"]


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

    from consumers.cli.serving import server_config
    from projections.query.api import create_app

    settings = command_settings(
        api_address=address, database_url=database_url, api_read_only=read_only
    )
    reads = build_read_models(
        settings.database, settings.topics, read_only=settings.api.api_read_only
    )
    host, _, port = settings.api.api_address.rpartition(":")
    from consumers.app import projection_registry
    from consumers.operations.status import StatusReport

    api = create_app(
        reads,
        wait_timeout_s=settings.api.api_wait_timeout_s,
        max_limit=settings.api.api_max_limit,
        status=StatusReport(settings, projection_registry(settings)).document,
    )
    console.print(f"query API on http://{settings.api.api_address} (OpenAPI at /docs)")
    try:
        uvicorn.Server(
            server_config(
                api,
                host=host.strip("[]"),
                port=int(port),
                api=settings.api,
                log_level=settings.observability.log_level.lower(),
            )
        ).run()
    finally:
        reads.engine.dispose()


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
    settings = command_settings(database_url=database_url, reconcile_interval_s=interval)
    topics = topics_from(settings.topics)
    blog = _blog(topics, None)
    engine = make_engine(settings.database.url())

    def active_blog(conn: Connection) -> BlogProjection:
        """The generation queries read now: reconcile checks what the API serves."""
        generation = active_generations(conn, {"blog": blog.version})["blog"]
        return blog if generation == blog.generation else _blog(topics, generation)

    reconciler = TagCloudReconciler(engine=engine, projection=blog, follow=active_blog)
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
            every = settings.reconcile.reconcile_interval_s
            if every is None or stop.wait(every):
                break
    finally:
        engine.dispose()
    if drifted:
        raise typer.Exit(1)


def _blog(topics: Topics, generation: int | None) -> BlogProjection:
    blog = create_projection("blog", topics=topics, generation=generation)
    assert isinstance(blog, BlogProjection)
    return blog
