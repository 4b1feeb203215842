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
from urllib.parse import urlencode

import peewee
from flask import redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms.validators import Optional, ValidationError

from admin.auth import ReadOnlyView, SecureModelView
from admin.messages import flash, text
from admin.faq_views import short
from bot.core import clock
from bot.crm import groups, segments
from bot.core.models import Agent, Customer, CustomerGroup, CustomerTag, GroupMember, IssuedCoupon, Order, Segment, Tag

LEVELS = [(0, "普通"), (1, "VIP1"), (2, "VIP2"), (3, "VIP3"), (4, "VIP4")]
AGENT_STATUSES = [("online", _l("在线")), ("away", _l("离开")), ("offline", _l("下线"))]
COUPON_KINDS = [("amount", _l("满减（元）")), ("percent", _l("折扣（%）"))]  # Coupon.kind stores the key
# Order.status is stored as the shop feed's key (bot.crm.orders: STATUS_RANK).
ORDER_STATUSES = {"created": _l("已下单"), "paid": _l("已付款"), "shipped": _l("已发货"), "delivered": _l("已签收"),
                  "refunded": _l("已退款"), "cancelled": _l("已取消")}
GROUP_KINDS = [("快闪群", _l("快闪群")), ("直播群", _l("直播群")), ("普通群", _l("普通群")), ("会员群", _l("会员群")),
               ("兴趣群", _l("兴趣群"))]  # stored in Chinese, shown in the panel's language


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


# A customer too many to list in a <select>: forms that pick one search as the operator types.
CUSTOMER_LOOKUP = {"customer": {"fields": ("nickname", "name", "phone", "external_id"), "page_size": 20}}
# Why a CSV row added nobody (bot.crm.groups.Problem.reason) and why a file was refused.
MEMBER_PROBLEMS = {"not_found": _l("找不到这位顾客"), "erased": _l("该顾客的资料已删除，不再加入"),
                   "ambiguous": _l("多个渠道有这个 openid：请加一列渠道（channel）"),
                   "not_a_number": _l("不是顾客编号")}
MEMBER_FILE_ERRORS = {"empty": _l("文件是空的"), "not_text": _l("不是 UTF-8 或 GB18030 文本"),
                      "binary": _l("不是 CSV 文本（Excel 文件请另存为 CSV）"), "bad_csv": _l("CSV 格式有误"),
                      "no_id_column": _l("表头要有一列顾客编号（客户编号 / customer_id）或 openid")}


def _customer_ids(text: str) -> list[int]:
    """Customer numbers posted as "1,2,3" (the chosen rows); anything else is dropped."""
    found = (groups.customer_number(part) for part in text.replace(",", " ").split())
    return [n for n in found if n is not None]


def _added(report: groups.Report, group: CustomerGroup) -> None:
    """Say what a bulk add did (plain text: the group's name is the operator's)."""
    flash(_l("「%(group)s」新增 %(added)s 位成员，%(already)s 位已在群中"), "success", group=group.name,
          added=report.added, already=report.already)
    if report.skipped:
        flash(_l("%(n)s 位顾客不存在或资料已删除，未加入"), "warning", n=report.skipped)


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
    list_template = "admin/kefu_customer_list.html"

    def on_model_change(self, form: Any, model: Customer, is_created: bool) -> None:
        model.level = int(model.level or 0)

    def render(self, template: str, **kwargs: Any) -> Any:
        if template == self.list_template:  # "add all that match" carries the list's search and filters
            query = urlencode(list(request.args.items(multi=True)))
            kwargs["add_matching_url"] = self.get_url(".add_to_group_view") + (f"?{query}" if query else "")
        return super().render(template, **kwargs)

    def _matching(self) -> peewee.ModelSelect:
        """The customers the list shows under the search and filters in this request's URL."""
        args = self._get_list_extra_args()
        _, query = self.get_list(None, None, None, args.search, args.filters, execute=False, page_size=0)
        return query

    def _choose_group(self, scope: str, ids: list[int], count: int) -> Any:
        chosen = list(CustomerGroup.select().order_by(CustomerGroup.name))
        return self.render("admin/kefu_add_to_group.html", scope=scope, ids=ids, count=count, groups=chosen,
                           back=request.referrer or self.get_url(".index_view"))

    @action("add_to_group", _l("加入群组…"))
    def action_add_to_group(self, ids: list[str]) -> Any:
        """The rows ticked in the list: choose the group on the next page."""
        chosen = _customer_ids(",".join(ids))
        return self._choose_group("selected", chosen, len(chosen))

    @expose("/add-to-group/", methods=("GET", "POST"))
    def add_to_group_view(self) -> Any:
        """Everyone the list's current search and filters match (GET: choose the group and
        see how many; POST: add them), or the posted selection (`scope=selected`)."""
        scope = "selected" if request.form.get("scope") == "selected" else "matching"
        ids = _customer_ids(request.form.get("ids", "")) if scope == "selected" else []
        if request.method == "GET":
            return self._choose_group(scope, ids, self._matching().count())
        group = CustomerGroup.get_or_none(CustomerGroup.id == (request.form.get("group_id", type=int) or 0))
        if group is None:
            flash(_l("请选择群组"), "error")
            return self._choose_group(scope, ids, len(ids) if scope == "selected" else self._matching().count())
        if scope == "selected" and not ids:
            flash(_l("没有选择顾客"), "error")
            return redirect(self.get_url(".index_view"))
        report = groups.add_ids(group, ids) if scope == "selected" else groups.add_matching(group, self._matching())
        _added(report, group)
        return redirect(url_for("group.members_view", id=group.id))


class TagView(SecureModelView):
    column_list = ("name", "color")
    column_labels = {"name": _l("标签"), "color": _l("颜色")}
    form_excluded_columns = ("customer_links",)

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """A name already taken is refused with that reason, not the database's UNIQUE error."""
        taken = Tag.select().where((Tag.name == model.name) & (Tag.id != (model.id or 0))).exists()
        if taken:
            raise ValidationError(text(_l("标签「%(name)s」已存在"), name=model.name))


def _members_link(view: Any, context: Any, model: CustomerGroup, name: str) -> Markup:
    return Markup('<a href="%s">%s</a>') % (url_for("group.members_view", id=model.id),
                                            text(_l("%(n)s 位 · 管理成员"), n=groups.member_count(model)))


class GroupView(SecureModelView):
    """A group's own fields here; its members (up to 100,000s) on a page of their own,
    paginated and searchable, never one <select> of every customer per member row."""

    column_list = ("name", "kind", "description", "members", "created_at")
    column_labels = {"name": _l("群名称"), "kind": _l("类型"), "description": _l("说明"), "created_at": _l("创建时间"),
                     "members": _l("成员")}
    column_formatters = {"members": _members_link}
    column_searchable_list = ("name",)
    column_filters = ("kind",)
    form_choices = {"kind": GROUP_KINDS}
    form_columns = ("name", "kind", "description")
    edit_template = "admin/kefu_group_edit.html"
    members_per_page = 50

    def _group(self) -> CustomerGroup | None:
        return CustomerGroup.get_or_none(CustomerGroup.id == (request.args.get("id", type=int) or 0))

    def _members_page(self, group: CustomerGroup, report: groups.Report | None = None) -> Any:
        search = request.args.get("search", "").strip()
        page = max(request.args.get("page", 0, type=int), 0)
        total, rows = groups.members(group, search, page, self.members_per_page)
        pages = max((total + self.members_per_page - 1) // self.members_per_page, 1)
        return self.render("admin/kefu_group_members.html", group=group, rows=rows, total=total, page=page,
                           pages=pages, search=search, report=report, problem_labels=MEMBER_PROBLEMS,
                           segments=list(Segment.select().order_by(Segment.name)),
                           pager_url=lambda p: self.get_url(".members_view", id=group.id, search=search or None,
                                                            page=p or None))

    @expose("/members/")
    def members_view(self) -> Any:
        group = self._group()
        if group is None:
            flash(_l("群组不存在"), "error")
            return redirect(self.get_url(".index_view"))
        return self._members_page(group)

    @expose("/members/remove/", methods=("POST",))
    def remove_members_view(self) -> Any:
        """The ticked members, or the one whose own 移除 button was pressed."""
        group = self._group()
        if group is None:
            flash(_l("群组不存在"), "error")
            return redirect(self.get_url(".index_view"))
        chosen = request.form.get("only") or ",".join(request.form.getlist("customer"))
        removed = groups.remove(group, _customer_ids(chosen))
        flash(_l("已从「%(group)s」移除 %(n)s 位成员"), "success", group=group.name, n=removed)
        return redirect(request.referrer or self.get_url(".members_view", id=group.id))

    @expose("/members/segment/", methods=("POST",))
    def add_segment_view(self) -> Any:
        group = self._group()
        segment = Segment.get_or_none(Segment.id == (request.form.get("segment_id", type=int) or 0))
        if group is None or segment is None:
            flash(_l("群组或人群不存在"), "error")
            return redirect(self.get_url(".index_view") if group is None else self.get_url(".members_view", id=group.id))
        try:
            report = groups.add_segment(group, segment)
        except segments.SegmentError as exc:
            flash(_l("筛选条件有误：%(error)s"), "error", error=exc)
        else:
            _added(report, group)
        return redirect(self.get_url(".members_view", id=group.id))

    @expose("/members/csv/", methods=("POST",))
    def add_csv_view(self) -> Any:
        """A CSV of customer numbers or openids: the page comes back with the report of the
        rows that added nobody; a file that cannot be read adds nobody and names its line."""
        group = self._group()
        if group is None:
            flash(_l("群组不存在"), "error")
            return redirect(self.get_url(".index_view"))
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(_l("请选择要导入的文件"), "error")
            return redirect(self.get_url(".members_view", id=group.id))
        try:
            report = groups.add_csv(group, upload.stream)
        except groups.MemberFileError as exc:
            problem = str(MEMBER_FILE_ERRORS.get(exc.reason, exc.reason)) + (f"（{exc.detail}）" if exc.detail else "")
            if exc.line:
                flash(_l("文件有误，未加入任何人：第 %(line)s 行：%(error)s"), "error", line=exc.line, error=problem)
            else:
                flash(_l("文件有误，未加入任何人：%(error)s"), "error", error=problem)
            return redirect(self.get_url(".members_view", id=group.id))
        _added(report, group)
        if report.problem_count:
            flash(_l("%(n)s 行未能加入，见下方列表"), "warning", n=report.problem_count)
        return self._members_page(group, report)


class GroupMemberView(SecureModelView):
    column_list = ("group", "customer", "joined_at")
    column_labels = {"group": _l("群"), "customer": _l("顾客"), "joined_at": _l("入群时间")}
    column_filters = ("group", "joined_at")
    form_ajax_refs = CUSTOMER_LOOKUP

    def get_list(self, *args: Any, **kwargs: Any) -> Any:
        """A page's groups and customers in two queries, not two per row (at 100,000 members
        the hundred lazy loads were most of the page's time)."""
        count, rows = super().get_list(*args, **kwargs)
        if isinstance(rows, list) and rows:
            people = {c.id: c for c in Customer.select().where(Customer.id.in_({r.customer_id for r in rows}))}
            named = {g.id: g for g in CustomerGroup.select().where(CustomerGroup.id.in_({r.group_id for r in rows}))}
            for row in rows:
                if row.customer_id in people and row.group_id in named:
                    row.customer, row.group = people[row.customer_id], named[row.group_id]
        return count, rows

    def on_model_change(self, form: Any, model: GroupMember, is_created: bool) -> None:
        """Someone already in the group is refused with that reason, not the database's UNIQUE error."""
        taken = GroupMember.select().where((GroupMember.group == model.group_id) & (GroupMember.customer == model.customer_id)
                                           & (GroupMember.id != (model.id or 0))).exists()
        if taken:
            raise ValidationError(str(_l("这位顾客已在该群中")))


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
        from bot.conversation.relay_delivery import drain_queue_messages, emit, go_offline

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
    form_ajax_refs = CUSTOMER_LOOKUP
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
