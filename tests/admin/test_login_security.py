"""Logins and sessions (issue 23): a `next=` with CR/LF is refused safely; failures are
counted atomically, so parallel wrong passwords lock an account (and an address) as
sequential ones do; a session ends for real at logout, password change and role change;
changing one's password asks for the current one; the cookie can be made Secure."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import throttle, users
from bot.models import AdminUser, LoginThrottle
from tests.admin.conftest import PASSWORD, csrf_token, login


HOSTILE_NEXT = ("/admin/\r\nSet-Cookie: x=1", "/admin/faq/\nLocation: http://evil.example", "/admin/\r\n",
                "/admin/\tx", "/admin\x00", "/admin\\@evil.example", "/\\evil.example", "https://evil.example/admin",
                "//evil.example/admin", "/administrator-elsewhere")


def post_login(client: FlaskClient, **query: str) -> Any:
    token = csrf_token(client.get("/admin/login/").get_data(as_text=True))
    return client.post("/admin/login/", query_string=query,
                       data={"csrf_token": token, "username": "boss", "password": PASSWORD})


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_with_a_hostile_next_lands_on_the_panel(app: Flask, admin_user: Any, target: str) -> None:
    response = post_login(app.test_client(), next=target)
    assert response.status_code == 302 and response.location == "/admin/"


def test_login_follows_a_safe_next(app: Flask, admin_user: Any) -> None:
    response = post_login(app.test_client(), next="/admin/faq/?search=发货")
    assert response.status_code == 302 and response.location == "/admin/faq/?search=%E5%8F%91%E8%B4%A7"
