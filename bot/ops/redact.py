"""Keeping secrets out of what kefu prints and logs.

Why one place: the start-up banner, `kefu doctor`, `kefu backup` and the JSON logs all show
database URLs and may meet configured secrets; each must hide them the same way.
"""

from __future__ import annotations

from bot.core.config import Config

MASK = "***"


def safe_url(url: str) -> str:
    """A database URL with its password masked."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:{MASK}@{host}" if ":" in creds else url
    return url


def configured_secrets(config: Config) -> list[str]:
    """Every secret value the config holds (channel secrets, keys, tokens, passwords)."""
    values = [config.admin.secret_key, config.orders.secret, config.metrics.token]
    for ch in config.channels:
        values += [ch.secret, ch.token, ch.app_secret, ch.encoding_aes_key]
    url = config.database.url
    if "@" in url and "://" in url:
        creds = url.split("://", 1)[1].rsplit("@", 1)[0]
        if ":" in creds:
            values.append(creds.split(":", 1)[1])
    return [v for v in dict.fromkeys(values) if v and len(v) >= 4]
