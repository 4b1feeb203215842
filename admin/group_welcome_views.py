"""The panel's group welcome templates (入群欢迎语): write one, change it, delete it.

Why a page of its own and not a model form: every change is made on the platform first
(bot/crm/group_welcome.py), which may refuse; the form is shown again with the reason and
nothing is stored. kefu keeps the platform's template_id, shown for the owners' reference.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import lazy_gettext as _l

from admin import wecom_api
from admin.auth import SecureView
from admin.messages import flash, text
from bot.core.config import Config
from bot.core.models import WecomGroupWelcome
from bot.crm import group_welcome
from bot.crm.group_welcome import WelcomeError

FIELDS = ("name", "text", "image_url", "link_title", "link_url", "link_picurl", "link_desc")
LIMITS = {"name": 64, "text": 4000, "image_url": 512, "link_title": 128, "link_url": 512, "link_picurl": 512,
          "link_desc": 255}


def _wecom_channels() -> list[str]:
    return [c.name for c in wecom_api.wecom_channels()]


def _template(value: str | None) -> WecomGroupWelcome | None:
    value = value or ""
    return WecomGroupWelcome.get_or_none(WecomGroupWelcome.id == int(value)) if value.isdigit() else None


def fill(row: WecomGroupWelcome, form: Mapping[str, str]) -> WecomGroupWelcome:
    """The operator's form onto the row (not saved); WelcomeError for a wrong channel."""
    channel = (form.get("channel") or row.channel or "").strip()
    if channel not in _wecom_channels():
        raise WelcomeError(text(_l("请选择一个企业微信渠道")))
    row.channel = channel
    for name in FIELDS:
        setattr(row, name, (form.get(name) or "").strip()[:LIMITS[name]])
    row.notify = bool(form.get("notify"))
    return row


class GroupWelcomeView(SecureView):
    """The list and the form (new, or `?id=` to change one)."""

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        from adapters.api_client import ApiError
        from bot.sending.tokens import TokenUnavailable

        editing = _template(request.args.get("id"))
        error = ""
        if request.method == "POST":
            row = _template(request.form.get("id")) or WecomGroupWelcome(notify=True)
            try:
                group_welcome.save(fill(row, request.form), wecom_api.fetch(row.channel))
            except WelcomeError as exc:
                error = str(exc)
            except (ApiError, TokenUnavailable) as exc:  # the platform unreachable: said, nothing stored
                error = text(_l("无法连接企业微信接口：%(why)s"), why=exc)
            else:
                flash(_l("已保存入群欢迎语：%(name)s"), "success", name=row.name)
                return redirect(url_for(".index"))
        rows = list(WecomGroupWelcome.select().order_by(WecomGroupWelcome.id.desc()))
        form = request.form if error else ({**editing.__data__, "id": editing.id} if editing else {"notify": True})
        return self.render("admin/kefu_group_welcome.html", rows=rows, channels=_wecom_channels(), error=error,
                           form=form, editing=editing)

    @expose("/delete", methods=("POST",))
    def delete(self) -> Any:
        from adapters.api_client import ApiError
        from bot.sending.tokens import TokenUnavailable

        row = _template(request.form.get("id"))
        if row is None:
            flash(_l("欢迎语不存在"), "error")
            return redirect(url_for(".index"))
        try:
            group_welcome.delete(row, wecom_api.fetch(row.channel))
        except WelcomeError as exc:
            flash(_l("无法删除：%(why)s"), "error", why=exc)
        except (ApiError, TokenUnavailable) as exc:
            flash(_l("无法连接企业微信接口：%(why)s"), "error", why=exc)
        else:
            flash(_l("已删除入群欢迎语：%(name)s"), "success", name=row.name)
        return redirect(url_for(".index"))


def register(admin: Admin, config: Config) -> None:
    """The 营销 menu's 入群欢迎语 page."""
    admin.add_view(GroupWelcomeView(name=_l("入群欢迎语"), category=_l("营销"), endpoint="groupwelcome",
                                    url="/admin/group-welcome"))
