"""Assignment rules, called directly (the transcripts live in test_scenarios.py)."""

from __future__ import annotations

from bot.agents import assignment
from bot.crm import conversations
from bot.core.models import Agent, AssignmentLog, Conversation, Customer, Message
from tests.factories import make_agent


def open_conversation(user: str) -> Conversation:
    customer = conversations.upsert_customer("web", user)
    conversation, _ = conversations.open_conversation(customer)
    return conversation


def test_round_robin_keeps_loads_within_one(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    agents = [make_agent(f"a{i}", max_open=50) for i in range(3)]
    for n in range(17):
        fake_clock.advance(seconds=1)
        assert assignment.assign_next_agent(open_conversation(f"u{n}")) is not None
    loads = assignment.loads()
    values = [loads.get(a.id, 0) for a in agents]
    assert sorted(values) == [5, 6, 6]


def test_least_recently_assigned_breaks_ties(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    a, b = make_agent("a"), make_agent("b")
    first = assignment.assign_next_agent(open_conversation("u1"))
    fake_clock.advance(seconds=1)
    second = assignment.assign_next_agent(open_conversation("u2"))
    assert {first.id, second.id} == {a.id, b.id}
    conversations.resolve(Conversation.get(Conversation.agent == first.id), by="agent")
    conversations.resolve(Conversation.get(Conversation.agent == second.id), by="agent")
    fake_clock.advance(seconds=1)
    # both free and idle: the one assigned longest ago goes first
    assert assignment.assign_next_agent(open_conversation("u3")).id == first.id


def test_nobody_free_returns_none_and_capacity_holds(database) -> None:  # type: ignore[no-untyped-def]
    make_agent("a", max_open=1)
    make_agent("away", status="away")
    Agent.create(name="gone", channel="web", im_user_id="gone", status="online", active=False)
    assert assignment.assign_next_agent(open_conversation("u1")) is not None
    assert assignment.assign_next_agent(open_conversation("u2")) is None
    assert not assignment.any_agent_free()


def test_a_conversation_is_not_assigned_twice(database) -> None:  # type: ignore[no-untyped-def]
    make_agent("a")
    make_agent("b")
    conversation = open_conversation("u1")
    first = assignment.assign_next_agent(conversation)
    again = assignment.assign_next_agent(Conversation.get_by_id(conversation.id))
    assert again.id == first.id
    assert AssignmentLog.select().count() == 1


def test_exclude_and_prefer(database) -> None:  # type: ignore[no-untyped-def]
    a, b = make_agent("a"), make_agent("b")
    assert assignment.assign_next_agent(open_conversation("u1"), exclude=(a.id,)).id == b.id
    assert assignment.assign_next_agent(open_conversation("u2"), prefer_id=b.id).id == b.id  # b is busier, preferred


def test_drain_serves_the_longest_waiting_first(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    waiting = []
    for n in range(3):
        conversation = open_conversation(f"u{n}")
        conversations.enqueue(conversation, "requested")
        waiting.append(conversation)
        fake_clock.advance(seconds=1)
    agent = make_agent("a", max_open=2)
    done = assignment.drain_queue()
    assert [c.id for c, _ in done] == [waiting[0].id, waiting[1].id]
    assert all(a.id == agent.id for _, a in done)
    assert Conversation.get_by_id(waiting[2].id).status == "queued"


def test_release_awaiting_requeues_by_real_waiting_time(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent("a")
    early = open_conversation("early")
    conversations.enqueue(early, "requested")  # waited in the queue before being assigned
    fake_clock.advance(minutes=5)
    someone = open_conversation("someone")
    conversations.enqueue(someone, "requested")
    fake_clock.advance(minutes=1)
    assignment.assign_next_agent(Conversation.get_by_id(early.id))
    answered = open_conversation("answered")
    assignment.assign_next_agent(answered)
    conversations.record_agent_reply(Conversation.get_by_id(answered.id))
    Agent.update(status="offline").where(Agent.id == agent.id).execute()
    released = assignment.release_awaiting(Agent.get_by_id(agent.id))
    assert [c.id for c in released] == [early.id]
    queue = conversations.queued()
    assert [c.id for c in queue] == [early.id, someone.id]  # early waited longer
    assert Conversation.get_by_id(answered.id).agent_id == agent.id
    assert AssignmentLog.get(AssignmentLog.conversation == early.id).end_reason == "offline"


def test_awaiting_reply_since_follows_the_last_customer_message(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_agent("a")
    conversation = open_conversation("u1")
    assignment.assign_next_agent(conversation)
    fresh = Conversation.get_by_id(conversation.id)
    assert conversations.awaiting_reply_since(fresh) == fresh.assigned_at
    fake_clock.advance(seconds=30)
    conversations.record_agent_reply(fresh)
    assert conversations.awaiting_reply_since(Conversation.get_by_id(conversation.id)) is None
    fake_clock.advance(seconds=30)
    customer = Customer.get(Customer.external_id == "u1")
    Message.create(channel="web", external_id="m-late", conversation=conversation, customer=customer,
                   direction="in", author="customer", text="在吗", created_at=fake_clock.now())
    assert conversations.awaiting_reply_since(Conversation.get_by_id(conversation.id)) == fake_clock.now()


def test_transfer_respects_capacity(database) -> None:  # type: ignore[no-untyped-def]
    a, b = make_agent("a"), make_agent("b", max_open=1)
    c1 = open_conversation("u1")
    assignment.assign_next_agent(c1, prefer_id=b.id)
    c2 = open_conversation("u2")
    assignment.assign_next_agent(c2, prefer_id=a.id)
    assert assignment.transfer(Conversation.get_by_id(c2.id), b) == "full"
    assert assignment.transfer(Conversation.get_by_id(c1.id), a) == "ok"
    assert Conversation.get_by_id(c1.id).agent_id == a.id


def test_previous_agent_prefers_the_owner_then_the_last_agent(database) -> None:  # type: ignore[no-untyped-def]
    a, b = make_agent("a"), make_agent("b")
    conversation = open_conversation("u1")
    assignment.assign_next_agent(conversation, prefer_id=b.id)
    customer = Customer.get(Customer.external_id == "u1")
    assert conversations.previous_agent_id(customer) == b.id
    Customer.update(owner_agent=a.id).where(Customer.id == customer.id).execute()
    assert conversations.previous_agent_id(Customer.get_by_id(customer.id)) == a.id
    assert conversations.previous_agent_id(conversations.upsert_customer("web", "new")) is None


def test_a_handoff_writes_only_the_assignment_and_its_replies_after_the_lock(database, dispatcher) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the assignment lock is held from the assignment to the commit, and every
    handoff waiting for it waits that long: the brief's reads and the handoff reason come
    before or with the assignment, and no savepoint is opened around it."""
    from bot.core.db import database as proxy
    from tests.factories import text

    from bot.core import settings

    make_agent("a")
    dispatcher.handle(text("u1", "你好"))
    settings.get("handoff_message")  # cached, as in a running process (a setting is read once a while)
    seen: list[str] = []
    hooks = proxy.obj.query_hooks  # peewee calls each with every statement it runs (the hot path's too)
    hooks.append(lambda event: seen.append(" ".join(event.sql.split())))
    try:
        result = dispatcher.handle(text("u1", "转人工"))
    finally:
        hooks.pop()

    assert result.action == "handoff"
    conversation = Conversation.get_by_id(result.conversation_id)
    assert (conversation.status, conversation.handoff_reason) == ("assigned", "requested")
    assigned = next(n for n, sql in enumerate(seen) if sql.startswith('UPDATE "conversation" SET "status"'))
    after = seen[assigned:]
    assert not [sql for sql in after if sql.startswith("SELECT")]
    assert not [sql for sql in after if "SAVEPOINT" in sql.upper()]
    assert '"handoff_reason" =' in after[0]  # written with the assignment
    assert not [sql for sql in after[1:] if sql.startswith('UPDATE "message"') or '"handoff_reason" =' in sql]
    brief = Message.get((Message.conversation == conversation.id) & (Message.author == "system"))
    assert "顾客：你好" in brief.text and "转人工" in brief.text


def test_the_queue_as_a_handoff_and_a_waiting_customer_see_it(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    """A waiting customer's place: the conversations queued before theirs (ties by id), read
    from the queue's own index; conversations not waiting are not counted."""
    from bot.core import db

    newcomer = open_conversation("newcomer")
    assert assignment.queue_outlook(newcomer) == assignment.QueueOutlook(waiting=0, online=False, free=False)
    queue = []
    for n in range(5):
        conversation = open_conversation(f"w{n}")
        conversations.enqueue(conversation, "requested")
        queue.append(conversation)
        if n != 2:  # w2 and w3 queued in the same instant: the earlier id is ahead
            fake_clock.advance(seconds=1)
    open_conversation("bot-only")  # talking to the bot: not in the queue
    assert assignment.queue_outlook(newcomer) == assignment.QueueOutlook(waiting=5, online=False, free=False)
    assert assignment.queue_outlook(queue[0]).waiting == 4  # a conversation is not waiting behind itself
    assert [assignment.queue_place(c) for c in queue] == [(1, False), (2, False), (3, False), (4, False), (5, False)]
    conversations.resolve(queue[1], by="customer")
    make_agent("on", status="online")
    assert assignment.queue_outlook(newcomer) == assignment.QueueOutlook(waiting=4, online=True, free=True)
    make_agent("full", status="online", max_open=0)
    assert [assignment.queue_place(c)[0] for c in (queue[0], queue[2], queue[4])] == [1, 2, 4]
    assert assignment.queue_place(queue[4]) == (4, True)
    for n in range(5, conversations.QUEUE_COUNTED + 3):  # a long queue: places past the counted ones
        fake_clock.advance(seconds=1)
        conversation = open_conversation(f"w{n}")
        conversations.enqueue(conversation, "requested")
        queue.append(conversation)
    counted = conversations.QUEUE_COUNTED
    assert assignment.queue_place(queue[counted]) == (counted, True)  # queue[1] left: one place earlier
    assert assignment.queue_place(queue[counted + 1]) == (counted + 1, True)
    assert assignment.queue_place(queue[-1]) == (counted + 1, True)  # counting stops at QUEUE_COUNTED ahead
    assert assignment.queue_outlook(newcomer).waiting == counted
    assert [conversations.shown_place(p) for p in (1, counted, counted + 1)] == ["1", str(counted), f"{counted}+"]
    if db.is_postgres():
        indexes = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'conversation_queue' "
                              "AND schemaname = current_schema()").fetchall()
        assert len(indexes) == 1 and "WHERE" in indexes[0][0]
    else:  # the count reads the index alone, not a row per queued conversation
        plan = " ".join(str(row[-1]) for row in db.execute(
            f"EXPLAIN QUERY PLAN {conversations.QUEUE_AHEAD}", conversations.queue_ahead_params(queue[4])))
        assert "COVERING INDEX conversation_queue" in plan
