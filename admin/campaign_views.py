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

import peewee
from flask import current_app, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional

from admin.auth import ReadOnlyView, SecureModelView
from admin.messages import flash, text as message_text
from bot.campaigns import checks as campaign_checks, cron as campaign_cron, runs, targets as campaign_targets
from bot.crm import segments
from bot.core.models import Agent, Campaign, Coupon, Customer, CustomerGroup, CustomerTag, GroupMember, Segment, Tag

STATUS_LABELS = {"draft": _l("草稿"), "scheduled": _l("已排期"), "running": _l("发送中"), "paused": _l("已暂停"),
                 "done": _l("已完成"), "cancelled": _l("已取消")}
TARGETS = [("group", _l("群")), ("tag", _l("标签")), ("level", _l("会员等级")), ("segment", _l("人群")),
           ("all", _l("全部顾客"))]
# Delivery.status and .reason are stored as keys: bot.campaigns.fanout writes the statuses and the skip
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
    return runs.progress(campaign) if campaign.run_key else {}


def send_paths(campaign: Campaign) -> dict[str, int] | None:
    """Who each path would reach if the campaign were sent now (None: a wrong target)."""
    kinds = {c.name: c.kind for c in current_app.config["KEFU_CONFIG"].channels}
    try:
        return runs.paths(campaign, kinds)
    except campaign_targets.CampaignError:
        return None


def change_status(campaign: Campaign, change: str) -> None:
    """Apply a change through bot.campaigns; raises campaign_targets.CampaignError when refused."""
    if change == "schedule":
        runs.schedule(campaign)
    else:
        getattr(runs, change)(campaign.id)


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


REPEATS = [("", _l("不重复（只发一次）")), ("daily", _l("每天")), ("weekly", _l("每周")), ("monthly", _l("每月"))]
WEEKDAY_CHOICES = [("mon", _l("星期一")), ("tue", _l("星期二")), ("wed", _l("星期三")), ("thu", _l("星期四")),
                   ("fri", _l("星期五")), ("sat", _l("星期六")), ("sun", _l("星期日"))]


def audience_choices() -> dict[str, list[tuple[str, str]]]:
    """The audience picker: every group, tag, level and segment with how many customers it
    holds now (a few grouped COUNTs), as `kind:id` values grouped by kind."""
    def counted(name: str, n: int) -> str:
        return message_text(_l("%(name)s（%(n)s 人）"), name=name, n=n)

    members = dict(GroupMember.select(GroupMember.group, peewee.fn.COUNT(GroupMember.id))
                   .group_by(GroupMember.group).tuples())
    tagged = dict(CustomerTag.select(CustomerTag.tag, peewee.fn.COUNT(CustomerTag.id))
                  .group_by(CustomerTag.tag).tuples())
    levels = dict(Customer.select(Customer.level, peewee.fn.COUNT(Customer.id)).group_by(Customer.level).tuples())
    choices: dict[str, list[tuple[str, str]]] = {
        str(_l("全部")): [("all:", counted(str(_l("全部顾客")), Customer.select().count()))],
        str(_l("客户群")): [(f"group:{g.id}", counted(f"{g.name} · {g.kind}", members.get(g.id, 0)))
                           for g in CustomerGroup.select().order_by(CustomerGroup.name)],
        str(_l("标签")): [(f"tag:{t.id}", counted(t.name, tagged.get(t.id, 0))) for t in Tag.select().order_by(Tag.name)],
        str(_l("会员等级")): [(f"level:{n}", counted(name, levels.get(n, 0))) for n, name in campaign_targets.LEVEL_NAMES.items()],
        str(_l("客户筛选")): [(f"segment:{s.id}", counted(s.name, _segment_size(s)))
                             for s in Segment.select().order_by(Segment.name)],
    }
    return {label: rows for label, rows in choices.items() if rows}


def _segment_size(segment: Segment) -> int:
    try:
        return Customer.select().where(segments.condition(segment)).count()
    except segments.SegmentError:
        return 0


def audience_value(campaign: Campaign) -> str:
    """The picker's value for a stored target: ids for a group, tag or segment stored by name."""
    kind, value = campaign.target_kind or "all", (campaign.target_value or "").strip()
    lookups = {"group": CustomerGroup, "tag": Tag, "segment": Segment}
    if kind in lookups and value and not value.isdigit():
        row = lookups[kind].get_or_none(lookups[kind].name == value)
        value = str(row.id) if row else value
    if kind == "level":
        try:
            value = str(campaign_targets._level(value))
        except campaign_targets.CampaignError:
            pass
    return f"{kind}:{value if kind != 'all' else ''}"


def draft_from(form: Any, stored: Campaign | None = None) -> Campaign:
    """An unsaved campaign as the form describes it, for the checks and the live count."""
    chosen = form.audience.data or (audience_value(stored) if stored else "all:")
    kind, _, value = chosen.partition(":")
    content = {**((stored.content or {}) if stored else {}), "text": form.text.data or ""}
    content.pop("coupon_id", None)
    if form.coupon.data:
        content["coupon_id"] = int(form.coupon.data)
    return Campaign(id=stored.id if stored else None, name=form.name.data or "", target_kind=kind, target_value=value,
                    content_kind=(stored.content_kind if stored else "") or "text", content=content,
                    run_at=form.run_at.data, cron=form_cron(form))


def form_cron(form: Any) -> str:
    """The advanced cron line when typed, else the repeat in words as cron."""
    advanced = (form.cron.data or "").strip()
    if advanced:
        return advanced
    return campaign_cron.repeat_cron(form.repeat.data or "", form.repeat_at.data or "", form.repeat_weekday.data or "mon",
                                 form.repeat_day.data or 1)


def _repeat_words(view: Any, context: Any, model: Campaign, name: str) -> str:
    return campaign_cron.describe_cron(model.cron) or message_text(_l("不重复"))


def _audience(view: Any, context: Any, model: Campaign, name: str) -> str:
    """The target as a name, not a stored id."""
    kind, value = audience_value(model).split(":", 1)
    names = {"group": CustomerGroup, "tag": Tag, "segment": Segment}
    if kind in names and value.isdigit():
        row = names[kind].get_or_none(names[kind].id == int(value))
        return row.name if row else model.target_value
    if kind == "level" and value.isdigit():
        return campaign_targets.LEVEL_NAMES.get(int(value), value)
    return model.target_value


class CampaignView(SecureModelView):
    column_list = ("id", "name", "target_kind", "target_value", "content", "status", "run_at", "cron", "progress")
    column_labels = {"name": _l("名称"), "target_kind": _l("发送对象"), "target_value": _l("对象值"),
                     "content": _l("内容"), "status": _l("状态"), "run_at": _l("发送时间"), "cron": _l("重复"),
                     "progress": _l("进度"), "content_kind": _l("内容类型"), "text": _l("文字内容"),
                     "created_at": _l("创建时间"), "run_key": _l("发送批次"),
                     "run_planned": _l("收件人已全部列出")}
    column_formatters = {"progress": _progress, "content": _content, "cron": _repeat_words, "target_value": _audience}
    column_formatters_detail = column_formatters
    column_filters = ("status", "target_kind", "run_at")
    # labels shown (list, details) and offered by the filters; the stored keys stay
    column_choices = {"status": list(STATUS_LABELS.items()), "target_kind": TARGETS}
    column_searchable_list = ("name",)
    column_default_sort = ("id", True)
    form_columns = ("name", "audience", "text", "coupon", "run_at", "repeat", "repeat_weekday", "repeat_day",
                    "repeat_at", "cron")
    form_extra_fields = {
        # every group, tag, level and segment with its count now; the choices are read per form
        "audience": SelectField(_l("发送对象"), choices=[], validate_choice=False,
                                description=_l("从列表中选择；括号里是现在的人数")),
        "text": TextAreaField(_l("文字内容"), description=_l("可用占位符：{nickname} 昵称、{level} 会员等级、{coupon} 券码（需选择随消息发券）")),
        # a coupon for each recipient ({coupon} in the text); the choices are read per form
        "coupon": SelectField(_l("随消息发券"), choices=[], validate_choice=False,
                              description=_l("每位收件人各得一张，文字里用 {coupon} 写入券码")),
        "repeat": SelectField(_l("重复发送"), choices=REPEATS, validate_choice=False),  # checked by repeat_cron
        "repeat_weekday": SelectField(_l("每周的哪天"), choices=WEEKDAY_CHOICES, default="mon", validate_choice=False),
        "repeat_day": IntegerField(_l("每月的几号"), default=1, validators=[Optional(), NumberRange(1, 28)]),
        "repeat_at": StringField(_l("重复发送的时间"), default="10:00", description=_l("店铺时区的 时:分，如 10:00")),
    }
    form_args = {
        "run_at": {"label": _l("发送时间"), "description": _l("店铺时区；留空表示确认后立即发送")},
        "cron": {"label": _l("高级：cron 表达式"),
                 "description": _l("一般不用填；填写后代替上面的重复设置（分 时 日 月 周，店铺时区）")},
    }
    form_widget_args = {"text": {"rows": 4}}
    details_template = "admin/kefu_campaign_details.html"
    create_template = "admin/kefu_campaign_edit.html"
    edit_template = "admin/kefu_campaign_edit.html"

    def create_form(self, obj: Any = None) -> Any:
        form = _with_coupon_choices(super().create_form(obj))
        form.audience.choices = audience_choices()
        return form

    def edit_form(self, obj: Any = None) -> Any:
        form = _with_coupon_choices(super().edit_form(obj))
        form.audience.choices = audience_choices()
        return form

    def on_form_prefill(self, form: Any, id: Any) -> None:
        campaign = Campaign.get_by_id(id)
        content = campaign.content or {}
        form.text.data = content.get("text", "")
        form.coupon.data = str(content.get("coupon_id") or "")
        form.audience.data = audience_value(campaign)
        repeat = campaign_cron.parse_repeat(campaign.cron)
        if repeat is not None:  # said in words; the advanced field stays empty
            form.repeat.data, form.repeat_at.data = repeat["every"], repeat["at"]
            form.repeat_weekday.data, form.repeat_day.data = repeat["weekday"], repeat["day"]
            form.cron.data = ""

    def validate_form(self, form: Any) -> bool:
        """The core's checks (bot.campaigns), each shown at its field: an unknown target,
        an unfilled placeholder, a time already past, a wrong repeat. Nothing is saved."""
        if not super().validate_form(form):
            return False
        if not hasattr(form, "audience"):  # the delete form
            return True
        stored = Campaign.get_or_none(Campaign.id == request.args.get("id", type=int)) if request.args.get("id") else None
        try:
            draft = draft_from(form, stored)
        except campaign_targets.CampaignError as exc:
            form.repeat_at.errors = [*form.repeat_at.errors, str(exc)]
            return False
        found = [(form.audience, campaign_checks.target_problems(draft)), (form.text, campaign_checks.content_problems(draft)),
                 (form.cron if draft.cron and (form.cron.data or "").strip() else form.run_at,
                  campaign_checks.timing_problems(draft))]
        for field, problems in found:
            field.errors = [*field.errors, *problems]
        return not any(problems for _, problems in found)

    def on_model_change(self, form: Any, model: Campaign, is_created: bool) -> None:
        if not model.content_kind or is_created:
            model.content_kind = "text"  # an image, news or template campaign keeps its kind
        content = {**(model.content or {}), "text": form.text.data or ""}
        content.pop("coupon_id", None)
        if form.coupon.data:
            content["coupon_id"] = int(form.coupon.data)
        model.content = content
        chosen = form.audience.data or ("all:" if is_created else "")  # the picker always posts one
        if chosen:
            model.target_kind, _, model.target_value = chosen.partition(":")
        model.cron = form_cron(form)
        if is_created:
            model.status = "draft"

    def after_model_change(self, form: Any, model: Campaign, is_created: bool) -> None:
        if not campaign_checks.target_problems(model) and campaign_targets.audience_size(model) == 0:
            flash(_l("注意：发送对象现在没有顾客（0 人），这个活动还不能发送"), "warning")

    def render(self, template: str, **kwargs: Any) -> Any:
        if template == self.details_template and kwargs.get("model") is not None:
            kwargs["counts"] = progress(kwargs["model"])
            kwargs["paths"] = send_paths(kwargs["model"])
            kwargs["changes"] = [c for c, sources in CHANGES.items() if kwargs["model"].status in sources]
            kwargs["agents"] = _agents()
        return super().render(template, **kwargs)

    @expose("/change/", methods=("POST",))
    def change_view(self) -> Any:
        campaign = Campaign.get_or_none(Campaign.id == request.form.get("id", type=int))
        change = request.form.get("change", "")
        if campaign is None or change not in CHANGES:
            flash(_l("活动或操作不存在"), "error")
            return redirect(url_for(".index_view"))
        if change == "schedule":
            return self._schedule_confirmed(campaign)
        try:
            change_status(campaign, change)
        except campaign_targets.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已更新活动状态"), "success")
        return redirect(url_for(".details_view", id=campaign.id))

    def _schedule_confirmed(self, campaign: Campaign) -> Any:
        """Schedule only from the confirmation page, with the count the operator saw ticked:
        an audience that changed since is refused by bot.campaigns and confirmed again."""
        confirmed = request.form.get("confirm_count", type=int)
        if confirmed is None or request.form.get("confirmed") != "yes":
            flash(_l("请先在确认页核对人数和预览，再勾选确认"), "error")
            return redirect(url_for(".confirm_view", id=campaign.id))
        try:
            count = runs.schedule(campaign, confirmed_count=confirmed)
        except campaign_targets.CampaignError as exc:
            flash(str(exc), "error")
            return redirect(url_for(".confirm_view", id=campaign.id))
        flash(_l("已安排发送给 %(n)s 位顾客"), "success", n=count)
        return redirect(url_for(".details_view", id=campaign.id))

    @expose("/confirm/")
    def confirm_view(self) -> Any:
        """Before sending: what is wrong (nothing can be confirmed then), who it goes to and by
        which path, what the first recipient reads, and one tick naming the count."""
        campaign = Campaign.get_or_none(Campaign.id == request.args.get("id", type=int))
        if campaign is None:
            flash(_l("活动不存在"), "error")
            return redirect(url_for(".index_view"))
        problems = campaign_checks.problems(campaign)
        count = campaign_targets.audience_size(campaign) if not campaign_checks.target_problems(campaign) else 0
        if not problems and count == 0:
            problems = [message_text(_l("发送对象里没有顾客（0 人），不能发送"))]
        return self.render("admin/kefu_campaign_confirm.html", model=campaign, problems=problems, count=count,
                           paths=send_paths(campaign), shown=campaign_checks.preview(campaign),
                           repeat=campaign_cron.describe_cron(campaign.cron), agents=_agents(),
                           when=_when(campaign))

    @expose("/audience/")
    def audience_view(self) -> Any:
        """The live count for the form: how many the chosen audience holds now and how many
        each send path reaches (JSON; a wrong target is an error, never a 500)."""
        kind, _, value = (request.args.get("audience") or "all:").partition(":")
        draft = Campaign(target_kind=kind, target_value=value, content_kind="text",
                         content={"text": request.args.get("text") or ""})
        problems = campaign_checks.target_problems(draft)
        if problems:
            return jsonify({"error": problems[0]}), 400
        paths = send_paths(draft) or {}
        return jsonify({"count": campaign_targets.audience_size(draft), "paths": paths,
                        "text": message_text(_l("现在 %(n)s 人：客服消息可达 %(cs)s，模板消息 %(tpl)s，公众号群发 %(mass)s，"
                                                "无法送达 %(none)s，不发送 %(refused)s"),
                                             n=campaign_targets.audience_size(draft), cs=paths.get("customer_service", 0),
                                             tpl=paths.get("template", 0), mass=paths.get("mass", 0),
                                             none=paths.get("unreachable", 0), refused=paths.get("refused", 0))})

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
            resent = runs.resend_in_doubt(campaign.id)
        except campaign_targets.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已重新排队 %(n)s 条结果未知的消息"), "success", n=resent)
        return redirect(url_for(".details_view", id=campaign.id))

    @expose("/test-send/", methods=("POST",))
    def test_send_view(self) -> Any:
        """A test send to one chosen person: an agent (`a:<id>`), a customer by number
        (`customer`), or every active agent (`all`)."""
        campaign = Campaign.get_or_none(Campaign.id == request.form.get("id", type=int))
        if campaign is None:
            flash(_l("活动不存在"), "error")
            return redirect(url_for(".index_view"))
        back = redirect(request.form.get("back") == "confirm" and url_for(".confirm_view", id=campaign.id)
                        or url_for(".details_view", id=campaign.id))
        to = request.form.get("to", "all")
        customer_no = (request.form.get("customer") or "").strip().lstrip("#")
        try:
            if customer_no:
                customer = Customer.get_or_none(Customer.id == int(customer_no)) if customer_no.isdigit() else None
                if customer is None:
                    flash(_l("没有编号为 %(n)s 的顾客"), "error", n=customer_no)
                    return back
                queued = runs.send_test(campaign, customer=customer)
                flash(_l("已发送测试消息给顾客 %(name)s"), "success", name=str(customer))
                return back
            agents = None
            if to.startswith("a:") and to[2:].isdigit():
                agents = list(Agent.select().where(Agent.id == int(to[2:])))
            queued = runs.send_test(campaign, agents)
        except campaign_targets.CampaignError as exc:
            flash(str(exc), "error")
        else:
            flash(_l("已发送测试消息给 %(n)s 位客服"), "success", n=queued)
        return back


def _agents() -> list[Agent]:
    return list(Agent.select().where(Agent.active == True).order_by(Agent.id))  # noqa: E712


def _when(campaign: Campaign) -> str:
    """When it goes out, in the shop's time zone."""
    from admin.filters import local_time

    if campaign.cron:
        return campaign_cron.describe_cron(campaign.cron)
    if campaign.run_at is not None:
        return local_time(None, campaign.run_at, "run_at")[:16]
    return message_text(_l("确认后立即发送"))


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
