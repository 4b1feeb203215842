"""The owners' confirmations of group campaigns (bot/campaigns/group_message_tracking.py), read every few
minutes: a WeCom group message reaches a customer group only when its owner sends the task
from WeCom, and the platform calls nobody back when that happens."""

from __future__ import annotations

import logging
from typing import Sequence

from bot.campaigns import group_message_tracking
from bot.core.config import ChannelConfig
from bot.core.models import WecomGroupSend
from bot.crm.wecom_contacts import SyncError

log = logging.getLogger("kefu.jobs.group_messages")


def track_all(channels: Sequence[ChannelConfig]) -> dict[str, int]:
    """Track every wecom channel's chats waiting for their owner (and settle its sends in
    doubt, `group_message_tracking.settle_in_doubt`); returns chats now sent per
    channel. A channel whose calls are refused is logged and tried again next time."""
    from adapters.wecom import blocking_fetch  # the API client lives with the adapters

    done: dict[str, int] = {}
    for channel in channels:
        if channel.kind != "wecom" or not WecomGroupSend.select().where(
                (WecomGroupSend.channel == channel.name)
                & WecomGroupSend.status.in_(("waiting", "in_doubt", "handed"))).exists():
            continue
        try:
            done[channel.name] = group_message_tracking.track(channel.name, blocking_fetch(channel)).sent
        except SyncError as exc:
            log.warning("group messages on %s: %s", channel.name, exc)
    return done
