"""The agent's side: commands and relaying through the agent's own IM account.

Why: agents work from their phone's IM app. They talk to the shop account; what they write
goes to the customer of their current conversation, and a few short commands (Chinese and
English) list, switch, resolve, take, transfer and annotate conversations and claim
customers from the public pool (公海 -> 私海).

A relay the platform refuses (WeChat's 48-hour window, a per-turn limit, a permanent
error) is reported back to the agent by `relay_delivery.report_undeliverable`, registered as
an outbox give-up listener: never dropped silently.

The other direction: on 公众号 / 微信客服 the platform lets the shop account write to an
agent only within 48 hours of the agent's own last message (微信客服: and 5 messages per
message), exactly as for a customer. What is refused meanwhile (customer messages relayed
to the agent, handoff briefs, notices) is stored and shown as `window_closed` /
`limit_reached` (admin), but cannot be reported to the agent at that moment; so the next
time the agent writes, which reopens their window, `relay_delivery.missed_while_away` tells them first
what did not reach them. The customer is not left waiting on it: the SLA job hands an
unanswered conversation to the next agent (jobs/sla.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from bot.agents import assignment
from bot.conversation.relay_delivery import drain_queue_messages, find_agent, go_offline, missed_while_away, say
from bot.conversation.routing import customer_header, handoff_messages, queue_position_updates, queue_snapshot
from bot.core import clock, settings
from bot.core.events import Inbound, Reply
from bot.core.models import Agent, Conversation, Customer, Faq
from bot.crm import conversations, pools
from bot.sending.outgoing import Outgoing

HELP = """可用命令（中文可直接发送，英文需加 /）：
/list 或 列表 — 我的会话
/switch N 或 切换 N — 切换到会话 #N
/resolve 或 结束 — 结束当前会话（顾客会收到满意度评价）
/next 或 接入 — 从排队中接入等待最久的顾客
/transfer 名字 或 转接 名字 — 把当前会话转给另一位客服
/pool 或 公海 — 查看公海客户；/claim N 或 认领 N — 把客户 N 领到我的私海
/mine 或 私海 — 我的私海客户；/release N 或 释放 N — 把客户 N 放回公海
/note 文字 或 备注 文字 — 给当前顾客加备注
/faq N、#N 或 发送FAQ N — 把第 N 号 FAQ 的答案发给当前顾客
/online、/away、/offline 或 上线、离开、下线 — 设置状态（下线时待回复的会话回到排队）
/help 或 帮助 — 显示本帮助
其他文字会直接发送给当前会话的顾客。"""

ALIASES: dict[str, str] = {
    "list": "list", "ls": "list", "列表": "list", "会话": "list",
    "switch": "switch", "sw": "switch", "切换": "switch",
    "resolve": "resolve", "done": "resolve", "结束": "resolve", "完成": "resolve",
    "next": "next", "接入": "next", "领取": "next",
    "transfer": "transfer", "tr": "transfer", "转接": "transfer", "转给": "transfer",
    "pool": "pool", "公海": "pool",
    "claim": "claim", "认领": "claim", "release": "release", "释放": "release",
    "mine": "mine", "私海": "mine", "我的客户": "mine",
    "note": "note", "备注": "note",
    "faq": "faq", "发送faq": "faq", "发faq": "faq",
    "online": "online", "上线": "online", "away": "away", "离开": "away", "offline": "offline", "下线": "offline",
    "help": "help", "帮助": "help", "?": "help",
}
NUMBER_ARG = ("switch", "claim", "release", "faq", "pool")
TEXT_ARG = ("transfer", "note")
POOL_PAGE = 10
_WITH_NUMBER = re.compile(r"^(\S+?)\s*(?:#?\s*(\d+))?$")
_WITH_TEXT = re.compile(r"^(\S+?)[\s:：]+(.+)$", re.S)
_FAQ_SHORT = re.compile(r"^#\s*(\d+)$")


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse_command(text: str) -> Command | None:
    """`/list`, `列表`, `切换 3`, `/switch #3`, `转接 小美`, `备注 喜欢红色`, `#3`; None
    when the text is a message to relay.

    English words need the slash (an agent may well write "ok" or "done" to a customer);
    the Chinese command words work alone, as the start of the whole message.
    """
    stripped = text.strip()
    short = _FAQ_SHORT.match(stripped)
    if short:
        return Command("faq", short.group(1))
    slash = stripped.startswith("/")
    body = stripped[1:].strip() if slash else stripped
    for pattern in (_WITH_NUMBER, _WITH_TEXT):
        match = pattern.match(body)
        if not match:
            continue
        word, arg = match.group(1).lower(), (match.group(2) or "").strip()
        name = ALIASES.get(word)
        if name is None or not (slash or not word.isascii()):
            continue
        if pattern is _WITH_TEXT and name not in TEXT_ARG:
            continue  # "列表 是什么" is a sentence, not a command
        if arg and name not in NUMBER_ARG + TEXT_ARG:
            continue
        return Command(name, arg)
    return None


class Relay:
    def handle(self, agent: Agent, inbound: Inbound) -> list[Outgoing]:
        """An agent's message: a command or a relay to their customer, preceded by what the
        platform did not let through to the agent since they last wrote (if anything)."""
        if inbound.kind == "event":  # the agent's own account (un)subscribing, a menu view: nothing to relay
            return self._event(agent, inbound)
        command = parse_command(inbound.text) if inbound.kind == "text" else None
        if command is not None:
            assignment.hold_lock()  # before any row is touched: see hold_lock
            handler: Callable[[Agent, Command], list[Outgoing]] = getattr(self, f"_cmd_{command.name}")
            out = handler(agent, command)
        else:
            out = self._relay(agent, inbound)
        return missed_while_away(agent, inbound) + out

    def _event(self, agent: Agent, inbound: Inbound) -> list[Outgoing]:
        """A subscribe from an agent's account gets the agent's own welcome (how to work from
        here), not the customers' welcome nor "no conversation selected"; other events nothing."""
        if inbound.event.lower() == "subscribe":
            return [self._say(agent, f"您好，{agent.display_name or agent.name}！您的账号已绑定为客服。"
                                     "新的人工会话会发到这里，直接回复即可与顾客对话；发送 /help 查看命令。")]
        return []

    def _say(self, agent: Agent, text: str) -> Outgoing:
        return say(agent, text)

    def _current(self, agent: Agent) -> Conversation | None:
        if agent.current_conversation_id is None:
            return None
        conversation = Conversation.get_or_none(Conversation.id == agent.current_conversation_id)
        if conversation is None or conversation.agent_id != agent.id or conversation.status != "assigned":
            return None
        return conversation

    def _current_or_only(self, agent: Agent, remember: bool = True) -> Conversation | None:
        """The selected conversation; with none selected, the agent's only one (selected
        from now on, unless `remember` is False and the caller does it)."""
        conversation = self._current(agent)
        if conversation is None:
            mine = conversations.open_for_agent(agent)
            if len(mine) == 1:
                conversation = mine[0]
                if remember:
                    self._remember(agent, conversation)
        return conversation

    @staticmethod
    def _remember(agent: Agent, conversation: Conversation) -> None:
        if agent.current_conversation_id != conversation.id:
            Agent.update(current_conversation_id=conversation.id).where(Agent.id == agent.id).execute()
            agent.current_conversation_id = conversation.id

    def _none_selected(self, agent: Agent) -> list[Outgoing]:
        return [self._say(agent, "您当前没有选中的会话。发送 /list 查看会话，/switch N 切换。")]

    def _relay(self, agent: Agent, inbound: Inbound) -> list[Outgoing]:
        # the conversation row before the agent row, the order the SLA job locks them in
        conversation = self._current_or_only(agent, remember=False)
        if conversation is None:
            return self._none_selected(agent)
        if inbound.kind != "text":
            payload = {"kind": inbound.kind, **dict(inbound.media)}
            reply = Reply(text=inbound.text or f"[{inbound.kind}]", kind=inbound.kind, meta=payload)
        else:
            reply = Reply(text=inbound.text)
        conversations.record_agent_reply(conversation)
        self._remember(agent, conversation)
        customer: Customer = conversation.customer
        return [Outgoing(conversation.channel, customer.external_id, reply, "agent", conversation, customer, agent=agent)]

    # -- conversations ----------------------------------------------------------------------

    def _cmd_help(self, agent: Agent, command: Command) -> list[Outgoing]:
        return [self._say(agent, HELP)]

    def _cmd_list(self, agent: Agent, command: Command) -> list[Outgoing]:
        mine = conversations.open_for_agent(agent)
        queued = Conversation.select().where(Conversation.status == "queued").count()
        if not mine:
            return [self._say(agent, f"您没有进行中的会话。排队中：{queued} 位（/next 接入）。")]
        current = agent.current_conversation_id
        lines = [f"我的会话（{len(mine)}/{agent.max_open}，排队中 {queued} 位）："]
        for c in mine:
            mark = "▶ " if c.id == current else "  "
            waiting = "（待回复）" if conversations.awaiting_reply_since(c) is not None else ""
            lines.append(f"{mark}#{c.id} {c.customer}{waiting}")
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
        conversation = self._current_or_only(agent)
        if conversation is None:
            return self._none_selected(agent)
        customer: Customer = conversation.customer
        conversations.resolve(conversation, by="agent")
        out = [
            Outgoing(conversation.channel, customer.external_id, Reply(text=settings.get("resolved_message")), "bot",
                     conversation, customer),
            self._say(agent, f"会话 #{conversation.id} 已结束。"),
        ]
        return out + drain_queue_messages()

    def _cmd_next(self, agent: Agent, command: Command) -> list[Outgoing]:
        before = queue_snapshot()
        taken = assignment.take_next(agent)
        if taken is None:
            return [self._say(agent, "当前没有排队的顾客。")]
        if taken == "full":
            return [self._say(agent, f"您的会话已达上限 {agent.max_open}，请先结束一些会话。")]
        assert isinstance(taken, Conversation)
        return handoff_messages(taken, taken.customer, agent) + queue_position_updates(before)

    def _cmd_transfer(self, agent: Agent, command: Command) -> list[Outgoing]:
        conversation = self._current_or_only(agent)
        if conversation is None:
            return self._none_selected(agent)
        if not command.arg:
            return [self._say(agent, "请指定客服，例如：转接 小美")]
        target = find_agent(command.arg)
        if target is None:
            return [self._say(agent, f"没有找到客服「{command.arg}」。")]
        outcome = assignment.transfer(conversation, target)
        reasons = {"same": "会话已经在您这里。", "inactive": f"「{target}」已停用。", "offline": f"「{target}」不在线。",
                   "full": f"「{target}」的会话已满。", "gone": "会话已结束或不在您名下。"}
        if outcome != "ok":
            return [self._say(agent, f"无法转接：{reasons.get(outcome, outcome)}")]
        customer: Customer = conversation.customer
        Conversation.update(handoff_reason="transfer").where(Conversation.id == conversation.id).execute()
        conversation.handoff_reason = "transfer"
        return [self._say(agent, f"会话 #{conversation.id} 已转接给「{target}」。")] + handoff_messages(
            conversation, customer, target, note=f"由「{agent}」转接")

    # -- customers: pool, notes, FAQ answers ----------------------------------------------------

    def _cmd_pool(self, agent: Agent, command: Command) -> list[Outgoing]:
        page = max(int(command.arg or 1), 1)
        query = pools.public_pool().where(Customer.blocked == False).order_by(  # noqa: E712
            Customer.last_contact_at.desc(), Customer.id.desc())
        total = query.count()
        rows = list(query.paginate(page, POOL_PAGE))
        if not rows:
            return [self._say(agent, "公海里暂时没有客户。")]
        lines = [f"公海客户（共 {total} 位，第 {page} 页）："]
        lines += [f"  {c.id}. {c} 最近联系 {c.last_contact_at.astimezone(settings.shop_zone()).strftime('%m-%d %H:%M')}" for c in rows]
        lines.append("发送“认领 N”把客户领到您的私海。")
        return [self._say(agent, "\n".join(lines))]

    def _cmd_claim(self, agent: Agent, command: Command) -> list[Outgoing]:
        if not command.arg:
            return [self._say(agent, "请指定客户编号，例如：认领 12（先发送“公海”查看）")]
        try:
            customer = pools.claim(agent, int(command.arg))
        except pools.PoolError as exc:
            return [self._say(agent, f"无法认领：{exc}")]
        return [self._say(agent, f"客户 {customer.id}（{customer}）已在您的私海中。")]

    def _cmd_release(self, agent: Agent, command: Command) -> list[Outgoing]:
        if not command.arg:
            return [self._say(agent, "请指定客户编号，例如：释放 12")]
        if pools.release(int(command.arg), agent):
            return [self._say(agent, f"客户 {command.arg} 已放回公海。")]
        return [self._say(agent, f"客户 {command.arg} 不在您的私海中。")]

    def _cmd_mine(self, agent: Agent, command: Command) -> list[Outgoing]:
        rows = list(pools.private_pool(agent).order_by(Customer.last_contact_at.desc()).limit(20))
        total = pools.private_pool(agent).count()
        if not rows:
            return [self._say(agent, f"您的私海还没有客户（上限 {agent.max_private} 位）。发送“公海”查看可认领的客户。")]
        lines = [f"我的私海（{total}/{agent.max_private}）："] + [f"  {c.id}. {c}" for c in rows]
        return [self._say(agent, "\n".join(lines))]

    def _cmd_note(self, agent: Agent, command: Command) -> list[Outgoing]:
        conversation = self._current_or_only(agent)
        if conversation is None:
            return self._none_selected(agent)
        if not command.arg:
            return [self._say(agent, "请写上备注内容，例如：备注 喜欢红色，M码")]
        customer: Customer = conversation.customer
        stamp = clock.now().astimezone(settings.shop_zone()).strftime("%Y-%m-%d %H:%M")
        line = f"[{stamp} {agent}] {command.arg.strip()}"
        fresh = Customer.get_by_id(customer.id)
        notes = (fresh.notes + "\n" + line) if fresh.notes else line
        Customer.update(notes=notes).where(Customer.id == customer.id).execute()
        return [self._say(agent, f"已为 {customer} 添加备注：{command.arg.strip()}")]

    def _cmd_faq(self, agent: Agent, command: Command) -> list[Outgoing]:
        conversation = self._current_or_only(agent)
        if conversation is None:
            return self._none_selected(agent)
        faq = Faq.get_or_none((Faq.id == int(command.arg or 0)) & (Faq.enabled == True))  # noqa: E712
        if faq is None:
            return [self._say(agent, f"没有编号为 {command.arg} 的 FAQ（或已停用）。")]
        conversations.record_agent_reply(conversation)
        customer: Customer = conversation.customer
        return [
            Outgoing(conversation.channel, customer.external_id, Reply(text=faq.answer), "agent", conversation,
                     customer, agent=agent, faq=faq.id),
            self._say(agent, f"已发送 FAQ #{faq.id}：{faq.answer[:40]}"),
        ]

    # -- status -------------------------------------------------------------------------------

    def _cmd_online(self, agent: Agent, command: Command) -> list[Outgoing]:
        assignment.set_status(agent, "online")
        return [self._say(agent, "您的状态已设为：在线")] + drain_queue_messages()

    def _cmd_away(self, agent: Agent, command: Command) -> list[Outgoing]:
        assignment.set_status(agent, "away")
        return [self._say(agent, "您的状态已设为：离开（不再分配新会话，已有会话保留）")]

    def _cmd_offline(self, agent: Agent, command: Command) -> list[Outgoing]:
        return go_offline(agent)
