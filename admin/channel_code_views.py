"""The panel's channel codes (渠道活码): create one, see and download its image, its figures.

Why a page of its own and not a model form: a code is created by asking WeChat for it
(bot/crm/channel_codes.py), which may refuse; the form is shown again with the reason and
nothing is stored. The image is rendered from the code's URL on request (segno), so a
printed card can be downloaded again at any time. Expiry is typed in the shop's time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, current_app, redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import lazy_gettext as _l

from admin.auth import SecureView
from admin.filters import shop_zone
from admin.messages import flash, text
from bot.core.config import Config
from bot.crm import channel_codes
from bot.crm.channel_codes import CodeError, CodeSpec
from bot.core.models import ChannelCode, Coupon, CustomerGroup


def _mp_channels() -> list[str]:
    config: Config = current_app.config["KEFU_CONFIG"]
    return [c.name for c in config.channels if c.kind == "wechat_mp"]


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise CodeError(text(_l("选项无效")))
    return int(value)


def _expiry(value: str | None) -> datetime | None:
    """A `datetime-local` value in the shop's zone as an aware time; blank: no expiry."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CodeError(text(_l("过期时间格式无效，应为 2026-12-31T23:59"))) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=shop_zone())


def spec_from(form: Any) -> CodeSpec:
    """The operator's form as a CodeSpec; CodeError for a value that cannot be one."""
    channel = (form.get("channel") or "").strip()
    if channel not in _mp_channels():
        raise CodeError(text(_l("请选择一个公众号渠道")))
    return CodeSpec(name=form.get("name") or "", channel=channel,
                    tags=channel_codes.parse_tags(form.get("tags") or ""),
                    group_id=_int_or_none(form.get("group")), welcome=(form.get("welcome") or "")[:2000],
                    coupon_id=_int_or_none(form.get("coupon")), expires_at=_expiry(form.get("expires_at")))


def _platform(channel_name: str) -> channel_codes.PlatformPost:
    from adapters.wechat_mp import blocking_post  # the panel's one call to a platform

    config: Config = current_app.config["KEFU_CONFIG"]
    channel = config.channel(channel_name)
    assert channel is not None
    return blocking_post(channel)


def _code() -> ChannelCode | None:
    """The code named by `?id=`, None when there is none."""
    value = request.args.get("id", "")
    return ChannelCode.get_or_none(ChannelCode.id == int(value)) if value.isdigit() else None


def _no_such_code() -> Any:
    flash(_l("活码不存在"), "error")
    return redirect(url_for(".index"))


class ChannelCodeView(SecureView):
    """List with figures, the create form, a code's page and its PNG."""

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        from adapters.api_client import ApiError
        from bot.sending.tokens import TokenUnavailable

        error = ""
        if request.method == "POST":
            try:
                spec = spec_from(request.form)
                code = channel_codes.create(spec, _platform(spec.channel))
            except CodeError as exc:
                error = str(exc)
            except (ApiError, TokenUnavailable) as exc:  # the platform unreachable: said, nothing stored
                error = text(_l("无法连接微信接口：%(why)s"), why=exc)
            else:
                flash(_l("已创建活码：%(name)s"), "success", name=code.name)
                return redirect(url_for(".details", id=code.id))
        codes = list(ChannelCode.select().order_by(ChannelCode.id.desc()))
        return self.render("admin/kefu_channel_codes.html", codes=codes,
                           figures={c.id: channel_codes.figures(c) for c in codes}, channels=_mp_channels(),
                           groups=list(CustomerGroup.select().order_by(CustomerGroup.name)),
                           coupons=list(Coupon.select().where(Coupon.active == True).order_by(Coupon.name)),  # noqa: E712
                           error=error, form=request.form if error else {})

    @expose("/code/")
    def details(self) -> Any:
        code = _code()
        if code is None:
            return _no_such_code()
        return self.render("admin/kefu_channel_code.html", code=code, figures=channel_codes.figures(code),
                           expired=channel_codes.is_expired(code),
                           group=CustomerGroup.get_or_none(CustomerGroup.id == code.group_id) if code.group_id else None,
                           coupon=Coupon.get_or_none(Coupon.id == code.coupon_id) if code.coupon_id else None)

    @expose("/qrcode.png")
    def image(self) -> Any:
        code = _code()
        try:
            body = channel_codes.png(code) if code is not None else None
        except CodeError:
            body = None
        if code is None or body is None:
            return _no_such_code()
        response = Response(body, mimetype="image/png")
        if request.args.get("download"):
            response.headers["Content-Disposition"] = f"attachment; filename=channel-code-{code.id}.png"
        return response


def register(admin: Admin, config: Config) -> None:
    """The 营销 menu's 渠道活码 page."""
    admin.add_view(ChannelCodeView(name=_l("渠道活码"), category=_l("营销"), endpoint="channelcode",
                                   url="/admin/channel-codes"))
