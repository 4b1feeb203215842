"""`kefu wecom sync`: WeCom customer contact (external contacts and groups)."""

from __future__ import annotations

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group()
def wecom() -> None:
    """WeCom (企业微信) customer contact: the shop's external contacts in the CRM."""


@wecom.command("sync")
@config_option
@click.option("--channel", "channel_name", default=None, help="The wecom channel (default: the only one).")
def wecom_sync(config: Config, channel_name: str | None) -> None:
    """Every external contact of every employee with customer contact into the CRM (merged with
    a 公众号 customer by unionid), then every customer group (客户群) into kefu's groups; safe to
    run again: it creates only what is new."""
    from adapters.api_client import ApiError
    from adapters.wecom import blocking_fetch
    from bot.crm import wecom_groups
    from bot.crm.wecom_contacts import SyncError, sync

    channels = [c for c in config.channels if c.kind == "wecom" and (channel_name in (None, c.name))]
    if not channels:
        raise click.ClickException(f"no wecom channel {channel_name!r} in the config" if channel_name
                                   else "no wecom channel in the config")
    if len(channels) > 1:
        names = ", ".join(c.name for c in channels)
        raise click.ClickException(f"several wecom channels ({names}): choose one with --channel")
    open_db(config)
    try:
        report = sync(channels[0].name, blocking_fetch(channels[0]))
    except (SyncError, ApiError) as exc:
        raise click.ClickException(f"{exc} (contacts synced before it are kept)") from None
    click.echo(f"{channels[0].name}: {report.contacts} contacts of {report.follow_users} employees, "
               f"{report.created} new customers, {report.merged} merged by unionid")
    try:
        groups = wecom_groups.sync(channels[0].name, blocking_fetch(channels[0]))
    except (SyncError, ApiError) as exc:
        raise click.ClickException(f"{exc} (contacts and the groups synced before it are kept)") from None
    click.echo(f"{channels[0].name}: {groups.groups} customer groups ({groups.created} new), "
               f"{groups.members} customer members")
