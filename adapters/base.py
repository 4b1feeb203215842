"""What every channel adapter provides to the webhook server.

Why: the server wires channels generically; each adapter brings its routes (verify, parse,
answer) and the sender that delivers its outbox rows.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bot.sending.outbox import Sender


class ChannelAdapter(Protocol):
    name: str
    kind: str

    def routes(self) -> list[web.RouteDef]: ...

    def sender(self) -> Sender | None: ...
