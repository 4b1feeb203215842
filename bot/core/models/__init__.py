"""The domain, as peewee models.

Why one package, imported as one: the schema is one thing, versioned as a whole by
`bot.core.migrations` (its one ordered list of schema versions); the tables live in modules by
concept (people, conversations, commerce, platform, community), and every other module imports
the rows it needs from `bot.core.models`. Channels are configuration, not rows:
a row names its channel by the configured name.

Rules kept by the schema itself:
- a customer is UNIQUE(channel, external_id); so is every message (inbound: the platform's
  id; outbound: a generated key), which is how a retried delivery is recognised;
- a customer has at most one open conversation (`open_key` is the customer id while open,
  NULL once resolved, and unique);
- every outbound send (`Outbox.key`) and every job step (`Delivery(job_key, customer)`)
  has a unique key, so retries and restarts never send twice.
"""

from __future__ import annotations

from bot.core.models.base import JSONField, BaseModel
from bot.core.models.people import (
    Setting, AdminUser, Agent, Customer, Tag, CustomerTag, CustomerGroup, GroupMember, Segment,
)
from bot.core.models.conversations import (
    Conversation, Faq, FaqQuestion, FaqCategory, Synonym, Message, UnansweredQuestion,
    AssignmentLog, FaqEmbedding, AnswerRating, QuickPhrase,
)
from bot.core.models.commerce import Coupon, IssuedCoupon, Order, Campaign, Delivery, Outbox
from bot.core.models.platform import AccessToken, ChannelCursor, Lease, LoginThrottle, SeenRequest
from bot.core.models.community import ChannelCode, ChannelCodeScan, WecomContact, WecomGroupChat

__all__ = [
    "ALL_MODELS", "JSONField", "BaseModel", "Setting", "AdminUser", "Agent", "Customer", "Tag",
    "CustomerTag", "CustomerGroup", "GroupMember", "Segment", "Conversation", "Faq", "FaqQuestion",
    "FaqCategory", "Synonym", "Message", "UnansweredQuestion", "AssignmentLog", "FaqEmbedding",
    "AnswerRating", "QuickPhrase", "Coupon", "IssuedCoupon", "Order", "Campaign", "Delivery",
    "Outbox", "AccessToken", "ChannelCursor", "Lease", "LoginThrottle", "SeenRequest",
    "ChannelCode", "ChannelCodeScan", "WecomContact", "WecomGroupChat",
]

ALL_MODELS: tuple[type[BaseModel], ...] = (
    Setting,
    AdminUser,
    Agent,
    Customer,
    Tag,
    CustomerTag,
    CustomerGroup,
    GroupMember,
    Segment,
    Conversation,
    Faq,
    FaqQuestion,
    FaqCategory,
    Synonym,
    Message,
    UnansweredQuestion,
    Coupon,
    IssuedCoupon,
    Order,
    Campaign,
    Delivery,
    Outbox,
    AccessToken,
    ChannelCursor,
    Lease,
    LoginThrottle,
    SeenRequest,
    AssignmentLog,
    FaqEmbedding,
    AnswerRating,
    ChannelCode,
    ChannelCodeScan,
    QuickPhrase,
    WecomContact,
    WecomGroupChat,
)
