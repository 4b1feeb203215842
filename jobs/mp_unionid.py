"""New 公众号 followers' unionid, asked every 30 seconds (bot/crm/mp_unionid.py): the same
person's WeCom contact is merged as soon as the platform says who they are."""

from __future__ import annotations

import logging
from typing import Sequence

from bot.core.config import ChannelConfig
from bot.crm import mp_unionid

log = logging.getLogger("kefu.jobs.mp_unionid")


def learn_all(channels: Sequence[ChannelConfig]) -> dict[str, int]:
    """Ask about every 公众号 channel's new followers; returns unionids learnt per channel.
    A channel whose call is refused is logged and asked again next time."""
    from adapters.api_client import ApiError
    from adapters.wechat_mp import blocking_post  # the API client lives with the adapters

    learned: dict[str, int] = {}
    for channel in channels:
        if channel.kind != "wechat_mp" or not mp_unionid.pending(channel.name).exists():
            continue
        try:
            learned[channel.name] = mp_unionid.learn(channel.name, blocking_post(channel)).learned
        except (mp_unionid.UnionidError, ApiError) as exc:
            log.warning("unionid on %s: %s", channel.name, exc)
    return learned
