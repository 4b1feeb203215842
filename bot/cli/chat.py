"""`kefu chat`: talk to the bot as a customer from the terminal."""

from __future__ import annotations

import click

from bot.cli.options import config_option
from bot.core.config import Config


@click.command()
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
