"""The `kefu` command (kept as the console script's target, `bot.cli:main`)."""

from bot.cli.serve import callback_lines, main, record_server_url, served_url

__all__ = ["callback_lines", "main", "record_server_url", "served_url"]
