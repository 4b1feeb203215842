"""The agent SLA: a conversation whose agent does not reply in time goes to the next agent.

Why a job: the breach is the *absence* of a message, so nothing inbound triggers it. The
scheduler calls `run_sla` every ~15 s. A conversation is overdue when it is assigned, the
agent has not replied since it was assigned to them, and `agent_sla_seconds` (operator
setting) have passed since that assignment. It is then reassigned to the next free agent
(round-robin, the late agent excluded); the late agent is told, the new one gets the
context and the customer hears who is coming (once per message of theirs: when nobody
answers, later moves between the free agents do not tell the customer again). With nobody else free it stays with its
agent and is retried on the next run. Every message is keyed by the conversation and the
assignment time it concerns, so a run repeated after a crash never notifies twice.

After the first reply the agent is engaged, and a slow answer to a follow-up is not a reason
to move the customer to a stranger: when the customer's latest message has waited the same
`agent_sla_seconds` without a reply, the agent gets a reminder instead — once per waiting
message (keyed by the conversation and that message's time), with the command to switch to it.

Each run also assigns queued conversations to agents who became free without a message
passing through the dispatcher (an agent set online in the admin, business hours opening).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.agents import assignment
from bot.core import clock, settings
from bot.core.db import transaction
from bot.core.models import Agent, AssignmentLog, Conversation
from bot.conversation.relay_delivery import emit, say
from bot.conversation.routing import handoff_messages, queue_position_updates, queue_snapshot


def overdue(sla_seconds: int) -> list[Conversation]:
    """Assigned conversations whose agent has not replied within the SLA, oldest first."""
    cutoff = clock.now() - timedelta(seconds=sla_seconds)
    rows = (
        Conversation.select()
        .where((Conversation.status == "assigned") & Conversation.agent.is_null(False)
               & (Conversation.assigned_at <= cutoff)
               & (Conversation.last_agent_reply_at.is_null()
                  | (Conversation.last_agent_reply_at < Conversation.assigned_at)))
        .order_by(Conversation.assigned_at, Conversation.id)
    )
    return list(rows)


def waiting_on_reply(sla_seconds: int) -> list[Conversation]:
    """Assigned conversations whose agent has replied since the assignment, but not to the
    customer's latest message, which has waited `sla_seconds`; oldest wait first."""
    cutoff = clock.now() - timedelta(seconds=sla_seconds)
    rows = (
        Conversation.select()
        .where((Conversation.status == "assigned") & Conversation.agent.is_null(False)
               & (Conversation.last_agent_reply_at >= Conversation.assigned_at)
               & (Conversation.last_message_at > Conversation.last_agent_reply_at)
               & (Conversation.last_message_at <= cutoff))
        .order_by(Conversation.last_message_at, Conversation.id)
    )
    return list(rows)


def run_sla() -> dict[str, int]:
    """One pass: reassign overdue conversations, remind agents of waiting follow-ups, then
    drain the queue."""
    seconds = int(settings.get("agent_sla_seconds") or 0)
    reassigned = reminded = 0
    if seconds > 0:
        for conversation in overdue(seconds):
            reassigned += int(_reassign(conversation, seconds))
        for conversation in waiting_on_reply(seconds):
            reminded += _remind(conversation, seconds)
    return {"reassigned": reassigned, "reminded": reminded, "drained": drain()}


def _reassign(conversation: Conversation, seconds: int) -> bool:
    key = f"sla:{conversation.id}:{_stamp(conversation.assigned_at)}"
    with transaction():  # the move and its messages commit together
        # the customer hears who is coming once per message of theirs: when nobody answers,
        # the conversation keeps moving between the free agents, silently for the customer
        moved_before = AssignmentLog.select().where(
            (AssignmentLog.conversation == conversation) & (AssignmentLog.end_reason == "sla")
            & (AssignmentLog.ended_at >= conversation.last_message_at)).exists()
        moved = assignment.reassign_overdue(conversation, conversation.assigned_at)
        if moved is None:
            return False
        old, new = moved
        customer = conversation.customer
        notice = say(old, f"会话 #{conversation.id}（{customer}）超过 {_duration(seconds)}未回复，已转给「{new}」。")
        notice.conversation, notice.customer = conversation, customer
        to_customer, brief = handoff_messages(conversation, customer, new, note=f"「{old}」超时未回复，转派给您")
        emit([notice, brief] if moved_before else [notice, to_customer, brief], key)
    return True


def _remind(conversation: Conversation, seconds: int) -> int:
    """The reminder to the conversation's agent for the customer's waiting message; 1 when
    newly queued, 0 when this message's reminder was sent before."""
    agent, customer = conversation.agent, conversation.customer
    notice = say(agent, f"会话 #{conversation.id}（{customer}）的顾客已等待超过 {_duration(seconds)}，"
                        f"请尽快回复（发送 /switch {conversation.id} 切换到该会话）。")
    notice.conversation, notice.customer = conversation, customer
    return emit([notice], f"sla-wait:{conversation.id}:{_stamp(conversation.last_message_at)}")


def _duration(seconds: int) -> str:
    return f"{seconds // 60} 分钟" if seconds % 60 == 0 else f"{seconds} 秒"


def drain() -> int:
    """Assign queued conversations to free agents, longest-waiting first; returns how many."""
    before = queue_snapshot()

    def notify(conversation: Conversation, agent: Agent) -> None:
        emit(handoff_messages(conversation, conversation.customer, agent),
             f"assign:{conversation.id}:{_stamp(conversation.assigned_at)}")

    count = len(assignment.drain_queue(on_assign=notify))
    if count:
        emit(queue_position_updates(before), f"queue:{_stamp(clock.now())}")
    return count


def _stamp(when: datetime | None) -> str:
    return when.strftime("%Y%m%dT%H%M%S%f") if when else "-"
