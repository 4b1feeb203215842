"""Settings and channels pages (admin only).

Why a form per setting with its own parser: a wrong value here changes how every customer
is greeted and routed, so each field is parsed and checked before anything is saved (all
or nothing), and the page says which field is wrong. Settings the page has no dedicated
field for (those other features add to `bot.settings.DEFAULTS`) are edited as JSON, so a new
setting is editable the day it is added.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import current_app, redirect, request, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l

from admin.auth import SecureView
from admin.messages import flash, text
from bot import settings
from bot.business_hours import is_open
from bot import clock
from bot.routing import keyword_overlaps

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
    "business_hours": _l("服务时间"),
}
DEDICATED = {"reception_mode", "card_questions", "handoff_keywords", "handoff_after_unanswered", "faq_threshold",
             "agent_sla_seconds", "idle_resolve_minutes", "business_hours", *TEXTS}


class SettingsError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{text(LABELS[field]) if field in LABELS else field}：{problem}")
        self.field = field


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("，", "\n").replace(",", "\n").splitlines() if line.strip()]


def _int(field: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingsError(field, "请输入整数") from None
        if not low <= value <= high:
            raise SettingsError(field, f"应在 {low} 到 {high} 之间")
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
    for key in sorted(set(settings.DEFAULTS) - DEDICATED):
        raw = form.get(f"json_{key}")
        if raw is None:
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
        extra = {key: json.dumps(current[key], ensure_ascii=False, indent=2)
                 for key in sorted(set(settings.DEFAULTS) - DEDICATED)}
        config = current_app.config["KEFU_CONFIG"]
        return self.render("admin/kefu_settings.html", current=current, extra=extra, modes=MODES, days=DAYS,
                           labels=LABELS, texts=TEXTS, error=error, form=request.form if error else None,
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
