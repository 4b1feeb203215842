"""What the bot does with a customer's message: answer, suggest, or hand to a human.

Why one place: the reception mode (bot_first / human_first / mixed), the handoff keywords,
the confidence threshold and business hours interact; keeping the decision here means the
dispatcher only stores and delivers, and the rules can be read top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import timedelta

from bot.agents import assignment, business_hours
from bot.crm import conversations
from bot.core import clock, settings
from bot.conversation import faq_hits, held_rows
from bot.core.db import execute, fetch_all, new_row, related
from bot.core.events import Card, Inbound, Reply
from bot.faq import learning
from bot.faq.handoff_intent import asks_for_human, explicit_request
from bot.faq.store import FaqStore
from bot.core.models import Agent, Conversation, Customer, Message, UnansweredQuestion
from bot.sending.outgoing import Outgoing

MEDIA_NAMES = {"image": "图片", "voice": "语音", "video": "视频", "shortvideo": "小视频", "location": "位置",
               "link": "链接", "file": "文件"}
LEVEL_NAMES = {0: "普通会员", 1: "VIP1", 2: "VIP2", 3: "VIP3", 4: "VIP4"}
SUGGESTION_FLOOR = 0.2


@dataclass
class Turn:
    """One customer message in context."""

    inbound: Inbound
    customer: Customer
    conversation: Conversation
    message: Message
    text: str  # the question as understood (a card number is replaced by its question)
    answered_before: Callable[[], bool] | None = None  # was the customer ever sent anything? None: `is_first_contact`


class Router:
    def __init__(self, store: FaqStore, threshold: float, suggestions: int = 3) -> None:
        self.store = store
        self.default_threshold = threshold
        self.suggestions = suggestions

    @property
    def threshold(self) -> float:
        configured = settings.get("faq_threshold")
        return float(configured) if configured is not None else self.default_threshold

    # -- entry point ------------------------------------------------------------------

    def route(self, turn: Turn) -> list[Outgoing]:
        inbound, conversation = turn.inbound, turn.conversation
        if conversation.status == "assigned" and conversation.agent_id:
            agent: Agent = related(conversation, "agent") or conversation.agent  # the latter: DoesNotExist
            if agent.status == "offline" or not agent.active:
                return self._agent_unavailable(turn)
            # the bot stays silent, but for one 已收到 while the customer waits for the agent's first word
            return [forward_to_agent(conversation, turn.customer, describe_inbound(inbound))] + acknowledgement(turn)
        if inbound.kind == "event":
            return self._event(turn)
        if inbound.kind != "text" or not turn.text.strip():
            name = MEDIA_NAMES.get(inbound.kind, "消息")
            return [self._to_customer(turn, f"已收到您的{name}。如需人工帮助，请回复“转人工”。")]
        if conversation.status == "queued":
            if self.wants_human(turn.text) and not self._faq_answers(turn.text):
                return [self._to_customer(turn, self._queue_text(conversation))]
            return self._answer_or_abstain(turn, allow_handoff=False)
        if self.wants_human(turn.text) and not self._faq_answers(turn.text):
            return self.handoff(turn, "requested")
        mode = settings.get("reception_mode")
        if mode == "human_first" and self._humans_available():
            return self.handoff(turn, "human_first")
        return self._answer_or_abstain(turn, allow_handoff=True, mode=mode)

    # -- pieces -------------------------------------------------------------------------

    def wants_human(self, text: str) -> bool:
        return asks_for_human(text, settings.get("handoff_keywords"))

    def _faq_answers(self, text: str) -> bool:
        """A message naming a handoff keyword that an FAQ answers with confidence (客服几点上班)
        is a question, answered; an explicit request (转人工, 人工客服, a keyword alone) never is."""
        if explicit_request(text, settings.get("handoff_keywords")):
            return False
        best = self.store.match(text, limit=2).best
        return best is not None and best.score >= self.threshold

    def _humans_available(self) -> bool:
        return business_hours.is_open(clock.now(), settings.get("business_hours")) and assignment.any_agent_free()

    def _answer_or_abstain(self, turn: Turn, allow_handoff: bool, mode: str = "bot_first") -> list[Outgoing]:
        rated = self._rating(turn)
        if rated is not None:
            return rated
        text = welcome_card_question(turn)
        match = self.store.match(text, limit=max(self.suggestions + 1, 2))
        best = match.best
        runner = match.runner_up
        meta = {
            "score": round(match.score, 4),
            "similarity": round(best.similarity, 4) if best else None,
            "faq_id": best.faq_id if best else None,
            "runner_up": runner.faq_id if runner else None,
            "runner_up_score": round(runner.score, 4) if runner else None,
            "runner_up_similarity": round(runner.similarity, 4) if runner else None,
            "stage": match.stage,
        }
        if best is not None and best.score >= self.threshold:
            answer = self.store.answer_for(int(best.faq_id), best.question)
            if answer is not None:
                faq_hits.count(answer.faq_id)  # written before the commit (bot/conversation/faq_hits.py)
                if turn.conversation.unanswered_turns:  # in a batch, written before its commit
                    held_rows.update(Conversation, "unanswered_turns", turn.conversation.id, 0)
                cards = RATING_CARDS if settings.get("rating_cards") else ()
                reply = Reply(text=answer.answer, cards=cards, meta={**meta, "category": answer.category, "rate": True})
                answered = Outgoing(turn.inbound.channel, turn.inbound.user_id, reply, "bot", turn.conversation,
                                    turn.customer, faq=answer.faq_id, score=match.score)
                return [answered]
        held_rows.insert(new_row(  # in a batch, with its other unanswered questions before the commit
            UnansweredQuestion, text=text[:2000], normalized=self.store.normalize(text), customer=turn.customer,
            message=turn.message, reason="abstained", best_faq=int(best.faq_id) if best else None,
            best_score=match.score if best else None,
        ))
        if allow_handoff and mode == "mixed":
            return self.handoff(turn, "unsure")
        unanswered = turn.conversation.unanswered_turns + 1
        held_rows.update(Conversation, "unanswered_turns", turn.conversation.id, unanswered)
        limit = int(settings.get("handoff_after_unanswered") or 0)
        if allow_handoff and limit and unanswered >= limit:
            return self.handoff(turn, "unanswered")
        cards = tuple(
            Card(title=c.question, payload=str(c.faq_id))
            for c in match.candidates[: self.suggestions]
            if c.similarity >= SUGGESTION_FLOOR
        ) or tuple(Card(title=q, payload=q) for q in card_questions())
        text = settings.get("abstain_message") if cards else "抱歉，这个问题我还不太确定。您可以换个说法，或回复“转人工”联系人工客服。"
        # the first thing a new customer hears from the bot: the welcome (unless their client
        # already showed it, as the web chat does before the first message)
        first_contact = (not turn.answered_before() if turn.answered_before is not None
                         else is_first_contact(turn.customer))
        if first_contact and not turn.inbound.raw.get("welcomed"):
            text = f"{settings.get('welcome_message')}\n{text}"
        reply = Reply(text=text, cards=cards, meta={**meta, "abstained": True})
        return [Outgoing(turn.inbound.channel, turn.inbound.user_id, reply, "bot", turn.conversation, turn.customer,
                         score=match.score)]

    def _rating(self, turn: Turn) -> list[Outgoing] | None:
        """A 👍/👎 (or its card number) right after an FAQ answer rates that answer."""

        value = learning.parse_rating(turn.text)
        if value is None:
            return None
        last = last_bot_message(turn.conversation)
        if last is None or last.faq_id is None:
            return None
        if learning.rate_answer(last, value, turn.customer) and value < 0 and last.in_reply_to_id:
            asked = Message.get_by_id(last.in_reply_to_id)
            UnansweredQuestion.create(text=asked.text[:2000], normalized=self.store.normalize(asked.text),
                                      customer=turn.customer, message=asked, reason="disliked",
                                      best_faq=last.faq_id, best_score=last.score)
        text = "感谢您的反馈！" if value > 0 else "抱歉没能帮到您。您可以换个说法再问我，或回复“转人工”联系人工客服。"
        return [self._to_customer(turn, text)]

    def handoff(self, turn: Turn, reason: str) -> list[Outgoing]:
        """Give the conversation to a human now, or queue it with an honest message."""
        conversation, customer = turn.conversation, turn.customer
        if not business_hours.is_open(clock.now(), settings.get("business_hours")):
            conversations.enqueue(conversation, reason)
            return [self._to_customer(turn, closed_text())]
        outlook = assignment.queue_outlook(conversation)
        if outlook.waiting or not outlook.free:  # others wait (nobody jumps the queue), or nobody could take it
            conversations.enqueue(conversation, reason)
            if not (outlook.waiting and outlook.free):  # nothing moves: it waits behind everyone there
                return [self._to_customer(turn, self._waiting_text(outlook.waiting + 1, outlook.online))]
            out = serve_queue(quiet=conversation.id)
            if out and Conversation.get_by_id(conversation.id).status == "assigned":  # nobody served: still queued
                return out
            return out + [self._to_customer(turn, self._queue_text(conversation))]
        # what the agent will be shown is read first: the assignment lock is held from the
        # assignment to this transaction's commit, and every handoff waiting for it waits that long
        brief = handoff_brief(conversation, customer, reason=reason)
        agent = assignment.assign_next_agent(conversation, prefer_id=conversations.previous_agent_id(customer),
                                             handoff_reason=reason)
        if agent is None:  # the free agent was taken meanwhile
            conversations.enqueue(conversation, reason)
            return [self._to_customer(turn, self._queue_text(conversation))]
        return handoff_messages(conversation, customer, agent, brief=brief)

    def _agent_unavailable(self, turn: Turn) -> list[Outgoing]:
        """The agent went offline (or was deactivated) while the customer still writes."""
        previous: Agent = turn.conversation.agent
        agent = assignment.reassign_from_unavailable(turn.conversation)
        if agent is not None:
            return handoff_messages(turn.conversation, turn.customer, agent)
        return [self._to_customer(turn, requeued_text(previous, turn.conversation))]

    def _queue_text(self, conversation: Conversation) -> str:
        return self._waiting_text(*assignment.queue_place(conversation))

    @staticmethod
    def _waiting_text(position: int, anyone_online: bool) -> str:
        if not anyone_online:  # not busy: nobody is there
            return nobody_online_text(position)
        return settings.get("queue_message").format(position=conversations.shown_place(position))

    def _event(self, turn: Turn) -> list[Outgoing]:
        event = turn.inbound.event.lower()
        if event == "subscribe":
            return [welcome(turn.inbound.channel, turn.inbound.user_id, turn.conversation, turn.customer)]
        if event == "unsubscribe":
            Customer.update(subscribed=False).where(Customer.id == turn.customer.id).execute()
            return []
        if event == "click" and turn.inbound.event_key:
            return self.route(Turn(
                Inbound(turn.inbound.channel, turn.inbound.user_id, turn.inbound.msg_id, "text", turn.inbound.event_key),
                turn.customer, turn.conversation, turn.message, turn.inbound.event_key,
            ))
        return []

    def _to_customer(self, turn: Turn, text: str) -> Outgoing:
        return Outgoing(turn.inbound.channel, turn.inbound.user_id, Reply(text=text), "bot", turn.conversation,
                        turn.customer)


RATING_CARDS = (Card("👍 有帮助", "rate:1"), Card("👎 没帮助", "rate:-1"))


def card_questions() -> list[str]:
    """The operator's welcome card questions (at most 9, so each has a one-digit number)."""
    return [str(q).strip() for q in (settings.get("card_questions") or []) if str(q).strip()][:9]


def welcome(channel: str, user_id: str, conversation: Conversation | None, customer: Customer | None) -> Outgoing:
    """The welcome message with the card questions; sent on subscribe and on first contact."""
    cards = tuple(Card(title=q, payload=q) for q in card_questions())
    return Outgoing(channel, user_id, Reply(text=settings.get("welcome_message"), cards=cards), "bot",
                    conversation, customer)


def is_first_contact(customer: Customer) -> bool:
    """Nothing was ever sent to this customer (no welcome on subscribe, no answer)."""
    return execute('SELECT 1 FROM "message" WHERE "customer_id" = ? AND "direction" = \'out\' LIMIT 1',
                   (customer.id,)).fetchone() is None


def last_bot_message(conversation: Conversation) -> Message | None:
    return (Message.select().where((Message.conversation == conversation) & (Message.direction == "out")
                                   & (Message.author == "bot"))
            .order_by(Message.id.desc()).first())


def welcome_card_question(turn: Turn) -> str:
    """A number typed before the bot said anything in this conversation (e.g. under the web
    chat's welcome card) picks a welcome card question; other text is returned unchanged."""
    stripped = turn.text.strip()
    if not (stripped.isdigit() and len(stripped) == 1) or last_bot_message(turn.conversation) is not None:
        return turn.text
    cards = card_questions()
    index = int(stripped) - 1
    return cards[index] if 0 <= index < len(cards) else turn.text


REASON_NAMES = {"requested": "顾客要求转人工", "human_first": "人工优先", "unsure": "机器人没有把握",
                "unanswered": "机器人多次未能回答", "agent_offline": "原客服已下线", "transfer": "转接",
                "revisit": "回访低分"}
QUEUE_UPDATE_TOP = 10  # customers this close to the front hear when the queue moves
QUEUE_UPDATE_TEXT = "排队进度更新：您现在排在第 {position} 位，请耐心等待。"


def closed_text() -> str:
    """Outside business hours: the hours, and honestly when humans are next back."""
    schedule = settings.get("business_hours")
    template = settings.get("offline_message")
    back = business_hours.describe_next_open(clock.now(), schedule)
    try:
        text = template.format(hours=business_hours.describe(schedule), next_open=back)
    except (KeyError, IndexError, ValueError):  # an operator's template with stray braces
        text = template
    if "{next_open}" not in template:
        text += f"人工客服预计 {back} 上线，您已在排队中。"
    return text


def nobody_online_text(position: int) -> str:
    """In business hours with no agent online, "busy" would be untrue: say nobody is online
    and when people are (someone away comes back; otherwise the service hours)."""
    if Agent.select().where((Agent.active == True) & (Agent.status == "away")).exists():  # noqa: E712
        when = "客服暂时离开，回来后会第一时间接待您"
    else:
        when = f"人工客服的服务时间是 {business_hours.describe(settings.get('business_hours'))}，客服上线后会第一时间接待您"
    return f"当前没有人工客服在线。{when}；您已在排队中（第 {conversations.shown_place(position)} 位）。"


def queue_snapshot() -> dict[int, int]:
    """Queued conversation id -> position (1 = longest waiting)."""
    return {c.id: n for n, c in enumerate(conversations.queued(), 1)}


def serve_queue(quiet: int | None = None) -> list[Outgoing]:
    """Assign waiting conversations to free agents, longest-waiting first, with their
    handoff messages, and tell those still waiting their new position (all but conversation
    `quiet`, whose customer is being answered anyway). With nobody free it returns at once
    (a capacity freed meanwhile is served by its own transaction or the scheduler's pass)."""
    if not assignment.any_agent_free():
        return []
    before = queue_snapshot()
    out: list[Outgoing] = []
    for conversation, agent in assignment.drain_queue():
        out += handoff_messages(conversation, conversation.customer, agent)
    if out:
        out += [u for u in queue_position_updates(before) if u.conversation is None or u.conversation.id != quiet]
    return out


def queue_position_updates(before: dict[int, int]) -> list[Outgoing]:
    """Tell waiting customers their new position after the queue moved.

    A customer hears their new position when it changed (conversations left ahead, or one
    returned by an agent going offline was put back by its earlier waiting time) and is
    within `QUEUE_UPDATE_TOP`, so a long queue is not flooded on each move.
    """
    out: list[Outgoing] = []
    for n, conversation in enumerate(conversations.queued(), 1):
        if n > QUEUE_UPDATE_TOP:
            break
        if before.get(conversation.id, n) == n:
            continue
        customer: Customer = conversation.customer
        out.append(Outgoing(conversation.channel, customer.external_id, Reply(text=QUEUE_UPDATE_TEXT.format(position=n)),
                            "bot", conversation, customer))
    return out


_TAG_NAMES = ('SELECT "tag"."name" FROM "tag" JOIN "customer_tag" ON "customer_tag"."tag_id" = "tag"."id"'
              ' WHERE "customer_tag"."customer_id" = ?')


def customer_header(conversation: Conversation, customer: Customer) -> str:
    tags = [name for (name,) in execute(_TAG_NAMES, (customer.id,))]  # fixed SQL: every line to an agent
    parts = [f"#{conversation.id}", str(customer), LEVEL_NAMES.get(customer.level, f"VIP{customer.level}")]
    if tags:
        parts.append("标签:" + "/".join(tags))
    return "【" + " ".join(parts) + "】"


def describe_inbound(inbound: Inbound) -> str:
    if inbound.kind == "text":
        return inbound.text
    if inbound.kind == "event":
        return f"[事件 {inbound.event}]"
    url = inbound.media.get("url") or inbound.media.get("media_id") or ""
    return f"[{MEDIA_NAMES.get(inbound.kind, inbound.kind)}] {url}".strip()


def forward_to_agent(conversation: Conversation, customer: Customer, text: str) -> Outgoing:
    agent: Agent = related(conversation, "agent") or conversation.agent
    return Outgoing(agent.channel, agent.im_user_id, Reply(text=f"{customer_header(conversation, customer)} {text}"),
                    "system", conversation, customer, agent=agent)


HANDOFF_NOTICE = "handoff"  # the payload mark of the customer's 已为您转接… line
ACK_NOTICE = "ack"  # the payload mark of the 已收到，客服马上回复您 line


def acknowledgement(turn: Turn) -> list[Outgoing]:
    """The operator's 已收到 line (setting `handoff_ack_message`, empty: never) for a customer
    writing to an agent who has not answered since the handoff, once per waiting stretch:
    without it their messages after 已为您转接 met silence, and they wrote again or left.

    The stretch starts when an agent is given the conversation (a transfer starts another) and
    ends at that agent's first reply; after it the agent is talking with them and needs no
    stand-in.
    Two messages at once cannot both acknowledge: the dispatcher's transaction has already
    updated the conversation row (its `last_message_at`), so the second waits for the first."""
    text = str(settings.get("handoff_ack_message") or "").strip()
    conversation = turn.conversation
    since, replied = conversation.assigned_at, conversation.last_agent_reply_at
    if not text or since is None or (replied is not None and replied >= since):
        return []
    told = (Message.select(Message.payload)
            .where((Message.conversation == conversation.id) & (Message.direction == "out")
                   & (Message.author == "bot") & (Message.peer_id == turn.customer.external_id)
                   & (Message.created_at >= since)))
    if any((m.payload or {}).get("notice") == ACK_NOTICE for m in told):
        return []
    reply = Reply(text=text, meta={"notice": ACK_NOTICE})
    return [Outgoing(turn.inbound.channel, turn.inbound.user_id, reply, "bot", conversation, turn.customer)]


def requeued_text(agent: Agent, conversation: Conversation) -> str:
    """What a customer hears when their agent went offline and nobody else could take them:
    the same words whether the agent's going offline or the customer's next message found it."""
    position = conversations.queue_position(conversation)
    return REQUEUED_TEXT.format(agent=agent, position=conversations.shown_place(position))


REQUEUED_TEXT = "客服「{agent}」暂时离开，已为您重新排队，您现在排在第 {position} 位。"


def handoff_messages(conversation: Conversation, customer: Customer, agent: Agent, note: str = "",
                     brief: str | None = None) -> list[Outgoing]:
    """Tell the customer who is coming and give the agent the context (`brief`, read
    here unless the caller read it before the assignment)."""
    to_customer = Outgoing(
        conversation.channel, customer.external_id,
        Reply(text=settings.get("handoff_message").format(agent=f"「{agent}」"), meta={"notice": HANDOFF_NOTICE}),
        "bot", conversation, customer,
    )
    text = brief if brief is not None else handoff_brief(conversation, customer, note)
    to_agent = Outgoing(agent.channel, agent.im_user_id, Reply(text=text), "system", conversation,
                        customer, agent=agent)
    return [to_customer, to_agent]


_BRIEF_LINES = ('"conversation_id" = ? AND "created_at" >= ? AND (("direction" = \'in\' AND "author" = \'customer\' '
                'AND "text" <> \'\') OR ("direction" = \'out\' AND "peer_id" = ?)) ORDER BY "id" DESC LIMIT 12')


def handoff_brief(conversation: Conversation, customer: Customer, note: str = "", reason: str | None = None) -> str:
    """What an agent taking the conversation is shown: who the customer is, why they came
    (`note`, else the name of `reason`, else of the conversation's handoff reason), the
    customer's notes and the last lines said. Reads only, nothing of the agent's."""
    why = reason if reason is not None else conversation.handoff_reason
    since = clock.now() - timedelta(hours=24)
    # what the customer said and was told: not what went to agents in the conversation's name
    # (earlier briefs, relayed copies, notices), which a moved conversation's brief quoted as
    # the agent's words, nesting one more brief with each move; not empty events (subscribe)
    # nor an earlier 已为您转接「previous agent」 notice: the new agent is not who it names
    recent = [m for m in fetch_all(Message, _BRIEF_LINES, (conversation.id, Message.created_at.db_value(since),
                                                           customer.external_id))
              if (m.payload or {}).get("notice") not in (HANDOFF_NOTICE, ACK_NOTICE)][:6]
    lines = [f"{customer_header(conversation, customer)} 新的人工会话（{note or REASON_NAMES.get(why, why or '转人工')}）"]
    if customer.notes:
        lines.append(f"备注：{customer.notes[-200:]}")
    for m in reversed(recent):
        who = "顾客" if m.direction == "in" else {"bot": "机器人", "agent": "客服"}.get(m.author, "系统")
        lines.append(f"{who}：{m.text[:200]}")
    lines.append("直接回复即可与顾客对话；发送 /help 查看命令。")
    return "\n".join(lines)
