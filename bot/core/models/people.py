"""The people and their groupings: settings and panel users, agents, customers, tags, groups, saved filters."""

from __future__ import annotations

import peewee

from bot.core import clock
from bot.core.db import UTCDateTimeField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.base import BaseModel, JSONField


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
