"""The WeChat Customer Service (微信客服) channel, through WeCom: the callback only says that
messages wait; they are pulled with `kf/sync_msg` and answered with `kf/send_msg`.

Why this shape:
- the callback is acknowledged at once (`success`) and the pull runs as an owned task, so
  WeChat never waits on our database;
- the pull cursor is persisted in `ChannelCursor` after each batch is handled, so a restart
  resumes after the last handled batch; a batch pulled again after a crash is still handled
  once, because every message is stored under UNIQUE(channel, msgid) by the dispatcher;
- nothing can be answered inline: every reply goes through the outbox (`kf/send_msg`);
- one channel is one 客服账号 (`open_kfid`, required): it pulls only that account's
  messages and sends only as that account, because the platform keeps its limits per
  customer per account and the check below counts per channel and customer;
- `kf/send_msg` is allowed only within 48 hours of the customer's last message and for at
  most 5 messages after it (each part of a split text is one): the delivery checks both
  before calling (bot/sending/send_window.py, from the stored messages and the sends since) and
  records a send that cannot pass as `window_closed` / `limit_reached` with no API call;
  the errcodes 45015 / 45047 stay as the backstop for what the check cannot see (another
  process sending to the same customer at the same moment). Entering the session is not a
  customer message: it neither opens the window nor resets the count;
- the platform calls one callback URL per company for all its 客服账号 and names the
  account (`OpenKfId`): the callback wakes the channel of that account, whichever channel's
  URL it reached (channels of one corp are linked by `link_accounts`); a callback for an
  account no channel serves is acknowledged and logged;
- a customer entering the session (`enter_session`) gets the welcome message, sent with
  `kf/send_msg_on_event` and the event's one-time `welcome_code` (not limited, not counted);
- the platform's session state follows ours (`service_state/trans`): bot -> 1 (智能助手接待),
  queued -> 2 (待接入池排队中), resolved -> 4 (已结束). A conversation handed to one of our
  agents stays 1 on the platform: our agents answer through the bot's account (relay).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from aiohttp import web

from adapters.api_client import ApiError, ApiReply, WeChatApi, classify
from adapters.bridge import CoreBridge
from adapters.tasks import TaskSet
from adapters.wechat_common import BadRequest, BadSignature, content_text, parse_xml, split_text
from adapters.wechat_mp import SendPlan, send_text_parts, text_plan
from adapters.wecom import WeComCrypto, wecom_secret
from bot.core import clock
from bot.core.config import ChannelConfig
from bot.conversation.dispatcher import ReplySlot
from bot.core.events import Inbound
from bot.core.models import ChannelCursor, Conversation, Customer, Message, Outbox
from bot.sending.results import SendResult

log = logging.getLogger("kefu.wechat_kf")

PLATFORM_STATE = {"bot": 1, "assigned": 1, "queued": 2, "resolved": 4}
MEDIA = ("image", "voice", "video", "file")


class WeChatKfChannel:
    kind = "wechat_kf"
    prefix = "/wecom"

    def __init__(self, channel: ChannelConfig, bridge: CoreBridge) -> None:
        self.name = channel.name
        self.config = channel
        self.bridge = bridge
        self.crypto = WeComCrypto(channel.token, channel.encoding_aes_key, channel.corp_id)
        self.api = WeChatApi.for_wecom(channel.api_base, channel.corp_id, wecom_secret(channel), "kf", bridge.call)
        self._sender = WeChatKfSender(self.api, channel.open_kfid, channel.rate_per_second)
        self.tasks = TaskSet()
        self._lock = asyncio.Lock()
        self._again = False
        self._states: dict[str, int] = {}
        # the channels of this corp by 客服账号, this one included (link_accounts)
        self.accounts: dict[str, WeChatKfChannel] = {channel.open_kfid: self}

    def routes(self) -> list[web.RouteDef]:
        path = f"{self.prefix}/{self.name}"
        return [web.get(path, self.handle_get), web.post(path, self.handle_post)]

    def sender(self) -> "WeChatKfSender":
        return self._sender

    async def close(self) -> None:
        """Let a pull in progress finish its batch (and save the cursor), then stop."""
        try:
            await asyncio.wait_for(self._wait_idle(), 5.0)
        except asyncio.TimeoutError:
            log.warning("channel %s: a pull did not finish in time; its batch is pulled again next start", self.name)
        await self.tasks.drain()
        await self.api.close()

    async def _wait_idle(self) -> None:
        async with self._lock:
            pass

    # -- callback -----------------------------------------------------------------------------

    async def handle_get(self, request: web.Request) -> web.Response:
        try:
            return web.Response(text=self.crypto.echo(request.query))
        except BadSignature:
            return web.Response(status=403, text="bad signature")
        except BadRequest as exc:
            return web.Response(status=400, text=str(exc))

    async def handle_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
            fields = parse_xml(self.crypto.open(request.query, body))
        except BadSignature:
            return web.Response(status=403, text="bad signature")
        except (BadRequest, web.HTTPRequestEntityTooLarge) as exc:
            log.warning("channel %s: refused a callback: %s", self.name, exc)
            return web.Response(status=400, text="bad request")
        sync_token = fields.get("Token") if isinstance(fields.get("Token"), str) else ""
        account = fields.get("OpenKfId") if isinstance(fields.get("OpenKfId"), str) else ""
        target = self.accounts.get(account) if account else self
        if target is None:
            log.warning("channel %s: a callback for 客服账号 %s, which no wechat_kf channel serves "
                        "(add one with that open_kfid); nothing pulled", self.name, account)
        else:
            target.tasks.spawn(target.pull(sync_token or ""), f"kf-pull-{target.name}")
        return web.Response(text="success")

    # -- pulling ------------------------------------------------------------------------------

    async def pull(self, sync_token: str = "") -> int:
        """Pull and handle every waiting message; returns how many were handled. Pulls are
        serialized per process; a callback during a pull makes it go round once more."""
        if self._lock.locked():
            self._again = True
            return 0
        handled = 0
        async with self._lock:
            while True:
                self._again = False
                handled += await self._pull_once(sync_token)
                if not self._again:
                    break
        return handled

    async def _pull_once(self, sync_token: str) -> int:
        handled = 0
        cursor = await self.bridge.call(load_cursor, self.name)
        while True:
            payload: dict[str, Any] = {"cursor": cursor, "limit": 1000, "open_kfid": self.config.open_kfid}
            if sync_token:
                payload["token"] = sync_token
            try:
                reply = await self.api.post("/cgi-bin/kf/sync_msg", payload)
            except ApiError as exc:
                log.warning("channel %s: sync_msg failed: %s", self.name, exc)
                return handled
            if not reply.ok:
                log.warning("channel %s: sync_msg refused: %s %s", self.name, reply.errcode, reply.errmsg)
                return handled
            for item in reply.data.get("msg_list") or []:
                inbound = kf_inbound(self.name, item, self.config.open_kfid) if isinstance(item, dict) else None
                if inbound is not None:
                    await self._handle(inbound)
                    handled += 1
            cursor = str(reply.data.get("next_cursor") or cursor)
            await self.bridge.call(save_cursor, self.name, cursor)
            if not reply.data.get("has_more"):
                return handled

    async def _handle(self, inbound: Inbound) -> None:
        await self.bridge.call(self._handle_blocking, inbound)
        await self._sync_state(inbound)

    def _handle_blocking(self, inbound: Inbound) -> None:
        slot = ReplySlot()
        slot.abandon()  # nothing goes inline here: every reply through the outbox
        self.bridge.dispatcher.handle(inbound, slot)
        code = str(inbound.raw.get("welcome_code") or "")
        if code:  # right after the row is written, before a sender is likely to claim it
            attach_welcome_code(self.name, inbound.msg_id, code)

    async def _sync_state(self, inbound: Inbound) -> None:
        status = await self.bridge.call(conversation_status, self.name, inbound.user_id)
        state = PLATFORM_STATE.get(status or "", None)
        if state is None or self._states.get(inbound.user_id) == state:
            return
        try:
            reply = await self.api.post("/cgi-bin/kf/service_state/trans", {
                "open_kfid": self.config.open_kfid, "external_userid": inbound.user_id, "service_state": state})
        except ApiError as exc:
            log.warning("channel %s: service_state/trans failed: %s", self.name, exc)
            return
        if reply.ok:
            self._states[inbound.user_id] = state
        else:
            log.info("channel %s: service_state/trans to %s refused: %s %s", self.name, state, reply.errcode,
                     reply.errmsg)


def link_accounts(channels: list[WeChatKfChannel]) -> None:
    """Let every wechat_kf channel of a corp wake the others: the platform's one callback URL
    reaches one of them for any account (see the module notes)."""
    by_corp: dict[str, dict[str, WeChatKfChannel]] = {}
    for channel in channels:
        by_corp.setdefault(channel.config.corp_id, {})[channel.config.open_kfid] = channel
    for channel in channels:
        channel.accounts = by_corp[channel.config.corp_id]


def kf_inbound(channel: str, item: Mapping[str, Any], open_kfid: str = "") -> Inbound | None:
    """One sync_msg item as an Inbound; None for what is not the customer's (servicer
    messages, system events other than entering the session) and, given the channel's
    `open_kfid`, for another account's items: the platform's limits are per account, and
    a message to account B must neither open this channel's window nor reset its count
    (sync_msg is asked for this account only; this keeps it so if it answers more)."""
    item_kfid = _account_of(item)
    if open_kfid and item_kfid and item_kfid != open_kfid:
        log.warning("channel %s: skipped sync_msg item %s of another account (%s)", channel, item.get("msgid"), item_kfid)
        return None
    origin = int(item.get("origin") or 0)
    msgtype = str(item.get("msgtype") or "")
    msg_id = str(item.get("msgid") or "")
    raw = {"open_kfid": str(item.get("open_kfid") or ""), "origin": origin, "msgtype": msgtype,
           "send_time": item.get("send_time")}
    if not msg_id:
        return None
    if origin == 4 and msgtype == "event":
        event = item.get("event") or {}
        if event.get("event_type") != "enter_session" or not event.get("external_userid"):
            return None
        raw["welcome_code"] = str(event.get("welcome_code") or "")
        return Inbound(channel=channel, user_id=str(event["external_userid"]), msg_id=msg_id, kind="event",
                       event="subscribe", event_key=str(event.get("scene") or ""), raw=raw)
    user = str(item.get("external_userid") or "")
    if origin != 3 or not user:
        return None
    body = item.get(msgtype) if isinstance(item.get(msgtype), dict) else {}
    if msgtype == "text":
        return Inbound(channel=channel, user_id=user, msg_id=msg_id, kind="text", text=str(body.get("content", "")),
                       event_key=str(body.get("menu_id") or ""), raw=raw)
    if msgtype in MEDIA:
        return Inbound(channel=channel, user_id=user, msg_id=msg_id, kind=msgtype,
                       media={"media_id": str(body.get("media_id", ""))}, raw=raw)
    if msgtype == "location":
        return Inbound(channel=channel, user_id=user, msg_id=msg_id, kind="location", raw=raw,
                       media={k: str(body.get(k, "")) for k in ("latitude", "longitude", "name", "address")})
    if msgtype == "link":
        return Inbound(channel=channel, user_id=user, msg_id=msg_id, kind="link", raw=raw,
                       media={"title": str(body.get("title", "")), "description": str(body.get("desc", "")),
                              "url": str(body.get("url", ""))})
    return Inbound(channel=channel, user_id=user, msg_id=msg_id, kind="unknown", raw=raw)


def _account_of(item: Mapping[str, Any]) -> str:
    """The 客服账号 a sync_msg item belongs to ("" when it does not say)."""
    event = item.get("event")
    return str(item.get("open_kfid") or (event.get("open_kfid") if isinstance(event, dict) else "") or "")


def attach_welcome_code(channel: str, msg_id: str, code: str) -> bool:
    """The welcome after `enter_session` may only be sent with its one-time code
    (`kf/send_msg_on_event`): put the code on the first reply's outbox row while it waits.
    A row a sender has already claimed goes out with kf/send_msg instead."""
    first = Message.get_or_none((Message.channel == channel) & (Message.external_id == msg_id[:128]))
    if first is None:
        return False
    reply = (Message.select(Message.id).where((Message.in_reply_to == first) & (Message.peer_id == first.peer_id))
             .order_by(Message.id).first())
    row = Outbox.get_or_none((Outbox.key == f"msg:{reply.id}") & (Outbox.status == "pending")) if reply else None
    if row is None:
        return False
    content = {**dict(row.content or {}), "welcome_code": code}
    return Outbox.update(content=content).where((Outbox.id == row.id) & (Outbox.status == "pending")).execute() == 1


def load_cursor(channel: str) -> str:
    row = ChannelCursor.get_or_none(ChannelCursor.channel == channel)
    return row.cursor if row else ""


def save_cursor(channel: str, cursor: str) -> None:
    (
        ChannelCursor.insert(channel=channel, cursor=cursor, updated_at=clock.now())
        .on_conflict(conflict_target=[ChannelCursor.channel],
                     update={ChannelCursor.cursor: cursor, ChannelCursor.updated_at: clock.now()})
        .execute()
    )


def conversation_status(channel: str, user_id: str) -> str | None:
    customer = Customer.get_or_none((Customer.channel == channel) & (Customer.external_id == user_id))
    if customer is None:
        return None
    latest = Conversation.select().where(Conversation.customer == customer).order_by(Conversation.id.desc()).first()
    return latest.status if latest else None


def kf_plan(content: Mapping[str, Any]) -> SendPlan:
    """What one `WeChatKfSender.send` makes: the welcome and an image are one message each,
    anything else goes out as text, one message per part (see `adapters.wechat_mp.SendPlan`)."""
    if content.get("welcome_code") or content.get("kind") == "image":
        return SendPlan(1)
    return text_plan(content)


class WeChatKfSender:
    """Outbox rows to `kf/send_msg` for the channel's 客服账号 (open_kfid); the welcome
    after entering a session to `kf/send_msg_on_event` with its one-time code.

    Every send goes out as the channel's own account, whatever the content says: the
    platform's limits are kept per customer *per account*, and the pre-send check counts
    per channel and recipient (bot/sending/send_window.py), which is the same thing only because
    a wechat_kf channel is exactly one account (`open_kfid` is required, and the pull
    keeps only that account's messages). `channel_kind` and `plan` let the delivery check
    the 48-hour window and the 5 messages per customer message before `send`."""

    channel_kind = "wechat_kf"  # which platform rules bot/sending/send_window.py applies

    def __init__(self, api: WeChatApi, open_kfid: str, rate_per_second: float = 0.0) -> None:
        if not open_kfid:
            raise ValueError("a wechat_kf sender needs its account's open_kfid")
        self.api = api
        self.open_kfid = open_kfid
        self.rate_per_second = rate_per_second

    plan = staticmethod(kf_plan)  # the parts of a send: counted by the check, then passed back to `send`

    async def send(self, recipient: str, content: Mapping[str, Any], planned: SendPlan | None = None) -> SendResult:
        if content.get("welcome_code"):
            return classify(await self.api.post("/cgi-bin/kf/send_msg_on_event", {
                "code": content["welcome_code"], "msgtype": "text",
                "text": {"content": split_text(content_text(content))[0]}}))
        base = {"touser": recipient, "open_kfid": self.open_kfid}
        if content.get("kind") == "image":
            return classify(await self.api.post("/cgi-bin/kf/send_msg", {
                **base, "msgtype": "image", "image": {"media_id": content.get("media_id", "")}}))

        async def post(part: str) -> ApiReply:
            return await self.api.post("/cgi-bin/kf/send_msg", {**base, "msgtype": "text", "text": {"content": part}})

        return await send_text_parts(content, post, planned)
