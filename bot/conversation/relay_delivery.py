"""What reaches an agent through their own IM account, and what did not: replies to their
commands (`say`), relayed sends (`emit`), going offline, and the notices of what the
platform refused while their window was shut.

Why apart from relay.py (the agents' commands): the dispatcher, the workbench and the CLI
send to agents and report refusals without going through a command; relay.py uses these too.

On 公众号 / 微信客服 the platform lets the shop account write to an
agent only within 48 hours of the agent's own last message (微信客服: and 5 messages per
message), exactly as for a customer. What is refused meanwhile (customer messages relayed
to the agent, handoff briefs, notices) is stored and shown as `window_closed` /
`limit_reached` (admin), but cannot be reported to the agent at that moment; so the next
time the agent writes, which reopens their window, `missed_while_away` tells them first
what did not reach them. The customer is not left waiting on it: the SLA job hands an
unanswered conversation to the next agent (jobs/sla.py).
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee

from bot.agents import assignment
from bot.conversation.routing import handoff_messages, queue_position_updates, queue_snapshot, requeued_text, serve_queue
from bot.core import changes, clock
from bot.core.db import insert_row, new_row, transaction
from bot.core.events import Inbound, Reply
from bot.core.models import Agent, Conversation, Customer, Message, Outbox
from bot.crm import conversations
from bot.sending import outbox
from bot.sending.outgoing import Outgoing


def say(agent: Agent, text: str) -> Outgoing:
    """A system message to an agent."""
    return Outgoing(agent.channel, agent.im_user_id, Reply(text=text), "system", agent=agent)


@dataclass(frozen=True)
class Offline:
    """What an agent's going offline did: the messages to send, and the counts the one who
    set it (the agent, `kefu agent status`, the admin) is told."""

    messages: list[Outgoing]
    requeued: int  # conversations waiting for the agent's reply, put back in the queue ...
    reassigned: int  # ... of which given to another agent at once
    kept: int  # the customer spoke last: stays with the agent until they write again


def go_offline(agent: Agent) -> list[Outgoing]:
    """Set the agent offline and return their conversations awaiting a reply to the queue
    (see `assignment.release_awaiting` for exactly which); the admin panel may call it too."""
    return take_offline(agent).messages


def take_offline(agent: Agent) -> Offline:
    """`go_offline` with its counts. Every customer moved is told the same way whichever
    path moved them (here, or their next message finding the agent offline: routing)."""
    assignment.set_status(agent, "offline")
    before = queue_snapshot()
    released = assignment.release_awaiting(agent)
    kept = len(conversations.open_for_agent(agent))
    text = "您的状态已设为：下线"
    if released:
        text += f"。{len(released)} 个待您回复的会话已转回排队"
    if kept:
        text += f"。{kept} 个会话（顾客尚未回复）仍保留在您名下，顾客再来消息时将转给其他客服"
    out = [say(agent, text + "。")]
    drained = assignment.drain_queue()
    drained_ids = {c.id for c, _ in drained}
    for conversation, new_agent in drained:
        out += handoff_messages(conversation, conversation.customer, new_agent)
    for conversation in released:
        if conversation.id in drained_ids:
            continue
        fresh = Conversation.get_by_id(conversation.id)
        customer: Customer = fresh.customer
        out.append(Outgoing(fresh.channel, customer.external_id, Reply(text=requeued_text(agent, fresh)), "bot",
                            fresh, customer))
    released_ids = {c.id for c in released}
    out += [o for o in queue_position_updates(before) if o.conversation is None or o.conversation.id not in released_ids]
    reassigned = len(released_ids & drained_ids)
    return Offline(out, len(released), reassigned, kept)


def drain_queue_messages() -> list[Outgoing]:
    """Assign waiting conversations to free agents (longest-waiting first) and produce the
    handoff messages, and tell those still waiting their new position."""
    return serve_queue()


def find_agent(name: str) -> Agent | None:
    key = name.strip().lstrip("@「").rstrip("」")
    if key.isdigit():
        found = Agent.get_or_none(Agent.id == int(key))
        if found is not None:
            return found
    return Agent.select().where((peewee.fn.LOWER(Agent.name) == key.lower()) | (Agent.display_name == key)).first()


def emit(outgoing: list[Outgoing], key: str) -> int:
    """Store and queue messages decided outside an inbound message (the SLA job, the admin):
    message keys `{key}:{n}` are deterministic, so running the same step twice sends once.
    Returns how many were newly queued."""
    queued = 0
    with transaction():
        for n, out in enumerate(outgoing):
            external_id = f"{key}:{n}"[:128]
            payload = {**out.reply.as_content(), **dict(out.reply.meta)}
            faq_id = out.faq if isinstance(out.faq, int) or out.faq is None else out.faq.id
            # queued at once, with its outbox row in this transaction: fixed SQL, no read back and no
            # state update, as every workbench reply comes through here (issue 22)
            row = new_row(
                Message, channel=out.channel, external_id=external_id, conversation=out.conversation,
                customer=out.customer, agent=out.agent, direction="out", author=out.author, peer_id=out.to_user,
                kind=out.reply.kind, text=out.reply.text, payload=payload, faq=faq_id, state="queued",
                created_at=clock.now(),
            )
            if insert_row(row, ignore_conflict=True) is None:
                continue
            queued += int(outbox.enqueue(f"msg:{row.id}", out.channel, out.to_user, payload, message=row))
    if queued:
        changes.changed(outbound=True)  # committed: a live workbench shows it, the sender sends it (bot/core/changes.py)
    return queued


WINDOW_TEXT = {
    "window_closed": "顾客超过48小时未发消息，平台不允许主动发送",
    "limit_reached": "已达到平台对本次互动的回复条数上限",
    "failed": "平台拒绝了这条消息",
}


def report_undeliverable(row: Outbox, status: str) -> None:
    """An agent's relay could not be delivered: tell the agent, once per outbox row."""
    if not row.message_id:
        return
    message = Message.get_or_none(Message.id == row.message_id)
    if message is None or message.author != "agent" or message.agent_id is None:
        return
    agent = Agent.get_or_none(Agent.id == message.agent_id)
    if agent is None:
        return
    who = f"#{message.conversation_id} " if message.conversation_id else ""
    reason = WINDOW_TEXT.get(status, status)
    text = f"⚠️ 消息未送达 {who}（{reason}）：{message.text[:60]}"
    if status == "window_closed":
        text += "\n可等顾客再次发来消息后回复，或通过短信/电话联系。"
    emit([Outgoing(agent.channel, agent.im_user_id, Reply(text=text), "system", message.conversation, message.customer,
                   agent=agent)], f"undelivered:{row.id}")


# What the platform refuses because of the agent's own window or count (not a permanent error).
MISSED_TEXT = {
    "window_closed": "平台只允许在您最近一次给本账号发消息后的48小时内向您发送消息",
    "limit_reached": "超过了平台在您每条消息后允许发送的条数",
}
MISSED_LISTED = 10  # the latest ones, quoted; the rest are counted
MISSED_QUOTE = 80  # characters of each


def missed_while_away(agent: Agent, inbound: Inbound) -> list[Outgoing]:
    """The messages to `agent` refused by the platform (their window was shut, or the
    微信客服 count used up) since the agent last wrote, as one notice, now that their
    message `inbound` (already stored) opens the window again; [] when none.

    Told once: the next message of the agent looks only after this one. A retry of the
    same inbound message replays the stored replies (the dispatcher), it does not ask again."""
    rows = Outbox.select().where((Outbox.channel == agent.channel) & (Outbox.recipient == agent.im_user_id)
                                 & Outbox.status.in_(tuple(MISSED_TEXT)))
    since = _previous_message_at(agent, inbound)
    if since is not None:
        rows = rows.where(Outbox.created_at > since)
    latest = list(reversed(rows.order_by(Outbox.id.desc()).limit(MISSED_LISTED)))
    if not latest:
        return []
    total = rows.count() if len(latest) == MISSED_LISTED else len(latest)
    return [say(agent, missed_text(latest, total))]


def missed_text(latest: list[Outbox], total: int) -> str:
    """The notice: why, how many, the latest ones quoted (oldest first)."""
    reasons = "；".join(MISSED_TEXT[s] for s in MISSED_TEXT if any(r.status == s for r in latest))
    lines = [f"⚠️ 有 {total} 条消息未能送达您（{reasons}）："]
    if total > len(latest):
        lines.append(f"（更早的 {total - len(latest)} 条未列出）")
    for row in latest:
        content = row.content or {}
        text = " / ".join(str(content.get("text") or f"[{content.get('kind', '消息')}]").split("\n"))
        lines.append("· " + (text if len(text) <= MISSED_QUOTE else text[:MISSED_QUOTE] + "…"))
    lines.append("发送 /list 查看您的会话。")
    return "\n".join(lines)


def _previous_message_at(agent: Agent, inbound: Inbound) -> datetime | None:
    """When the agent last wrote before `inbound` (None: never)."""
    return (Message.select(peewee.fn.MAX(Message.created_at))
            .where((Message.agent == agent.id) & (Message.direction == "in") & (Message.author == "agent")
                   & ~((Message.channel == inbound.channel) & (Message.external_id == inbound.stored_key[1])))
            .scalar())




if report_undeliverable not in outbox.give_up_listeners:
    outbox.give_up_listeners.append(report_undeliverable)
