"""Customers, tags, groups and members, agents, coupons and orders in the panel.

Why these are plain model views with inline children: the CRM record (profile, level,
owner agent, spam flag) and what hangs off it (tags, group memberships, issued coupons,
orders) are edited where the operator finds the customer. Nicknames and notes come from
customers: every column is rendered escaped.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms.validators import Optional, ValidationError

from admin.auth import ReadOnlyView, SecureModelView
from admin.messages import text
from admin.faq_views import short
from bot import clock
from bot.crm import segments
from bot.models import Agent, Customer, CustomerTag, GroupMember, IssuedCoupon, Order, Tag

LEVELS = [(0, "普通"), (1, "VIP1"), (2, "VIP2"), (3, "VIP3"), (4, "VIP4")]
AGENT_STATUSES = [("online", "在线"), ("away", "离开"), ("offline", "下线")]
COUPON_KINDS = [("amount", _l("满减（元）")), ("percent", _l("折扣（%）"))]  # Coupon.kind stores the key
# Order.status is stored as the shop feed's key (bot.crm.orders: STATUS_RANK).
ORDER_STATUSES = {"created": _l("已下单"), "paid": _l("已付款"), "shipped": _l("已发货"), "delivered": _l("已签收"),
                  "refunded": _l("已退款"), "cancelled": _l("已取消")}
GROUP_KINDS = [(k, k) for k in ("快闪群", "直播群", "普通群", "会员群", "兴趣群")]


def _tags(view: Any, context: Any, model: Customer, name: str) -> Markup:
    names = [link.tag.name for link in model.tag_links]
    return Markup(" ").join(Markup('<span class="badge badge-info">%s</span>') % escape(n) for n in names)


def _orders(view: Any, context: Any, model: Customer, name: str) -> Markup:
    rows = model.orders.order_by(Order.id.desc()).limit(20)
    return Markup("<br>").join(
        escape(f"{o.shop_order_id} · {ORDER_STATUSES.get(o.status, o.status)} · ¥{o.amount} · {o.created_at:%Y-%m-%d}")
        for o in rows)


def _coupons(view: Any, context: Any, model: Customer, name: str) -> Markup:
    rows = model.coupons.order_by(IssuedCoupon.id.desc()).limit(20)
    return Markup("<br>").join(
        escape(f"{c.coupon.name} · {c.code} · {'已使用' if c.used_at else f'{c.expires_at:%Y-%m-%d} 到期'}")
        for c in rows)


def _level(view: Any, context: Any, model: Customer, name: str) -> str:
    return dict(LEVELS).get(model.level, str(model.level))


CUSTOMER_LABELS = {
    "channel": _l("渠道"), "external_id": _l("平台用户 id"), "nickname": _l("昵称"), "name": _l("姓名"),
    "phone": _l("手机"), "level": _l("会员等级"), "owner_agent": _l("专属客服"), "last_contact_at": _l("最近联系"),
    "is_spam": _l("骚扰"), "tags": _l("标签"), "birthday": _l("生日"), "address": _l("地址"),
    "preferences": _l("偏好"), "notes": _l("备注"), "subscribed": _l("已关注"), "blocked": _l("已拉黑"),
    "total_spend": _l("累计消费"), "orders": _l("订单"), "coupons": _l("优惠券"), "order_count": _l("订单数"), "source": _l("来源"), "first_contact_at": _l("首次联系"),
}


class CustomerView(SecureModelView):
    column_list = ("id", "channel", "nickname", "name", "phone", "level", "tags", "owner_agent", "total_spend",
                   "last_contact_at", "is_spam")
    column_labels = CUSTOMER_LABELS
    column_searchable_list = ("nickname", "name", "phone", "external_id")
    column_filters = ("channel", "level", "is_spam", "owner_agent", "subscribed", "last_contact_at")
    column_formatters = {"tags": _tags, "level": _level, "nickname": short}
    column_formatters_detail = {"tags": _tags, "level": _level, "orders": _orders, "coupons": _coupons}
    column_details_list = ("id", "channel", "external_id", "source", "nickname", "name", "phone", "birthday", "address",
                           "level", "tags", "owner_agent", "total_spend", "order_count", "orders", "coupons", "preferences", "notes",
                           "subscribed", "blocked", "is_spam", "first_contact_at", "last_contact_at")
    column_default_sort = ("last_contact_at", True)
    form_columns = ("nickname", "name", "phone", "birthday", "address", "level", "owner_agent", "preferences", "notes",
                    "subscribed", "blocked", "is_spam")
    form_choices = {"level": [(str(v), label) for v, label in LEVELS]}
    inline_models = (
        (CustomerTag, {"form_label": _l("标签"), "form_args": {"tag": {"label": _l("标签")}}}),
        (IssuedCoupon, {"form_label": _l("优惠券"), "form_columns": ("id", "coupon", "code", "expires_at", "used_at")}),
    )
    can_create = False  # customers are created by contact or by the shop's order feed

    def on_model_change(self, form: Any, model: Customer, is_created: bool) -> None:
        model.level = int(model.level or 0)


class TagView(SecureModelView):
    column_list = ("name", "color")
    column_labels = {"name": _l("标签"), "color": _l("颜色")}
    form_excluded_columns = ("customer_links",)

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """A name already taken is refused with that reason, not the database's UNIQUE error."""
        taken = Tag.select().where((Tag.name == model.name) & (Tag.id != (model.id or 0))).exists()
        if taken:
            raise ValidationError(text(_l("标签「%(name)s」已存在"), name=model.name))


class GroupView(SecureModelView):
    column_list = ("name", "kind", "description", "created_at")
    column_labels = {"name": _l("群名称"), "kind": _l("类型"), "description": _l("说明"), "created_at": _l("创建时间")}
    column_searchable_list = ("name",)
    column_filters = ("kind",)
    form_choices = {"kind": GROUP_KINDS}
    form_columns = ("name", "kind", "description")
    inline_models = ((GroupMember, {"form_label": _l("成员"), "form_args": {"customer": {"label": _l("顾客")}},
                                    "form_columns": ("id", "customer")}),)


class GroupMemberView(SecureModelView):
    column_list = ("group", "customer", "joined_at")
    column_labels = {"group": _l("群"), "customer": _l("顾客"), "joined_at": _l("入群时间")}
    column_filters = ("group", "joined_at")


class AgentView(SecureModelView):
    column_list = ("id", "name", "display_name", "status", "channel", "im_user_id", "active", "max_open",
                   "last_assigned_at")
    column_labels = {"name": _l("账号"), "display_name": _l("显示名"), "status": _l("在线状态"), "channel": _l("渠道"),
                     "im_user_id": _l("绑定的 IM 账号"), "active": _l("启用"), "max_open": _l("接待上限"),
                     "max_private": _l("私海上限"), "last_assigned_at": _l("最近分配"),
                     "current_conversation_id": _l("当前会话"), "created_at": _l("创建时间")}
    column_filters = ("status", "channel", "active")
    column_formatters = {"status": lambda v, c, m, n: dict(AGENT_STATUSES).get(m.status, m.status)}
    form_columns = ("name", "display_name", "channel", "im_user_id", "status", "active", "max_open", "max_private")
    form_choices = {"status": AGENT_STATUSES}

    def on_model_change(self, form: Any, model: Agent, is_created: bool) -> None:
        before = None if is_created else Agent.get_or_none(Agent.id == model.id)
        model._status_before = before.status if before else None  # type: ignore[attr-defined]

    def after_model_change(self, form: Any, model: Agent, is_created: bool) -> None:
        """Setting an agent offline here does what their own 下线 command does (waiting
        conversations back to the queue, everyone told); online serves the queue."""
        from bot.relay import drain_queue_messages, emit, go_offline

        before = getattr(model, "_status_before", None)
        if model.status == before:
            return
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")
        if model.status == "offline":
            emit(go_offline(model), f"admin-offline:{model.id}:{stamp}")
        elif model.status == "online":
            emit(drain_queue_messages(), f"admin-online:{model.id}:{stamp}")


class CouponView(SecureModelView):
    column_list = ("id", "name", "kind", "value", "min_spend", "valid_days", "active", "created_at")
    column_labels = {"name": _l("名称"), "kind": _l("类型"), "value": _l("面额/折扣"), "min_spend": _l("最低消费"),
                     "valid_days": _l("有效天数"), "active": _l("启用"), "created_at": _l("创建时间")}
    form_columns = ("name", "kind", "value", "min_spend", "valid_days", "active")
    form_choices = {"kind": COUPON_KINDS}
    column_choices = {"kind": COUPON_KINDS}


class IssuedCouponView(SecureModelView):
    column_list = ("id", "coupon", "customer", "code", "issued_at", "expires_at", "used_at")
    column_labels = {"coupon": _l("优惠券"), "customer": _l("顾客"), "code": _l("券码"), "issued_at": _l("发放时间"),
                     "expires_at": _l("过期时间"), "used_at": _l("使用时间"), "reminded_at": _l("到期提醒时间")}
    column_filters = ("coupon", "expires_at", "used_at")
    column_searchable_list = ("code",)
    form_columns = ("coupon", "customer", "code", "expires_at", "used_at")
    # an operator issuing one by hand need not invent a code or work out the expiry
    form_args = {"code": {"validators": [Optional()], "description": _l("留空则自动生成")},
                 "expires_at": {"validators": [Optional()], "description": _l("留空则按优惠券的有效天数")}}

    def on_model_change(self, form: Any, model: IssuedCoupon, is_created: bool) -> None:
        if not (model.code or "").strip():
            model.code = "M" + secrets.token_hex(5).upper()
        if model.expires_at is None:
            model.expires_at = (model.issued_at or clock.now()) + timedelta(days=model.coupon.valid_days)


class OrderView(ReadOnlyView):
    column_list = ("shop_order_id", "customer", "status", "amount", "created_at", "paid_at", "shipped_at",
                   "delivered_at", "revisit_score")
    column_labels = {"shop_order_id": _l("订单号"), "customer": _l("顾客"), "status": _l("状态"), "amount": _l("金额"),
                     "created_at": _l("下单"), "paid_at": _l("付款"), "shipped_at": _l("发货"),
                     "delivered_at": _l("签收"), "revisit_score": _l("回访评分"), "channel": _l("渠道"),
                     "platform_user_id": _l("平台用户 ID"), "phone": _l("手机号"), "items": _l("商品"),
                     "event_at": _l("事件时间"), "refunded_at": _l("退款"), "revisited_at": _l("回访时间")}
    column_filters = ("status", "created_at", "delivered_at")
    column_choices = {"status": list(ORDER_STATUSES.items())}  # labels shown and offered; the keys stay
    column_searchable_list = ("shop_order_id", "phone")
    column_default_sort = ("id", True)


class SegmentView(SecureModelView):
    column_list = ("name", "filter", "created_at")
    column_labels = {"name": _l("名称"), "filter": _l("筛选条件（JSON）"), "created_at": _l("创建时间")}
    form_columns = ("name", "filter")

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """The filter is checked as campaigns read it: a saved segment that cannot be counted
        (an unknown key, a bad value) or names a tag that does not exist is refused here, with
        the reason, instead of failing later wherever it is used."""
        try:
            clean = segments.validate(model.filter)
        except segments.SegmentError as exc:
            raise ValidationError(text(_l("筛选条件有误：%(error)s"), error=exc)) from None
        missing = [t for t in clean.get("tags", []) if not Tag.select().where(Tag.name == t).exists()]
        if missing:
            raise ValidationError(text(_l("没有这个标签：%(tags)s"), tags="、".join(missing)))
