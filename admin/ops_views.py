"""Unanswered questions, outbox failures and admin users in the panel.

Why together: these are the operator's to-do lists (what the bot could not answer, what
could not be delivered) and the panel's own accounts; each is a small view over one table.
Customer-written question texts are rendered escaped like every other column.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user
from wtforms import PasswordField, SelectField

from admin import users
from admin.auth import ReadOnlyView, SecureModelView, SessionUser
from admin.faq_views import category_names, short, threshold
from admin.messages import flash, text
from bot.faq import learning
from bot.core.models import AdminUser, Faq, Outbox

FAILED_STATUSES = ("failed", "window_closed", "limit_reached")
# Why an unanswered question was recorded (UnansweredQuestion.reason, stored as the key).
UNANSWERED_REASONS = {"abstained": _l("未命中"), "handoff": _l("回答后顾客转人工"), "disliked": _l("顾客点踩")}
# Outbox.status is stored as the key (bot.sending.outbox, bot.campaigns.fanout.withdraw, the channel adapters).
OUTBOX_STATUSES = {"pending": _l("待发送"), "sending": _l("正在发送"), "sent": _l("已发送"), "failed": _l("失败"),
                   "window_closed": _l("超出48小时客服窗口"), "limit_reached": _l("超出回复条数限制"),
                   "cancelled": _l("已取消")}
# What a failed status means for the operator (the wording bot.conversation.relay tells the agent).
OUTBOX_REASONS = {"failed": _l("平台拒绝了这条消息，或多次重试仍未成功"),
                  "window_closed": _l("顾客超过48小时未发消息，平台不允许主动发送"),
                  "limit_reached": _l("已达到平台对本次互动的回复条数上限")}
# AdminUser.role is stored as the key (admin.users.ROLES).
ROLE_LABELS = {"admin": _l("管理员"), "operator": _l("运营")}


class UnansweredView(ReadOnlyView):
    column_list = ("id", "created_at", "text", "reason", "best_faq", "best_score", "customer", "resolved")
    column_labels = {"created_at": _l("时间"), "text": _l("顾客的问题"), "reason": _l("原因"), "best_faq": _l("最接近的 FAQ"),
                     "best_score": _l("得分"), "customer": _l("顾客"), "resolved": _l("已处理"),
                     "normalized": _l("规范化文本"), "message": _l("消息"), "resolved_at": _l("处理时间")}
    column_filters = ("resolved", "reason", "created_at")
    column_choices = {"reason": list(UNANSWERED_REASONS.items())}  # labels shown; the stored keys stay
    column_searchable_list = ("text",)
    column_formatters = {"text": short, "best_faq": lambda v, c, m, n: str(m.best_faq)[:30] if m.best_faq_id else ""}
    column_default_sort = ("id", True)
    details_template = "admin/kefu_unanswered_details.html"
    list_template = "admin/kefu_unanswered_list.html"

    def render(self, template: str, **kwargs: Any) -> Any:
        if template == self.details_template and kwargs.get("model") is not None:
            kwargs["faqs"] = list(Faq.select().order_by(Faq.category, Faq.id))
            kwargs["categories"] = category_names()
            kwargs["threshold"] = threshold()  # the hint is pre-selected only when the matcher was sure
        return super().render(template, **kwargs)

    @expose("/groups/")
    def groups_view(self) -> Any:
        """Open questions grouped by similarity, biggest first: teach the bot a group at once."""
        faqs = list(Faq.select().order_by(Faq.category, Faq.id))
        limit = threshold()
        return self.render("admin/kefu_unanswered_groups.html", groups=learning.unanswered_groups(), faqs=faqs,
                           categories=category_names(), threshold=limit, faq_by_id={f.id: f for f in faqs})

    @expose("/dismiss/", methods=("POST",))
    def dismiss_view(self) -> Any:
        """Dismiss one group from the grouped page (spam, chit-chat): resolved, nothing learned."""
        flash(_l("已处理 %(n)s 条"), "success", n=learning.dismiss(_ids(request.form.get("ids", ""))))
        return redirect(url_for(".groups_view"))

    @expose("/promote/", methods=("POST",))
    def promote_view(self) -> Any:
        ids = _ids(request.form.get("ids", ""))
        phrasings = [p for p in request.form.getlist("phrasing") if p.strip()] or None
        if not request.form.get("category", "").strip():  # no silent 聊天互动: the operator picks
            flash(_l("请选择分类"), "error")
            return redirect(request.referrer or url_for(".groups_view"))
        try:
            faq = learning.promote_to_new_faq(ids, request.form.get("answer", ""), request.form.get("category", ""),
                                              phrasings)
        except learning.LearningError as exc:
            flash(str(exc), "error")
            return redirect(request.referrer or url_for(".index_view"))
        flash(_l("已新建 FAQ #%(id)s"), "success", id=faq.id)
        return redirect(url_for("faq.edit_view", id=faq.id))

    @expose("/add-phrasing/", methods=("POST",))
    def add_phrasing_view(self) -> Any:
        try:
            learning.add_as_phrasing(_ids(request.form.get("ids", "")), request.form.get("faq_id", type=int) or 0)
        except learning.LearningError as exc:
            flash(str(exc), "error")
            return redirect(request.referrer or url_for(".index_view"))
        flash(_l("已添加为问法"), "success")
        return redirect(request.referrer or url_for(".index_view"))

    @action("dismiss", _l("标记为已处理"))
    def action_dismiss(self, ids: list[str]) -> None:
        flash(_l("已处理 %(n)s 条"), "success", n=learning.dismiss([int(i) for i in ids]))


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.replace(",", " ").split() if part.isdigit()]


def _reason(view: Any, context: Any, model: Outbox, name: str) -> str:
    return str(OUTBOX_REASONS.get(model.status, model.status))


class OutboxFailureView(ReadOnlyView):
    column_list = ("id", "created_at", "channel", "recipient", "status", "reason", "attempts", "last_error")
    column_labels = {"created_at": _l("时间"), "channel": _l("渠道"), "recipient": _l("接收人"), "status": _l("状态"),
                     "reason": _l("原因"), "attempts": _l("尝试次数"), "last_error": _l("错误信息"), "key": _l("发送键"),
                     "content": _l("内容")}
    column_filters = ("status", "channel", "created_at")
    column_searchable_list = ("recipient", "last_error")
    column_formatters = {"reason": _reason, "last_error": short}
    # only the failed statuses are listed here, so only they are offered by the filter
    column_choices = {"status": [(k, OUTBOX_STATUSES[k]) for k in FAILED_STATUSES]}
    column_default_sort = ("id", True)
    column_details_list = ("id", "key", "created_at", "channel", "recipient", "status", "attempts", "last_error",
                           "content")

    def get_query(self) -> Any:
        return Outbox.select().where(Outbox.status.in_(FAILED_STATUSES))

    def get_one(self, id: Any) -> Any:
        return Outbox.get_or_none((Outbox.id == id) & Outbox.status.in_(FAILED_STATUSES))


class AdminUserView(SecureModelView):
    admin_only = True
    column_list = ("id", "username", "role", "active", "must_change_password", "failed_logins", "locked_until",
                   "last_login_at")
    column_labels = {"username": _l("用户名"), "role": _l("角色"), "active": _l("启用"),
                     "must_change_password": _l("需改密码"), "failed_logins": _l("失败次数"),
                     "locked_until": _l("锁定至"), "last_login_at": _l("最近登录"), "password": _l("新密码")}
    column_details_list = column_list
    form_columns = ("username", "role", "active", "must_change_password", "password")
    form_extra_fields = {
        "password": PasswordField(_l("新密码"), description=_l("新建时必填；编辑时留空表示不修改（至少 8 位）")),
        "role": SelectField(_l("角色"), choices=list(ROLE_LABELS.items())),
    }
    column_choices = {"role": list(ROLE_LABELS.items())}  # the list shows 管理员 / 运营, not the stored key
    can_view_details = False

    def on_model_change(self, form: Any, model: AdminUser, is_created: bool) -> None:
        password = form.password.data or ""
        if is_created or password:
            if len(password) < users.MIN_PASSWORD:
                raise ValueError(text(_l("密码至少 %(n)s 位"), n=users.MIN_PASSWORD))
            model.password_hash = users.hash_password(password)
        if model.role not in users.ROLES:
            raise ValueError(text(_l("未知角色")))
        if not is_created and model.id == current_user.id and (model.role != "admin" or not model.active):
            raise ValueError(text(_l("不能取消自己的管理员权限或停用自己")))
        before = None if is_created else AdminUser.get_or_none(AdminUser.id == model.id)
        if before is not None and (password or (before.role, before.active) != (model.role, model.active)):
            model.session_version = users.NEXT_SESSION  # their open sessions end (admin/auth.py)

    def after_model_change(self, form: Any, model: AdminUser, is_created: bool) -> None:
        if not is_created and model.id == current_user.id:  # one's own new password: this session goes on
            login_user(SessionUser(AdminUser.get_by_id(model.id)))

    def on_model_delete(self, model: AdminUser) -> None:
        if model.id == current_user.id:
            raise ValueError(text(_l("不能删除自己")))

    @action("unlock", _l("解除锁定"))
    def action_unlock(self, ids: list[str]) -> None:
        AdminUser.update(failed_logins=0, locked_until=None).where(AdminUser.id.in_([int(i) for i in ids])).execute()
        flash(_l("已解除锁定"), "success")
