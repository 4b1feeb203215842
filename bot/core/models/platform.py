"""Platform state shared by processes: access tokens, cursors, leases, login throttle, seen requests."""

from __future__ import annotations

import peewee

from bot.core import clock
from bot.core.db import UTCDateTimeField
from bot.core.models.base import BaseModel
from bot.core.models.base import BaseModel


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
