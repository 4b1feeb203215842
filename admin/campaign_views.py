"""Campaigns (群发) in the panel: create, test-send, schedule, pause/resume/cancel, progress
and each recipient's outcome.

Why every button goes through `bot.campaigns`: the jobs side owns the states and the
exactly-once machinery (run keys, Delivery claims); each change there is a conditional
UPDATE, so an operator and the scheduler cannot both win. The panel only asks and shows.
The send time is shown and typed in the shop's time zone like every time in the panel
(admin/filters.py: `local_time`, `LocalDateTimeField`); it is stored as UTC.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import SelectField, TextAreaField

from admin.auth import ReadOnlyView, SecureModelView
from admin.messages import flash, text as message_text
from bot import campaigns
from bot.models import Campaign, Coupon

STATUS_LABELS = {"draft": _l("草稿"), "scheduled": _l("已排期"), "running": _l("发送中"), "paused": _l("已暂停"),
                 "done": _l("已完成"), "cancelled": _l("已取消")}
TARGETS = [("group", _l("群")), ("tag", _l("标签")), ("level", _l("会员等级")), ("segment", _l("人群")),
           ("all", _l("全部顾客"))]
# Delivery.status and .reason are stored as keys: bot.fanout writes the statuses and the skip
# reasons (`refusal`, `choose`, `sync_outcomes`, `withdraw`), the jobs the "nothing to send" ones.
DELIVERY_STATUSES = {"pending": _l("待发送"), "claimed": _l("已排队发送"), "sent": _l("已发送"), "skipped": _l("跳过"),
                     "failed": _l("失败"), "in_doubt": _l("结果未知")}
DELIVERY_REASONS = {
    "erased": _l("顾客数据已删除"), "blocked": _l("顾客已拉黑"), "unsubscribed": _l("顾客已取消关注"),
    "nothing to send": _l("没有可发送的内容"), "no text configured": _l("未设置消息内容"),
    "the campaign has no content": _l("活动没有内容"),
    "outside the 48-hour window and no template": _l("超出48小时客服窗口，且没有模板消息"),
    "cancelled": _l("已取消"), "outbox: failed": _l("平台发送失败"), "outbox: window_closed": _l("超出48小时客服窗口"),
    "outbox: limit_reached": _l("超出回复条数限制"),
    "outbox: in_doubt": _l("已交给平台，但发送进程中断，平台是否送达未知"),
}
# change -> the states it applies from (bot.campaigns checks again, atomically)
CHANGES: dict[str, tuple[str, ...]] = {
    "schedule": ("draft", "paused", "done"),
    "pause": ("running",),
    "resume": ("paused",),
    "cancel": ("draft", "scheduled", "running", "paused"),
}


def progress(campaign: Campaign) -> dict[str, int]:
    """Recipient counts by status of the current (or last) run."""
    return campaigns.progress(campaign) if campaign.run_key else {}


def send_paths(campaign: Campaign) -> dict[str, int] | None:
    """Who each path would reach if the campaign were sent now (None: a wrong target)."""
    kinds = {c.name: c.kind for c in current_app.config["KEFU_CONFIG"].channels}
    try:
        return campaigns.paths(campaign, kinds)
    except campaigns.CampaignError:
        return None


def change_status(campaign: Campaign, change: str) -> None:
    """Apply a change through bot.campaigns; raises campaigns.CampaignError when refused."""
    if change == "schedule":
        campaigns.schedule(campaign)
    else:
        getattr(campaigns, change)(campaign.id)


def _progress(view: Any, context: Any, model: Campaign, name: str) -> Markup:
    counts = progress(model)
    total = counts.get("total", 0)
    if not total:
        return Markup('<span class="text-muted">—</span>')
    done = counts.get("sent", 0)
    text = message_text(_l("%(done)s/%(total)s 已发送 · 排队 %(queued)s · 发送中 %(sending)s · 失败 %(failed)s · "
                           "结果未知 %(in_doubt)s · 跳过 %(skipped)s"), done=done, total=total,
                        queued=counts.get("queued", 0), sending=counts.get("sending", 0),
                        failed=counts.get("failed", 0), in_doubt=counts.get("in_doubt", 0),
                        skipped=counts.get("skipped", 0))
    link = url_for("delivery.index_view", search=model.run_key)
    return Markup('<a href="%s">%s</a>') % (link, escape(text))


def _content(view: Any, context: Any, model: Campaign, name: str) -> str:
    content = model.content or {}
    text = str(content.get("text") or content.get("title") or "")
    return text[:60] + ("…" if len(text) > 60 else "")


def _with_coupon_choices(form: Any) -> Any:
    """The campaign form's coupon choices: the active coupons now, and none."""
    form.coupon.choices = [("", _l("不发券"))] + [
        (str(c.id), c.name) for c in Coupon.select().where(Coupon.active == True).order_by(Coupon.id)  # noqa: E712
    ]
    return form


class CampaignView(SecureModelView):
    column_list = ("id", "name", "target_kind", "target_value", "content", "status", "run_at", "cron", "progress")
    column_labels = {"name": _l("名称"), "target_kind": _l("发送对象"), "target_value": _l("对象值"),
                     "content": _l("内容"), "status": _l("状态"), "run_at": _l("发送时间"), "cron": _l("周期（cron）"),
                     "progress": _l("进度"), "content_kind": _l("内容类型"), "text": _l("文字内容"),
                     "created_at": _l("创建时间"), "run_key": _l("发送批次"),
                     "run_planned": _l("收件人已全部列出")}
    column_formatters = {"progress": _progress, "content": _content}
    column_formatters_detail = column_formatters
    column_filters = ("status", "target_kind", "run_at")
    # labels shown (list, details) and offered by the filters; the stored keys stay
    column_choices = {"status": list(STATUS_LABELS.items()), "target_kind": TARGETS}
    column_searchable_list = ("name",)
    column_default_sort = ("id", True)
    form_columns = ("name", "target_kind", "target_value", "text", "coupon", "run_at", "cron")
    form_extra_fields = {
        "text": TextAreaField(_l("文字内容")),
        # a coupon for each recipient ({coupon} in the text); the choices are read per form
        "coupon": SelectField(_l("随消息发券"), choices=[], validate_choice=False,
                              description=_l("每位收件人各得一张，文字里用 {coupon} 写入券码")),
    }
    form_choices = {"target_kind": TARGETS}
    form_widget_args = {"text": {"rows": 4}}
    details_template = "admin/kefu_campaign_details.html"

    def create_form(self, obj: Any = None) -> Any:
        return _with_coupon_choices(super().create_form(obj))

    def edit_form(self, obj: Any = None) -> Any:
        return _with_coupon_choices(super().edit_form(obj))

    def on_form_prefill(self, form: Any, id: Any) -> None:
        content = Campaign.get_by_id(id).content or {}
        form.text.data = content.get("text", "")
        form.coupon.data = str(content.get("coupon_id") or "")

    def on_model_change(self, form: Any, model: Campaign, is_created: bool) -> None:
        if not model.content_kind or is_created:
            model.content_kind = "text"  # an image, news or template campaign keeps its kind
        content = {**(model.content or {}), "text": form.text.data or ""}
        content.pop("coupon_id", None)
        if form.coupon.data:
            content["coupon_id"] = int(form.coupon.data)
        model.content = content
        if is_created:
            model.status = "draft"

    def render(self, template: str, **kwargs: Any) -> Any:
        if template == self.details_template and kwargs.get("model") is not None:
            kwargs["counts"] = progress(kwargs["model"])
            kwargs["paths"] = send_paths(kwargs["model"])
            kwargs["changes"] = [c for c, sources in CHANGES.items() if kwargs["model"].status in sources]
        return super().render(template, **kwargs)

    @expose("/change/", methods=("POST",))
    def change_view(self) -> Any:
        campaign = Campaign.get_or_none(Campaign.id == request.form.get("id", type=int))
        change = request.form.get("change", "")
        if campaign is None or change not in CHANGES:
            flash(_l("活动或操作不存在"), "error")
            return redirect(url_for(".index_view"))
        try:
            change_status(campaign, change)
        except campaigns.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已更新活动状态"), "success")
        return redirect(url_for(".details_view", id=campaign.id))

    @expose("/resend-in-doubt/", methods=("POST",))
    def resend_in_doubt_view(self) -> Any:
        """Send again the run's sends in doubt: only with the risk acknowledged (the form's
        checkbox), because the platform may have delivered some of them already."""
        campaign = Campaign.get_or_none(Campaign.id == request.form.get("id", type=int))
        if campaign is None:
            flash(_l("活动不存在"), "error")
            return redirect(url_for(".index_view"))
        if request.form.get("accept_risk") != "yes":
            flash(_l("请先勾选确认：结果未知的消息可能已经送达，重发会让这些顾客收到两次"), "error")
            return redirect(url_for(".details_view", id=campaign.id))
        try:
            resent = campaigns.resend_in_doubt(campaign.id)
        except campaigns.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已重新排队 %(n)s 条结果未知的消息"), "success", n=resent)
        return redirect(url_for(".details_view", id=campaign.id))

    @expose("/test-send/", methods=("POST",))
    def test_send_view(self) -> Any:
        campaign = Campaign.get_or_none(Campaign.id == request.form.get("id", type=int))
        if campaign is None:
            flash(_l("活动不存在"), "error")
            return redirect(url_for(".index_view"))
        try:
            queued = campaigns.send_test(campaign)
        except campaigns.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已发送测试消息给 %(n)s 位客服"), "success", n=queued)
        return redirect(url_for(".details_view", id=campaign.id))


class DeliveryView(ReadOnlyView):
    column_list = ("id", "campaign", "customer", "status", "reason", "job_key", "updated_at")
    column_labels = {"campaign": _l("活动"), "customer": _l("顾客"), "status": _l("结果"), "reason": _l("原因"),
                     "job_key": _l("任务"), "updated_at": _l("更新时间"), "outbox_key": _l("发送队列键"),
                     "created_at": _l("创建时间")}
    column_filters = ("campaign", "status", "job_key", "updated_at")
    # labels shown and offered by the status filter; a reason not listed is shown as stored
    column_choices = {"status": list(DELIVERY_STATUSES.items()), "reason": list(DELIVERY_REASONS.items())}
    column_searchable_list = ("job_key",)
    column_default_sort = ("id", True)
