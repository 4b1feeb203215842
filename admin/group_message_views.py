"""The panel's group campaigns to WeCom customer groups (群发到客户群): each group's result of
a run — 已发送 / 等待群主确认 / 失败 — and a button that asks WeCom now.

Why a page of its own: a group campaign's recipients are groups, not customers (the
campaign's 发送明细 lists customers), and its last step happens in the owners' WeCom, which
kefu learns only by asking (bot/campaigns/group_message_tracking.py `track`, every 5 minutes by the
scheduler). The campaign list's progress cell links here.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from admin import wecom_api
from admin.auth import SecureView
from admin.messages import flash, text
from bot.campaigns import group_message_tracking, group_messages, runs
from bot.core.config import Config
from bot.core.models import Campaign, WecomGroupChat, WecomGroupSend

STATUS_LABELS = {"pending": _l("待发送"), "handed": _l("排队发送"), "waiting": _l("等待群主确认"),
                 "sent": _l("已发送"), "failed": _l("失败"), "skipped": _l("未发送"), "in_doubt": _l("结果未知")}


def audience_choices() -> list[tuple[str, str]]:
    """The campaign picker's WeCom customer groups: all of them, and each synced chat (none
    for a shop without WeCom groups)."""
    active = WecomGroupChat.select().where(WecomGroupChat.status == "active").count()
    if not active:
        return []
    rows = [(f"{group_messages.TARGET}:", text(_l("全部企业微信客户群（%(n)s 个群）"), n=active))]
    for chat in WecomGroupChat.select().where(WecomGroupChat.status == "active").order_by(WecomGroupChat.name):
        rows.append((f"{group_messages.TARGET}:{chat.group_id}", f"{chat.name or chat.chat_id} · {chat.owner}"))
    return rows


def progress_cell(campaign: Campaign) -> Markup:
    """The campaign list's progress of a group campaign, linked to its groups' page."""
    counts = runs.progress(campaign)
    if not counts.get("total"):
        return Markup('<span class="text-muted">—</span>')
    shown = text(_l("%(sent)s/%(total)s 个群已发送 · 等待群主确认 %(waiting)s · 失败 %(failed)s · 排队 %(queued)s · "
                    "结果未知 %(in_doubt)s · 未发送 %(skipped)s"), **counts)
    return Markup('<a href="%s">%s</a>') % (url_for("groupsends.index", campaign=campaign.id), escape(shown))


def limit_note(campaign: Campaign) -> str:
    """On the confirm page of a group campaign: the groups that already have today's group
    message and will be skipped ("" when none, or not a group campaign)."""
    if campaign.target_kind != group_messages.TARGET:
        return ""
    try:
        limited = group_messages.limited_today(campaign)
    except group_messages.GroupMessageError:
        return ""
    if not limited:
        return ""
    return text(_l("这些客户群今天已有一条群发（企业微信：每个客户群每天只能收到一条），今天发送时会跳过：%(names)s"),
                names="、".join(limited))


class GroupSendView(SecureView):
    """Group campaigns and, for the chosen one, each group's result."""

    @expose("/", methods=("GET",))
    def index(self) -> Any:
        chosen = request.args.get("campaign", "")
        group_campaigns = list(Campaign.select().where(Campaign.target_kind == group_messages.TARGET)
                               .order_by(Campaign.id.desc()))
        campaign = Campaign.get_or_none(Campaign.id == int(chosen)) if chosen.isdigit() else None
        rows: list[Any] = []
        counts: dict[str, int] = {}
        if campaign is not None and campaign.run_key:
            counts = runs.progress(campaign)
            names = {c.chat_id: c.name for c in WecomGroupChat.select(WecomGroupChat.chat_id, WecomGroupChat.name)}
            rows = [(names.get(r.chat_id, ""), r) for r in WecomGroupSend.select().where(
                WecomGroupSend.job_key == campaign.run_key).order_by(WecomGroupSend.id)]
        return self.render("admin/kefu_group_sends.html", campaigns=group_campaigns, campaign=campaign, rows=rows,
                           counts=counts, labels=STATUS_LABELS)

    @expose("/track", methods=("POST",))
    def track(self) -> Any:
        """Ask WeCom now which owners have sent their tasks."""
        from adapters.api_client import ApiError
        from bot.crm.wecom_contacts import SyncError
        from bot.sending.tokens import TokenUnavailable

        sent = failed = 0
        for channel in wecom_api.wecom_channels():
            try:
                report = group_message_tracking.track(channel.name, wecom_api.fetch(channel.name))
            except (SyncError, ApiError, TokenUnavailable) as exc:
                flash(_l("无法查询企业微信：%(why)s"), "error", why=exc)
                break
            sent, failed = sent + report.sent, failed + report.failed
        else:
            flash(_l("已查询企业微信：%(sent)s 个群新发送，%(failed)s 个群失败"), "success", sent=sent, failed=failed)
        chosen = request.form.get("campaign", "")
        return redirect(url_for(".index", campaign=chosen) if chosen.isdigit() else url_for(".index"))


def register(admin: Admin, config: Config) -> None:
    """The 营销 menu's 客户群群发 page."""
    admin.add_view(GroupSendView(name=_l("客户群群发"), category=_l("营销"), endpoint="groupsends",
                                 url="/admin/group-sends"))
