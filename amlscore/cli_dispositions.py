"""`amlscore dispositions import`: investigators' past decisions, in bulk."""

from __future__ import annotations

from pathlib import Path

import click

from amlscore.cli_common import app_context
from amlscore.failures import one_line_errors


@click.group()
def dispositions() -> None:
    """Investigators' decisions on alerts (the labels they make)."""


@dispositions.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@one_line_errors
def import_file(file: Path) -> None:
    """Store every decision of FILE (.parquet or .csv), or none when a row is not valid."""
    from batch.dispositions_import import import_decisions
    ctx = app_context()
    stored = import_decisions(ctx.dispositions, file)
    click.echo(f"imported {stored} decisions from {file} into {ctx.target.describe()}")


COMMANDS = (dispositions,)
