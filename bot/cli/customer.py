"""`kefu customer ...`: one customer's data exported or erased (PIPL requests)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group()
def customer() -> None:
    """A customer's data on request: export or erase (被遗忘权)."""


@customer.command("export")
@config_option
@click.argument("customer_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
def customer_export(config: Config, customer_id: int, file: str) -> None:
    """Write everything kefu holds about CUSTOMER_ID to FILE as JSON."""
    from bot.crm.erasure import export
    from bot.core.models import Customer

    open_db(config)
    if Customer.get_or_none(Customer.id == customer_id) is None:
        raise click.ClickException(f"no customer #{customer_id}")
    Path(file).write_text(json.dumps(export(customer_id), ensure_ascii=False, indent=2), encoding="utf-8")
    click.echo(f"exported customer #{customer_id} to {file}")


@customer.command("erase")
@config_option
@click.argument("customer_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def customer_erase(config: Config, customer_id: int, yes: bool) -> None:
    """Erase CUSTOMER_ID's personal data; messages stay, anonymized, for the KPIs."""
    from bot.crm.erasure import erase
    from bot.core.models import Customer

    open_db(config)
    if Customer.get_or_none(Customer.id == customer_id) is None:
        raise click.ClickException(f"no customer #{customer_id}")
    if not yes:
        click.confirm(f"erase customer #{customer_id}? This cannot be undone", abort=True)
    counts = erase(customer_id)
    click.echo(f"erased customer #{customer_id}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
