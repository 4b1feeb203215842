"""The domain, as peewee models.

Why one module: the schema is one thing, versioned as a whole by `bot.migrations`; every
other module imports the rows it needs from here. Channels are configuration, not rows:
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

import json
from typing import Any

import peewee

from bot import clock
from bot.db import UTCDateTimeField, database


class JSONField(peewee.TextField):
    """JSON stored as text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        return json.loads(value) if isinstance(value, str) else value


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


# --- settings and administration -------------------------------------------------------


class Setting(BaseModel):
    """Operator-editable settings (reception mode, welcome message, ...), JSON values."""

    key = peewee.CharField(primary_key=True, max_length=64)
    value = JSONField(null=True)
    updated_at = UTCDateTimeField(default=clock.now)


class AdminUser(BaseModel):
    username = peewee.CharField(unique=True, max_length=64)
    password_hash = peewee.CharField(max_length=256)
    role = peewee.CharField(max_length=16, default="admin")  # admin | operator | agent
    active = peewee.BooleanField(default=True)
    must_change_password = peewee.BooleanField(default=False)
    failed_logins = peewee.IntegerField(default=0)
    locked_until = UTCDateTimeField(null=True)
    last_login_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=clock.now)
    # carried in the session and checked on every request: bumped at logout, password and
    # role change, it ends every session opened before (admin/auth.py; version 9)
    session_version = peewee.IntegerField(default=0)
    # role "agent": the Agent row this panel user works as in the workbench (version 17); an
    # id, not a foreign key, because Agent is declared below and agents are deactivated, not deleted
    agent_id = peewee.IntegerField(null=True, unique=True)

    def __str__(self) -> str:
        return self.username


# --- people -------------------------------------------------------------------------


class Agent(BaseModel):
    """A human agent (客服), reachable through a linked IM account on one channel."""

    name = peewee.CharField(unique=True, max_length=64)
    display_name = peewee.CharField(max_length=64, default="")
    channel = peewee.CharField(max_length=32)
    im_user_id = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default="offline", index=True)  # online | away | offline
    active = peewee.BooleanField(default=True)
    max_open = peewee.IntegerField(default=5)
    max_private = peewee.IntegerField(default=200)  # customers an agent may claim (私海)
    last_assigned_at = UTCDateTimeField(null=True)
    current_conversation_id = peewee.IntegerField(null=True)  # what the agent's text relays to
    created_at = UTCDateTimeField(default=clock.now)
    last_seen_at = UTCDateTimeField(null=True)  # their latest message, command or workbench request (version 21)

    class Meta:
        indexes = ((("channel", "im_user_id"), True),)

    def __str__(self) -> str:
        return self.display_name or self.name


class Customer(BaseModel):
    """A CRM record, created automatically on first contact from any channel."""

    channel = peewee.CharField(max_length=32)
    external_id = peewee.CharField(max_length=128)  # openid / userid / web visitor id
    nickname = peewee.CharField(max_length=128, default="")
    source = peewee.CharField(max_length=32, default="")
    name = peewee.CharField(max_length=64, default="")
    phone = peewee.CharField(max_length=32, default="", index=True)
    birthday = peewee.DateField(null=True)
    address = peewee.TextField(default="")
    preferences = peewee.TextField(default="")
    notes = peewee.TextField(default="")
    level = peewee.IntegerField(default=0)  # 0 = 普通, 1..4 = VIP1..VIP4
    owner_agent = peewee.ForeignKeyField(Agent, null=True, backref="owned_customers", on_delete="SET NULL")
    claimed_at = UTCDateTimeField(null=True)
    subscribed = peewee.BooleanField(default=True)
    blocked = peewee.BooleanField(default=False)
    is_spam = peewee.BooleanField(default=False)
    total_spend = peewee.DecimalField(max_digits=14, decimal_places=2, default=0)
    order_count = peewee.IntegerField(default=0)
    first_contact_at = UTCDateTimeField(default=clock.now)
    last_contact_at = UTCDateTimeField(default=clock.now, index=True)
    last_inbound_at = UTCDateTimeField(null=True)  # start of the platform's 48-hour window
    erased_at = UTCDateTimeField(null=True)
    # the WeChat open platform's id of the person across the shop's apps (公众号, WeCom customer
    # contact): a WeCom external contact with it joins this customer (bot/crm/wecom_contacts.py)
    unionid = peewee.CharField(max_length=64, null=True, index=True)

    class Meta:
        indexes = ((("channel", "external_id"), True),)

    def __str__(self) -> str:
        return self.name or self.nickname or f"{self.channel}:{self.external_id[-6:]}"


class Tag(BaseModel):
    name = peewee.CharField(unique=True, max_length=32)
    color = peewee.CharField(max_length=16, default="")

    def __str__(self) -> str:
        return self.name


class CustomerTag(BaseModel):
    customer = peewee.ForeignKeyField(Customer, backref="tag_links", on_delete="CASCADE")
    tag = peewee.ForeignKeyField(Tag, backref="customer_links", on_delete="CASCADE")

    class Meta:
        indexes = ((("customer", "tag"), True),)


class CustomerGroup(BaseModel):
    """A customer group (群): 快闪群, 直播群, 普通群, 会员群, 兴趣群."""

    name = peewee.CharField(unique=True, max_length=64)
    kind = peewee.CharField(max_length=16, default="普通群")
    description = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "customer_group"

    def __str__(self) -> str:
        return self.name


class GroupMember(BaseModel):
    group = peewee.ForeignKeyField(CustomerGroup, backref="members", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, backref="group_links", on_delete="CASCADE")
    joined_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("group", "customer"), True),)


class Segment(BaseModel):
    """A saved customer filter, usable as a campaign target."""

    name = peewee.CharField(unique=True, max_length=64)
    filter = JSONField(default=dict)
    created_at = UTCDateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


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
        indexes = ((("channel", "external_id"), True),)


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


# --- commerce -----------------------------------------------------------------------


class Coupon(BaseModel):
    name = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=16, default="amount")  # amount | percent
    value = peewee.DecimalField(max_digits=10, decimal_places=2)
    min_spend = peewee.DecimalField(max_digits=10, decimal_places=2, default=0)
    valid_days = peewee.IntegerField(default=30)
    active = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


class IssuedCoupon(BaseModel):
    coupon = peewee.ForeignKeyField(Coupon, backref="issued", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, backref="coupons", on_delete="CASCADE")
    code = peewee.CharField(max_length=32, unique=True)
    issued_at = UTCDateTimeField(default=clock.now)
    expires_at = UTCDateTimeField(index=True)
    used_at = UTCDateTimeField(null=True)
    reminded_at = UTCDateTimeField(null=True)  # the expiry reminder was handed to the outbox (version 5)


class Order(BaseModel):
    STATUSES = ("created", "paid", "shipped", "delivered", "refunded", "cancelled")

    shop_order_id = peewee.CharField(max_length=64, unique=True)
    customer = peewee.ForeignKeyField(Customer, null=True, backref="orders", on_delete="SET NULL")
    channel = peewee.CharField(max_length=32, default="")
    platform_user_id = peewee.CharField(max_length=128, default="")
    phone = peewee.CharField(max_length=32, default="", index=True)
    status = peewee.CharField(max_length=16, default="created")
    amount = peewee.DecimalField(max_digits=14, decimal_places=2, default=0)
    items = JSONField(null=True)
    event_at = UTCDateTimeField(null=True)  # time of the latest applied shop event
    created_at = UTCDateTimeField(default=clock.now)
    paid_at = UTCDateTimeField(null=True)
    shipped_at = UTCDateTimeField(null=True)
    delivered_at = UTCDateTimeField(null=True, index=True)
    refunded_at = UTCDateTimeField(null=True)
    revisit_score = peewee.IntegerField(null=True)
    revisited_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "shop_order"


# --- campaigns and delivery ----------------------------------------------------------


class Campaign(BaseModel):
    STATUSES = ("draft", "scheduled", "running", "paused", "done", "cancelled")

    name = peewee.CharField(max_length=128)
    target_kind = peewee.CharField(max_length=16, default="group")  # group | tag | level | segment | all
    target_value = peewee.CharField(max_length=64, default="")
    content_kind = peewee.CharField(max_length=16, default="text")  # text | image | news | template
    content = JSONField(default=dict)
    cron = peewee.CharField(max_length=64, default="")
    run_at = UTCDateTimeField(null=True)
    status = peewee.CharField(max_length=16, default="draft", index=True)
    run_key = peewee.CharField(max_length=128, default="")  # the current or last run's Delivery.job_key (version 5)
    run_planned = peewee.BooleanField(default=False)  # every recipient of the run has a Delivery (version 10)
    created_at = UTCDateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


class Delivery(BaseModel):
    """One (job run, recipient): claimed before sending, so a crash never sends twice."""

    job_key = peewee.CharField(max_length=128)  # e.g. campaign:12:2026-11-24T10:00
    customer = peewee.ForeignKeyField(Customer, backref="deliveries", on_delete="CASCADE")
    campaign = peewee.ForeignKeyField(Campaign, null=True, backref="deliveries", on_delete="SET NULL")
    # pending|claimed|sent|skipped|failed|in_doubt (attempted, the outcome unknown: bot/outbox.py)
    status = peewee.CharField(max_length=16, default="pending", index=True)
    reason = peewee.CharField(max_length=255, default="")
    outbox_key = peewee.CharField(max_length=160, null=True)
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("job_key", "customer"), True),)


class Outbox(BaseModel):
    """A send waiting to be delivered through a channel's API. Written before sending."""

    STATUSES = ("pending", "sending", "sent", "failed", "window_closed", "limit_reached", "in_doubt", "cancelled")

    key = peewee.CharField(max_length=160, unique=True)
    channel = peewee.CharField(max_length=32, index=True)
    recipient = peewee.CharField(max_length=128)
    content = JSONField()
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(default=clock.now)
    claimed_until = UTCDateTimeField(null=True)  # the claim's lease, renewed while the batch is sent
    claim_token = peewee.CharField(max_length=32, null=True)  # whose claim (version 10)
    attempted_at = UTCDateTimeField(null=True)  # the platform call is under way (version 10; bot/outbox.py)
    last_error = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=clock.now)
    sent_at = UTCDateTimeField(null=True)
    # the webhook request whose handling wrote the send (version 13): the sender logs it, so
    # a late reply's send is found by the id of the message that caused it
    request_id = peewee.CharField(max_length=64, null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


# --- platform state shared by processes ----------------------------------------------


class AccessToken(BaseModel):
    """One platform access_token per app, shared by every process."""

    app_key = peewee.CharField(max_length=128, unique=True)
    token = peewee.TextField(default="")
    expires_at = UTCDateTimeField(null=True)
    updated_at = UTCDateTimeField(default=clock.now)


class ChannelCursor(BaseModel):
    """A persisted pull cursor (微信客服 kf/sync_msg)."""

    channel = peewee.CharField(max_length=64, unique=True)
    cursor = peewee.TextField(default="")
    updated_at = UTCDateTimeField(default=clock.now)


class Lease(BaseModel):
    """A named lease (the scheduler's leadership on SQLite)."""

    name = peewee.CharField(max_length=64, unique=True)
    holder = peewee.CharField(max_length=128)
    expires_at = UTCDateTimeField()


class LoginThrottle(BaseModel):
    """Failed admin logins per client address, shared by every admin process (version 6)."""

    key = peewee.CharField(max_length=128, unique=True)  # "ip:203.0.113.7"
    failures = peewee.IntegerField(default=0)
    window_started_at = UTCDateTimeField(default=clock.now)
    locked_until = UTCDateTimeField(null=True)


class SeenRequest(BaseModel):
    """A signed API request already handled (by body hash), kept for the replay window, so
    a replayed or retried request is answered without being applied twice (version 7)."""

    key = peewee.CharField(max_length=96, unique=True)  # "orders:<sha256 of the body>"
    seen_at = UTCDateTimeField(default=clock.now, index=True)


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


# --- community: channel codes (渠道活码) ---------------------------------------------


class ChannelCode(BaseModel):
    """A 公众号 parametric QR code (渠道活码): scanning it tags the customer, adds them to a
    group, greets them and may issue a coupon (bot/crm/channel_codes.py). `scene` is the
    code's scene_str, which the platform gives back in the subscribe/SCAN event's EventKey;
    `ticket` and `url` are the platform's answer to qrcode/create (the image encodes `url`)."""

    name = peewee.CharField(unique=True, max_length=64)
    channel = peewee.CharField(max_length=32)  # the configured 公众号 channel's name
    scene = peewee.CharField(unique=True, max_length=64)
    permanent = peewee.BooleanField(default=True)  # QR_LIMIT_STR_SCENE, else a temporary QR_STR_SCENE
    expires_at = UTCDateTimeField(null=True)  # after it the code is refused (a temporary one also by WeChat)
    tags = JSONField(null=True)  # tag names to add
    group = peewee.ForeignKeyField(CustomerGroup, null=True, on_delete="SET NULL")
    welcome = peewee.TextField(default="")
    coupon = peewee.ForeignKeyField(Coupon, null=True, on_delete="SET NULL")
    ticket = peewee.CharField(max_length=256, default="")
    url = peewee.CharField(max_length=256, default="")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "channel_code"

    def __str__(self) -> str:
        return self.name


class ChannelCodeScan(BaseModel):
    """One customer's scans of one code: UNIQUE(code, customer) is what applies a code once
    per customer, whatever WeChat retries or the customer scans again (`scans` counts them)."""

    code = peewee.ForeignKeyField(ChannelCode, backref="scan_rows", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, on_delete="CASCADE")
    new_follower = peewee.BooleanField(default=False)  # came in by a subscribe event, not SCAN
    issued_coupon = peewee.ForeignKeyField(IssuedCoupon, null=True, on_delete="SET NULL")
    scans = peewee.IntegerField(default=1)
    first_at = UTCDateTimeField(default=clock.now)
    last_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "channel_code_scan"
        indexes = ((("code", "customer"), True),)


class QuickPhrase(BaseModel):
    """A 快捷短语 an agent puts in the workbench's reply box in one click (issue 22): the shop's
    (agent null, added by an admin or operator) or one agent's own."""

    text = peewee.CharField(max_length=500)
    agent = peewee.ForeignKeyField(Agent, null=True, on_delete="CASCADE")
    created_at = UTCDateTimeField(default=clock.now)

    class Meta:
        table_name = "quick_phrase"
        indexes = ((("agent", "text"), True),)


class WecomContact(BaseModel):
    """A WeCom external contact (客户联系) of the shop and the customer it is in kefu's CRM
    (its own, or a 公众号 customer with the same unionid). `follow_users` maps each employee
    userid who added them to {"status": active | deleted_by_staff | deleted_by_customer |
    transfer_failed, "state", "added_at", "remark", "reason"}; `removed_at` is set when no
    employee follows them any more (nothing is deleted: the customer and history stay)."""

    channel = peewee.CharField(max_length=32)  # the configured wecom channel's name
    external_userid = peewee.CharField(max_length=128)
    customer = peewee.ForeignKeyField(Customer, on_delete="CASCADE")
    unionid = peewee.CharField(max_length=64, default="")
    name = peewee.CharField(max_length=128, default="")
    follow_users = JSONField(null=True)
    synced_at = UTCDateTimeField(default=clock.now)
    removed_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "wecom_contact"
        indexes = ((("channel", "external_userid"), True),)


class WecomGroupChat(BaseModel):
    """A WeCom customer group (企业微信客户群) linked to the kefu group that mirrors it
    (bot/crm/wecom_groups.py): campaigns and the admin see the shop's real groups. `members`
    maps each member's userid to {"type": 1 employee | 2 external contact, "join_time"};
    external members are GroupMember rows of `group`. A dismissed chat keeps its group and
    members (`status` "dismissed", `dismissed_at`); `synced_at` is None when an event said
    something changed that only the next `groupchat/get` can tell (a name, the owner)."""

    channel = peewee.CharField(max_length=32)  # the configured wecom channel's name
    chat_id = peewee.CharField(max_length=64)
    group = peewee.ForeignKeyField(CustomerGroup, on_delete="CASCADE")
    name = peewee.CharField(max_length=128, default="")
    owner = peewee.CharField(max_length=64, default="")  # the employee userid who owns the chat
    members = JSONField(null=True)
    status = peewee.CharField(max_length=16, default="active")
    synced_at = UTCDateTimeField(null=True)
    dismissed_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "wecom_group_chat"
        indexes = ((("channel", "chat_id"), True),)


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
