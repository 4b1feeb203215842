"""`Outgoing`: one message the core decided to send, before it is stored and delivered.

Why: routing and relay decide; the dispatcher persists. Keeping the decision as plain data
lets the dispatcher store every outbound message with a deterministic unique key, choose
inline reply or outbox, and lets tests read decisions as transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.events import Reply
from bot.core.models import Agent, Conversation, Customer, Faq


@dataclass
class Outgoing:
    channel: str
    to_user: str
    reply: Reply
    author: str  # bot | agent | system
    conversation: Conversation | None = None
    customer: Customer | None = None
    agent: Agent | None = None
    faq: Faq | int | None = None
    score: float | None = None
