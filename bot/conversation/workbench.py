"""What an agent may see and do in the web workbench (admin/workbench.py draws it).

Why in the core: the panel and the IM relay must be one state. A reply typed in the
workbench is stored and sent exactly as one relayed from the agent's IM account
(`bot.conversation.relay_delivery.emit`, the same Message and outbox rows), and every read here goes through
`visible` / `owned`, so an agent who guesses another conversation's id gets nothing: the
rule lives once, beside the queries, not in each view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.agents import assignment
from bot.crm import conversations
from bot.sending import send_window
from bot.core import changes, clock
from bot.core.db import execute, fetch_all, fetch_one, related, transaction
from bot.crm import pools
from bot.core.events import Reply
from bot.faq import learning
from bot.faq.store import FaqStore
from bot.core.models import Agent, Conversation, Customer, CustomerTag, Faq, IssuedCoupon, Message, Order, QuickPhrase, Tag, UnansweredQuestion
from bot.sending.outgoing import Outgoing
from bot.conversation.relay_delivery import emit, say
from bot.conversation.routing import LEVEL_NAMES, handoff_messages

THREAD_LIMIT = 500  # messages of one conversation shown (the latest)


class Refused(LookupError):
    """Not this agent's conversation (or gone): the view answers 404, naming nothing."""


def visible(conversation_id: int, agent: Agent | None) -> Conversation:
    """The conversation if `agent` may read it: their own, or one waiting in the queue to
    be claimed; an admin (`agent` None) reads any. Otherwise `Refused`."""
    found = Conversation.get_or_none(Conversation.id == conversation_id)
    if found is None:
        raise Refused(conversation_id)
    if may_read(found, agent.id if agent is not None else None):
        return found
    raise Refused(conversation_id)


def may_read(conversation: Conversation, agent_id: int | None) -> bool:
    """The one rule of `visible`, for a conversation already loaded (the live stream asks it
    for every change it would send): queued, or assigned to this agent; anything for an admin."""
    return agent_id is None or conversation.status == "queued" or (
        conversation.status == "assigned" and conversation.agent_id == agent_id)


def owned(conversation_id: int, agent: Agent) -> Conversation:
    """The conversation if it is assigned to `agent` now (to reply, transfer, resolve)."""
    found = fetch_one(Conversation, '"id" = ?', (conversation_id,))  # fixed SQL: every reply asks
    if found is None or found.status != "assigned" or found.agent_id != agent.id:
        raise Refused(conversation_id)
    return found


CUSTOMER_LINES_READ = 50  # an inbox line reads this many of the customer's latest lines at once


def _customer_says(conversation: Conversation) -> Any:
    return (Message.conversation == conversation.id) & (Message.direction == "in") & (Message.author == "customer")


def _waiting(conversation: Conversation,
             latest: list[tuple[int, datetime, str]] | None = None) -> tuple[datetime | None, int]:
    """Since when the customer waits for the agent, and how many of their messages since the
    agent last spoke (the unread count). `latest`: the customer's newest lines (id, created_at,
    text), newest first, when already read (`_row`): counted from them when they reach back far
    enough, else counted in the database."""
    replied = conversation.last_agent_reply_at
    if replied is not None:
        counts = lambda at: at > replied  # noqa: E731
    else:  # nobody answered yet: what they said since asking for a person (the request included)
        starts = [t for t in (conversation.queued_at, conversation.assigned_at) if t is not None]
        start = min(starts or [conversation.opened_at])
        counts = lambda at: at >= start  # noqa: E731
    if latest is not None and (len(latest) < CUSTOMER_LINES_READ or not counts(latest[-1][1])):
        unread = sum(1 for _, at, _ in latest if counts(at))
        from_rows = conversation.status == "assigned" and replied is not None and not (
            conversation.assigned_at and replied < conversation.assigned_at)
        if not from_rows:  # waiting since the handoff: no message needed
            return conversations.awaiting_reply_since(conversation), unread
        after = [at for _, at, _ in latest if at > replied]
        return (min(after) if after else None), unread
    since = conversations.awaiting_reply_since(conversation)
    if replied is not None:
        unread = Message.select().where(_customer_says(conversation) & (Message.created_at > replied)).count()
    else:
        unread = Message.select().where(_customer_says(conversation) & (Message.created_at >= start)).count()
    return since, unread


_LATEST_SAID = ('SELECT "id", "created_at", "text" FROM "message" WHERE "conversation_id" = ? AND "direction" = ?'
                f' AND "author" = ? ORDER BY "id" DESC LIMIT {CUSTOMER_LINES_READ}')


def _row(conversation: Conversation) -> dict[str, Any]:
    # fixed SQL (the live hub builds a line for every change): one read of the customer's
    # latest lines gives the last words, the unread count and the wait
    customer = related(conversation, "customer")  # the live hub's rows come with theirs joined: no query
    stamp = Message.created_at.python_value
    latest = [(i, stamp(at), text) for i, at, text in execute(_LATEST_SAID, (conversation.id, "in", "customer"))]
    since, unread = _waiting(conversation, latest)
    last = latest[0][2] if latest else ""
    return {"id": conversation.id, "customer": str(customer) if customer else "", "status": conversation.status,
            "waiting_since": since.isoformat() if since else None, "unread": unread,
            "last": last[:80],
            "queued_at": conversation.queued_at.isoformat() if conversation.queued_at else None}


def inbox_row(conversation: Conversation) -> dict[str, Any]:
    """One line of the inbox: the live stream sends it alone when only its messages changed."""
    return _row(conversation)


def inbox(agent: Agent | None) -> dict[str, Any]:
    """My conversations, longest waiting first (those waiting for nobody last), the queue,
    the public pool's size, and my status and capacity. An admin sees every assigned one."""
    return {**mine(agent), **shared_inbox()}


def mine(agent: Agent | None) -> dict[str, Any]:
    """The agent's own part of `inbox`: their conversations and their status."""
    if agent is not None:
        query = fetch_all(Conversation, '"status" = ? AND "agent_id" = ?', ("assigned", agent.id))
    else:
        query = fetch_all(Conversation, '"status" = ?', ("assigned",))
    rows = [_row(c) for c in query]
    far = "9999"
    rows.sort(key=lambda r: (r["waiting_since"] or far, r["id"]))
    me = None
    if agent is not None:
        fresh = fetch_one(Agent, '"id" = ?', (agent.id,))
        if fresh is None:
            raise Agent.DoesNotExist(agent.id)
        me = {"id": fresh.id, "name": str(fresh), "status": fresh.status, "max_open": fresh.max_open,
              "open": assignment.load_of(fresh)}
    return {"me": me, "mine": rows}


def shared_inbox() -> dict[str, Any]:
    """The part of `inbox` every agent sees alike (the queue, the pool's size): the live
    stream computes it once for all its agents."""
    return {"queue": [_row(c) for c in conversations.queued()[:50]],
            "pool": pools.public_pool().count(), "now": clock.now().isoformat()}


def thread(conversation: Conversation, after: int = 0) -> list[dict[str, Any]]:
    """The whole conversation as its customer lived it, with who wrote each line: what the
    customer wrote, what the bot and agents answered, system lines; not the copies relayed
    to agents' IM accounts (those are the same words, addressed to the agent)."""
    customer: Customer = conversation.customer
    rows = (Message.select()
            .where((Message.conversation == conversation.id) & (Message.id > after)
                   & (((Message.direction == "in") & (Message.author == "customer"))
                      | ((Message.direction == "out") & (Message.peer_id == customer.external_id))))
            .order_by(Message.id.desc()).limit(THREAD_LIMIT))
    return [message_row(m) for m in reversed(list(rows))]


def in_thread(message: Message, customer_external_id: str) -> bool:
    """`thread`'s rule for one message: the customer's own words, or sent to the customer."""
    return (message.direction == "in" and message.author == "customer") or (
        message.direction == "out" and message.peer_id == customer_external_id)


def message_row(m: Message) -> dict[str, Any]:
    """One line of the thread as the page draws it (the poll and the live stream alike)."""
    return {"id": m.id, "author": "customer" if m.direction == "in" else m.author, "kind": m.kind, "text": m.text,
            "cards": [str(c.get("title", "")) for c in (m.payload or {}).get("cards") or ()],
            "agent": str(m.agent) if m.agent_id else None, "at": m.created_at.isoformat()}


def brief(conversation: Conversation, agent: Agent | None) -> str:
    """The handoff brief the agent was given for this conversation (who, why, a transfer's
    note, what was said before): the same text their IM account received, so an agent who
    took it over in the workbench reads the note too. Empty for an admin or without one."""
    if agent is None:
        return ""
    found = (Message.select(Message.text)
             .where((Message.conversation == conversation.id) & (Message.direction == "out")
                    & (Message.author == "system") & (Message.peer_id == agent.im_user_id))
             .order_by(Message.id.desc()).first())
    return found.text if found else ""


def customer_card(conversation: Conversation) -> dict[str, Any]:
    """Beside the thread: who the customer is, their orders, coupons and earlier conversations."""
    customer: Customer = conversation.customer
    tags = [t.name for t in Tag.select().join(CustomerTag).where(CustomerTag.customer == customer.id)]
    orders = [{"id": o.shop_order_id, "status": o.status, "amount": str(o.amount), "at": o.created_at.isoformat()}
              for o in Order.select().where(Order.customer == customer.id).order_by(Order.created_at.desc()).limit(5)]
    now = clock.now()
    coupons = [{"name": str(c.coupon), "code": c.code, "expires_at": c.expires_at.isoformat()}
               for c in IssuedCoupon.select().where((IssuedCoupon.customer == customer.id)
                                                    & IssuedCoupon.used_at.is_null() & (IssuedCoupon.expires_at > now))]
    earlier = [{"id": c.id, "opened_at": c.opened_at.isoformat(), "status": c.status, "rating": c.satisfaction}
               for c in Conversation.select().where((Conversation.customer == customer.id)
                                                    & (Conversation.id != conversation.id))
               .order_by(Conversation.id.desc()).limit(5)]
    return {"name": str(customer), "channel": customer.channel,
            "level": LEVEL_NAMES.get(customer.level, f"VIP{customer.level}"), "tags": tags,
            "notes": customer.notes[-500:], "orders": orders, "coupons": coupons, "earlier": earlier}


def suggestions(conversation: Conversation, store: FaqStore, limit: int = 3) -> list[dict[str, Any]]:
    """The FAQ matcher's best answers to the customer's last message, for one click."""
    last = (Message.select().where((Message.conversation == conversation.id) & (Message.direction == "in")
                                   & (Message.author == "customer") & (Message.kind == "text"))
            .order_by(Message.id.desc()).first())
    if last is None or not last.text.strip():
        return []
    out: list[dict[str, Any]] = []
    for candidate in store.match(last.text, limit=limit + 2).candidates:
        answer = store.answer_for(int(candidate.faq_id), candidate.question)
        if answer is not None and all(o["faq_id"] != answer.faq_id for o in out):
            out.append({"faq_id": answer.faq_id, "question": candidate.question, "answer": answer.answer,
                        "score": round(candidate.score, 3)})
        if len(out) == limit:
            break
    return out


def reply(conversation: Conversation, agent: Agent, text: str, client_id: str, faq_id: int | None = None) -> bool:
    """The agent's reply from the workbench: the same rows as a reply relayed from their IM
    account. `client_id` (unique per reply, from the page) makes a resent click send once.
    Returns False when it was sent before. One transaction: the reply's stamp and its message
    together, one turn at the database's writer (issue 22: three turns each before)."""
    customer = related(conversation, "customer")  # the live hub's rows come with theirs joined: no query
    if customer is None:
        raise Refused(conversation.id)
    out = Outgoing(conversation.channel, customer.external_id, Reply(text=text), "agent", conversation, customer,
                   agent=agent, faq=faq_id)
    with transaction():
        conversations.record_agent_reply(conversation)
        sent = emit([out], f"wb:{agent.id}:{client_id}") > 0
    if sent:  # emit's own nudge came before this commit: look again now that the row is there
        changes.changed(outbound=True)
    return sent


def resolve(conversation: Conversation, agent: Agent) -> int:
    """As /resolve: the customer is asked for a rating, the queue is served."""
    from bot.conversation.relay import Command, Relay

    Agent.update(current_conversation_id=conversation.id).where(Agent.id == agent.id).execute()
    agent.current_conversation_id = conversation.id
    return emit(Relay()._cmd_resolve(agent, Command("resolve")), f"wb-resolve:{conversation.id}")


def transfer(conversation: Conversation, agent: Agent, target_id: int, note: str) -> str:
    """Hand the conversation to another agent with a note; "ok" or why not (assignment.transfer)."""
    target = Agent.get_or_none(Agent.id == target_id)
    if target is None:
        return "unknown"
    outcome = assignment.transfer(conversation, target)
    if outcome != "ok":
        return outcome
    Conversation.update(handoff_reason="transfer").where(Conversation.id == conversation.id).execute()
    conversation.handoff_reason = "transfer"
    brief = f"由「{agent}」转接" + (f"：{note}" if note else "")
    emit(handoff_messages(conversation, conversation.customer, target, note=brief)
         + [say(agent, f"会话 #{conversation.id} 已转接给「{target}」。")],
         f"wb-transfer:{conversation.id}:{clock.now().strftime('%Y%m%dT%H%M%S%f')}")
    return "ok"


def claim(conversation: Conversation, agent: Agent) -> str:
    """Take a queued conversation: "ok", "full" or "gone" (someone else took it)."""
    taken = assignment.claim_queued(conversation, agent)
    if taken != "ok":
        return taken
    emit(handoff_messages(conversation, conversation.customer, agent),
         f"wb-claim:{conversation.id}:{clock.now().strftime('%Y%m%dT%H%M%S%f')}")
    return "ok"


def online_agents(exclude: int | None = None) -> list[dict[str, Any]]:
    """Agents one may transfer to."""
    query = Agent.select().where((Agent.active == True) & (Agent.status != "offline"))  # noqa: E712
    return [{"id": a.id, "name": str(a), "status": a.status} for a in query.order_by(Agent.id) if a.id != exclude]



# --- quick phrases (快捷短语) -------------------------------------------------------------------

MAX_PHRASES_SHOWN = 20


def phrases(agent: Agent | None, query: str = "") -> list[dict[str, Any]]:
    """The shop's quick phrases and the agent's own whose text contains `query` (a short
    search: a few words typed in the reply box), the agent's own first."""
    scope = QuickPhrase.agent.is_null() if agent is None else (QuickPhrase.agent.is_null() | (QuickPhrase.agent == agent.id))
    rows = QuickPhrase.select().where(scope)
    if query.strip():
        rows = rows.where(QuickPhrase.text.contains(query.strip()))
    found = sorted(rows.limit(200), key=lambda p: (p.agent_id is None, p.id))[:MAX_PHRASES_SHOWN]
    return [{"id": p.id, "text": p.text, "shop": p.agent_id is None} for p in found]


def add_phrase(agent: Agent | None, text: str) -> QuickPhrase:
    """An agent saves one of their own; an admin or operator (no agent) one for the whole shop.
    Saving the same text twice keeps one."""
    scope = QuickPhrase.agent.is_null() if agent is None else (QuickPhrase.agent == agent.id)
    existing = QuickPhrase.get_or_none(scope & (QuickPhrase.text == text))
    return existing or QuickPhrase.create(text=text, agent=agent.id if agent else None)


def delete_phrase(agent: Agent | None, phrase_id: int) -> None:
    """Only one's own: an agent cannot delete the shop's or another agent's (`Refused`)."""
    scope = QuickPhrase.agent.is_null() if agent is None else (QuickPhrase.agent == agent.id)
    if QuickPhrase.delete().where(scope & (QuickPhrase.id == phrase_id)).execute() != 1:
        raise Refused(phrase_id)


# --- teaching the bot what the agent answered ---------------------------------------------------


def learnable(conversation: Conversation) -> list[dict[str, Any]]:
    """The questions of this conversation the bot could not answer, still open in the learning
    loop, with the FAQ they would join: the one the agent answered with (a suggestion sent),
    else the matcher's best guess. None when neither exists: only a new FAQ then."""
    answered = (Message.select(Message.faq).where((Message.conversation == conversation.id) & (Message.author == "agent")
                                                  & (Message.direction == "out") & Message.faq.is_null(False))
                .order_by(Message.id.desc()).first())
    rows = (UnansweredQuestion.select()
            .where((UnansweredQuestion.customer == conversation.customer_id) & (UnansweredQuestion.resolved == False)  # noqa: E712
                   & (UnansweredQuestion.created_at >= conversation.opened_at))
            .order_by(UnansweredQuestion.id.desc()).limit(5))
    out = []
    for q in rows:
        faq_id = answered.faq_id if answered else q.best_faq_id
        faq = Faq.get_or_none(Faq.id == faq_id) if faq_id else None
        out.append({"id": q.id, "text": q.text, "faq_id": faq.id if faq else None,
                    "faq": (faq.answer[:60] if faq else "")})
    return out


def last_agent_reply(conversation: Conversation) -> str:
    """What an agent last told the customer here: the answer of a new FAQ taught from it."""
    found = (Message.select(Message.text).where((Message.conversation == conversation.id) & (Message.author == "agent")
                                                & (Message.direction == "out")
                                                & (Message.peer_id == conversation.customer.external_id))
             .order_by(Message.id.desc()).first())
    return found.text if found else ""


def learn(conversation: Conversation, question_id: int, faq_id: int | None) -> Faq:
    """One click: the question joins `faq_id` as a phrasing, or (None) becomes a new FAQ whose
    answer is the agent's last reply, through the learning loop's own actions
    (`bot.faq.learning`), so its figures count it. A question of another conversation is
    `Refused`; what learning refuses raises its `LearningError`."""
    if not any(q["id"] == question_id for q in learnable(conversation)):
        raise Refused(question_id)
    if faq_id is not None:
        learning.add_as_phrasing([question_id], faq_id)
        return Faq.get_by_id(faq_id)
    return learning.promote_to_new_faq([question_id], last_agent_reply(conversation))


# --- the platform's send window ----------------------------------------------------------------


def window(conversation: Conversation, channel_kind: str) -> dict[str, Any] | None:
    """For IM channels with the 48-hour customer-service window (公众号, 微信客服): until when
    the shop may still write to this customer, and on 微信客服 how many sends are left of the
    five per customer message (`bot.sending.send_window`, the same rules the outbox checks). None
    for channels without it (web, WeCom app). Each send counts as one platform message here
    (a long text the sender splits counts more at the outbox's own check)."""
    if channel_kind not in send_window.WINDOWED_KINDS:
        return None
    customer: Customer = conversation.customer
    past = send_window.history(customer.channel, channel_kind, customer.external_id)
    if past.last_inbound is None:
        return {"open_until": None, "open": False, "sends_left": None}
    until = past.last_inbound + send_window.CUSTOMER_SERVICE_WINDOW
    left = None
    if channel_kind == send_window.KF:
        used = send_window.sent_count(channel_kind, past.sent, lambda content: 1)
        left = max(send_window.KF_MESSAGES_PER_CUSTOMER_MESSAGE - used, 0)
    return {"open_until": until.isoformat(), "open": clock.now() <= until, "sends_left": left}
