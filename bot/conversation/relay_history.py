"""What the IM relay shows of a conversation's recent lines (issue 22: one state).

Decision: a reply an agent types in the workbench is NOT echoed to their IM account as it is
sent. On 公众号 and 微信客服 every message to the agent's account spends the platform's
48-hour window and (微信客服) the five sends allowed per message of theirs — the same
allowance the customers' lines relayed to that agent need — and the agent typing at the desk
does not need their phone to repeat them. Instead the relay shows the thread when the agent
asks: `/switch N` answers with the conversation's latest lines, and `/list` with each
conversation's last line, whoever wrote it and from where (工作台 for the workbench). The
other direction needs nothing: a reply through the relay is the same Message row, so the
workbench (its thread and the live stream) shows it at once.
"""

from __future__ import annotations

from bot.core.models import Conversation, Customer, Message

WORKBENCH_KEY = "wb:"  # bot.conversation.workbench.reply's message keys (`wb:{agent}:{client id}:{n}`)
SHOWN = 5
CLIP = 60


def _lines(conversation: Conversation, limit: int) -> list[Message]:
    """The latest thread lines, oldest first: the customer's own and what was sent to them
    (`bot.conversation.workbench.thread`'s rule, here as a query that reads only `limit` rows)."""
    customer: Customer = conversation.customer
    rows = (Message.select()
            .where((Message.conversation == conversation.id)
                   & (((Message.direction == "in") & (Message.author == "customer"))
                      | ((Message.direction == "out") & (Message.peer_id == customer.external_id))))
            .order_by(Message.id.desc()).limit(limit))
    return list(reversed(list(rows)))


def who(message: Message) -> str:
    """The author as an agent reads it: 顾客, 机器人, 系统, or 客服「name」 (工作台 when typed there)."""
    if message.direction == "in":
        return "顾客"
    if message.author == "agent":
        name = f"「{message.agent}」" if message.agent_id else ""
        return f"客服{name}" + ("（工作台）" if message.external_id.startswith(WORKBENCH_KEY) else "")
    return {"bot": "机器人", "system": "系统"}.get(message.author, message.author)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= CLIP else flat[:CLIP] + "…"


def recent(conversation: Conversation, limit: int = SHOWN) -> str:
    """`/switch`'s view of the thread: the latest lines with who wrote them; "" when none."""
    lines = [f"{who(m)}：{_clip(m.text)}" for m in _lines(conversation, limit)]
    return ("最近消息：\n" + "\n".join(lines)) if lines else ""


def last_line(conversation: Conversation) -> str:
    """`/list`'s one line per conversation: who spoke last and the start of what they said."""
    found = _lines(conversation, 1)
    return f"{who(found[0])}：{_clip(found[0].text)[:20]}" if found else ""
