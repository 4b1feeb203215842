"""Conversations and what is said in them: messages, the FAQ and its phrasings, unanswered
questions, ratings, assignment log, the agents' quick phrases."""

from __future__ import annotations

import peewee

from bot.core import clock
from bot.core.db import UTCDateTimeField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.people import Agent, Customer


# --- conversations and messages --------------------------------------------------------


class Conversation(BaseModel):
    STATUSES = ("bot", "queued", "assigned", "resolved")

    customer = peewee.ForeignKeyField(Customer, backref="conversations", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=16, default="bot", index=True)
    open_key = peewee.IntegerField(null=True, unique=True)  # customer id while open
    agent = peewee.ForeignKeyField(Agent, null=True, backref="conversations", on_delete="SET NULL")
    opened_at = UTCDateTimeField(default=clock.now, index=True)
    queued_at = UTCDateTimeField(null=True)
    assigned_at = UTCDateTimeField(null=True)
    first_response_at = UTCDateTimeField(null=True)
    last_message_at = UTCDateTimeField(default=clock.now)
    last_agent_reply_at = UTCDateTimeField(null=True)
    resolved_at = UTCDateTimeField(null=True)
    resolved_by = peewee.CharField(max_length=16, default="")  # agent | admin | idle | customer
    unanswered_turns = peewee.IntegerField(default=0)
    handoff_reason = peewee.CharField(max_length=32, default="")
    satisfaction = peewee.IntegerField(null=True)  # 1..5

    def __str__(self) -> str:
        return f"#{self.id}"


class Faq(BaseModel):
    category = peewee.CharField(max_length=32, default="更多问题", index=True)
    answer = peewee.TextField()
    enabled = peewee.BooleanField(default=True)
    hits = peewee.IntegerField(default=0)
    likes = peewee.IntegerField(default=0)
    dislikes = peewee.IntegerField(default=0)
    external_id = peewee.CharField(max_length=64, null=True, unique=True)  # id in import files
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now, index=True)

    def __str__(self) -> str:
        first = self.questions.order_by(FaqQuestion.id).first() if self.id else None
        return first.text if first else self.answer[:20]


class FaqQuestion(BaseModel):
    """One phrasing of an FAQ; the FAQ's score is its best phrasing's."""

    faq = peewee.ForeignKeyField(Faq, backref="questions", on_delete="CASCADE")
    text = peewee.CharField(max_length=512)

    def __str__(self) -> str:
        return self.text


class FaqCategory(BaseModel):
    """An FAQ category the shop manages in the panel (双11活动 …). FAQs keep the name itself
    (Faq.category), so imports and exports stay plain text; a rename updates them."""

    name = peewee.CharField(max_length=32, unique=True)
    position = peewee.IntegerField(default=0)  # the order choices are offered in

    class Meta:
        table_name = "faq_categories"  # "faq_category" is the name of Faq.category's index

    def __str__(self) -> str:
        return self.name


class Synonym(BaseModel):
    """Shop-editable synonyms: every word in `variants` is read as `canonical`."""

    canonical = peewee.CharField(max_length=32, unique=True)
    variants = peewee.CharField(max_length=512)  # comma or space separated


class Message(BaseModel):
    DIRECTIONS = ("in", "out")
    AUTHORS = ("customer", "bot", "agent", "system")

    channel = peewee.CharField(max_length=32)
    external_id = peewee.CharField(max_length=128)  # platform id (in) or generated key (out)
    conversation = peewee.ForeignKeyField(Conversation, null=True, backref="messages", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, null=True, backref="messages", on_delete="CASCADE")
    agent = peewee.ForeignKeyField(Agent, null=True, backref="messages", on_delete="SET NULL")
    direction = peewee.CharField(max_length=3)
    author = peewee.CharField(max_length=16)
    peer_id = peewee.CharField(max_length=128, default="")  # the IM user on the other end
    kind = peewee.CharField(max_length=16, default="text")
    text = peewee.TextField(default="")
    payload = JSONField(null=True)  # media, cards, scores, platform fields
    in_reply_to = peewee.ForeignKeyField("self", null=True, backref="replies", on_delete="SET NULL")
    faq = peewee.ForeignKeyField(Faq, null=True, backref="messages", on_delete="SET NULL")
    score = peewee.FloatField(null=True)
    state = peewee.CharField(max_length=16, default="done")  # in: received | done
    created_at = UTCDateTimeField(default=clock.now, index=True)

    class Meta:
        indexes = ((("channel", "external_id"), True),
                   (("channel", "peer_id", "id"), False))  # one peer's messages after an id (schema 23)


class UnansweredQuestion(BaseModel):
    """A question the bot could not answer, for the learning loop."""

    text = peewee.TextField()
    normalized = peewee.TextField(default="")
    customer = peewee.ForeignKeyField(Customer, null=True, on_delete="SET NULL")
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    reason = peewee.CharField(max_length=16, default="abstained")  # abstained | handoff
    best_faq = peewee.ForeignKeyField(Faq, null=True, on_delete="SET NULL")
    best_score = peewee.FloatField(null=True)
    resolved = peewee.BooleanField(default=False, index=True)
    created_at = UTCDateTimeField(default=clock.now, index=True)
    # when an operator handled it; one action stamps all its rows alike, so the dashboard counts
    # groups resolved per day as distinct times. None for rows resolved before schema 12.
    resolved_at = UTCDateTimeField(null=True, index=True)


class AssignmentLog(BaseModel):
    """One stint of one agent on one conversation (version 4).

    Why a log and not only `Conversation.agent`: a conversation may pass through several
    agents (SLA reassignment, transfer, an agent going offline); the KPIs count each
    agent's stints honestly (reply rate, first response) and routing finds a returning
    customer's previous agent here.
    """

    conversation = peewee.ForeignKeyField(Conversation, backref="assignment_logs", on_delete="CASCADE")
    agent = peewee.ForeignKeyField(Agent, backref="assignment_logs", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, backref="assignment_logs", on_delete="CASCADE")
    assigned_at = UTCDateTimeField(default=clock.now, index=True)
    first_reply_at = UTCDateTimeField(null=True)
    ended_at = UTCDateTimeField(null=True)
    end_reason = peewee.CharField(max_length=16, default="")  # resolved | transfer | sla | offline | requeue

    class Meta:
        table_name = "assignment_log"
        indexes = ((("conversation", "ended_at"), False), (("customer", "assigned_at"), False))


class FaqEmbedding(BaseModel):
    """A cached sentence vector of one normalized FAQ phrasing (version 3): every process
    reuses it, so start-up and edits embed only new text. Keyed by sha256(model, text)."""

    key = peewee.CharField(max_length=64, unique=True)
    model = peewee.CharField(max_length=64)
    vector = peewee.BlobField()  # float32, little-endian
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "faq_embedding"


class AnswerRating(BaseModel):
    """A customer's 👍/👎 on one FAQ answer (version 3); one per answer message."""

    message = peewee.ForeignKeyField(Message, unique=True, on_delete="CASCADE")
    faq = peewee.ForeignKeyField(Faq, backref="ratings", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, null=True, on_delete="SET NULL")
    value = peewee.IntegerField()  # 1 = helpful, -1 = not helpful
    created_at = UTCDateTimeField(default=clock.now, index=True)

    class Meta:
        table_name = "answer_rating"


class QuickPhrase(BaseModel):
    """A 快捷短语 an agent puts in the workbench's reply box in one click (issue 22): the shop's
    (agent null, added by an admin or operator) or one agent's own."""

    text = peewee.CharField(max_length=500)
    agent = peewee.ForeignKeyField(Agent, null=True, on_delete="CASCADE")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "quick_phrase"
        indexes = ((("agent", "text"), True),)
