"""An async client for the WeChat-family send APIs (公众号, 企业微信, 微信客服).

Why not wechatpy's client: it is synchronous (`requests`); outbound sends at campaign scale
want aiohttp on the event loop. The access_token is shared with every other process through
`bot.sending.tokens.TokenStore` (database + lease); this client keeps a copy in memory and goes to
the store (in a worker thread: it blocks) only when the copy is missing or near expiry.

Errors are handled by meaning (`classify`):
- 40001 / 40014 / 42001 (token invalid or expired): refresh once through the store and
  repeat the call once (`call` does this itself);
- -1 (system busy), 45009 / 45011 (rate limits): retry with back-off;
- 45015 (outside the 48-hour customer-service window): `window_closed`;
- 45047 (too many replies to one customer turn): `limit_reached` (45015 and 45047 are
  normally foreseen before the call by bot/sending/send_window.py; the errcodes are the backstop
  for what that check cannot see, e.g. two processes sending to one customer at once);
- anything else: `failed` with the platform's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping

import aiohttp

from bot.core import clock
from bot.ops.metrics import PLATFORM_ERRORS
from bot.sending.results import SendResult
from bot.sending.tokens import REFRESH_EARLY_SECONDS, Token, TokenStore

log = logging.getLogger("kefu.wechat.api")

RunBlocking = Callable[..., Awaitable[Any]]

DEFAULT_MP_BASE = "https://api.weixin.qq.com"
DEFAULT_WECOM_BASE = "https://qyapi.weixin.qq.com"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
BUSY_ERRORS = frozenset({-1, 45009, 45011})
WINDOW_CLOSED = frozenset({45015})
LIMIT_REACHED = frozenset({45047})
QUOTA_BACKOFF_SECONDS = 60.0
TIMEOUT = aiohttp.ClientTimeout(total=10)


class ApiError(Exception):
    """The platform could not be reached or did not answer JSON (transient)."""


@dataclass(frozen=True)
class ApiReply:
    errcode: int
    errmsg: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.errcode == 0


def classify(reply: ApiReply) -> SendResult:
    """A platform answer as an outbox outcome."""
    if reply.ok:
        return SendResult.ok()
    message = f"{reply.errcode} {reply.errmsg}".strip()
    if reply.errcode in TOKEN_ERRORS:
        return SendResult("retry", f"{message} (after one token refresh)")
    if reply.errcode in BUSY_ERRORS:
        return SendResult("retry", message, retry_after=QUOTA_BACKOFF_SECONDS if reply.errcode == 45009 else None)
    if reply.errcode in WINDOW_CLOSED:
        return SendResult("window_closed", message)
    if reply.errcode in LIMIT_REACHED:
        return SendResult("limit_reached", message)
    return SendResult("failed", message)


class WeChatApi:
    """One app's API: token handling plus JSON calls.

    `token_path`/`token_params` say how the platform issues tokens: the Official Account
    uses `/cgi-bin/token?grant_type=client_credential&appid=&secret=`, WeCom
    `/cgi-bin/gettoken?corpid=&corpsecret=`.
    """

    def __init__(self, api_base: str, app_key: str, token_path: str, token_params: Mapping[str, str],
                 run_blocking: RunBlocking) -> None:
        self.base = api_base.rstrip("/")
        self.token_path = token_path
        self.token_params = dict(token_params)
        self.run_blocking = run_blocking
        self.tokens = TokenStore(app_key, self._fetch_token)
        self._token: Token | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_mp(cls, api_base: str, app_id: str, app_secret: str, run_blocking: RunBlocking) -> "WeChatApi":
        return cls(api_base or DEFAULT_MP_BASE, f"mp:{app_id}", "/cgi-bin/token",
                   {"grant_type": "client_credential", "appid": app_id, "secret": app_secret}, run_blocking)

    @classmethod
    def for_wecom(cls, api_base: str, corp_id: str, secret: str, agent_key: str,
                  run_blocking: RunBlocking) -> "WeChatApi":
        # WeCom issues one token per (corp, secret): each app or kf secret is its own key.
        return cls(api_base or DEFAULT_WECOM_BASE, f"wecom:{corp_id}:{agent_key}", "/cgi-bin/gettoken",
                   {"corpid": corp_id, "corpsecret": secret}, run_blocking)

    # -- tokens ------------------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        """The blocking HTTP fetch the token store calls under its lease (worker thread)."""
        url = f"{self.base}{self.token_path}?{urllib.parse.urlencode(self.token_params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                data = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ApiError(f"token fetch failed: {exc}") from None
        if not isinstance(data, dict) or not data.get("access_token"):
            raise ApiError(f"token fetch refused: {data.get('errcode') if isinstance(data, dict) else '?'} "
                           f"{data.get('errmsg', '') if isinstance(data, dict) else ''}".strip())
        return str(data["access_token"]), float(data.get("expires_in", 7200))

    async def token(self) -> str:
        cached = self._token
        if cached is None or cached.expires_at <= clock.now() + timedelta(seconds=REFRESH_EARLY_SECONDS):
            cached = self._token = await self.run_blocking(self.tokens.get)
        return cached.value

    async def _refresh_after_error(self, bad: str) -> str:
        self._token = await self.run_blocking(self.tokens.refresh_after_error, bad)
        return self._token.value

    # -- calls -------------------------------------------------------------------------------

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def _request(self, method: str, path: str, token: str, payload: Mapping[str, Any] | None,
                       params: Mapping[str, str] | None) -> ApiReply:
        query = {"access_token": token, **(params or {})}
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else None
        try:
            async with self._session_now().request(method, f"{self.base}{path}", params=query, data=body,
                                                   headers=headers) as resp:
                text = await resp.text()
                if resp.status >= 500:
                    raise ApiError(f"HTTP {resp.status} from {path}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ApiError(f"{path}: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise ApiError(f"{path}: the platform did not answer JSON") from None
        if not isinstance(data, dict):
            raise ApiError(f"{path}: unexpected answer")
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            PLATFORM_ERRORS.labels(str(errcode)).inc()
        return ApiReply(errcode, str(data.get("errmsg", "")), data)

    async def call(self, method: str, path: str, payload: Mapping[str, Any] | None = None,
                   params: Mapping[str, str] | None = None) -> ApiReply:
        """One API call; an invalid-token answer refreshes the token once and repeats."""
        token = await self.token()
        reply = await self._request(method, path, token, payload, params)
        if reply.errcode in TOKEN_ERRORS:
            log.info("%s: token rejected (%s), refreshing once", path, reply.errcode)
            token = await self._refresh_after_error(token)
            reply = await self._request(method, path, token, payload, params)
        return reply

    async def post(self, path: str, payload: Mapping[str, Any]) -> ApiReply:
        return await self.call("POST", path, payload)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
