"""Panel users and outbox failures."""

from __future__ import annotations

from typing import Any

from werkzeug.security import check_password_hash

from bot.core.models import AdminUser, Outbox
from tests.admin.conftest import Panel, login


def test_admin_creates_an_operator_who_can_log_in(admin_panel: Panel, app: Any) -> None:
    response = admin_panel.post("/admin/adminuser/new/", {"username": "xiaowang", "role": "operator", "active": "y",
                                                          "password": "operator-pass-1"})
    assert response.status_code == 302
    user = AdminUser.get(AdminUser.username == "xiaowang")
    assert user.role == "operator" and check_password_hash(user.password_hash, "operator-pass-1")
    assert login(app.test_client(), "xiaowang", "operator-pass-1").status_code == 302
    response = admin_panel.post("/admin/adminuser/new/", {"username": "short", "role": "operator", "active": "y",
                                                          "password": "123"})
    assert not AdminUser.select().where(AdminUser.username == "short").exists()


def test_admin_cannot_demote_or_delete_themself(admin_panel: Panel, admin_user: Any) -> None:
    admin_panel.post(f"/admin/adminuser/edit/?id={admin_user.id}", {"username": "boss", "role": "operator",
                                                                    "active": "y", "password": ""})
    assert AdminUser.get_by_id(admin_user.id).role == "admin"
    admin_panel.post("/admin/adminuser/delete/", {"id": str(admin_user.id)})
    assert AdminUser.select().where(AdminUser.id == admin_user.id).exists()


def test_outbox_failures_lists_only_failures_with_reasons(admin_panel: Panel) -> None:
    Outbox.create(key="k1", channel="web", recipient="u1", content={"text": "hi"}, status="sent")
    Outbox.create(key="k2", channel="mp", recipient="u2", content={"text": "hi"}, status="window_closed",
                  last_error="48h window closed")
    Outbox.create(key="k3", channel="mp", recipient="u3", content={"text": "hi"}, status="failed",
                  last_error="errcode 45015")
    html = admin_panel.get("/admin/outbox/").get_data(as_text=True)
    assert "u2" in html and "u3" in html and "顾客超过48小时未发消息，平台不允许主动发送" in html and "errcode 45015" in html
    assert ">u1<" not in html
    sent = Outbox.get(Outbox.key == "k1")
    assert admin_panel.get(f"/admin/outbox/details/?id={sent.id}").status_code == 302
