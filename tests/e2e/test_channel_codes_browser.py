"""营销 › 渠道活码 in Chromium (issue 18): the panel, served on a port of its own, creates a
code through the WeChat stand-in; its page shows the QR image (loaded under the panel's
CSP), the PNG downloads, and a refused request is said on the form with nothing stored."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Iterator

import pytest
from werkzeug.serving import make_server

from admin import users
from admin.app import create_app
from bot.core.models import ChannelCode
from tests.adapters.wechat_kit import mp_channel
from tests.bot.ops.conftest import sandbox_url
from tests.e2e.test_browser import browser, page  # noqa: F401  (fixtures)

__all__ = ["sandbox_url"]
PASSWORD = "correct-horse-9"


@pytest.fixture
def panel_url(config, database, sandbox_url) -> Iterator[str]:  # type: ignore[no-untyped-def]
    users.create_user("ops", PASSWORD, "operator")
    app = create_app(dataclasses.replace(config, channels=(*config.channels, mp_channel(sandbox_url[1]))))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def test_an_operator_creates_a_code_sees_it_and_downloads_it(panel_url: str, sandbox_url, page: Any) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(panel_url + "/admin/channel-codes/")
    page.fill("#username", "ops")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(panel_url + "/admin/channel-codes/")
    sandbox_url[0].inject(40053, "qrcode/create")
    page.fill("#name", "直播间")
    page.click("#new-code button[type=submit]")
    assert "40053" in page.inner_text("#code-error")
    assert ChannelCode.select().count() == 0
    page.fill("#tags", "直播")
    page.fill("#welcome", "欢迎来自直播间！")
    page.click("#new-code button[type=submit]")
    page.wait_for_url("**/admin/channel-codes/code/?id=*")
    assert "已创建活码：直播间" in page.content()
    page.wait_for_function("document.querySelector('#code-image').naturalWidth > 0")
    with page.expect_download() as info:
        page.click("#code-download")
    download = info.value
    assert download.suggested_filename.endswith(".png")
    with open(download.path(), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    page.goto(panel_url + "/admin/channel-codes/")
    assert "直播间" in page.inner_text("#channel-codes")
