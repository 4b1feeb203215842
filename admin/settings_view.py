"""Settings and channels pages (admin only).

Why a form per setting with its own parser: a wrong value here changes how every customer
is greeted and routed, so each field is parsed and checked before anything is saved (all
or nothing), and the page says which field is wrong. Every setting has a labelled field
(issue 25: raw JSON with English keys is no use to a shop operator): member levels as a
VIP1–VIP4 table, retention as day counts, the scheduled messages as switches, numbers,
a coupon picker and textareas. A setting added later to `bot.core.settings.DEFAULTS` without a
field here still gets one from its default's type (text, number, switch); only a nested
value falls back to JSON until it is given its own fields.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import current_app, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l

from admin.auth import SecureView
from admin.messages import flash, text
from bot.core import settings
from bot.agents.business_hours import is_open
from bot.core import clock
from bot.faq.handoff_intent import keyword_overlaps

MODES = (("bot_first", _l("机器人优先")), ("human_first", _l("人工优先")), ("mixed", _l("混合（机器人没把握时转人工）")))
DAYS = (("mon", _l("周一")), ("tue", _l("周二")), ("wed", _l("周三")), ("thu", _l("周四")), ("fri", _l("周五")), ("sat", _l("周六")),
        ("sun", _l("周日")))
TEXTS = ("welcome_message", "abstain_message", "handoff_message", "queue_message", "offline_message",
         "resolved_message")
LABELS = {
    "reception_mode": _l("接待模式"), "welcome_message": _l("欢迎语"), "card_questions": _l("欢迎卡片问题（每行一个）"),
    "handoff_keywords": _l("转人工关键词（每行一个）"), "handoff_after_unanswered": _l("连续几次答不上来后转人工（0 = 不自动转）"),
    "faq_threshold": _l("FAQ 置信阈值（0–1，留空 = 配置文件的值）"), "agent_sla_seconds": _l("客服响应时限（秒）"),
    "idle_resolve_minutes": _l("无消息多久自动结束会话（分钟）"), "abstain_message": _l("答不上来时的回复"),
    "handoff_message": _l("转人工提示（{agent} = 客服名）"), "queue_message": _l("排队提示（{position} = 排队位置）"),
    "offline_message": _l("非服务时间提示（{hours} = 服务时间）"), "resolved_message": _l("会话结束语"),
    "business_hours": _l("服务时间"), "rating_cards": _l("FAQ 回答下附评价卡片（回复 1 有用 / 2 没用）"),
    "pool_return_days": _l("专属客户多久未联系退回公海（天）"), "retention": _l("数据保留"),
    "member_levels": _l("会员等级"), "coupon_reminder": _l("优惠券到期提醒"), "revisit": _l("签收回访"),
    "dormant_revisit": _l("沉睡客户唤醒"), "birthday_greeting": _l("生日祝福"),
    "handoff_ack_message": _l("转人工后、客服回复前顾客再发消息时的确认语（留空 = 不发）"),
}
HELP = {
    "rating_cards": _l("顾客的评价计入 FAQ 的赞/踩，帮您找出答得不好的问题。"),
    "pool_return_days": _l("超过这么多天没有联系的专属客户回到公海，其他客服可以领取。"),
    "retention": _l("已结束的记录保留多少天后清理；0 = 永久保留。"),
    "member_levels": _l("累计消费或订单数任一达到门槛即升级；某一列全部留空 = 不按这一项评级。门槛须递增。"),
    "coupon_reminder": _l("优惠券到期前提醒顾客使用。可用 {nickname} {coupon} {expires}。"),
    "revisit": _l("订单签收后询问满意度；低分的会话转人工跟进。可用 {nickname} {order}。"),
    "dormant_revisit": _l("很久没有联系的顾客，发一条消息（可附优惠券）请他回来。可用 {nickname} {coupon}。"),
    "birthday_greeting": _l("顾客生日当天（店铺时区）发送祝福，每年一次。可用 {nickname} {coupon}。"),
    "template": _l("超过 48 小时互动窗口时改用模板消息；模板 ID 留空 = 跳过这些顾客。"),
}
JOBS = ("coupon_reminder", "revisit", "dormant_revisit", "birthday_greeting")
JOB_PARTS = {
    "enabled": _l("启用"), "days": _l("天数"), "low_score": _l("几分及以下转人工跟进"), "coupon_id": _l("附带优惠券"),
    "text": _l("消息内容"), "template_id": _l("模板 ID"), "template_data": _l("模板字段（每行一个：字段=值）"),
}
JOB_DAYS = {"coupon_reminder": _l("到期前几天提醒"), "revisit": _l("签收后几天回访"),
            "dormant_revisit": _l("多少天未联系算沉睡")}
RETENTION = (("outbox_days", _l("发送队列（已完成）保留天数")), ("delivery_days", _l("群发/定时任务发送记录保留天数")),
             ("message_days", _l("聊天消息保留天数")))
NOTIFY = (("up", _l("升级时通知顾客")), ("any", _l("升级和降级都通知")), ("off", _l("不通知")))
LEVEL_MESSAGE = _l("等级变化通知（{level} = 新等级）")
DEDICATED = {"reception_mode", "card_questions", "handoff_keywords", "handoff_after_unanswered", "faq_threshold",
             "agent_sla_seconds", "idle_resolve_minutes", "business_hours", "rating_cards", "pool_return_days",
             "retention", "member_levels", *JOBS, *TEXTS}


class SettingsError(ValueError):
    def __init__(self, field: str, problem: str, part: Any = None) -> None:
        label = text(LABELS[field]) if field in LABELS else field
        super().__init__(f"{label}{f'（{text(part)}）' if part else ''}：{problem}")
        self.field = field


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("，", "\n").replace(",", "\n").splitlines() if line.strip()]


def _int(field: str, low: int, high: int, part: Any = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingsError(field, "请输入整数", part) from None
        if not low <= value <= high:
            raise SettingsError(field, f"应在 {low} 到 {high} 之间", part)
        return value

    return parse


def _threshold(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise SettingsError("faq_threshold", "请输入 0 到 1 之间的小数") from None
    if not 0 < value <= 1:
        raise SettingsError("faq_threshold", "请输入 0 到 1 之间的小数")
    return value


def _hhmm(text: str) -> str:
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not (0 <= int(parts[0]) <= 24 and 0 <= int(parts[1]) < 60):
        raise SettingsError("business_hours", f"时间格式应为 HH:MM，而不是 {text!r}")
    return f"{int(parts[0]):02d}:{int(parts[1]):02d}"


def parse_form(form: Any) -> dict[str, Any]:
    """Every setting from the posted form, checked; raises SettingsError on the first bad one."""
    values: dict[str, Any] = {}
    mode = form.get("reception_mode", "")
    if mode not in dict(MODES):
        raise SettingsError("reception_mode", "未知的接待模式")
    values["reception_mode"] = mode
    for key in TEXTS:
        text = form.get(key, "").strip()
        if not text:
            raise SettingsError(key, "不能为空")
        values[key] = text
    values["card_questions"] = _lines(form.get("card_questions", ""))[:10]
    keywords = _lines(form.get("handoff_keywords", ""))
    if not keywords:
        raise SettingsError("handoff_keywords", "至少填写一个关键词")
    values["handoff_keywords"] = keywords
    values["handoff_after_unanswered"] = _int("handoff_after_unanswered", 0, 20)(form.get("handoff_after_unanswered", ""))
    values["faq_threshold"] = _threshold(form.get("faq_threshold", ""))
    values["agent_sla_seconds"] = _int("agent_sla_seconds", 10, 86400)(form.get("agent_sla_seconds", ""))
    values["idle_resolve_minutes"] = _int("idle_resolve_minutes", 1, 7 * 24 * 60)(form.get("idle_resolve_minutes", ""))
    weekly: dict[str, list[str]] = {}
    for day, _label in DAYS:
        start, end = form.get(f"bh_{day}_start", "").strip(), form.get(f"bh_{day}_end", "").strip()
        if start or end:
            weekly[day] = [_hhmm(start), _hhmm(end)]
    zone = form.get("bh_timezone", "").strip() or "Asia/Shanghai"
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except Exception:
        raise SettingsError("business_hours", f"未知时区 {zone!r}") from None
    holidays = _lines(form.get("bh_holidays", ""))
    values["business_hours"] = {**(settings.get("business_hours") or {}), "timezone": zone, "weekly": weekly,
                                "holidays": holidays, "always_open": form.get("bh_always_open") == "on"}
    values["rating_cards"] = form.get("rating_cards") == "on"
    values["pool_return_days"] = _int("pool_return_days", 1, 3650)(form.get("pool_return_days", ""))
    values["retention"] = {**(settings.get("retention") or {}),
                           **{part: _int("retention", 0, 36500, label)(form.get(f"retention__{part}", ""))
                              for part, label in RETENTION}}
    values["member_levels"] = _member_levels(form)
    for key in JOBS:
        values[key] = _job(key, form)
    for key in sorted(set(settings.DEFAULTS) - DEDICATED):
        default = settings.DEFAULTS[key]
        if isinstance(default, bool):
            values[key] = form.get(f"extra_{key}") == "on"
            continue
        raw = form.get(f"extra_{key}")
        if raw is None:
            continue
        if isinstance(default, int):
            values[key] = _int(key, 0, 10**9)(raw)
            continue
        if isinstance(default, str):  # empty allowed: such texts read "" as "do not send"
            values[key] = raw.strip()
            continue
        try:
            values[key] = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError as exc:
            raise SettingsError(key, f"不是有效的 JSON（{exc.msg}，第 {exc.lineno} 行）") from None
        check = value_checks().get(key)
        if check is not None and values[key] is not None:
            try:
                check(values[key])
            except ValueError as exc:  # the reader's own check: what it would refuse later, quietly
                raise SettingsError(key, str(exc)) from None
    return values


def _member_levels(form: Any) -> dict[str, Any]:
    """The VIP1–VIP4 table: each basis all four thresholds increasing, or all empty (off);
    then the reader's own check (`levels.parse_rules`), so what is saved is what it accepts."""
    from bot.crm import levels

    value: dict[str, Any] = {**(settings.get("member_levels") or {})}
    for basis, label, cast in (("spend", _l("累计消费（元）"), float), ("orders", _l("订单数"), int)):
        cells = [form.get(f"member_levels__{basis}_{n}", "").strip() for n in range(1, 5)]
        if not any(cells):
            value[basis] = None
            continue
        if not all(cells):
            raise SettingsError("member_levels", "VIP1–VIP4 四个门槛要么都填，要么都留空", label)
        try:
            numbers = [cast(cell) for cell in cells]
        except ValueError:
            raise SettingsError("member_levels", "门槛须为数字" if cast is float else "门槛须为整数", label) from None
        if numbers[0] <= 0 or any(b <= a for a, b in zip(numbers, numbers[1:])):
            raise SettingsError("member_levels", "门槛须大于 0 且 VIP1 到 VIP4 递增", label)
        value[basis] = [int(n) if float(n).is_integer() else n for n in numbers]
    notify = form.get("member_levels__notify", "")
    if notify not in dict(NOTIFY):
        raise SettingsError("member_levels", "未知的通知方式")
    value["notify"] = notify
    message = form.get("member_levels__message", "").strip()
    if notify != "off" and not message:
        raise SettingsError("member_levels", "通知顾客时需填写通知内容", LEVEL_MESSAGE)
    value["message"] = message
    try:
        levels.parse_rules(value)
    except ValueError as exc:
        raise SettingsError("member_levels", str(exc)) from None
    return value


def _job(key: str, form: Any) -> dict[str, Any]:
    """One scheduled message (`jobs/`): switch, its numbers, coupon, text and template fallback."""
    default, prefix = settings.DEFAULTS[key], f"{key}__"
    value: dict[str, Any] = {**(settings.get(key) or {}), "enabled": form.get(prefix + "enabled") == "on"}
    if "days" in default:
        value["days"] = _int(key, 1, 3650, JOB_DAYS.get(key))(form.get(prefix + "days", ""))
    if "low_score" in default:
        value["low_score"] = _int(key, 1, 5, JOB_PARTS["low_score"])(form.get(prefix + "low_score", ""))
    if "coupon_id" in default:
        value["coupon_id"] = _coupon(key, form.get(prefix + "coupon_id", ""))
    value["text"] = form.get(prefix + "text", "").strip()
    template_id = form.get(prefix + "template_id", "").strip()
    data: dict[str, str] = {}
    for line in form.get(prefix + "template_data", "").splitlines():
        if not line.strip():
            continue
        name, sep, filled = line.partition("=")
        if not sep or not name.strip():
            raise SettingsError(key, f"模板字段应写成 字段=值，而不是 {line.strip()!r}", JOB_PARTS["template_data"])
        data[name.strip()] = filled.strip()
    if data and not template_id:
        raise SettingsError(key, "填了模板字段但没有模板 ID", JOB_PARTS["template_id"])
    old = value.get("template") or {}
    value["template"] = {**old, "template_id": template_id, "data": data} if template_id else None
    if value["enabled"] and not value["text"] and not template_id:
        raise SettingsError(key, "启用时需填写消息内容或模板 ID", JOB_PARTS["text"])
    return value


def _coupon(key: str, raw: str) -> int | None:
    from bot.core.models import Coupon

    if not raw.strip():
        return None
    if not raw.strip().isdigit() or Coupon.get_or_none(Coupon.id == int(raw)) is None:
        raise SettingsError(key, "所选优惠券不存在", JOB_PARTS["coupon_id"])
    return int(raw)


def value_checks() -> dict[str, Callable[[Any], Any]]:
    """JSON settings whose reader checks them: the same check refuses a bad value when it is
    saved (otherwise the reader logs it and falls back to the defaults, unseen by the operator)."""
    from bot.crm import levels

    return {levels.SETTING: levels.parse_rules}


class SettingsView(SecureView):
    admin_only = True

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        error: SettingsError | None = None
        if request.method == "POST":
            try:
                values = parse_form(request.form)
            except SettingsError as exc:
                error = exc
            else:
                for key, value in values.items():
                    settings.put(key, value)
                flash(_l("设置已保存，所有进程将在几秒内生效"), "success")
                return redirect(url_for(".index"))
        current = {key: settings.get(key) for key in settings.DEFAULTS}
        extra = {key: current[key] if isinstance(settings.DEFAULTS[key], (bool, int, str))
                 else json.dumps(current[key], ensure_ascii=False, indent=2)
                 for key in sorted(set(settings.DEFAULTS) - DEDICATED)}
        from bot.core.models import Coupon

        coupons = [(c.id, c.name) for c in Coupon.select(Coupon.id, Coupon.name).order_by(Coupon.id)]
        config = current_app.config["KEFU_CONFIG"]
        return self.render("admin/kefu_settings.html", current=current, extra=extra, modes=MODES, days=DAYS,
                           labels=LABELS, texts=TEXTS, error=error,
                           help=HELP, jobs=JOBS, job_parts=JOB_PARTS, job_days=JOB_DAYS, retention=RETENTION,
                           notify=NOTIFY, level_message=LEVEL_MESSAGE, coupons=coupons, defaults=settings.DEFAULTS, form=request.form if error else None,
                           default_threshold=config.faq.threshold,
                           open_now=is_open(clock.now(), current["business_hours"]),
                           overlaps=keyword_overlaps(current["handoff_keywords"] or []))


class ChannelsView(SecureView):
    """The configured channels and where their webhooks are (read-only: channels live in
    the config file, with their secrets)."""

    admin_only = True

    @expose("/")
    def index(self) -> Any:
        config = current_app.config["KEFU_CONFIG"]
        rows = [{"name": c.name, "kind": c.kind,
                 "url": f"{config.public_url}/chat/{c.name}" if c.kind == "web" else f"{config.public_url}/wechat/{c.name}"}
                for c in config.channels]
        return self.render("admin/kefu_channels.html", channels=rows, source=config.source)
