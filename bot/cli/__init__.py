"""The `kefu` command: one module per command group, put together in app.py.

serve.py is the composition root (the only place that wires adapters, jobs and admin); the
other command modules may import adapters inside a command (chat, sandbox, doctor's channel
probes) but nothing outside bot.cli imports it. `bot.cli:main` stays the console script's target.
"""

from bot.cli.app import main

__all__ = ["main"]
