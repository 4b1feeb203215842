"""The public pool (公海) and the agents' private pools (私海).

Why: a customer without an owner belongs to everyone, so anyone may follow them up; an
agent claims one to make them theirs, up to `Agent.max_private`, and a customer nobody has
been in touch with for `pool_return_days` goes back, so a claim cannot hoard customers.
A claim is a conditional UPDATE (only while unowned), under a per-agent lock so two
claims at once cannot both pass the limit.
"""

from __future__ import annotations

from datetime import timedelta

import peewee

from bot.core import clock, settings
from bot.core.db import advisory_xact_lock, transaction
from bot.core.models import Agent, Customer


class PoolError(Exception):
    """A claim or release that is not allowed; the message is for the agent (Chinese)."""


def public_pool() -> peewee.ModelSelect:
    """Customers without an owner (erased and spam records are nobody's business)."""
    return Customer.select().where(Customer.owner_agent.is_null() & Customer.erased_at.is_null()
                                   & (Customer.is_spam == False))  # noqa: E712


def private_pool(agent: Agent | int) -> peewee.ModelSelect:
    return Customer.select().where(Customer.owner_agent == agent)


def claim(agent: Agent | int, customer: Customer | int) -> Customer:
    """Make `customer` the agent's; claiming your own customer again is a no-op."""
    agent_id = agent if isinstance(agent, int) else agent.id
    customer_id = customer if isinstance(customer, int) else customer.id
    with transaction():
        advisory_xact_lock(f"kefu:pool:{agent_id}")
        fresh_agent = Agent.get_or_none(Agent.id == agent_id)
        if fresh_agent is None or not fresh_agent.active:
            raise PoolError("该客服账号不存在或已停用")
        row = Customer.get_or_none(Customer.id == customer_id)
        if row is None or row.erased_at is not None:
            raise PoolError(f"顾客 #{customer_id} 不存在")
        if row.owner_agent_id == agent_id:
            return row
        if row.owner_agent_id is not None:
            raise PoolError(f"顾客 #{customer_id} 已被{_agent_name(row.owner_agent_id)}领取")
        owned = private_pool(agent_id).count()
        if owned >= fresh_agent.max_private:
            raise PoolError(f"您的私海已满（{owned}/{fresh_agent.max_private} 位顾客），请先释放一些顾客")
        now = clock.now()
        taken = Customer.update(owner_agent=agent_id, claimed_at=now).where(
            (Customer.id == customer_id) & Customer.owner_agent.is_null()
        ).execute()
        if not taken:
            raise PoolError(f"顾客 #{customer_id} 刚刚被其他客服领取")
        row.owner_agent, row.claimed_at = agent_id, now
        return row


def release(customer: Customer | int, agent: Agent | int | None = None) -> bool:
    """Return a customer to the public pool; with `agent`, only if that agent owns them.
    True when the customer was released."""
    customer_id = customer if isinstance(customer, int) else customer.id
    condition = Customer.id == customer_id
    if agent is not None:
        condition &= Customer.owner_agent == (agent if isinstance(agent, int) else agent.id)
    else:
        condition &= Customer.owner_agent.is_null(False)
    return Customer.update(owner_agent=None, claimed_at=None).where(condition).execute() > 0


def release_stale(days: int | None = None) -> list[int]:
    """Owned customers with no contact for `days` (default: the `pool_return_days` setting)
    go back to the public pool; a recent claim counts as contact. Returns their ids."""
    days = int(settings.get("pool_return_days") if days is None else days)
    if days <= 0:
        return []
    cutoff = clock.now() - timedelta(days=days)
    stale = (
        Customer.owner_agent.is_null(False)
        & (Customer.last_contact_at < cutoff)
        & (Customer.claimed_at.is_null() | (Customer.claimed_at < cutoff))
    )
    released: list[int] = []
    with transaction():
        ids = [c.id for c in Customer.select(Customer.id).where(stale).order_by(Customer.id)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            Customer.update(owner_agent=None, claimed_at=None).where(Customer.id.in_(chunk) & stale).execute()
            released.extend(chunk)
    return released


def _agent_name(agent_id: int) -> str:
    agent = Agent.get_or_none(Agent.id == agent_id)
    return f"客服{agent}" if agent else "其他客服"
