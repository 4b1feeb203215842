"""Admin panel fixtures: the Flask app on the test database, logged-in clients per role."""

from __future__ import annotations

import re
from typing import Any

import peewee
import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import users
from admin.app import create_app
from bot.core.config import Config

PASSWORD = "correct-horse-9"
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1) or found.group(2)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client.get("/admin/login/").get_data(as_text=True))
    return client.post("/admin/login/", data={"csrf_token": token, "username": username, "password": password})


class Panel:
    """A logged-in test client that adds the CSRF token to its form posts."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def token(self) -> str:
        return csrf_token(self.client.get("/admin/faq/new/").get_data(as_text=True))

    def post(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        data = dict(data or {})
        data.setdefault("csrf_token", self.token())
        return self.client.post(url, data=data, **kwargs)


@pytest.fixture
def app(config: Config, database: peewee.Database) -> Flask:
    return create_app(config, testing=True)


@pytest.fixture
def admin_user(database: peewee.Database) -> Any:
    return users.create_user("boss", PASSWORD, "admin")


@pytest.fixture
def operator_user(database: peewee.Database) -> Any:
    return users.create_user("ops", PASSWORD, "operator")


@pytest.fixture
def admin_panel(app: Flask, admin_user: Any) -> Panel:
    client = app.test_client()
    assert login(client, "boss").status_code == 302
    return Panel(client)


@pytest.fixture
def operator_panel(app: Flask, operator_user: Any) -> Panel:
    client = app.test_client()
    assert login(client, "ops").status_code == 302
    return Panel(client)
