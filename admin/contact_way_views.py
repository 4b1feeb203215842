"""The panel's WeCom 联系我 codes (contact-way codes): create one for some employees, with the
same effects as a 公众号 channel code (tags, group, welcome, coupon, once per customer).

Why a page of its own: the code is asked of WeCom (`add_contact_way`, bot/crm/wecom_contacts.py)
for named employees, and WeCom answers with its own QR image URL (`qr_code`) rather than a
ticket kefu renders; the figures are the channel codes' (bot/crm/channel_codes.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import lazy_gettext as _l

from admin import wecom_api
from admin.auth import SecureView
from admin.channel_code_views import _expiry, _int_or_none
from admin.messages import flash, text
from bot.core.config import Config
from bot.core.models import ChannelCode, Coupon, CustomerGroup
from bot.crm import channel_codes, wecom_contacts
from bot.crm.channel_codes import CodeError, CodeSpec


def _wecom_channels() -> list[str]:
    return [c.name for c in wecom_api.wecom_channels()]


def spec_from(form: Mapping[str, str]) -> tuple[CodeSpec, list[str]]:
    """The operator's form as a CodeSpec and the employees' userids; CodeError when wrong."""
    channel = (form.get("channel") or "").strip()
    if channel not in _wecom_channels():
        raise CodeError(text(_l("请选择一个企业微信渠道")))
    users = [u for u in (s.strip()[:64] for s in (form.get("users") or "").replace("，", ",").split(",")) if u]
    spec = CodeSpec(name=form.get("name") or "", channel=channel, tags=channel_codes.parse_tags(form.get("tags") or ""),
                    group_id=_int_or_none(form.get("group")), welcome=(form.get("welcome") or "")[:2000],
                    coupon_id=_int_or_none(form.get("coupon")), expires_at=_expiry(form.get("expires_at")))
    return spec, users


def _post(channel_name: str) -> Any:
    fetch = wecom_api.fetch(channel_name)
    return lambda path, body: fetch(path, body, None)


class ContactWayView(SecureView):
    """The WeCom codes with their figures and the create form."""

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        from adapters.api_client import ApiError
        from bot.sending.tokens import TokenUnavailable

        error = ""
        channels = _wecom_channels()
        if request.method == "POST":
            try:
                spec, users = spec_from(request.form)
                code = wecom_contacts.create_contact_way(spec, users, _post(spec.channel))
            except CodeError as exc:
                error = str(exc)
            except (ApiError, TokenUnavailable) as exc:  # the platform unreachable: said, nothing stored
                error = text(_l("无法连接企业微信接口：%(why)s"), why=exc)
            else:
                flash(_l("已创建联系我活码：%(name)s"), "success", name=code.name)
                return redirect(url_for(".index"))
        codes = list(ChannelCode.select().where(ChannelCode.channel.in_(channels or [""])).order_by(ChannelCode.id.desc()))
        return self.render("admin/kefu_contact_ways.html", codes=codes,
                           figures={c.id: channel_codes.figures(c) for c in codes}, channels=channels,
                           groups=list(CustomerGroup.select().order_by(CustomerGroup.name)),
                           coupons=list(Coupon.select().where(Coupon.active == True).order_by(Coupon.name)),  # noqa: E712
                           error=error, form=request.form if error else {})


def register(admin: Admin, config: Config) -> None:
    """The 营销 menu's 联系我活码 page."""
    admin.add_view(ContactWayView(name=_l("联系我活码"), category=_l("营销"), endpoint="contactway",
                                  url="/admin/contact-ways"))
