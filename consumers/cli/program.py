"""The ``projectionist`` program: every command and group is registered here, in one place.

The command functions live in one module per group (``run``, ``demo``, ``commands``,
``read``, ``rebuild``, ``replay``, ``status``, ``pause``, ``schema_check``, ``dlq``) and know
nothing of this app: the registration below is explicit (celery's ``add_command``
shape), so importing a command module has no side effect. User mistakes end with a
one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

import typer
import typer.core
import typer.rich_utils
from confluent_kafka import KafkaError, KafkaException
from rich.console import Console
from rich.markup import escape

from consumers.cli import (
    commands,
    demo,
    dlq,
    pause,
    read,
    rebuild,
    replay,
    run,
    schema_check,
    status,
)
from schemas.errors import ConfigurationError, DataLossError, ProjectionistError

__all__ = ["app", "dlq_app", "main", "readable_help", "schemas_app"]


def readable_help() -> None:
    """Help that shows every option whole.

    * Flags take no value, yet typer 0.29 prints their Python type (``<bool>``) in a
      column of its own; shown for options with a value only.
    * Help text is Markdown, not rich markup: ``[env PROJECTIONIST_X]`` stays visible
      (rich would take it for a style tag and drop it), and paragraphs are reflowed.
    * rich renders 80 columns when the output is not a terminal (a pipe, a file, CI
      logs) and cuts long option names with "…" in narrow terminals: at least
      ``_HELP_MIN_WIDTH`` columns unless ``TERMINAL_WIDTH`` says otherwise.
    """
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "_flags_untyped", False):
        return  # already done (tests call main() and this more than once)

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich._flags_untyped = True  # type: ignore[attr-defined]
    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    if typer.rich_utils.MAX_WIDTH is None:
        typer.rich_utils.MAX_WIDTH = max(shutil.get_terminal_size().columns, _HELP_MIN_WIDTH)


_HELP_MIN_WIDTH = 120

app = typer.Typer(
    name="projectionist",
    rich_markup_mode="markdown",
    help=(
        "The read side of CQRS on Kafka: fold Avro events into exactly-once SQL read models.\n\n"
        "Settings come from PROJECTIONIST_* environment variables; flags override them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order here is the order of `projectionist --help`.
app.command()(demo.demo)
app.command()(run.consume)
app.command()(run.topics)
app.command()(run.projections)
app.command()(run.broker)
app.command()(commands.relay)
app.command("serve-commands")(commands.serve_commands)
app.command()(commands.produce)
app.command()(read.serve)
app.command("produce-orders")(commands.produce_orders)
app.command("reconcile")(read.reconcile_tag_cloud)
app.command()(rebuild.rebuild)
app.command()(rebuild.rollback)
app.command()(rebuild.cleanup)
app.command()(replay.replay)
app.command()(status.status)
app.command()(pause.pause)
app.command()(pause.resume)

schemas_app = typer.Typer(help=schema_check.HELP, no_args_is_help=True)
schemas_app.command("check")(schema_check.schemas_check)
app.add_typer(schemas_app, name="schemas")

dlq_app = typer.Typer(help=dlq.HELP, no_args_is_help=True)
dlq_app.command("list")(dlq.list_)
dlq_app.command()(dlq.show)
dlq_app.command()(dlq.replay)
dlq_app.command()(dlq.unpark)
dlq_app.command()(dlq.skip)
dlq_app.command()(dlq.purge)
app.add_typer(dlq_app, name="dlq")


def main() -> None:
    readable_help()
    # Messages are shown as written: "[projections.x]" or "module:attr" must not be read
    # as rich markup or emoji codes.
    err = Console(stderr=True, soft_wrap=True, emoji=False)
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None or error.code() != KafkaError._INVALID_ARG:
            raise
        # librdkafka refuses its configuration when a client is created: a TLS file that
        # is missing or unreadable, a value out of its range. A user mistake (exit 2).
        err.print(f"[red]error:[/] the Kafka client refuses its settings: {escape(error.str())}")
        sys.exit(2)
    except DataLossError as exc:
        err.print(f"[red]data loss detected:[/] {escape(str(exc))}")
        sys.exit(3)
    except ProjectionistError as exc:
        err.print(f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))}")
        sys.exit(1)
