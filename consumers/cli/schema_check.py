"""``projectionist schemas check``: every schema version resolves with its earlier ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from consumers.cli.options import console

__all__ = ["HELP", "schemas_check"]

HELP = "Inspect and check the Avro schema files."


def schemas_check(
    path: Annotated[
        Path | None,
        typer.Option(
            help="check this folder alone (default: the shipped schemas and yours, "
            "PROJECTIONIST_SCHEMA_PATHS and installed packages)"
        ),
    ] = None,
) -> None:
    """Check every schema version is backward- and forward-compatible with its earlier ones.

    Loading them also checks that your schemas do not clash with the shipped ones or with
    each other (one line per problem, exit 2).
    """
    from consumers.app import schema_catalog
    from consumers.cli.options import command_settings
    from schemas import SchemaCatalog, check_catalog

    catalog = (
        SchemaCatalog.load(path)
        if path is not None
        else schema_catalog(command_settings().extensions)
    )
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
