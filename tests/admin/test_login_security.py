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
from bot.core.models import AdminUser, LoginThrottle
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


def in_parallel(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run `attempt(i)` in `count` threads released together; each thread's own database
    connection is closed when it is done."""
    from bot.core.db import database

    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = attempt(i)
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def wrong_logins(app: Flask, usernames: list[str], address: str = "127.0.0.1") -> list[int]:
    clients = []
    for _ in usernames:  # each with its own session and CSRF token, fetched before the race
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        clients.append((client, csrf_token(client.get("/admin/login/").get_data(as_text=True))))

    def attempt(i: int) -> int:
        client, token = clients[i]
        return client.post("/admin/login/", data={"csrf_token": token, "username": usernames[i],
                                                  "password": "wrong-password"}).status_code

    return in_parallel(len(usernames), attempt)


def test_parallel_wrong_passwords_lock_the_account_like_sequential_ones(app: Flask, admin_user: Any) -> None:
    for wave in range(3):  # 18 guesses in three waves of six at once: the attack
        assert wrong_logins(app, ["boss"] * 6, address=f"198.51.100.{wave}") == [200] * 6
    row = AdminUser.get(AdminUser.username == "boss")
    assert row.locked_until is not None, f"not locked after 18 wrong passwords (failed_logins={row.failed_logins})"
    response = login(app.test_client(), "boss")  # the right password, but locked
    assert response.status_code == 200 and "错误" in response.get_data(as_text=True)


def test_parallel_failures_from_one_address_throttle_it_like_sequential_ones(app: Flask, admin_user: Any) -> None:
    names = [f"guess{i}" for i in range(throttle.MAX_FAILURES + 4)]
    for chunk in range(0, len(names), 6):
        wrong_logins(app, names[chunk:chunk + 6], address="203.0.113.50")
    assert throttle.is_locked("203.0.113.50"), LoginThrottle.get().failures
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    assert "次数过多" in login(client, "boss").get_data(as_text=True)


def test_a_lock_counts_from_zero_again_once_it_expires(app: Flask, admin_user: Any, fake_clock: Any) -> None:
    client = app.test_client()
    for _ in range(users.MAX_FAILED):
        login(client, "boss", "wrong-password")
    assert AdminUser.get().locked_until is not None
    fake_clock.advance(minutes=users.LOCK_MINUTES, seconds=1)
    assert login(client, "boss", "wrong-password").status_code == 200
    row = AdminUser.get()
    assert row.failed_logins == 1 and (row.locked_until is None or row.locked_until <= fake_clock.now())
    assert login(client, "boss").status_code == 302


def logged_in(app: Flask, username: str = "boss", password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    assert login(client, username, password).status_code == 302
    assert client.get("/admin/").status_code == 200
    return client


def replay(app: Flask, cookie: str) -> Any:
    """A request from elsewhere with a copy of the session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/admin/")


def opens_the_panel(response: Any) -> bool:
    return response.status_code == 200


def test_a_cookie_taken_before_logout_no_longer_opens_the_panel(app: Flask, admin_user: Any) -> None:
    client = logged_in(app)
    cookie = client.get_cookie("session").value
    assert opens_the_panel(replay(app, cookie))  # the copy works while the session lives
    client.post("/admin/logout/", data={"csrf_token": csrf_token(client.get("/admin/faq/new/").get_data(as_text=True))})
    assert client.get("/admin/").status_code == 302
    response = replay(app, cookie)
    assert response.status_code == 302 and "/admin/login/" in response.location


def change_password(client: FlaskClient, current: str, new: str) -> Any:
    token = csrf_token(client.get("/admin/password/").get_data(as_text=True))
    return client.post("/admin/password/", data={"csrf_token": token, "current_password": current,
                                                 "new_password": new, "confirm": new})


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app: Flask, admin_user: Any) -> None:
    laptop, phone = logged_in(app), logged_in(app)
    stolen = phone.get_cookie("session").value
    response = change_password(laptop, PASSWORD, "a-new-password-1")
    assert response.status_code == 302 and response.location.endswith("/admin/")
    assert opens_the_panel(laptop.get("/admin/"))  # the session that changed it goes on
    assert phone.get("/admin/").status_code == 302  # the other device is logged out
    assert not opens_the_panel(replay(app, stolen))
    assert login(app.test_client(), "boss", "a-new-password-1").status_code == 302


def test_changing_ones_password_asks_for_the_current_one(app: Flask, admin_user: Any) -> None:
    client = logged_in(app)
    client.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    response = change_password(client, "not-the-password", "a-new-password-1")
    assert response.status_code == 200 and "当前密码不正确" in response.get_data(as_text=True)
    assert login(app.test_client(), "boss", PASSWORD).status_code == 302  # unchanged
    assert LoginThrottle.get(LoginThrottle.key == "ip:192.0.2.77").failures == 1  # counted against guessing
    for _ in range(throttle.MAX_FAILURES):
        change_password(client, "still-guessing", "a-new-password-1")
    response = change_password(client, PASSWORD, "a-new-password-1")  # throttled, even the right one
    assert "次数过多" in response.get_data(as_text=True)
    assert login(app.test_client(), "boss", PASSWORD).status_code == 302


def test_a_role_change_ends_that_users_sessions(app: Flask, admin_user: Any, operator_user: Any,
                                                admin_panel: Any) -> None:
    operator = logged_in(app, "ops")
    cookie = operator.get_cookie("session").value
    response = admin_panel.post(f"/admin/adminuser/edit/?id={operator_user.id}",
                                {"username": "ops", "role": "admin", "active": "y", "password": ""})
    assert response.status_code == 302
    assert AdminUser.get_by_id(operator_user.id).role == "admin"
    assert operator.get("/admin/").status_code == 302 and not opens_the_panel(replay(app, cookie))
    admin_panel.post(f"/admin/adminuser/edit/?id={operator_user.id}",  # an edit that changes nothing else
                     {"username": "ops-renamed", "role": "admin", "active": "y", "password": ""})
    relogged = logged_in(app, "ops-renamed")
    assert opens_the_panel(relogged.get("/admin/"))


def test_an_admin_setting_their_own_password_in_the_users_list_stays_logged_in(app: Flask, admin_user: Any,
                                                                                 admin_panel: Any) -> None:
    other = logged_in(app)
    response = admin_panel.post(f"/admin/adminuser/edit/?id={admin_user.id}",
                                {"username": "boss", "role": "admin", "active": "y", "password": "a-new-password-1"})
    assert response.status_code == 302
    assert opens_the_panel(admin_panel.get("/admin/")) and other.get("/admin/").status_code == 302


def test_a_session_from_before_versions_logs_in_again(app: Flask, admin_user: Any) -> None:
    """A cookie written by the previous release names only the user id."""
    with app.test_request_context("/admin/"):
        from flask import current_app

        old = current_app.session_interface.get_signing_serializer(current_app).dumps(
            {"_user_id": str(admin_user.id), "_fresh": True})
    assert not opens_the_panel(replay(app, old))


def test_secure_cookies_marks_the_session_cookie_secure(config: Any, database: Any, admin_user: Any) -> None:
    import dataclasses

    from admin.app import create_app

    plain = login(create_app(config, testing=True).test_client(), "boss")
    assert "Secure" not in next(h for h in plain.headers.getlist("Set-Cookie") if h.startswith("session="))
    secure_config = dataclasses.replace(config, admin=dataclasses.replace(config.admin, secure_cookies=True))
    client = create_app(secure_config, testing=True).test_client()
    response = login(client, "boss")
    assert "Secure" in next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def test_upgrade_adds_the_session_version_to_existing_users(database: Any, admin_user: Any) -> None:
    from bot.core import migrations
    from bot.core.migrations import SchemaVersion

    table = AdminUser._meta.table_name
    database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "session_version"')
    SchemaVersion.delete().where(SchemaVersion.version == 9).execute()
    assert migrations.upgrade() == ["9: admin: session version per panel user, to end sessions"]
    assert AdminUser.get(AdminUser.username == "boss").session_version == 0


def test_secure_cookies_is_read_from_the_config_file_and_the_environment(tmp_path: Any) -> None:
    from bot.core.config import load_config

    assert load_config(None, env={}).admin.secure_cookies is False
    assert load_config(None, env={"KEFU_ADMIN_SECURE_COOKIES": "true"}).admin.secure_cookies is True
    path = tmp_path / "kefu.toml"
    path.write_text("[admin]\nsecure_cookies = true\n", encoding="utf-8")
    assert load_config(path, env={}).admin.secure_cookies is True


def test_behind_a_proxy_failures_count_per_client_and_without_one_the_header_is_ignored(
        config: Any, database: Any, admin_user: Any) -> None:
    import dataclasses

    from admin.app import create_app

    def fail_from(app: Flask, client_address: str) -> None:
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_address)
        login(client, f"nobody-{client_address}", "wrong-password")

    proxied = create_app(dataclasses.replace(config, admin=dataclasses.replace(config.admin, proxies=1)),
                         testing=True)
    fail_from(proxied, "203.0.113.1")
    fail_from(proxied, "203.0.113.2")
    counted = {row.key: row.failures for row in LoginThrottle.select()}
    assert counted == {"ip:203.0.113.1": 1, "ip:203.0.113.2": 1}
    LoginThrottle.delete().execute()
    direct = create_app(config, testing=True)  # no proxy: a client cannot choose its address
    fail_from(direct, "203.0.113.1")
    fail_from(direct, "203.0.113.2")
    assert {row.key: row.failures for row in LoginThrottle.select()} == {"ip:127.0.0.1": 2}


def test_proxies_is_checked(tmp_path: Any) -> None:
    from bot.core.config import ConfigError, load_config

    path = tmp_path / "kefu.toml"
    path.write_text("[admin]\nproxies = 9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="admin.proxies"):
        load_config(path, env={})
