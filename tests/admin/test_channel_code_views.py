"""营销 › 渠道活码 in the panel: login and CSRF, creating a code through the stand-in, its
image and PNG download, refusals shown (never a 500, nothing stored), figures, escaping."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from admin.app import create_app
from bot.core.models import ChannelCode, ChannelCodeScan, Coupon, Customer, CustomerGroup
from tests.adapters.wechat_kit import mp_channel
from tests.admin.conftest import Panel, login
from tests.bot.ops.conftest import sandbox_url

__all__ = ["sandbox_url"]

URL = "/admin/channel-codes/"


@pytest.fixture
def app(config, database, sandbox_url) -> Flask:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(config, channels=(*config.channels, mp_channel(sandbox_url[1])))
    return create_app(config, testing=True)


@pytest.fixture
def panel(app: Flask, operator_user: Any) -> Panel:  # an operator runs marketing
    client = app.test_client()
    assert login(client, "ops").status_code == 302
    return Panel(client)


def test_the_page_needs_a_login_and_a_csrf_token(app: Flask, panel: Panel) -> None:
    anonymous = app.test_client().get(URL)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert panel.client.post(URL, data={"name": "x", "channel": "mp"}).status_code == 400
    assert ChannelCode.select().count() == 0


def test_a_code_is_created_through_the_platform_and_its_image_downloaded(panel: Panel, sandbox_url) -> None:  # type: ignore[no-untyped-def]
    group = CustomerGroup.create(name="直播群")
    coupon = Coupon.create(name="新人券", value=Decimal("5"))
    resp = panel.post(URL, {"name": "包裹卡", "channel": "mp", "tags": "包裹卡，复购", "group": str(group.id),
                            "welcome": "感谢购买！", "coupon": str(coupon.id), "expires_at": ""})
    assert resp.status_code == 302
    code = ChannelCode.get()
    assert (code.tags, code.group_id, code.coupon_id, code.permanent) == (["包裹卡", "复购"], group.id, coupon.id, True)
    assert code.ticket in sandbox_url[0].qrcodes
    page = panel.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已创建活码：包裹卡" in page and f"/admin/channel-codes/qrcode.png?id={code.id}" in page
    image = panel.get(f"{URL}qrcode.png?id={code.id}")
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")
    download = panel.get(f"{URL}qrcode.png?id={code.id}&download=1")
    assert download.headers["Content-Disposition"].startswith("attachment") and download.data == image.data


def test_refusals_are_shown_and_store_nothing(panel: Panel, sandbox_url) -> None:  # type: ignore[no-untyped-def]
    sandbox_url[0].inject(40053, "qrcode/create")
    for form, said in [({"name": "a", "channel": "mp"}, "40053"),
                       ({"name": "a", "channel": "mp", "expires_at": "tomorrow"}, "过期时间格式无效"),
                       ({"name": "a", "channel": "mp", "expires_at": "2020-01-01T10:00"}, "过期时间已过"),
                       ({"name": "a", "channel": "web"}, "请选择一个公众号渠道"),
                       ({"name": "a", "channel": "mp", "group": "x"}, "选项无效"),
                       ({"name": "", "channel": "mp"}, "请填写活码名称")]:
        resp = panel.post(URL, form)
        assert resp.status_code == 200 and said in resp.get_data(as_text=True), form
    assert ChannelCode.select().count() == 0


def test_the_list_shows_each_codes_figures_escaped(panel: Panel) -> None:
    ChannelCode.create(name="<b>直播</b>", channel="mp", scene="kc_1", url="http://weixin.qq.com/q/x")
    code = ChannelCode.get()
    for n in range(2):
        customer = Customer.create(channel="mp", external_id=f"u{n}")
        ChannelCodeScan.create(code=code, customer=customer, new_follower=n == 0, scans=2)
    page = panel.get(URL).get_data(as_text=True)
    assert "&lt;b&gt;直播&lt;/b&gt;" in page and "<b>直播</b>" not in page
    assert '<td class="scans">4</td>' in page
    english = panel.get(f"{URL}code/?id={code.id}&lang=en").get_data(as_text=True)
    assert "New followers" in english and "Download PNG" in english
    missing = panel.get(f"{URL}code/?id=999", follow_redirects=True)
    assert "No such channel code" in missing.get_data(as_text=True)  # the session chose English above
