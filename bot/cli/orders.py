"""`kefu orders import`: orders from a shop's export."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group()
def orders() -> None:
    """Orders from the shop system (live ones arrive on POST /api/orders)."""


@orders.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def orders_import(config: Config, file: str) -> None:
    """Import historical orders from a CSV FILE; bad rows are reported, good rows imported."""
    from bot.crm.order_import import ImportFileError, import_file

    open_db(config)
    try:
        report = import_file(file, config.timezone, {c.name for c in config.channels})
    except ImportFileError as exc:
        raise click.ClickException(f"{exc} (nothing was imported)") from None
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "none"
    click.echo(f"{Path(file).name}: {report.rows} rows, {report.imported} imported ({outcomes}), "
               f"{report.matched} linked to a customer, {len(report.errors)} with errors")
    for error in report.errors:
        click.echo(f"  {error}", err=True)
    if report.errors:
        sys.exit(1)
