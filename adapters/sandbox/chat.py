"""`kefu chat --channel NAME` for a 公众号 channel: a person talks to kefu's Official
Account path from a terminal, through the same signed (and encrypted) callbacks WeChat
sends. Passive replies print at once; replies sent later through the customer-service
API (late answers, agents) are read back from the stand-in when the channel's `api_base`
points at one (`kefu sandbox`).
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.request

from adapters.sandbox.client import WeChatServer
from adapters.terminal import typed_lines
from bot.core.config import ChannelConfig


def _print(who: str, text: str) -> None:
    print(f"{who}: {text}", flush=True)


def _poll_standin(api_base: str, openid: str, stop: threading.Event) -> None:
    seen = 0
    while not stop.wait(1.5):
        url = f"{api_base.rstrip('/')}/sandbox/messages?touser={openid}&after={seen}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                data = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError):
            continue
        for text in data.get("messages", []):
            _print("小蜜(客服消息)", text)
        seen = int(data.get("count", seen))


def run_wechat_chat(channel: ChannelConfig, base_url: str, openid: str | None = None) -> None:
    mode = "safe" if channel.encoding_aes_key else "plain"
    server = WeChatServer(channel.token, channel.app_id, channel.encoding_aes_key, mode=mode)
    openid = openid or "o_cli_" + secrets.token_hex(6)
    url = f"{base_url.rstrip('/')}/wechat/{channel.name}"
    print(f"(作为 {openid} 连接公众号 {url}，{mode} 模式；输入 /quit 退出)", flush=True)

    def say(xml: str) -> None:
        delivery = server.deliver_sync(url, xml)
        if delivery.status == 0:
            raise ConnectionError(f"cannot reach kefu at {url}")
        if delivery.status != 200:
            _print("系统", f"HTTP {delivery.status}: {delivery.body[:200]}")
        elif delivery.reply is not None:
            _print("小蜜", delivery.text)

    say(server.event_xml(openid, "subscribe"))
    stop = threading.Event()
    if channel.api_base and ("127.0.0.1" in channel.api_base or "localhost" in channel.api_base):
        threading.Thread(target=_poll_standin, args=(channel.api_base, openid, stop), daemon=True).start()
    try:
        for line in typed_lines():
            say(server.text_xml(openid, line))
    finally:
        stop.set()
