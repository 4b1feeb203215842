"""Concurrent handoffs from several worker processes, each with its own connection.

Why processes and not threads: several `kefu serve` processes share nothing but the
database, so the guarantees (no conversation given twice, no capacity exceeded, loads
within one of each other) must come from the database lock in `bot.agents.assignment`, which is
what this exercises. The full-size runs need PostgreSQL (skipped without
KEFU_TEST_DATABASE_URL); a small run also checks SQLite's IMMEDIATE transactions.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from typing import Any

import peewee
import pytest

from bot.core.models import Agent, AssignmentLog, Conversation, Message, Outbox
from tests.conftest import PG_URL
from tests.factories import make_agent

WORKERS = 4


def _worker(url: str, worker: int, count: int, start: Any, results: Any,
            script: list[tuple[str, str]] | None = None) -> None:
    """One `kefu serve` stand-in: its own connection, `count` customers asking for a human
    (or, with `script`, those (user, text) messages in order)."""
    try:
        from bot.core import db
        from bot.core.config import ChannelConfig, Config, DatabaseConfig
        from bot.conversation.dispatcher import Dispatcher
        from bot.core.events import Inbound

        db.connect(url)
        config = Config(database=DatabaseConfig(url=url), source="<worker>",
                        channels=(ChannelConfig(name="web", kind="web", secret="s"),))
        dispatcher = Dispatcher(config)
        start.wait(60)
        messages = script if script is not None else [(f"w{worker}-c{i}", "转人工") for i in range(count)]
        for n, (user, body) in enumerate(messages):
            dispatcher.handle(Inbound(channel="web", user_id=user, msg_id=f"w{worker}-{n}", kind="text", text=body))
        db.database.close()
        results.put((worker, "ok", ""))
    except Exception:  # report to the parent instead of dying silently
        results.put((worker, "error", traceback.format_exc()))


def fire(url: str, total: int, scripts: list[list[tuple[str, str]]] | None = None) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(WORKERS), ctx.Queue()
    per_worker = total // WORKERS
    procs = [ctx.Process(target=_worker, args=(url, w, per_worker, start, results, scripts[w] if scripts else None))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [text for _, status, text in outcomes if status != "ok"]
    assert not errors, errors[0]


def check_assignments(agents: list[Agent], total: int) -> dict[int, int]:
    """The invariants; returns the load per agent."""
    assert Conversation.select().count() == total
    assigned = list(Conversation.select().where(Conversation.status == "assigned"))
    # each conversation was given exactly once: one stint, one briefing to one agent
    stints = Counter(row.conversation_id for row in AssignmentLog.select())
    assert set(stints) == {c.id for c in assigned}
    assert max(stints.values()) == 1
    agent_users = [a.im_user_id for a in agents]
    briefings = Counter(
        m.conversation_id for m in Message.select().where(
            (Message.author == "system") & Message.peer_id.in_(agent_users) & Message.text.contains("新的人工会话"))
    )
    assert set(briefings) == {c.id for c in assigned} and max(briefings.values()) == 1
    assert Outbox.select().where(Outbox.recipient.in_(agent_users)).count() == len(assigned)
    loads = Counter(c.agent_id for c in assigned)
    for agent in agents:
        assert loads.get(agent.id, 0) <= agent.max_open, "capacity exceeded"
    values = [loads.get(a.id, 0) for a in agents]
    assert max(values) - min(values) <= 1, values
    return {a.id: loads.get(a.id, 0) for a in agents}


needs_pg = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (KEFU_TEST_DATABASE_URL)")


@needs_pg
def test_400_concurrent_handoffs_spread_evenly(database: peewee.Database, database_url: str) -> None:
    agents = [make_agent(f"agent{i}", max_open=80) for i in range(5)]
    fire(database_url, 400)
    loads = check_assignments(agents, 400)
    assert sorted(loads.values()) == [80, 80, 80, 80, 80]
    assert Conversation.select().where(Conversation.status == "queued").count() == 0


@needs_pg
def test_400_concurrent_handoffs_with_binding_capacity(database: peewee.Database, database_url: str) -> None:
    agents = [make_agent(f"agent{i}", max_open=30) for i in range(5)]
    fire(database_url, 400)
    loads = check_assignments(agents, 400)
    assert sorted(loads.values()) == [30, 30, 30, 30, 30]
    queued = list(Conversation.select().where(Conversation.status == "queued"))
    assert len(queued) == 250
    assert not AssignmentLog.select().where(AssignmentLog.conversation.in_([c.id for c in queued])).exists()


@needs_pg
def test_uneven_capacities_fill_without_breach(database: peewee.Database, database_url: str) -> None:
    agents = [make_agent("big", max_open=200), make_agent("small", max_open=10), make_agent("mid", max_open=60)]
    fire(database_url, 200)
    loads = Counter(c.agent_id for c in Conversation.select().where(Conversation.status == "assigned"))
    assert loads[agents[1].id] == 10 and loads[agents[2].id] == 60 and loads[agents[0].id] == 130
    assert Conversation.select().where(Conversation.status == "queued").count() == 0


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite variant; PostgreSQL runs the full size")
def test_concurrent_handoffs_on_sqlite_processes(database: peewee.Database, database_url: str) -> None:
    agents = [make_agent(f"agent{i}", max_open=10) for i in range(3)]
    fire(database_url, 40)
    loads = check_assignments(agents, 40)
    assert sorted(loads.values()) == [10, 10, 10]
    assert Conversation.select().where(Conversation.status == "queued").count() == 10


@needs_pg
def test_agents_resolving_while_customers_hand_off(database: peewee.Database, database_url: str) -> None:
    """Two processes of customers asking for a human, two of agents resolving, going away
    and coming back at the same time: nothing deadlocks, and the books balance."""
    agents = [make_agent(f"agent{i}", max_open=5) for i in range(4)]
    customers = [[(f"c{w}-{i}", "转人工") for i in range(40)] for w in range(2)]
    agent_scripts = []
    for w in range(2):
        mine = [a.im_user_id for a in agents[w * 2:w * 2 + 2]]
        script = []
        for i in range(20):
            for user in mine:
                script.append((user, "/resolve"))
                if i % 5 == 2:
                    script += [(user, "离开"), (user, "/list"), (user, "上线")]
        agent_scripts.append(script)
    fire(database_url, 0, customers + agent_scripts)
    assigned = list(Conversation.select().where(Conversation.status == "assigned"))
    loads = Counter(c.agent_id for c in assigned)
    assert all(loads.get(a.id, 0) <= a.max_open for a in agents)
    open_stints = Counter(r.conversation_id for r in AssignmentLog.select().where(AssignmentLog.ended_at.is_null()))
    assert set(open_stints) == {c.id for c in assigned} and max(open_stints.values(), default=1) == 1
    statuses = Counter(c.status for c in Conversation.select())
    assert sum(statuses.values()) == 80 and statuses["bot"] == 0
    assert statuses["resolved"] == AssignmentLog.select().where(AssignmentLog.end_reason == "resolved").count()
