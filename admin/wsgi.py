"""The admin panel as a WSGI application for gunicorn: `gunicorn "admin.wsgi:app"`.

Why a module: a WSGI server imports an application object; this one reads the config the
way `kefu admin` does (`KEFU_CONFIG` and the `KEFU_*` environment), sets up logging, and
refuses to start on an outdated schema (run `kefu init` first). See docs/deploy.md.
"""

from __future__ import annotations

from admin.app import create_app
from bot.core.config import load_config
from bot.core.runtime import open_database, setup_logging

config = load_config()
setup_logging(config)
open_database(config)
app = create_app(config)
