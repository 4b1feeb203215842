"""The `kefu` command: the composition root.

Why here: this is the one module that wires adapters, jobs and admin together; it imports
them inside each command, so `bot/` itself never depends on a transport library.
Every command takes `--config PATH` (or `KEFU_CONFIG`); a bad config stops the command with
a one-line message naming the key and the file.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from bot.config import Config, ConfigError, load_config
from bot.runtime import SchemaOutdated, open_database, setup_logging

pass_config = click.make_pass_decorator(Config)


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--config PATH` on every command; loads, validates and passes the Config."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="Path to the TOML config (default: $KEFU_CONFIG, else built-in defaults).")
    @functools.wraps(fn)
    def wrapper(*args: Any, config_path: str | None, **kwargs: Any) -> Any:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        setup_logging(config)
        return fn(config, *args, **kwargs)

    return wrapper


def host_port_options(default_section: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--port", type=int, default=None, help=f"Port (default: [{default_section}].port).")(fn)
        fn = click.option("--host", default=None, help=f"Address to listen on (default: [{default_section}].host).")(fn)
        return fn

    return decorate


def _with_server(config: Config, host: str | None, port: int | None) -> Config:
    import dataclasses

    server = dataclasses.replace(config.server, host=host or config.server.host,
                                 port=config.server.port if port is None else port)
    return dataclasses.replace(config, server=server)


def _with_admin(config: Config, host: str | None, port: int | None) -> Config:
    import dataclasses

    admin = dataclasses.replace(config.admin, host=host or config.admin.host,
                                port=config.admin.port if port is None else port)
    return dataclasses.replace(config, admin=admin)


def _open(config: Config, upgrade: bool = False) -> None:
    try:
        open_database(config, upgrade=upgrade)
    except SchemaOutdated as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a database that cannot be reached: one clear line
        raise click.ClickException(f"cannot open the database {_safe_url(config.database_url)}: {exc}") from None


def _safe_url(url: str) -> str:
    from bot.ops.redact import safe_url

    return safe_url(url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kefu")
def main() -> None:
    """kefu 客服: a customer-service bot for online shops on WeChat-style IM."""


@main.command()
@config_option
@click.option("--demo", is_flag=True, help="Also seed the demo shop (FAQs, agents, a group).")
def init(config: Config, demo: bool) -> None:
    """Create or upgrade the database schema (safe to run twice)."""
    from bot import demo as demo_mod
    from bot import migrations

    _open(config, upgrade=True)
    click.echo(f"schema at version {migrations.current_version()} in {_safe_url(config.database_url)}")
    if demo:
        created = demo_mod.seed(config, history=True)
        _ensure_demo_admin(config)
        click.echo(f"demo data: {created['faqs']} FAQs, {created['agents']} agents, {created['groups']} groups created")
        click.echo(f"demo history: {created['history_customers']} customers, {created['history_conversations']} "
                   f"conversations, {created['history_orders']} orders created")


def _ensure_demo_admin(config: Config) -> str | None:
    """A first admin user on a fresh install: admin / admin, password change forced."""
    try:
        from admin.users import ensure_initial_admin
    except ImportError:
        return None
    return ensure_initial_admin()


def _first_start(config: Config) -> bool:
    """Upgrade the schema; seed the demo shop when the database was new."""
    from bot import db
    from bot import demo as demo_mod
    from bot import migrations

    try:
        db.connect(config.database_url)
        fresh = migrations.current_version() == 0
        migrations.upgrade()
    except Exception as exc:
        raise click.ClickException(f"cannot open the database {_safe_url(config.database_url)}: {exc}") from None
    if fresh:
        demo_mod.seed(config, history=True)
        _ensure_demo_admin(config)
    return fresh


@main.command()
@config_option
@host_port_options("server")
@click.option("--admin-port", type=int, default=None, help="Admin panel port (default: [admin].port).")
@click.option("--no-admin", is_flag=True, help="Do not start the admin panel.")
@click.option("--no-scheduler", is_flag=True, help="Do not start the job scheduler.")
def run(config: Config, host: str | None, port: int | None, admin_port: int | None, no_admin: bool,
        no_scheduler: bool) -> None:
    """All in one: webhook server, outbox sender, scheduler and admin panel."""
    config = _with_admin(_with_server(config, host, port), None, admin_port)
    fresh = _first_start(config)
    asyncio.run(_serve_all(config, admin=not no_admin, scheduler=not no_scheduler and config.scheduler.enabled,
                           fresh=fresh))


@main.command()
@config_option
@host_port_options("server")
def serve(config: Config, host: str | None, port: int | None) -> None:
    """The webhook server and outbox sender only (run several behind a load balancer)."""
    config = _with_server(config, host, port)
    _open(config)
    asyncio.run(_serve_all(config, admin=False, scheduler=False, fresh=False))


@main.command("admin")
@config_option
@host_port_options("admin")
def admin_cmd(config: Config, host: str | None, port: int | None) -> None:
    """The admin panel only."""
    from admin.app import create_app as create_admin
    from werkzeug.serving import run_simple

    config = _with_admin(config, host, port)
    _open(config)
    app = create_admin(config)
    click.echo(f"admin panel: http://{config.admin.host}:{config.admin.port}/admin/")
    run_simple(config.admin.host, config.admin.port, app, threaded=True, use_reloader=False)


@main.command()
@config_option
def scheduler(config: Config) -> None:
    """The job scheduler only (one active per database; others wait as standby)."""
    _open(config)
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
    from bot import heap

    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise click.ClickException(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}")
    record_server_url(config)
    admin_server = None
    if admin:
        from admin.app import create_app as create_admin
        from admin.serve import ThreadedWSGIServer

        try:
            admin_server = ThreadedWSGIServer(create_admin(config), config.admin.host, config.admin.port)
        except OSError as exc:
            await runner.cleanup()
            raise click.ClickException(f"cannot listen on {config.admin.host}:{config.admin.port}: {exc.strerror}")
        admin_server.start()
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
        f"  database:      {_safe_url(config.database_url)}",
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
            admin_server.stop()
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


@main.command()
@config_option
def doctor(config: Config) -> None:
    """Check what operators get wrong (config, database, schema, credentials, clocks, callback
    URLs, FAQ engine, scheduler, outbox): one line each, ✓ or ✗ with the fix; exit 1 on any ✗."""
    from bot.ops import doctor as checks_mod

    probes, errors = _channel_probes(config)
    checks = checks_mod.run(config, probes, functools.partial(_scheduler_leader, config), errors)
    for check in checks:
        click.echo(check.line())
    if checks_mod.failed(checks):
        sys.exit(1)


@main.command()
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def backup(config: Config, file: str) -> None:
    """Back the database up into FILE while kefu runs (SQLite: online backup; PostgreSQL: pg_dump)."""
    from bot.ops.backup import BackupError, backup as take

    try:
        done = take(config.database_url, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up {_safe_url(config.database_url)} to {done.path} ({done.size} bytes, {done.detail})")


@main.command()
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace a database that already holds data.")
def restore(config: Config, file: str, force: bool) -> None:
    """Restore FILE (from `kefu backup`) into an empty database; stop kefu first, run `kefu init` after."""
    from bot.ops.backup import BackupError, restore as put_back

    try:
        done = put_back(config.database_url, file, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {file} into {_safe_url(config.database_url)} ({done.detail}); "
               "now run `kefu init` (it migrates an older backup), then start kefu")


def _channel_probes(config: Config) -> tuple[list[Any], list[Any]]:
    """The doctor's view of each WeChat-family channel, built by the channel's own adapter (its
    token store, API base and routes), without starting it; an adapter that cannot be built is a ✗."""
    import types

    from adapters.server import FACTORIES
    from bot.ops.doctor import WECHAT_KINDS, ChannelProbe, Check

    probes, errors = [], []
    stub = types.SimpleNamespace(call=None)  # nothing is sent: only the token store is used
    for ch in config.channels:
        if ch.kind not in WECHAT_KINDS:
            continue
        try:
            adapter = FACTORIES[ch.kind](ch, config, stub)  # type: ignore[arg-type]
        except Exception as exc:
            errors.append(Check(f"channel {ch.name}", False, f"cannot be set up: {exc}",
                                f"check channels.{ch.name}'s token, encoding_aes_key and ids"))
            continue
        api = adapter.api  # type: ignore[attr-defined]

        def fetch(api: Any = api) -> object:
            current = api.tokens.current()
            return api.tokens.refresh_after_error(current.value if current else "")

        probes.append(ChannelProbe(ch, api.base, f"{config.public_url}{adapter.prefix}/{ch.name}", fetch))
    return probes, errors


def _scheduler_leader(config: Config) -> str | None:
    """Who leads the schedulers, or None: the advisory lock on PostgreSQL (free means nobody
    holds it: taken and given back at once), the lease row on SQLite (read, never taken)."""
    from bot import clock
    from bot.db import is_postgres
    from bot.models import Lease
    from jobs import leader

    if is_postgres():
        probe = leader.AdvisoryLeadership(config.database_url)
        if probe.acquire():
            probe.release()
            return None
        return "a scheduler holds the advisory lock"
    row = Lease.get_or_none(Lease.name == leader.NAME)
    return row.holder if row is not None and row.expires_at > clock.now() else None


@main.command()
@config_option
@click.option("--channel", default=None, help="Channel to talk to (default: the first web channel).")
@click.option("--url", default=None, help="Base URL of a running kefu (default: the configured server).")
@click.option("--user-id", default=None, help="Reuse a visitor id (needs --token), or the openid on a wechat_mp channel.")
@click.option("--token", default=None, help="The visitor token for --user-id.")
def chat(config: Config, channel: str | None, url: str | None, user_id: str | None, token: str | None) -> None:
    """Chat with the bot as a customer, in the terminal: through a web channel's API, or as a
    公众号 follower through signed, encrypted callbacks on a wechat_mp channel (the stand-in)."""
    from adapters.web_client import WebChatClient, run_terminal_chat

    name = channel or next((c.name for c in config.channels if c.kind == "web"), None)
    ch = config.channel(name) if name else None
    if ch is None:
        raise click.ClickException("no web channel configured; add one with kind = \"web\"")
    if ch.kind == "wechat_mp":  # through the WeChat-server stand-in: signed, encrypted callbacks
        from adapters.sandbox.chat import run_wechat_chat

        try:
            run_wechat_chat(ch, url or config.public_url, user_id)
        except ConnectionError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if ch.kind != "web":
        raise click.ClickException(f"channel {name!r} is {ch.kind}; `kefu chat` talks to web and wechat_mp channels")
    client = WebChatClient(url or config.public_url, ch.name, user_id=user_id, token=token)
    try:
        run_terminal_chat(client)
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on.")
@click.option("--app", "apps", multiple=True, metavar="ID=SECRET",
              help="An app (appid or corpid) whose secret is checked: another secret is refused (40125/40001).")
def sandbox(host: str, port: int, apps: tuple[str, ...]) -> None:
    """Run the local WeChat stand-in (api.weixin.qq.com / qyapi.weixin.qq.com) for demos and tests.

    Point a channel's api_base at it (http://127.0.0.1:8090); it records every call
    (GET /sandbox/calls) and injects faults (POST /sandbox/faults).
    """
    from adapters.sandbox.app import serve

    if any("=" not in a for a in apps):
        raise click.BadParameter("use --app ID=SECRET", param_hint="--app")
    serve(host, port, dict(a.split("=", 1) for a in apps))


@main.group()
def faq() -> None:
    """Import and export FAQs (JSON lines)."""


@faq.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def faq_import(config: Config, file: str) -> None:
    """Import FAQs from FILE: lines of {"id", "questions": [...], "answer", "category"}."""
    from bot.faq import conflicts
    from bot.faq.io import FaqFileError, apply, read_file

    _open(config)
    try:
        records = read_file(file)
        report = apply(records)
    except FaqFileError as exc:
        raise click.ClickException(f"{exc} (nothing was imported)") from None
    click.echo(f"imported {Path(file).name}: {report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged")
    from bot.faq.store import FaqStore

    store = FaqStore(check_seconds=0)
    store.refresh(force=True)
    store.wait_warm()  # new phrasings are embedded once here, for every process
    found = conflicts.for_faqs(store, conflicts.imported_ids(r.id for r in records),
                               conflicts.answering_threshold(config.faq.threshold))
    for conflict in found:  # imported anyway: two FAQs may rightly share words, the operator decides
        click.echo(f"warning: {conflicts.describe(conflict)}", err=True)


@faq.command("export")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def faq_export(config: Config, file: str) -> None:
    """Export every FAQ to FILE as JSON lines."""
    from bot.faq.io import export_file

    _open(config)
    count = export_file(file)
    click.echo(f"exported {count} FAQs to {file}")


@main.group("admin-user")
def admin_user() -> None:
    """Manage admin panel users."""


@admin_user.command("add")
@config_option
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "agent"]), default="operator", show_default=True,
              help="admin: everything; operator: no users, settings or channels; agent: only the workbench.")
@click.option("--agent", "agent_name", default=None, help="With --role agent: the agent (name or id) this user works as.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
def admin_user_add(config: Config, username: str, role: str, agent_name: str | None, password_stdin: bool) -> None:
    """Add a panel user USERNAME (the password is prompted, or read with --password-stdin)."""
    from admin.users import UserError, create_user
    from bot.relay import find_agent

    password = _read_password(password_stdin, "Password")
    _open(config)
    agent_id = None
    if agent_name is not None:
        found = find_agent(agent_name)
        if found is None:
            raise click.ClickException(f"no agent named {agent_name!r} (see `kefu agent list`)")
        agent_id = found.id
    try:
        user = create_user(username, password, role, agent_id=agent_id)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin user {user.username} (#{user.id}) added with role {role}"
               + (f", working as agent {agent_name}" if agent_id is not None else ""))


def _read_password(from_stdin: bool, prompt: str) -> str:
    """A password never on the command line: one line of standard input, or typed twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@admin_user.command("reset-password")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
def admin_user_reset_password(config: Config, username: str, password_stdin: bool) -> None:
    """Set a new password for panel user USERNAME and unlock the account (a forgotten password,
    or locked after 5 wrong ones); they choose their own at the next login."""
    from admin.users import UserError, reset_password

    password = _read_password(password_stdin, "New password")
    _open(config)
    try:
        user = reset_password(username, password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin user {user.username} (#{user.id}): password reset, unlocked; "
               "a new password is asked at the next login")


def _faq_and_queries(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The `--faq` and `--queries` files of the measuring commands (the shared data's formats)."""
    fn = click.option("--queries", "queries_file", required=True, type=click.Path(dir_okay=False, exists=True),
                      help='Queries: JSON lines {"query", "faq_id" | null}; null = no FAQ should answer.')(fn)
    return click.option("--faq", "faq_file", required=True, type=click.Path(dir_okay=False, exists=True),
                        help='FAQ file: JSON lines {"id", "questions": [...], "answer"}.')(fn)


@faq.command("eval")
@config_option
@_faq_and_queries
@click.option("--threshold", type=float, default=None, help="Confidence threshold (default: [faq].threshold).")
@click.option("--lexical", is_flag=True, help="Without the embedding model (the fallback matcher).")
def faq_eval(config: Config, faq_file: str, queries_file: str, threshold: float | None, lexical: bool) -> None:
    """Measure the matcher on FAQ and query files, in memory (no database); prints one JSON object."""
    from bot.faq.eval import evaluate
    from bot.faq.semantic import load_embedder

    embedder = None if lexical else load_embedder()
    result = evaluate(faq_file, queries_file, config.faq.threshold if threshold is None else threshold, embedder)
    click.echo(json.dumps(result, ensure_ascii=False))


@faq.command("learn-eval")
@config_option
@_faq_and_queries
@click.option("--rounds", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Operator rounds on the first half's unanswered questions.")
@click.option("--actions", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="Groups the operator acts on per round (K).")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Seed of the split in halves (default 0); repeat it to cross-validate and get the means.")
@click.option("--threshold", type=float, default=None, help="Confidence threshold (default: [faq].threshold).")
@click.option("--cache", "cache_file", type=click.Path(dir_okay=False), default=None,
              help="An .npz file that keeps the vectors between runs (created when missing).")
@click.option("--lexical", is_flag=True, help="Without the embedding model (the fallback matcher).")
def faq_learn_eval(config: Config, faq_file: str, queries_file: str, rounds: int, actions: int,
                   seeds: tuple[int, ...], threshold: float | None, cache_file: str | None, lexical: bool) -> None:
    """Measure the learning loop: the bot answers half the queries, an operator acts on the
    unanswered groups, the other half is answered; beside a naive loop. One JSON object."""
    from bot.faq.eval import FileCache, read_queries
    from bot.faq.io import FaqFileError, read_file
    from bot.faq.learn_eval import learn_eval, summarize
    from bot.faq.semantic import load_embedder

    try:
        records, queries = read_file(faq_file), read_queries(queries_file)
    except (FaqFileError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    embedder = None if lexical else load_embedder()
    cache = FileCache(cache_file) if cache_file else None
    limit = config.faq.threshold if threshold is None else threshold
    runs = [learn_eval(records, queries, embedder, limit, rounds, actions, seed, cache) for seed in seeds or (0,)]
    if cache is not None:
        cache.save()
    click.echo(json.dumps(runs[0] if len(runs) == 1 else summarize(runs), ensure_ascii=False))


@main.group()
def agent() -> None:
    """Manage agents (客服)."""


@agent.command("add")
@config_option
@click.argument("name")
@click.option("--channel", "channel_name", required=True, help="Channel of the agent's linked IM account.")
@click.option("--user-id", required=True, help="The agent's user id on that channel (openid, userid, visitor id).")
@click.option("--max-open", type=int, default=5, show_default=True, help="Open conversations at most.")
@click.option("--display-name", default="", help="Name shown to customers (default: NAME).")
def agent_add(config: Config, name: str, channel_name: str, user_id: str, max_open: int, display_name: str) -> None:
    """Add an agent NAME linked to an IM account."""
    from bot.agents import AgentError, add_agent

    _open(config)
    try:
        created = add_agent(config, name, channel_name, user_id, max_open=max_open, display_name=display_name)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"agent {created.name} (#{created.id}) linked to {channel_name}:{user_id}, max {max_open} open")
    link = web_chat_link(config, channel_name, user_id)
    if link:
        click.echo(f"agent chat page: {link}")


SERVER_URL_FILE = "server-url"


def record_server_url(config: Config) -> None:
    """Note where the server listens (its `--port`, not only the configured one) in the data
    directory, so the agent commands run later print chat links that reach it."""
    path = Path(config.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / SERVER_URL_FILE).write_text(config.public_url + "\n", encoding="utf-8")


def served_url(config: Config) -> str:
    """The server's base URL: the configured public_url, else the address the last started
    server recorded (`record_server_url`), else host and port from the configuration."""
    if config.server.public_url:
        return config.public_url
    recorded = Path(config.data_dir) / SERVER_URL_FILE
    if recorded.exists():
        text = recorded.read_text(encoding="utf-8").strip()
        if text.startswith(("http://", "https://")):
            return text
    return config.public_url


def web_chat_link(config: Config, channel_name: str, user_id: str) -> str | None:
    """The chat page signed for `user_id` on a web channel (an agent's own identity there),
    or None when the channel is not a configured web channel."""
    ch = config.channel(channel_name)
    if ch is None or ch.kind != "web":
        return None
    from adapters.web import WebChannel
    from bot.secrets import ensure_secret

    secret = ensure_secret(config.data_dir, f"web-{ch.name}.key", ch.secret)
    token = WebChannel(ch, secret, None).token_for(user_id)  # type: ignore[arg-type]
    return f"{served_url(config)}/chat/{ch.name}#user_id={user_id}&token={token}"


@agent.command("list")
@config_option
def agent_list(config: Config) -> None:
    """List agents with their status and load."""
    from bot.assignment import loads
    from bot.models import Agent

    _open(config)
    current = loads()
    for a in list(Agent.select().order_by(Agent.id)):
        row = {"id": a.id, "name": a.name, "channel": a.channel, "user_id": a.im_user_id,
               "status": a.status, "open": current.get(a.id, 0), "max_open": a.max_open}
        link = web_chat_link(config, a.channel, a.im_user_id)
        if link:
            row["chat_link"] = link  # where a web agent chats as themselves
        click.echo(json.dumps(row, ensure_ascii=False))


@agent.command("status")
@config_option
@click.argument("name")
@click.argument("status", type=click.Choice(["online", "away", "offline"]))
def agent_status(config: Config, name: str, status: str) -> None:
    """Set agent NAME online, away or offline, as the agent's own command would (offline:
    conversations waiting for their reply go back to the queue; online: the queue is served)."""
    from bot import assignment, clock
    from bot.db import transaction
    from bot.relay import emit, find_agent, say, take_offline
    from jobs.sla import drain

    _open(config)
    found = find_agent(name)
    if found is None:
        raise click.ClickException(f"no agent named {name!r} (see `kefu agent list`)")
    key = f"cli-status:{found.id}:{clock.now().strftime('%Y%m%dT%H%M%S%f')}"
    tail = ""
    with transaction():
        assignment.hold_lock()
        if status == "offline":
            result = take_offline(found)
            emit(result.messages, key)
            tail = (f"; {result.requeued} conversations waiting for their reply went back to the queue"
                    f" ({result.reassigned} of them assigned to another agent at once)"
                    f"; {result.kept} kept (the customer has not written since their reply)")
        else:
            assignment.set_status(found, status)
            emit([say(found, f"管理员已将您的状态设为：{'在线' if status == 'online' else '离开'}")], key)
    served = drain() if status == "online" else 0
    if served:
        tail = f"; {served} queued conversations assigned"
    click.echo(f"agent {found.name} is {status}{tail}")


@agent.command("capacity")
@config_option
@click.argument("name")
@click.argument("max_open", type=click.IntRange(1, 200))
def agent_capacity(config: Config, name: str, max_open: int) -> None:
    """Set how many conversations agent NAME holds at most (1-200). Conversations they hold
    beyond a lowered capacity stay with them; a raised one serves the queue at once."""
    from bot import assignment
    from bot.db import transaction
    from bot.models import Agent
    from bot.relay import find_agent
    from jobs.sla import drain

    _open(config)
    found = find_agent(name)
    if found is None:
        raise click.ClickException(f"no agent named {name!r} (see `kefu agent list`)")
    with transaction():
        assignment.hold_lock()  # an assignment in flight reads the capacity under the same lock
        Agent.update(max_open=max_open).where(Agent.id == found.id).execute()
    served = drain() if max_open > found.max_open else 0
    held = assignment.load_of(found)
    click.echo(f"agent {found.name}: capacity {found.max_open} -> {max_open}, holding {held}"
               + (f"; {served} queued conversations assigned" if served else ""))


@agent.command("kpi")
@config_option
@click.option("--days", type=int, default=7, show_default=True, help="The last N local days, today included.")
def agent_kpi(config: Config, days: int) -> None:
    """Per-agent KPIs (JSON lines): assigned, reply rate, first response, resolution, satisfaction."""
    from dataclasses import asdict
    from datetime import datetime, timedelta

    from bot import clock, kpi

    _open(config)
    zone = kpi.shop_zone()
    today = clock.now().astimezone(zone).date()
    first = today - timedelta(days=max(days, 1) - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    for row in kpi.per_agent(start, clock.now() + timedelta(seconds=1)):
        click.echo(json.dumps(asdict(row), ensure_ascii=False))


@main.group()
def orders() -> None:
    """Orders from the shop system (live ones arrive on POST /api/orders)."""


@orders.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def orders_import(config: Config, file: str) -> None:
    """Import historical orders from a CSV FILE; bad rows are reported, good rows imported."""
    from bot.crm.order_import import ImportFileError, import_file

    _open(config)
    try:
        report = import_file(file, config.timezone, {c.name for c in config.channels})
    except ImportFileError as exc:
        raise click.ClickException(f"{exc} (nothing was imported)") from None
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "none"
    click.echo(f"{Path(file).name}: {report.rows} rows, {report.imported} imported ({outcomes}), "
               f"{report.matched} linked to a customer, {len(report.errors)} with errors")
    for error in report.errors:
        click.echo(f"  {error}", err=True)
    if report.errors:
        sys.exit(1)


@main.group()
def wecom() -> None:
    """WeCom (企业微信) customer contact: the shop's external contacts in the CRM."""


@wecom.command("sync")
@config_option
@click.option("--channel", "channel_name", default=None, help="The wecom channel (default: the only one).")
def wecom_sync(config: Config, channel_name: str | None) -> None:
    """Every external contact of every employee with customer contact into the CRM (merged with
    a 公众号 customer by unionid), then every customer group (客户群) into kefu's groups; safe to
    run again: it creates only what is new."""
    from adapters.api_client import ApiError
    from adapters.wecom import blocking_fetch
    from bot.crm import wecom_groups
    from bot.crm.wecom_contacts import SyncError, sync

    channels = [c for c in config.channels if c.kind == "wecom" and (channel_name in (None, c.name))]
    if not channels:
        raise click.ClickException(f"no wecom channel {channel_name!r} in the config" if channel_name
                                   else "no wecom channel in the config")
    if len(channels) > 1:
        names = ", ".join(c.name for c in channels)
        raise click.ClickException(f"several wecom channels ({names}): choose one with --channel")
    _open(config)
    try:
        report = sync(channels[0].name, blocking_fetch(channels[0]))
    except (SyncError, ApiError) as exc:
        raise click.ClickException(f"{exc} (contacts synced before it are kept)") from None
    click.echo(f"{channels[0].name}: {report.contacts} contacts of {report.follow_users} employees, "
               f"{report.created} new customers, {report.merged} merged by unionid")
    try:
        groups = wecom_groups.sync(channels[0].name, blocking_fetch(channels[0]))
    except (SyncError, ApiError) as exc:
        raise click.ClickException(f"{exc} (contacts and the groups synced before it are kept)") from None
    click.echo(f"{channels[0].name}: {groups.groups} customer groups ({groups.created} new), "
               f"{groups.members} customer members")


@main.group()
def customer() -> None:
    """A customer's data on request: export or erase (被遗忘权)."""


@customer.command("export")
@config_option
@click.argument("customer_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
def customer_export(config: Config, customer_id: int, file: str) -> None:
    """Write everything kefu holds about CUSTOMER_ID to FILE as JSON."""
    from bot.crm.erasure import export
    from bot.models import Customer

    _open(config)
    if Customer.get_or_none(Customer.id == customer_id) is None:
        raise click.ClickException(f"no customer #{customer_id}")
    Path(file).write_text(json.dumps(export(customer_id), ensure_ascii=False, indent=2), encoding="utf-8")
    click.echo(f"exported customer #{customer_id} to {file}")


@customer.command("erase")
@config_option
@click.argument("customer_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def customer_erase(config: Config, customer_id: int, yes: bool) -> None:
    """Erase CUSTOMER_ID's personal data; messages stay, anonymized, for the KPIs."""
    from bot.crm.erasure import erase
    from bot.models import Customer

    _open(config)
    if Customer.get_or_none(Customer.id == customer_id) is None:
        raise click.ClickException(f"no customer #{customer_id}")
    if not yes:
        click.confirm(f"erase customer #{customer_id}? This cannot be undone", abort=True)
    counts = erase(customer_id)
    click.echo(f"erased customer #{customer_id}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@main.group()
def campaign() -> None:
    """Group campaigns (群发): list, test-send, schedule, pause, resume, cancel."""


@campaign.command("list")
@config_option
def campaign_list(config: Config) -> None:
    """List campaigns with their state and the current run's progress."""
    from bot import campaigns
    from bot.models import Campaign

    _open(config)
    # read them all first: `progress` writes (it syncs outcomes), and on SQLite a write while
    # this SELECT's cursor is still open fails at once if `kefu serve` committed meanwhile
    rows = list(Campaign.select().order_by(Campaign.id))
    if not rows:
        click.echo("no campaigns yet: create one in the admin panel (营销 → 群发活动)", err=True)
    kinds = {ch.name: ch.kind for ch in config.channels}
    for c in rows:
        shown: dict[str, object] = {"id": c.id, "name": c.name, "status": c.status,
                                    "target": f"{c.target_kind}:{c.target_value}", "cron": c.cron, "run": c.run_key,
                                    "progress": campaigns.progress(c)}
        if c.status in ("draft", "scheduled"):  # before sending: who each path would reach
            try:
                shown["paths"] = campaigns.paths(c, kinds)
            except campaigns.CampaignError as exc:
                shown["paths"] = str(exc)
        click.echo(json.dumps(shown, ensure_ascii=False))


@campaign.command("change")
@config_option
@click.argument("action", type=click.Choice(["test", "schedule", "pause", "resume", "cancel", "resend-in-doubt"]))
@click.argument("campaign_id", type=int)
@click.option("--yes", is_flag=True, help="resend-in-doubt: do not ask to confirm the risk of doubles.")
def campaign_change(config: Config, action: str, campaign_id: int, yes: bool) -> None:
    """ACTION on CAMPAIGN_ID: test (send to the agents), schedule, pause, resume, cancel, or
    resend-in-doubt (send again the sends whose outcome a crash left unknown)."""
    from bot import campaigns
    from bot.models import Campaign

    _open(config)
    row = Campaign.get_or_none(Campaign.id == campaign_id)
    if row is None:
        raise click.ClickException(f"no campaign #{campaign_id}")
    try:
        if action == "test":
            click.echo(f"test send queued for {campaigns.send_test(row)} agents")
            return
        if action == "resend-in-doubt":
            if not yes:
                click.confirm("the platform may have delivered some of these already: those customers would get "
                              "the campaign twice. Resend?", abort=True)
            click.echo(f"{campaigns.resend_in_doubt(campaign_id)} sends in doubt queued again")
            return
        if action == "schedule":
            campaigns.schedule(row)
        else:
            getattr(campaigns, action)(campaign_id)
    except campaigns.CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"campaign #{campaign_id}: {Campaign.get_by_id(campaign_id).status}")


if __name__ == "__main__":  # pragma: no cover
    main()
