"""The panel's WeCom channels and its calls to them (入群欢迎语, 联系我活码, 客户群群发).

Why one place: the pages that ask WeCom something list the configured `wecom` channels the
same way and call the API through the adapters' blocking client (adapters/wecom.py), which
shares the access_token with the running kefu through the database.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from bot.core.config import ChannelConfig, Config


def wecom_channels() -> list[ChannelConfig]:
    config: Config = current_app.config["KEFU_CONFIG"]
    return [c for c in config.channels if c.kind == "wecom"]


def fetch(channel_name: str) -> Any:
    """`fetch(path, body, params) -> answer` on the named wecom channel."""
    from adapters.wecom import blocking_fetch  # the panel's call to the platform

    channel = next(c for c in wecom_channels() if c.name == channel_name)
    return blocking_fetch(channel)
