"""The panel's model views.

Why one registry: each capability (FAQs, CRM, campaigns, ...) adds its views here, grouped
into the menu categories a shop operator expects.
"""

from __future__ import annotations

from typing import Any

from flask_admin import Admin
from markupsafe import Markup, escape

from admin.auth import ReadOnlyView, SecureModelView
from bot import clock
from bot.config import Config
from bot.faq.store import touch
from bot.models import (
    Agent, Conversation, Coupon, Customer, CustomerGroup, Faq, FaqQuestion, Message, Synonym, Tag,
    UnansweredQuestion,
)

CATEGORIES = ("聊天互动", "商品问题", "活动优惠", "购买操作", "物流问题", "售后问题", "更多问题")


def _short(view: Any, context: Any, model: Any, name: str) -> Markup:
    value = str(getattr(model, name) or "")
    return escape(value[:60] + ("…" if len(value) > 60 else ""))


class FaqView(SecureModelView):
    inline_models = (FaqQuestion,)
    column_list = ("id", "category", "answer", "enabled", "hits", "likes", "dislikes", "updated_at")
    column_labels = {"category": "分类", "answer": "答案", "enabled": "启用", "hits": "命中", "likes": "赞",
                     "dislikes": "踩", "updated_at": "更新时间"}
    column_searchable_list = ("answer",)
    column_filters = ("category", "enabled")
    column_formatters = {"answer": _short}
    form_columns = ("category", "answer", "enabled")
    form_choices = {"category": [(c, c) for c in CATEGORIES]}

    def on_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        model.updated_at = clock.now()

    def after_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        touch(model.id)


class ConversationView(ReadOnlyView):
    column_list = ("id", "customer", "channel", "status", "agent", "opened_at", "first_response_at", "resolved_at")
    column_filters = ("status", "channel")
    column_labels = {"customer": "顾客", "channel": "渠道", "status": "状态", "agent": "客服", "opened_at": "开始",
                     "first_response_at": "首次响应", "resolved_at": "结束"}


class MessageView(ReadOnlyView):
    column_list = ("id", "created_at", "channel", "direction", "author", "customer", "text", "score")
    column_filters = ("channel", "direction", "author")
    column_searchable_list = ("text",)
    column_formatters = {"text": _short}
    column_default_sort = ("id", True)


class CustomerView(SecureModelView):
    column_list = ("id", "channel", "nickname", "name", "phone", "level", "owner_agent", "last_contact_at", "is_spam")
    column_searchable_list = ("nickname", "name", "phone")
    column_filters = ("channel", "level", "is_spam")
    form_excluded_columns = ("conversations", "messages", "tag_links", "group_links", "coupons", "orders",
                             "deliveries", "erased_at")


class AgentView(SecureModelView):
    column_list = ("id", "name", "display_name", "channel", "im_user_id", "status", "active", "max_open")
    form_choices = {"status": [("online", "在线"), ("away", "离开"), ("offline", "下线")]}
    form_excluded_columns = ("owned_customers", "conversations", "messages", "last_assigned_at",
                             "current_conversation_id")


def register_views(admin: Admin, config: Config) -> None:
    admin.add_view(FaqView(Faq, name="FAQ", category="知识库", endpoint="faq"))
    admin.add_view(SecureModelView(Synonym, name="同义词", category="知识库", endpoint="synonym"))
    admin.add_view(ReadOnlyView(UnansweredQuestion, name="未解决问题", category="知识库", endpoint="unanswered"))
    admin.add_view(ConversationView(Conversation, name="会话", category="客服", endpoint="conversation"))
    admin.add_view(MessageView(Message, name="消息", category="客服", endpoint="message"))
    admin.add_view(AgentView(Agent, name="客服人员", category="客服", endpoint="agent"))
    admin.add_view(CustomerView(Customer, name="顾客", category="客户", endpoint="customer"))
    admin.add_view(SecureModelView(Tag, name="标签", category="客户", endpoint="tag"))
    admin.add_view(SecureModelView(CustomerGroup, name="群组", category="客户", endpoint="group"))
    admin.add_view(SecureModelView(Coupon, name="优惠券", category="营销", endpoint="coupon"))
