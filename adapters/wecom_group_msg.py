"""A group campaign's send for one group owner: `externalcontact/add_msg_template` with
chat_type "group" (bot/campaigns/group_messages.py writes the outbox row).

Why its own sender step: WeCom does not post into customer groups for the shop; it hands
the owner a task (群发助手) that the owner sends from WeCom. The platform's answer is the
task's `msgid` and a `fail_list` of chats the owner cannot send to; both go back to the
outbox row as its platform id (`group_messages.platform_id`), from which the core marks
the groups and later tracks the owner's confirmation.
"""

from __future__ import annotations

from typing import Any, Mapping

from adapters.api_client import WeChatApi, classify
from bot.campaigns.group_messages import ADD_MSG_TEMPLATE, platform_id
from bot.sending.results import SendResult


async def send_group_msg(api: WeChatApi, owner: str, content: Mapping[str, Any]) -> SendResult:
    body: dict[str, Any] = {"chat_type": "group", "sender": owner, "chat_id_list": list(content.get("chat_id_list") or ())}
    if content.get("text"):
        body["text"] = {"content": str(content["text"])}
    if content.get("attachments"):
        body["attachments"] = list(content["attachments"])
    reply = await api.post(ADD_MSG_TEMPLATE, body)
    result = classify(reply)
    if result.outcome != "sent":
        return result
    return SendResult("sent", platform_id=platform_id(str(reply.data.get("msgid") or ""),
                                                      [str(c) for c in reply.data.get("fail_list") or ()]))
