"""What every `kefu` command shares: `--config`, `--host`/`--port`, opening the database with one clear error.

Why apart: each command module registers its own commands with these, and none of them
imports another command module for it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from bot.core.config import Config, ConfigError, load_config
from bot.core.runtime import SchemaOutdated, open_database, setup_logging


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


def with_server(config: Config, host: str | None, port: int | None) -> Config:
    import dataclasses

    server = dataclasses.replace(config.server, host=host or config.server.host,
                                 port=config.server.port if port is None else port)
    return dataclasses.replace(config, server=server)


def with_admin(config: Config, host: str | None, port: int | None) -> Config:
    import dataclasses

    admin = dataclasses.replace(config.admin, host=host or config.admin.host,
                                port=config.admin.port if port is None else port)
    return dataclasses.replace(config, admin=admin)


def open_db(config: Config, upgrade: bool = False) -> None:
    try:
        open_database(config, upgrade=upgrade)
    except SchemaOutdated as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a database that cannot be reached: one clear line
        raise click.ClickException(f"cannot open the database {redacted_url(config.database_url)}: {exc}") from None


def redacted_url(url: str) -> str:
    from bot.ops.redact import safe_url

    return safe_url(url)
