"""`kefu init`, `kefu run`, `kefu serve`, `kefu admin`, `kefu scheduler`: the processes, and the
one place that wires adapters, jobs and admin together (the composition root).

Why here: it imports adapters, jobs and admin inside each command, so the rest of `bot/`
never depends on a transport library (the import-linter contracts in pyproject.toml say so).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from bot.cli import event_loop
from bot.cli.options import config_option, host_port_options, with_server, with_admin, open_db, redacted_url
from bot.core.config import Config
from bot.cli.server_url import record_server_url


@click.command()
@config_option
@click.option("--demo", is_flag=True, help="Also seed the demo shop (FAQs, agents, a group).")
def init(config: Config, demo: bool) -> None:
    """Create or upgrade the database schema (safe to run twice)."""
    from bot import demo as demo_mod
    from bot.core import migrations

    open_db(config, upgrade=True)
    click.echo(f"schema at version {migrations.current_version()} in {redacted_url(config.database_url)}")
    if demo:
        created = demo_mod.seed(config, history=True)
        _ensure_demo_admin(config)
        click.echo(f"demo data: {created['faqs']} FAQs, {created['agents']} agents, {created['groups']} groups created")
        click.echo(f"demo history: {created['history_customers']} customers, {created['history_conversations']} "
                   f"conversations, {created['history_orders']} orders created")
    from bot.core.db import gather_statistics

    if gather_statistics():  # PostgreSQL: the planner's statistics from the first message on
        click.echo("planner statistics gathered (ANALYZE)")


def _ensure_demo_admin(config: Config) -> str | None:
    """A first admin user on a fresh install: admin / admin, password change forced."""
    try:
        from admin.users import ensure_initial_admin
    except ImportError:
        return None
    return ensure_initial_admin()


def _first_start(config: Config) -> bool:
    """Upgrade the schema; seed the demo shop when the database was new."""
    from bot.core import db
    from bot import demo as demo_mod
    from bot.core import migrations

    try:
        db.connect(config.database_url)
        fresh = migrations.current_version() == 0
        migrations.upgrade()
    except Exception as exc:
        raise click.ClickException(f"cannot open the database {redacted_url(config.database_url)}: {exc}") from None
    if fresh:
        demo_mod.seed(config, history=True)
        _ensure_demo_admin(config)
        db.gather_statistics()  # PostgreSQL: the planner's statistics from the first message on
    return fresh


@click.command()
@config_option
@host_port_options("server")
@click.option("--admin-port", type=int, default=None, help="Admin panel port (default: [admin].port).")
@click.option("--no-admin", is_flag=True, help="Do not start the admin panel.")
@click.option("--no-scheduler", is_flag=True, help="Do not start the job scheduler.")
def run(config: Config, host: str | None, port: int | None, admin_port: int | None, no_admin: bool,
        no_scheduler: bool) -> None:
    """All in one: webhook server, outbox sender, scheduler and admin panel."""
    config = with_admin(with_server(config, host, port), None, admin_port)
    fresh = _first_start(config)
    event_loop.run(_serve_all(config, admin=not no_admin, scheduler=not no_scheduler and config.scheduler.enabled,
                              fresh=fresh), config.server.event_loop)


@click.command()
@config_option
@host_port_options("server")
def serve(config: Config, host: str | None, port: int | None) -> None:
    """The webhook server and outbox sender only (run several behind a load balancer)."""
    config = with_server(config, host, port)
    open_db(config)
    event_loop.run(_serve_all(config, admin=False, scheduler=False, fresh=False), config.server.event_loop)


@click.command("admin")
@config_option
@host_port_options("admin")
def admin_cmd(config: Config, host: str | None, port: int | None) -> None:
    """The admin panel only."""
    from admin.app import create_app as create_admin
    from werkzeug.serving import run_simple

    config = with_admin(config, host, port)
    open_db(config)
    app = create_admin(config)
    click.echo(f"admin panel: http://{config.admin.host}:{config.admin.port}/admin/")
    run_simple(config.admin.host, config.admin.port, app, threaded=True, use_reloader=False)


@click.command()
@config_option
def scheduler(config: Config) -> None:
    """The job scheduler only (one active per database; others wait as standby)."""
    open_db(config)
    asyncio.run(_scheduler_only(config))


async def _scheduler_only(config: Config) -> None:
    from jobs.runner import SchedulerService

    service = SchedulerService(config)
    stop = _stop_event()
    await service.start()
    click.echo("scheduler started (standby until it holds the lease)")
    await stop.wait()
    await service.stop()
    _metrics_done()


def _metrics_done() -> None:
    """A stopped process's live gauges leave the multi-process sum (PROMETHEUS_MULTIPROC_DIR)."""
    from bot.ops.metrics import mark_process_dead

    mark_process_dead()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


async def _serve_all(config: Config, admin: bool, scheduler: bool, fresh: bool) -> None:
    from aiohttp import web

    from adapters.server import BRIDGE, create_app
    from bot.core import heap

    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    admin_server = None
    if admin:  # on PostgreSQL in a child process of its own, on SQLite in a thread (admin/serve.py);
        # up before the webhook port answers, so /healthz answering means the panel does too
        from admin.serve import PanelStartError, panel_server

        admin_server = panel_server(config)
        try:
            await admin_server.start()
        except PanelStartError as exc:
            await runner.cleanup()
            raise click.ClickException(str(exc))
    site = web.TCPSite(runner, config.server.host, config.server.port)
    try:
        await site.start()
    except OSError as exc:
        if admin_server:
            await admin_server.stop()
        await runner.cleanup()
        raise click.ClickException(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}")
    record_server_url(config)
    service = None
    if scheduler:
        from jobs.runner import SchedulerService

        service = SchedulerService(config)
        await service.start()
    # the start-up heap (FAQ index included, once embedded) out of the GC's full collections
    freezing = asyncio.create_task(heap.freeze_when_ready(app[BRIDGE].dispatcher.store.wait_warm))
    base = config.public_url
    web_channels = [c.name for c in config.channels if c.kind == "web"]
    lines = [
        "kefu is running" + (" (demo data seeded)" if fresh else ""),
        f"  database:      {redacted_url(config.database_url)}",
        f"  health:        {base}/healthz",
    ]
    lines += [f"  web chat:      {base}/chat/{name}" for name in web_channels]
    lines += callback_lines(config)
    if admin_server:
        lines.append(f"  admin panel:   http://{config.admin.host}:{admin_server.port}/admin/"
                     + ("  (first login admin / admin)" if fresh else ""))
    lines.append("  stop with Ctrl+C")
    click.echo("\n".join(lines))
    sys.stdout.flush()
    try:
        await _stop_event().wait()
    finally:
        freezing.cancel()
        if service:
            await service.stop()
        if admin_server:
            await admin_server.stop()
        await runner.cleanup()
        _metrics_done()


def callback_lines(config: Config) -> list[str]:
    """The start-up banner's callback URL of each WeChat-family channel, the one to register on
    its platform: 公众号 under /wechat/, WeCom and 微信客服 under /wecom/."""
    from adapters.wechat_kf import WeChatKfChannel
    from adapters.wechat_mp import OfficialAccountChannel
    from adapters.wecom import WeComChannel

    prefixes = {c.kind: c.prefix for c in (OfficialAccountChannel, WeComChannel, WeChatKfChannel)}  # the routes' own
    return [f"  callback URL:  {config.public_url}{prefixes[c.kind]}/{c.name}  ({c.kind})"
            for c in config.channels if c.kind in prefixes]
