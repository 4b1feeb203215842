"""The SLA job: overdue conversations move to the next agent, once, with notices; a waiting
follow-up reminds its agent, once per waiting message."""

from __future__ import annotations

from bot.agents import assignment
from bot.crm import conversations
from bot.core import settings
from bot.core.models import AssignmentLog, Conversation, Message, Outbox
from jobs.sla import overdue, run_sla
from tests.factories import make_agent


def handoff(user: str) -> Conversation:
    customer = conversations.upsert_customer("web", user)
    conversation, _ = conversations.open_conversation(customer)
    assignment.assign_next_agent(conversation)
    return Conversation.get_by_id(conversation.id)


def test_overdue_only_after_the_sla(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_agent("mei")
    conversation = handoff("u1")
    fake_clock.advance(seconds=59)
    assert overdue(60) == []
    fake_clock.advance(seconds=1)
    assert [c.id for c in overdue(60)] == [conversation.id]
    conversations.record_agent_reply(conversation)
    assert overdue(60) == []


def test_reassigns_and_notifies_once(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 60)
    mei = make_agent("mei")
    conversation = handoff("u1")
    ali = make_agent("ali")
    fake_clock.advance(seconds=61)
    assert run_sla() == {"reassigned": 1, "reminded": 0, "drained": 0}
    assert Conversation.get_by_id(conversation.id).agent_id == ali.id
    to_mei = [o.content["text"] for o in Outbox.select().where(Outbox.recipient == mei.im_user_id)]
    assert len(to_mei) == 1 and "超过 1 分钟未回复" in to_mei[0]
    assert Outbox.select().where(Outbox.recipient == ali.im_user_id).count() == 1
    assert Outbox.select().where(Outbox.recipient == "u1").count() == 1
    assert run_sla()["reassigned"] == 0
    assert Outbox.select().count() == 3
    # every message is keyed by the conversation and the assignment it concerns
    assert Message.select().where(Message.external_id.startswith(f"sla:{conversation.id}:")).count() == 3


def test_nobody_else_free_keeps_it_and_retries(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 60)
    make_agent("mei")
    conversation = handoff("u1")
    fake_clock.advance(seconds=120)
    assert run_sla()["reassigned"] == 0
    ali = make_agent("ali")
    assert run_sla()["reassigned"] == 1
    assert Conversation.get_by_id(conversation.id).agent_id == ali.id
    assert [r.end_reason for r in AssignmentLog.select().order_by(AssignmentLog.id)] == ["sla", ""]


def test_disabled_sla_does_nothing(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 0)
    make_agent("mei")
    conversation = handoff("u1")
    make_agent("ali")
    fake_clock.advance(hours=5)
    assert run_sla()["reassigned"] == 0
    assert Conversation.get_by_id(conversation.id).agent.name == "mei"


def test_the_pass_drains_the_queue(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    customer = conversations.upsert_customer("web", "u1")
    conversation, _ = conversations.open_conversation(customer)
    conversations.enqueue(conversation, "requested")
    assert run_sla()["drained"] == 0
    mei = make_agent("mei")
    assert run_sla()["drained"] == 1
    assert Conversation.get_by_id(conversation.id).agent_id == mei.id
    assert Outbox.select().where(Outbox.recipient == mei.im_user_id).count() == 1


def test_the_scheduler_runs_the_sla_job(config) -> None:  # type: ignore[no-untyped-def]
    from jobs.runner import SchedulerService

    jobs = {job.id: job for job in SchedulerService(config).job_definitions()}
    assert jobs["agent-sla"].fn is run_sla


def customer_writes(conversation: Conversation) -> None:
    """The customer's next message, as the dispatcher records it (the conversation touched)."""
    conversations.open_conversation(conversation.customer)


def test_a_waiting_follow_up_reminds_its_agent_once_per_message(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 60)
    mei = make_agent("mei")
    make_agent("ali")  # free, but a follow-up does not move the customer to a stranger
    conversation = handoff("u1")
    fake_clock.advance(seconds=10)
    conversations.record_agent_reply(conversation)
    fake_clock.advance(seconds=5)
    customer_writes(conversation)
    fake_clock.advance(seconds=59)
    assert run_sla()["reminded"] == 0
    fake_clock.advance(seconds=1)
    assert run_sla() == {"reassigned": 0, "reminded": 1, "drained": 0}
    to_mei = [o.content["text"] for o in Outbox.select().where(Outbox.recipient == mei.im_user_id)]
    assert len(to_mei) == 1 and "已等待超过 1 分钟" in to_mei[0] and f"/switch {conversation.id}" in to_mei[0]
    assert run_sla()["reminded"] == 0  # the same waiting message: told once
    assert Conversation.get_by_id(conversation.id).agent_id == mei.id
    customer_writes(conversation)  # asks again, still no answer
    fake_clock.advance(seconds=60)
    assert run_sla()["reminded"] == 1
    assert Outbox.select().where(Outbox.recipient == mei.im_user_id).count() == 2


def test_a_follow_up_answered_in_time_reminds_nobody(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 60)
    make_agent("mei")
    conversation = handoff("u1")
    conversations.record_agent_reply(conversation)
    fake_clock.advance(seconds=5)
    customer_writes(conversation)
    fake_clock.advance(seconds=30)
    conversations.record_agent_reply(Conversation.get_by_id(conversation.id))
    fake_clock.advance(seconds=600)
    assert run_sla() == {"reassigned": 0, "reminded": 0, "drained": 0}
    assert Outbox.select().count() == 0


def test_a_conversation_nobody_answers_tells_the_customer_of_the_first_move_only(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_sla_seconds", 60)
    mei = make_agent("mei")
    conversation = handoff("u1")
    ali = make_agent("ali")
    for expected in (ali, mei, ali):  # nobody answers: it keeps moving between the free agents
        fake_clock.advance(seconds=61)
        assert run_sla()["reassigned"] == 1
        assert Conversation.get_by_id(conversation.id).agent_id == expected.id
    assert Outbox.select().where(Outbox.recipient == "u1").count() == 1  # "「ali」is coming", once
    briefs = Outbox.select().where(Outbox.recipient.in_([mei.im_user_id, ali.im_user_id]))
    assert sum("新的人工会话" in o.content["text"] for o in briefs) == 3  # every new agent is briefed
    # the customer writes again: the next move is news to them
    fake_clock.advance(seconds=5)
    Conversation.update(last_message_at=fake_clock.now()).where(Conversation.id == conversation.id).execute()
    fake_clock.advance(seconds=56)
    assert run_sla()["reassigned"] == 1
    assert Outbox.select().where(Outbox.recipient == "u1").count() == 2
