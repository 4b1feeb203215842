"""`kefu campaign ...`: list campaigns and change their state."""

from __future__ import annotations

import json

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group()
def campaign() -> None:
    """Group campaigns (群发): list, test-send, schedule, pause, resume, cancel."""


@campaign.command("list")
@config_option
def campaign_list(config: Config) -> None:
    """List campaigns with their state and the current run's progress."""
    from bot.campaigns import runs, targets as campaign_targets
    from bot.core.models import Campaign

    open_db(config)
    # read them all first: `progress` writes (it syncs outcomes), and on SQLite a write while
    # this SELECT's cursor is still open fails at once if `kefu serve` committed meanwhile
    rows = list(Campaign.select().order_by(Campaign.id))
    if not rows:
        click.echo("no campaigns yet: create one in the admin panel (营销 → 群发活动)", err=True)
    kinds = {ch.name: ch.kind for ch in config.channels}
    for c in rows:
        shown: dict[str, object] = {"id": c.id, "name": c.name, "status": c.status,
                                    "target": f"{c.target_kind}:{c.target_value}", "cron": c.cron, "run": c.run_key,
                                    "progress": runs.progress(c)}
        if c.status in ("draft", "scheduled"):  # before sending: who each path would reach
            try:
                shown["paths"] = runs.paths(c, kinds)
            except campaign_targets.CampaignError as exc:
                shown["paths"] = str(exc)
        click.echo(json.dumps(shown, ensure_ascii=False))


@campaign.command("change")
@config_option
@click.argument("action", type=click.Choice(["test", "schedule", "pause", "resume", "cancel", "resend-in-doubt"]))
@click.argument("campaign_id", type=int)
@click.option("--yes", is_flag=True, help="resend-in-doubt: do not ask to confirm the risk of doubles.")
def campaign_change(config: Config, action: str, campaign_id: int, yes: bool) -> None:
    """ACTION on CAMPAIGN_ID: test (send to the agents), schedule, pause, resume, cancel, or
    resend-in-doubt (send again the sends whose outcome a crash left unknown)."""
    from bot.campaigns import runs, targets as campaign_targets
    from bot.core.models import Campaign

    open_db(config)
    row = Campaign.get_or_none(Campaign.id == campaign_id)
    if row is None:
        raise click.ClickException(f"no campaign #{campaign_id}")
    try:
        if action == "test":
            click.echo(f"test send queued for {runs.send_test(row)} agents")
            return
        if action == "resend-in-doubt":
            if not yes:
                click.confirm("the platform may have delivered some of these already: those customers would get "
                              "the campaign twice. Resend?", abort=True)
            click.echo(f"{runs.resend_in_doubt(campaign_id)} sends in doubt queued again")
            return
        if action == "schedule":
            runs.schedule(row)
        else:
            getattr(runs, action)(campaign_id)
    except campaign_targets.CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"campaign #{campaign_id}: {Campaign.get_by_id(campaign_id).status}")
