"""Who may see what: every admin URL refuses anonymous requests, operators are kept out of
users, settings and channels, every POST needs a CSRF token, logins are throttled, and the
session cookie is HttpOnly and SameSite."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from admin import throttle, users
from bot import demo
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import AdminUser, Faq, LoginThrottle, Setting
from tests.admin.conftest import PASSWORD, Panel, csrf_token, login
from tests.factories import text

ADMIN_ONLY = ("/admin/settings/", "/admin/channels/", "/admin/adminuser/", "/admin/adminuser/new/")
SAMPLE_ARGS = {"fmt": "csv", "export_type": "csv", "filename": "admin/css/bootstrap4/admin.css"}


@pytest.fixture
def shop(config: Any, dispatcher: Dispatcher) -> None:
    """Some rows in every table the panel lists, so detail and edit pages have an id."""
    demo.seed(config)
    dispatcher.handle(text("visitor-1", "发货要多久"))
    dispatcher.handle(text("visitor-1", "你们老板是谁"))


def get_urls(app: Flask) -> list[str]:
    urls: list[str] = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "GET" not in rule.methods or rule.endpoint.endswith("static"):
            continue
        if rule.endpoint in ("admin.login_view", "admin.password_view") or rule.rule.endswith("/ajax/lookup/"):
            continue
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<{name}>", SAMPLE_ARGS[name])
        urls.append(url)
        if url.endswith("/details/") or url.endswith("/edit/"):
            urls.append(url + "?id=1")
    return sorted(set(urls))


def post_urls(app: Flask) -> list[str]:
    return sorted({r.rule for r in app.url_map.iter_rules()
                   if r.rule.startswith("/admin") and "POST" in r.methods and not r.arguments})


def test_every_admin_url_redirects_anonymous_to_login(app: Flask, shop: None) -> None:
    client = app.test_client()
    urls = get_urls(app)
    assert len(urls) > 60  # every model view contributes list, details, edit, ...
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert "/admin/login/" in response.location, url


def test_every_post_refuses_anonymous_even_with_a_valid_token(app: Flask, shop: None) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/admin/login/").get_data(as_text=True))
    faqs = Faq.select().count()
    for url in post_urls(app):
        if url in ("/admin/login/", "/admin/password/", "/admin/logout/"):
            continue
        response = client.post(url, data={"csrf_token": token, "id": "1", "answer": "x", "rowid": "1",
                                          "action": "delete"})
        assert response.status_code == 302, url
        assert "/admin/login/" in response.location, url
    assert Faq.select().count() == faqs


def test_logged_in_admin_sees_every_page(admin_panel: Panel, app: Flask, shop: None) -> None:
    for url in get_urls(app):
        response = admin_panel.get(url)
        assert response.status_code in (200, 302), url
        if response.status_code == 302:  # details/edit without an id, or a read-only view's form
            assert "/admin/login/" not in response.location, url


def test_operator_is_refused_admin_only_views(operator_panel: Panel, app: Flask, shop: None) -> None:
    for url in ADMIN_ONLY:
        response = operator_panel.get(url)
        assert response.status_code == 302, url
        assert response.location.rstrip("/").endswith("/admin"), url
    before = Setting.select().count()
    response = operator_panel.post("/admin/settings/", {"reception_mode": "mixed"})
    assert response.status_code == 302 and Setting.select().count() == before
    response = operator_panel.post("/admin/adminuser/new/", {"username": "mallory", "password": "long-enough-1",
                                                             "role": "admin", "active": "y"})
    assert not AdminUser.select().where(AdminUser.username == "mallory").exists()
    for url in ("/admin/faq/", "/admin/conversation/", "/admin/customer/", "/admin/campaign/", "/admin/"):
        assert operator_panel.get(url).status_code == 200, url


def test_operator_menu_hides_admin_only_views(operator_panel: Panel, admin_panel: Panel) -> None:
    assert "/admin/settings/" not in operator_panel.get("/admin/").get_data(as_text=True)
    assert "/admin/settings/" in admin_panel.get("/admin/").get_data(as_text=True)


def test_posts_without_csrf_token_are_refused(admin_panel: Panel, app: Flask, shop: None) -> None:
    faqs = Faq.select().count()
    for url in post_urls(app):
        response = admin_panel.client.post(url, data={"answer": "没有令牌", "category": "更多问题", "id": "1"})
        assert response.status_code == 400, url
    response = admin_panel.client.post("/admin/faq/new/", data={"answer": "错误令牌", "csrf_token": "forged"})
    assert response.status_code == 400
    assert Faq.select().count() == faqs
    # the same post with the token goes through: the refusal above was the token's doing
    response = admin_panel.post("/admin/faq/new/", {"answer": "有令牌", "category": "更多问题", "enabled": "y", "phrasings": "有令牌吗"})
    assert response.status_code == 302 and Faq.select().count() == faqs + 1


def test_session_cookie_is_httponly_and_samesite(app: Flask, admin_user: Any) -> None:
    client = app.test_client()
    response = login(client, "boss")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_forbid_scripts_frames_and_form_targets_from_elsewhere(admin_panel: Panel) -> None:
    headers = admin_panel.get("/admin/").headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"].startswith("'self'")
    assert (policy["object-src"], policy["frame-ancestors"], policy["form-action"]) == ("'none'", "'none'", "'self'")
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_account_locks_after_repeated_wrong_passwords(app: Flask, admin_user: Any) -> None:
    client = app.test_client()
    for _ in range(users.MAX_FAILED):
        assert login(client, "boss", "wrong-password").status_code == 200
    response = login(client, "boss")  # right password, but locked
    assert response.status_code == 200 and "错误" in response.get_data(as_text=True)


def test_one_address_trying_many_accounts_is_throttled(app: Flask, admin_user: Any) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for i in range(throttle.MAX_FAILURES):
        login(client, f"guess{i}", "wrong-password")
    response = login(client, "boss")  # right credentials, but this address is throttled
    assert response.status_code == 200 and "次数过多" in response.get_data(as_text=True)
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert login(other, "boss").status_code == 302  # another address logs in
    assert LoginThrottle.select().where(LoginThrottle.key == "ip:203.0.113.9").get().locked_until is not None


def test_demo_admin_must_change_password_before_anything(app: Flask, database: Any) -> None:
    users.ensure_initial_admin()
    client = app.test_client()
    response = login(client, "admin", "admin")
    assert response.status_code == 302 and response.location.endswith("/admin/password/")
    panel = Panel(client)
    for url in ("/admin/", "/admin/faq/", "/admin/settings/", "/admin/dashboard.json"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/password/" in response.location, url
    token = csrf_token(client.get("/admin/password/").get_data(as_text=True))
    response = client.post("/admin/password/", data={"csrf_token": token, "current_password": "admin",
                                                     "new_password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 302
    assert panel.get("/admin/faq/").status_code == 200
