"""Where the webhook server listens, as the agent commands print it in chat links.

Why apart: `kefu run` records the address it listens on and the agent commands read it
later, in another process; both sides use these functions.
"""

from __future__ import annotations

from pathlib import Path

from bot.core.config import Config


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
    from bot.core.secrets import ensure_secret

    secret = ensure_secret(config.data_dir, f"web-{ch.name}.key", ch.secret)
    token = WebChannel(ch, secret, None).token_for(user_id)  # type: ignore[arg-type]
    return f"{served_url(config)}/chat/{ch.name}#user_id={user_id}&token={token}"
