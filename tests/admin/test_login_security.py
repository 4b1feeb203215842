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


def in_parallel(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run `attempt(i)` in `count` threads released together; each thread's own database
    connection is closed when it is done."""
    from bot.db import database

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
