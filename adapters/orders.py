"""The shop system's order API: `POST /api/orders` on the webhook server.

Why these checks, in this order: only the shop may write orders, so the signature is
checked first (HMAC-SHA256 with the shared secret over `<timestamp>.<raw body>`, header
`X-Kefu-Signature: sha256=<hex>`); binding the timestamp into the signature and refusing
one more than `max_skew_seconds` from our clock stops a captured request from being
replayed later, and the body hash remembered for the window (bot/crm/order_intake.py)
stops it being replayed sooner. Then the body is parsed by `adapters.json_body` (UTF-8, a
JSON object, depth, numbers, no text a database refuses) and validated by the core, either
naming the bad field in a 400. The core call runs in the bridge's thread pool.

Answers: 200 `{"ok": true, "shop_order_id", "outcome", "status", "customer_matched",
"duplicate"}`; 400 `{"error", "field"}`; 403 `{"error"}` for a missing or wrong signature or
timestamp; 413 for a body over `server.max_body_bytes`; 503 when no secret is configured.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from typing import Any, Collection

from aiohttp import web

from adapters.bridge import CoreBridge
from adapters.json_body import BadJson, parse_object, read_body
from bot.core import clock
from bot.core.config import OrdersConfig
from bot.crm.order_intake import receive
from bot.crm.orders import OrderError

_dumps = functools.partial(json.dumps, ensure_ascii=False)
SIGNATURE_HEADER = "X-Kefu-Signature"
TIMESTAMP_HEADER = "X-Kefu-Timestamp"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # unix seconds, ASCII digits (int() would take any script's, or 5,000)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The header value a sender puts in X-Kefu-Signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _answer(http_status: int, **data: Any) -> web.Response:
    return web.json_response(data, status=http_status, dumps=_dumps)


class OrderApi:
    def __init__(self, config: OrdersConfig, bridge: CoreBridge, channels: Collection[str] | None = None) -> None:
        self.config = config
        self.bridge = bridge
        self.channels = channels  # the configured channel names: a buyer elsewhere is refused

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/orders", self.post)]

    def _refusal(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """Why the request is not from the shop (or is too old), or None."""
        if not timestamp or not _TIMESTAMP.fullmatch(timestamp.strip()):
            return f"{TIMESTAMP_HEADER}: required, the unix time in seconds (ASCII digits) when the request was signed"
        if not signature or not signature.startswith("sha256="):
            return f"{SIGNATURE_HEADER}: required, sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>"
        if not hmac.compare_digest(signature.strip(), sign(self.config.secret, timestamp.strip(), body)):
            return f"{SIGNATURE_HEADER}: does not match (HMAC-SHA256 of '<timestamp>.<body>' with the shop secret)"
        skew = abs(clock.now().timestamp() - int(timestamp))
        if skew > self.config.max_skew_seconds:
            return (f"{TIMESTAMP_HEADER}: {int(skew)} s away from the server clock "
                    f"(allowed ±{self.config.max_skew_seconds} s); refused as a possible replay")
        return None

    async def post(self, request: web.Request) -> web.Response:
        if not self.config.secret:
            return _answer(503, error="the order API is off: set [orders] secret (KEFU_ORDERS_SECRET)")
        body = await read_body(request)
        refusal = self._refusal(request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body)
        if refusal:
            return _answer(403, error=refusal)
        try:
            data = parse_object(body)
        except BadJson as exc:
            return _answer(400, error=str(exc), field=exc.field)
        key = "orders:" + hashlib.sha256(body).hexdigest()
        try:
            applied = await self.bridge.call(receive, key, data, self.config.max_skew_seconds, self.channels)
        except OrderError as exc:
            return _answer(400, error=str(exc), field=exc.field)
        if applied is None:
            order_id = data.get("shop_order_id")
            return _answer(200, ok=True, duplicate=True, shop_order_id=order_id, outcome="duplicate")
        return _answer(200, ok=True, duplicate=applied.outcome == "duplicate", shop_order_id=applied.shop_order_id,
                       outcome=applied.outcome, status=applied.status,
                       customer_matched=applied.customer_id is not None)
