"""The aiohttp webhook server: channel routes, /healthz, and the outbox sender loop.

Why here: adapters own the transport; the server wires the configured channels to the
core through one `CoreBridge` and runs the outbox sender as an owned background task, so a
`kefu serve` process both receives and delivers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from adapters.base import ChannelAdapter
from adapters.bridge import CoreBridge
from adapters.orders import OrderApi
from adapters.tasks import TaskSet
from adapters import workbench_stream
from adapters.web import WebChannel, asset_routes
from adapters.workbench_stream import LiveHub
from bot.conversation import dispatcher as dispatcher_mod
from bot.conversation.workbench_token import panel_secret
from bot.sending import outbox
from bot.core import changes
from bot.core.config import ChannelConfig, Config
from bot.conversation.dispatcher import CACHE_CHECK_SECONDS, Dispatcher
from bot.core.db import is_postgres
from bot.ops import metrics
from bot.core.logs import REQUEST_ID, new_request_id
from bot.core.secrets import ensure_secret

log = logging.getLogger("kefu.server")

BRIDGE = web.AppKey("bridge", CoreBridge)
ADAPTERS = web.AppKey("adapters", dict)
TASKS = web.AppKey("tasks", TaskSet)
# set when a new outbound row waits (the live stream sees it): the sender delivers now, not at its next poll
SENDER_WAKE = web.AppKey("sender_wake", asyncio.Event)

AdapterFactory = Callable[[ChannelConfig, Config, CoreBridge], ChannelAdapter]


def _web_factory(channel: ChannelConfig, config: Config, bridge: CoreBridge) -> ChannelAdapter:
    secret = ensure_secret(config.data_dir, f"web-{channel.name}.key", channel.secret)
    return WebChannel(channel, secret, bridge)


def _wechat_mp_factory(channel: ChannelConfig, config: Config, bridge: CoreBridge) -> ChannelAdapter:
    from adapters.wechat_mp import OfficialAccountChannel

    return OfficialAccountChannel(channel, bridge)


def _wecom_factory(channel: ChannelConfig, config: Config, bridge: CoreBridge) -> ChannelAdapter:
    from adapters.wecom import WeComChannel

    return WeComChannel(channel, bridge)


def _wechat_kf_factory(channel: ChannelConfig, config: Config, bridge: CoreBridge) -> ChannelAdapter:
    from adapters.wechat_kf import WeChatKfChannel

    return WeChatKfChannel(channel, bridge)


FACTORIES: dict[str, AdapterFactory] = {"web": _web_factory, "wechat_mp": _wechat_mp_factory,
                                        "wecom": _wecom_factory, "wechat_kf": _wechat_kf_factory}


def build_adapters(config: Config, bridge: CoreBridge) -> dict[str, ChannelAdapter]:
    adapters: dict[str, ChannelAdapter] = {}
    for channel in config.channels:
        factory = FACTORIES.get(channel.kind)
        if factory is None:
            log.warning("channel %s: kind %s is not supported by this build; skipped", channel.name, channel.kind)
            continue
        adapters[channel.name] = factory(channel, config, bridge)
    kf_channels = [a for a in adapters.values() if getattr(a, "kind", "") == "wechat_kf"]
    if kf_channels:  # one callback URL per corp serves all its 客服账号
        from adapters.wechat_kf import link_accounts

        link_accounts(kf_channels)  # type: ignore[arg-type]
    return adapters


async def healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        await asyncio.wait_for(bridge.call(_db_ping), 2.0)
    except Exception as exc:  # report, do not raise: a health check answers
        return web.json_response({"status": "error", "database": str(exc)}, status=503)
    return web.json_response({"status": "ok", "channels": sorted(request.app[ADAPTERS]),
                              "faq": bridge.dispatcher.store.status(),
                              # "uvloop" or "asyncio": which event loop serves (bot/cli/event_loop.py)
                              "event_loop": type(asyncio.get_running_loop()).__module__.partition(".")[0]})


def metrics_handler(config: Config) -> Callable[[web.Request], "asyncio.Future[web.Response]"]:
    """`GET /metrics`: Prometheus' text, only with `Authorization: Bearer <[metrics] token>`."""

    async def handler(request: web.Request) -> web.Response:
        if not metrics.authorized(request.headers.get("Authorization"), config.metrics.token):
            return web.json_response({"error": "metrics need Authorization: Bearer <[metrics] token>"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="kefu metrics"'})
        bridge = request.app[BRIDGE]
        faq = bridge.dispatcher.store.status()
        metrics.FAQ_INDEX.set(faq.get("faqs", 0))
        metrics.FAQ_WARMING.set(1 if faq.get("warming") else 0)
        body, content_type = await bridge.call(metrics.render)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler  # type: ignore[return-value]


def _db_ping() -> None:
    from bot.core.db import database

    database.execute_sql("SELECT 1")


async def index(request: web.Request) -> web.Response:
    links = "".join(f'<li><a href="/chat/{n}">/chat/{n}</a></li>' for n, a in request.app[ADAPTERS].items()
                    if a.kind == "web")
    return web.Response(text=f"<!doctype html><meta charset=utf-8><title>kefu</title><h1>kefu 客服</h1><ul>{links}</ul>",
                        content_type="text/html")


# every answer of this server: no type sniffing, no framing (clickjacking), no URL leaked as referrer
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
# an HTML answer that sets no policy of its own (the index page) runs nothing and loads nothing
DEFAULT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


@web.middleware
async def request_id(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """One id per request on every log line it causes (bot.core.logs), echoed as X-Request-Id;
    a proxy's own id (nginx: proxy_set_header X-Request-Id $request_id) is kept."""
    token = REQUEST_ID.set(new_request_id(request.headers.get("X-Request-Id")))
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-Id"] = REQUEST_ID.get()
            raise
        response.headers["X-Request-Id"] = REQUEST_ID.get()
        return response
    finally:
        REQUEST_ID.reset(token)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Added to every response as it is sent, error pages included; a handler's own value wins."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)


# The panel's icon (admin/static), so a browser opening the chat or the webhook host gets it too.
FAVICON = Path(__file__).resolve().parent.parent / "admin" / "static" / "favicon.ico"


async def favicon(request: web.Request) -> web.Response:
    """Browsers ask every host for /favicon.ico; a 404 for it fills logs and consoles."""
    return web.Response(body=FAVICON.read_bytes(), content_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})


def create_app(config: Config, dispatcher: Dispatcher | None = None, run_sender: bool = True) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[request_id])
    if dispatcher is None:
        dispatcher = Dispatcher(config, cache_check_seconds=CACHE_CHECK_SECONDS if is_postgres() else 0.0)
    bridge = CoreBridge(dispatcher, workers=config.server.workers)
    adapters = build_adapters(config, bridge)
    app[BRIDGE], app[ADAPTERS], app[TASKS] = bridge, adapters, TaskSet()
    wake = app[SENDER_WAKE] = asyncio.Event()
    hub = LiveHub(bridge, panel_secret(config), on_pending=lambda channels: wake.set())
    workbench_stream.install(app, hub, app[TASKS].spawn)
    unsubscribe: list[Callable[[], None]] = []
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", favicon)
    if config.metrics.enabled:  # off by default: a 404, as if there were no such page
        app.router.add_get("/metrics", metrics_handler(config))
    app.router.add_routes(asset_routes())
    app.on_response_prepare.append(security_headers)
    for adapter in adapters.values():
        app.router.add_routes(adapter.routes())
    app.router.add_routes(OrderApi(config.orders, bridge, {c.name for c in config.channels}).routes())

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        # a reply queued from the panel or a job in this process is sent now, not at the sender's next poll

        def send_soon(outbound: bool) -> None:
            if outbound:
                loop.call_soon_threadsafe(wake.set)

        unsubscribe.append(changes.subscribe(send_soon))
        # build the FAQ index before the first customer asks, not during their request
        await bridge.call(bridge.dispatcher.store.refresh, True)
        recovered = await bridge.call(dispatcher_mod.recover_pending, 60.0)
        if recovered:
            log.info("queued %d replies left pending by a previous process", recovered)
        if run_sender:
            app[TASKS].spawn(sender_loop(app, config), "outbox-sender")

    async def on_cleanup(app: web.Application) -> None:
        for stop_listening in unsubscribe:
            stop_listening()
        await app[TASKS].drain()
        await bridge.group_commit.drain()
        for adapter in adapters.values():
            close = getattr(adapter, "close", None)
            if close is not None:
                await close()
        bridge.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def sender_loop(app: web.Application, config: Config) -> None:
    """Deliver due outbox rows for every channel that has a sender, forever."""
    from adapters.delivery import AsyncDelivery, is_async_sender

    bridge = app[BRIDGE]
    senders = {name: s for name, a in app[ADAPTERS].items() if (s := a.sender()) is not None}
    async_delivery = AsyncDelivery({n: s for n, s in senders.items() if is_async_sender(s)},  # type: ignore[misc]
                                   bridge.call, config.outbox.max_attempts, lease_seconds=config.outbox.lease_seconds)
    senders = {n: s for n, s in senders.items() if n not in async_delivery.senders}
    while True:
        try:
            done = await async_delivery.deliver_due(config.outbox.batch)
            if senders:
                done += await bridge.call(outbox.deliver_due, senders, config.outbox.batch,
                                          config.outbox.max_attempts, config.outbox.lease_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox delivery round failed")
            done = 0
        if not done:
            wake = app[SENDER_WAKE]
            try:
                await asyncio.wait_for(wake.wait(), config.outbox.poll_seconds)
            except asyncio.TimeoutError:
                pass
            wake.clear()
