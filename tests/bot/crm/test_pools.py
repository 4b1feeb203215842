import pytest

from bot.crm import pools
from bot.core.models import Agent, Customer
from tests.bot.crm.helpers import customer
from tests.factories import make_agent


def test_claim_takes_a_customer_out_of_the_public_pool(database, fake_clock) -> None:
    agent = make_agent("xiaomei")
    a, b = customer("a"), customer("b")
    assert pools.public_pool().count() == 2
    claimed = pools.claim(agent, a)
    assert claimed.owner_agent_id == agent.id
    assert [c.id for c in pools.public_pool()] == [b.id]
    assert [c.id for c in pools.private_pool(agent)] == [a.id]
    assert pools.claim(agent, a).owner_agent_id == agent.id  # claiming your own again: fine


def test_someone_elses_customer_cannot_be_claimed(database) -> None:
    mei, li = make_agent("xiaomei"), make_agent("ali")
    a = customer("a")
    pools.claim(mei, a)
    with pytest.raises(pools.PoolError, match="已被"):
        pools.claim(li, a)
    assert Customer.get_by_id(a.id).owner_agent_id == mei.id


def test_the_per_agent_limit(database) -> None:
    agent = make_agent("xiaomei")
    Agent.update(max_private=2).where(Agent.id == agent.id).execute()
    a, b, c = customer("a"), customer("b"), customer("c")
    pools.claim(agent, a)
    pools.claim(agent, b)
    with pytest.raises(pools.PoolError, match="私海已满"):
        pools.claim(agent, c)
    assert pools.release(a, agent) is True
    assert pools.claim(agent, c).owner_agent_id == agent.id


def test_an_inactive_agent_cannot_claim(database) -> None:
    agent = make_agent("xiaomei")
    Agent.update(active=False).where(Agent.id == agent.id).execute()
    with pytest.raises(pools.PoolError):
        pools.claim(agent, customer("a"))


def test_release_only_by_the_owner(database) -> None:
    mei, li = make_agent("xiaomei"), make_agent("ali")
    a = customer("a")
    pools.claim(mei, a)
    assert pools.release(a, li) is False
    assert pools.release(a) is True  # an admin (no agent) may release anyone's
    assert Customer.get_by_id(a.id).owner_agent_id is None


def test_customers_without_contact_return_to_the_public_pool(database, fake_clock) -> None:
    agent = make_agent("xiaomei")
    quiet, chatty, fresh_claim = customer("quiet"), customer("chatty"), customer("fresh")
    pools.claim(agent, quiet)
    pools.claim(agent, chatty)
    fake_clock.advance(days=20)
    customer("chatty")  # writes again: last contact moves
    fake_clock.advance(days=11)
    pools.claim(agent, fresh_claim)  # last contact 31 days ago, but claimed just now
    released = pools.release_stale(30)
    assert released == [quiet.id]
    assert Customer.get_by_id(quiet.id).owner_agent_id is None
    assert Customer.get_by_id(chatty.id).owner_agent_id == agent.id
    assert Customer.get_by_id(fresh_claim.id).owner_agent_id == agent.id
    assert pools.release_stale(30) == []
    fake_clock.advance(days=31)
    assert sorted(pools.release_stale()) == sorted([chatty.id, fresh_claim.id])  # the 30-day setting default
