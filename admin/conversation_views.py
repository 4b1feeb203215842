"""Conversations and messages in the panel: filters, the read-only thread, reassign, resolve.

Why the thread is read-only: what the customer and the agents said is a record; the panel
changes who handles a conversation and whether it is open, through the same functions the
bot and the agents' commands use (`bot.agents.assignment`, `bot.crm.conversations`), so the rules (one
open conversation per customer, capacity, the assignment lock) hold here too. Every text a
customer wrote is rendered through Jinja's autoescape, never marked safe.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext, lazy_gettext as _l

from admin.auth import ReadOnlyView
from admin.messages import flash
from admin.faq_views import short
from bot.agents import assignment, kpi
from bot.crm import conversations
from bot.core import clock, settings
from bot.core.events import Reply
from bot.sending.outgoing import Outgoing
from bot.conversation.relay_delivery import drain_queue_messages, emit
from bot.conversation.routing import handoff_messages
from bot.core.db import advisory_xact_lock, transaction
from bot.core.models import Agent, Conversation, Message

STATUS_LABELS = {"bot": _l("机器人接待"), "queued": _l("排队中"), "assigned": _l("人工接待中"), "resolved": _l("已结束")}
# Conversation.handoff_reason and .resolved_by are stored as keys (bot.conversation.routing, bot.crm.conversations).
HANDOFF_REASONS = {"requested": _l("顾客要求转人工"), "human_first": _l("人工优先"), "unsure": _l("机器人没有把握"),
                   "unanswered": _l("机器人多次未能回答"), "agent_offline": _l("原客服已下线"),
                   "transfer": _l("客服转接"), "revisit": _l("回访低分")}
RESOLVED_BY = {"agent": _l("客服结束"), "admin": _l("后台结束"), "idle": _l("超时自动结束"), "customer": _l("顾客结束")}
# Message.direction and .author are stored as keys (bot.conversation.dispatcher, bot.conversation.relay, bot.sending.outbox).
DIRECTIONS = {"in": _l("收到"), "out": _l("发出")}
AUTHORS = {"customer": _l("顾客"), "agent": _l("客服"), "bot": _l("机器人"), "system": _l("系统")}
TRANSFER_ERRORS = {"same": _l("已经是这位客服"), "inactive": _l("该客服已停用"), "offline": _l("该客服已下线"),
                   "full": _l("该客服接待已满"), "gone": _l("会话已不在人工接待中")}


def reassign(conversation: Conversation, agent: Agent) -> str:
    """Give an open conversation to `agent`: a transfer when assigned, else an assignment
    out of the bot or the queue. Returns "ok" or the reason it was refused."""
    if conversation.status == "assigned":
        return assignment.transfer(conversation, agent)
    with transaction():
        advisory_xact_lock(assignment.LOCK_NAME)
        fresh = Conversation.get_by_id(conversation.id)
        if fresh.status == "resolved":
            return "gone"
        if fresh.status == "assigned":
            return "gone"  # someone assigned it meanwhile; the operator sees the new state
        if not agent.active:
            return "inactive"
        conversations.assign(fresh, agent, previous_ended="admin")
    return "ok"


class ConversationView(ReadOnlyView):
    column_list = ("id", "customer", "channel", "status", "agent", "waiting", "handoff_reason", "opened_at",
                   "first_response_at", "resolved_at", "satisfaction")
    column_filters = ("status", "channel", "agent", "opened_at", "resolved_at", "handoff_reason")
    column_labels = {"customer": _l("顾客"), "channel": _l("渠道"), "status": _l("状态"), "agent": _l("客服"),
                     "opened_at": _l("开始"), "first_response_at": _l("首次响应"), "resolved_at": _l("结束"),
                     "handoff_reason": _l("转人工原因"), "satisfaction": _l("满意度"), "queued_at": _l("排队时间"),
                     "assigned_at": _l("分配时间"), "resolved_by": _l("结束方式"), "waiting": _l("等待")}
    # labels shown (list, details) and offered by the filters; the stored keys stay
    column_choices = {"status": list(STATUS_LABELS.items()), "handoff_reason": list(HANDOFF_REASONS.items()),
                      "resolved_by": list(RESOLVED_BY.items())}
    column_formatters = {"waiting": lambda view, context, model, name: waiting_text(model)}
    column_descriptions = {"waiting": _l("顾客等人工回复多久了（排队中，或客服尚未回复其最新消息）")}
    column_default_sort = ("id", True)
    details_template = "admin/kefu_conversation_details.html"
    column_details_list = ("id", "customer", "channel", "status", "agent", "handoff_reason", "opened_at", "queued_at",
                           "assigned_at", "first_response_at", "resolved_at", "resolved_by", "satisfaction")

    def render(self, template: str, **kwargs: Any) -> Any:
        if template == self.details_template and kwargs.get("model") is not None:
            model = kwargs["model"]
            kwargs["thread"] = list(Message.select().where(Message.conversation == model).order_by(Message.id))
            kwargs["agents"] = list(Agent.select().where(Agent.active == True).order_by(Agent.id))  # noqa: E712
        return super().render(template, **kwargs)

    @expose("/reassign/", methods=("POST",))
    def reassign_view(self) -> Any:
        conversation = Conversation.get_or_none(Conversation.id == request.form.get("id", type=int))
        agent = Agent.get_or_none(Agent.id == request.form.get("agent_id", type=int))
        if conversation is None or agent is None:
            flash(_l("会话或客服不存在"), "error")
            return redirect(url_for(".index_view"))
        result = reassign(conversation, agent)
        if result == "ok":
            _notify_assigned(Conversation.get_by_id(conversation.id), agent)
            flash(_l("已转给 %(agent)s"), "success", agent=agent)
        else:
            flash(_l("无法转接：%(why)s"), "error", why=TRANSFER_ERRORS.get(result, result))
        return redirect(url_for(".details_view", id=conversation.id))

    @expose("/resolve/", methods=("POST",))
    def resolve_view(self) -> Any:
        conversation = Conversation.get_or_none(Conversation.id == request.form.get("id", type=int))
        if conversation is None:
            flash(_l("会话不存在"), "error")
            return redirect(url_for(".index_view"))
        if conversation.status == "resolved":
            flash(_l("会话已经结束"), "info")
        else:
            conversations.resolve(conversation, "admin")
            _notify_resolved(conversation)
            flash(_l("会话已结束"), "success")
        return redirect(url_for(".details_view", id=conversation.id))


def waiting_text(conversation: Conversation) -> str:
    """How long the customer has waited for a person (bot.agents.kpi.waiting_since), "" when nobody
    waits; past the response limit it starts with ⚠ so the operator sees who to take first."""
    since = kpi.waiting_since(conversation) if conversation.status in ("queued", "assigned") else None
    if since is None:
        return ""
    seconds = max(0.0, (clock.now() - since).total_seconds())
    if seconds < 60:
        text = gettext("%(n)s 秒") % {"n": int(seconds)}  # plain text, then the numbers
    elif seconds < 3600:
        text = gettext("%(n)s 分钟") % {"n": int(seconds // 60)}
    else:
        text = gettext("%(h)s 小时 %(m)s 分钟") % {"h": int(seconds // 3600), "m": int(seconds % 3600 // 60)}
    limit = int(settings.get("agent_sla_seconds") or 0)
    return f"⚠ {text}" if limit and seconds > limit else text


def _stamp() -> str:
    return clock.now().strftime("%Y%m%dT%H%M%S%f")


def _notify_assigned(conversation: Conversation, agent: Agent) -> None:
    """The new agent gets the context over IM and the customer hears who is coming."""
    emit(handoff_messages(conversation, conversation.customer, agent, note="管理员转派给您"),
         f"admin-assign:{conversation.id}:{_stamp()}")


def _notify_resolved(conversation: Conversation) -> None:
    """The customer gets the closing message and rating card; freed capacity serves the queue."""
    customer = conversation.customer
    closing = Outgoing(conversation.channel, customer.external_id, Reply(text=settings.get("resolved_message")),
                       "bot", conversation, customer)
    emit([closing] + drain_queue_messages(), f"admin-resolve:{conversation.id}:{_stamp()}")


class MessageView(ReadOnlyView):
    column_list = ("id", "created_at", "channel", "direction", "author", "customer", "agent", "text", "score")
    column_labels = {"created_at": _l("时间"), "channel": _l("渠道"), "direction": _l("方向"), "author": _l("发送方"),
                     "customer": _l("顾客"), "agent": _l("客服"), "text": _l("内容"), "score": _l("得分"),
                     "conversation": _l("会话"), "kind": _l("类型"), "payload": _l("附加数据")}
    column_filters = ("channel", "direction", "author", "created_at")
    column_searchable_list = ("text",)
    column_formatters = {"text": short}
    column_choices = {"direction": list(DIRECTIONS.items()), "author": list(AUTHORS.items())}
    column_default_sort = ("id", True)
    column_details_list = ("id", "created_at", "channel", "conversation", "direction", "author", "customer", "agent",
                           "kind", "text", "score", "payload")
