"""The panel's half of the workbench's live stream: the ticket that opens it (issue 22).

Why a ticket: the stream is served by the aiohttp server (adapters/workbench_stream.py), on
the webhook port, which cannot read the panel's session. The signed-in user asks the panel
(session + CSRF) for a short-lived token (bot.conversation.workbench_token) and the stream's address;
the page's Content-Security-Policy allows that address's origin in connect-src
(`KEFU_LIVE_ORIGIN`, read by admin/csp.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app
from flask_login import current_user

from bot.conversation import workbench_token
from bot.core.config import Config

STREAM_PATH = "/api/workbench/stream"  # adapters/workbench_stream.py serves it


def stream_url(config: Config) -> str:
    """Where the page opens the stream: the webhook server's public address."""
    return config.public_url + STREAM_PATH


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def ticket() -> dict[str, Any]:
    """For the signed-in user: the stream's address and a token that opens it for a minute."""
    config: Config = current_app.config["KEFU_CONFIG"]
    return {"url": stream_url(config), "token": workbench_token.issue(current_app.config["SECRET_KEY"], current_user.row),
            "max_age": workbench_token.MAX_AGE_SECONDS}


def install(app: Flask) -> None:
    """Let the panel's pages connect to the stream's origin (admin/csp.py adds it)."""
    app.config["KEFU_LIVE_ORIGIN"] = origin(stream_url(app.config["KEFU_CONFIG"]))
