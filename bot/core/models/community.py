"""Community: channel codes (渠道活码) and their scans, WeCom external contacts and group chats."""

from __future__ import annotations

import peewee

from bot.core import clock
from bot.core.db import UTCDateTimeField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.commerce import Coupon, IssuedCoupon
from bot.core.models.people import Customer, CustomerGroup


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
