"""`kefu agent ...`: add agents, list them, set their status and capacity, show KPIs."""

from __future__ import annotations

import json

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config
from bot.cli.server_url import web_chat_link


@click.group()
def agent() -> None:
    """Manage agents (客服)."""


@agent.command("add")
@config_option
@click.argument("name")
@click.option("--channel", "channel_name", required=True, help="Channel of the agent's linked IM account.")
@click.option("--user-id", required=True, help="The agent's user id on that channel (openid, userid, visitor id).")
@click.option("--max-open", type=int, default=5, show_default=True, help="Open conversations at most.")
@click.option("--display-name", default="", help="Name shown to customers (default: NAME).")
def agent_add(config: Config, name: str, channel_name: str, user_id: str, max_open: int, display_name: str) -> None:
    """Add an agent NAME linked to an IM account."""
    from bot.agents.presence import AgentError, add_agent

    open_db(config)
    try:
        created = add_agent(config, name, channel_name, user_id, max_open=max_open, display_name=display_name)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"agent {created.name} (#{created.id}) linked to {channel_name}:{user_id}, max {max_open} open")
    link = web_chat_link(config, channel_name, user_id)
    if link:
        click.echo(f"agent chat page: {link}")


@agent.command("list")
@config_option
def agent_list(config: Config) -> None:
    """List agents with their status and load."""
    from bot.agents.assignment import loads
    from bot.core.models import Agent

    open_db(config)
    current = loads()
    for a in list(Agent.select().order_by(Agent.id)):
        row = {"id": a.id, "name": a.name, "channel": a.channel, "user_id": a.im_user_id,
               "status": a.status, "open": current.get(a.id, 0), "max_open": a.max_open}
        link = web_chat_link(config, a.channel, a.im_user_id)
        if link:
            row["chat_link"] = link  # where a web agent chats as themselves
        click.echo(json.dumps(row, ensure_ascii=False))


@agent.command("status")
@config_option
@click.argument("name")
@click.argument("status", type=click.Choice(["online", "away", "offline"]))
def agent_status(config: Config, name: str, status: str) -> None:
    """Set agent NAME online, away or offline, as the agent's own command would (offline:
    conversations waiting for their reply go back to the queue; online: the queue is served)."""
    from bot.agents import assignment
    from bot.core import clock
    from bot.core.db import transaction
    from bot.conversation.relay_delivery import emit, find_agent, say, take_offline
    from jobs.sla import drain

    open_db(config)
    found = find_agent(name)
    if found is None:
        raise click.ClickException(f"no agent named {name!r} (see `kefu agent list`)")
    key = f"cli-status:{found.id}:{clock.now().strftime('%Y%m%dT%H%M%S%f')}"
    tail = ""
    with transaction():
        assignment.hold_lock()
        if status == "offline":
            result = take_offline(found)
            emit(result.messages, key)
            tail = (f"; {result.requeued} conversations waiting for their reply went back to the queue"
                    f" ({result.reassigned} of them assigned to another agent at once)"
                    f"; {result.kept} kept (the customer has not written since their reply)")
        else:
            assignment.set_status(found, status)
            emit([say(found, f"管理员已将您的状态设为：{'在线' if status == 'online' else '离开'}")], key)
    served = drain() if status == "online" else 0
    if served:
        tail = f"; {served} queued conversations assigned"
    click.echo(f"agent {found.name} is {status}{tail}")


@agent.command("capacity")
@config_option
@click.argument("name")
@click.argument("max_open", type=click.IntRange(1, 200))
def agent_capacity(config: Config, name: str, max_open: int) -> None:
    """Set how many conversations agent NAME holds at most (1-200). Conversations they hold
    beyond a lowered capacity stay with them; a raised one serves the queue at once."""
    from bot.agents import assignment
    from bot.core.db import transaction
    from bot.core.models import Agent
    from bot.conversation.relay_delivery import find_agent
    from jobs.sla import drain

    open_db(config)
    found = find_agent(name)
    if found is None:
        raise click.ClickException(f"no agent named {name!r} (see `kefu agent list`)")
    with transaction():
        assignment.hold_lock()  # an assignment in flight reads the capacity under the same lock
        Agent.update(max_open=max_open).where(Agent.id == found.id).execute()
    served = drain() if max_open > found.max_open else 0
    held = assignment.load_of(found)
    click.echo(f"agent {found.name}: capacity {found.max_open} -> {max_open}, holding {held}"
               + (f"; {served} queued conversations assigned" if served else ""))


@agent.command("kpi")
@config_option
@click.option("--days", type=int, default=7, show_default=True, help="The last N local days, today included.")
def agent_kpi(config: Config, days: int) -> None:
    """Per-agent KPIs (JSON lines): assigned, reply rate, first response, resolution, satisfaction."""
    from dataclasses import asdict
    from datetime import datetime, timedelta

    from bot.agents import kpi
    from bot.core import clock

    open_db(config)
    zone = kpi.shop_zone()
    today = clock.now().astimezone(zone).date()
    first = today - timedelta(days=max(days, 1) - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    for row in kpi.per_agent(start, clock.now() + timedelta(seconds=1)):
        click.echo(json.dumps(asdict(row), ensure_ascii=False))
