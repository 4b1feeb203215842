"""`kefu doctor`, `kefu backup`, `kefu restore`: checking an installation, and its database kept and put back."""

from __future__ import annotations

import functools
import sys
from typing import Any

import click

from bot.cli.options import config_option, redacted_url
from bot.core.config import Config


@click.command()
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


@click.command()
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def backup(config: Config, file: str) -> None:
    """Back the database up into FILE while kefu runs (SQLite: online backup; PostgreSQL: pg_dump)."""
    from bot.ops.backup import BackupError, backup as take

    try:
        done = take(config.database_url, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up {redacted_url(config.database_url)} to {done.path} ({done.size} bytes, {done.detail})")


@click.command()
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
    click.echo(f"restored {file} into {redacted_url(config.database_url)} ({done.detail}); "
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
    from bot.core import clock
    from bot.core.db import is_postgres
    from bot.core.models import Lease
    from jobs import leader

    if is_postgres():
        probe = leader.AdvisoryLeadership(config.database_url)
        if probe.acquire():
            probe.release()
            return None
        return "a scheduler holds the advisory lock"
    row = Lease.get_or_none(Lease.name == leader.NAME)
    return row.holder if row is not None and row.expires_at > clock.now() else None
