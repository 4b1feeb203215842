"""The agent's side: commands and relaying through the agent's own IM account.

Why: agents work from their phone's IM app. They talk to the shop account; what they write
goes to the customer of their current conversation, and a few short commands (Chinese and
English) list, switch, resolve and take conversations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from bot import assignment, conversations, settings
from bot.events import Inbound, Reply
from bot.models import Agent, Conversation, Customer
from bot.outgoing import Outgoing
from bot.routing import customer_header, handoff_messages

HELP = """可用命令（中英文皆可）：
/list 或 列表 — 我的会话
/switch N 或 切换 N — 切换到会话 #N
/resolve 或 结束 — 结束当前会话（顾客会收到满意度评价）
/next 或 接入 — 从排队中接入下一位顾客
/online、/away、/offline 或 上线、离开、下线 — 设置状态
/help 或 帮助 — 显示本帮助
其他文字会直接发送给当前会话的顾客。"""

ALIASES: dict[str, str] = {
    "list": "list", "ls": "list", "列表": "list", "会话": "list",
    "switch": "switch", "sw": "switch", "切换": "switch",
    "resolve": "resolve", "done": "resolve", "结束": "resolve", "完成": "resolve",
    "next": "next", "claim": "next", "接入": "next", "领取": "next",
    "online": "online", "上线": "online", "away": "away", "离开": "away", "offline": "offline", "下线": "offline",
    "help": "help", "帮助": "help", "?": "help",
}
_COMMAND = re.compile(r"^\s*/?\s*(\S+?)\s*(?:#?\s*(\d+))?\s*$")


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse_command(text: str) -> Command | None:
    """`/list`, `列表`, `切换 3`, `/switch #3`; None when the text is a message to relay.

    English words need the slash (an agent may well write "ok" or "done" to a customer);
    the Chinese command words work alone, as the whole message.
    """
    stripped = text.strip()
    match = _COMMAND.match(stripped)
    if not match:
        return None
    word, arg = match.group(1).lower().lstrip("/"), match.group(2) or ""
    name = ALIASES.get(word)
    if name is None:
        return None
    if stripped.startswith("/") or not word.isascii():
        return Command(name, arg)
    return None


class Relay:
    def handle(self, agent: Agent, inbound: Inbound) -> list[Outgoing]:
        command = parse_command(inbound.text) if inbound.kind == "text" else None
        if command is not None:
            handler: Callable[[Agent, Command], list[Outgoing]] = getattr(self, f"_cmd_{command.name}")
            return handler(agent, command)
        return self._relay(agent, inbound)

    def _say(self, agent: Agent, text: str) -> Outgoing:
        return Outgoing(agent.channel, agent.im_user_id, Reply(text=text), "system", agent=agent)

    def _current(self, agent: Agent) -> Conversation | None:
        if agent.current_conversation_id is None:
            return None
        conversation = Conversation.get_or_none(Conversation.id == agent.current_conversation_id)
        if conversation is None or conversation.agent_id != agent.id or conversation.status != "assigned":
            return None
        return conversation

    def _relay(self, agent: Agent, inbound: Inbound) -> list[Outgoing]:
        conversation = self._current(agent)
        if conversation is None:
            mine = conversations.open_for_agent(agent)
            if len(mine) == 1:
                conversation = mine[0]
                Agent.update(current_conversation_id=conversation.id).where(Agent.id == agent.id).execute()
            else:
                return [self._say(agent, "您当前没有选中的会话。发送 /list 查看会话，/switch N 切换。")]
        if inbound.kind != "text":
            payload = {"kind": inbound.kind, **dict(inbound.media)}
            reply = Reply(text=inbound.text or f"[{inbound.kind}]", kind=inbound.kind, meta=payload)
        else:
            reply = Reply(text=inbound.text)
        conversations.record_agent_reply(conversation)
        customer: Customer = conversation.customer
        return [Outgoing(conversation.channel, customer.external_id, reply, "agent", conversation, customer, agent=agent)]

    def _cmd_help(self, agent: Agent, command: Command) -> list[Outgoing]:
        return [self._say(agent, HELP)]

    def _cmd_list(self, agent: Agent, command: Command) -> list[Outgoing]:
        mine = conversations.open_for_agent(agent)
        if not mine:
            queued = Conversation.select().where(Conversation.status == "queued").count()
            return [self._say(agent, f"您没有进行中的会话。排队中：{queued} 位（/next 接入）。")]
        current = agent.current_conversation_id
        lines = ["我的会话："]
        for c in mine:
            mark = "▶ " if c.id == current else "  "
            lines.append(f"{mark}#{c.id} {c.customer}")
        return [self._say(agent, "\n".join(lines))]

    def _cmd_switch(self, agent: Agent, command: Command) -> list[Outgoing]:
        if not command.arg:
            return [self._say(agent, "请指定会话编号，例如：/switch 12")]
        conversation = Conversation.get_or_none(Conversation.id == int(command.arg))
        if conversation is None or conversation.agent_id != agent.id or conversation.status != "assigned":
            return [self._say(agent, f"会话 #{command.arg} 不在您的列表中。发送 /list 查看。")]
        Agent.update(current_conversation_id=conversation.id).where(Agent.id == agent.id).execute()
        return [self._say(agent, f"已切换到 {customer_header(conversation, conversation.customer)}")]

    def _cmd_resolve(self, agent: Agent, command: Command) -> list[Outgoing]:
        conversation = self._current(agent)
        if conversation is None:
            return [self._say(agent, "您当前没有选中的会话。")]
        customer: Customer = conversation.customer
        conversations.resolve(conversation, by="agent")
        out = [
            Outgoing(conversation.channel, customer.external_id, Reply(text=settings.get("resolved_message")), "bot",
                     conversation, customer),
            self._say(agent, f"会话 #{conversation.id} 已结束。"),
        ]
        return out + drain_queue_messages()

    def _cmd_next(self, agent: Agent, command: Command) -> list[Outgoing]:
        waiting = (
            Conversation.select().where(Conversation.status == "queued")
            .order_by(Conversation.queued_at, Conversation.id).first()
        )
        if waiting is None:
            return [self._say(agent, "当前没有排队的顾客。")]
        load = len(conversations.open_for_agent(agent))
        if load >= agent.max_open:
            return [self._say(agent, f"您已有 {load} 个会话，达到上限 {agent.max_open}。")]
        conversations.assign(waiting, agent)
        Agent.update(current_conversation_id=waiting.id).where(Agent.id == agent.id).execute()
        return handoff_messages(waiting, waiting.customer, agent)

    def _set_status(self, agent: Agent, status: str, label: str) -> list[Outgoing]:
        Agent.update(status=status).where(Agent.id == agent.id).execute()
        out = [self._say(agent, f"您的状态已设为：{label}")]
        if status == "online":
            out += drain_queue_messages()
        return out

    def _cmd_online(self, agent: Agent, command: Command) -> list[Outgoing]:
        return self._set_status(agent, "online", "在线")

    def _cmd_away(self, agent: Agent, command: Command) -> list[Outgoing]:
        return self._set_status(agent, "away", "离开")

    def _cmd_offline(self, agent: Agent, command: Command) -> list[Outgoing]:
        return self._set_status(agent, "offline", "下线")


def drain_queue_messages() -> list[Outgoing]:
    """Assign waiting conversations to free agents and produce the handoff messages."""
    out: list[Outgoing] = []
    for conversation, agent in assignment.drain_queue():
        out += handoff_messages(conversation, conversation.customer, agent)
    return out
