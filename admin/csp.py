"""The panel's Content-Security-Policy: scripts only from the panel itself, none inline.

Why: with `'unsafe-inline'` any markup that slipped through escaping runs as script (issue 23:
an agent's name `<img onerror=…>` in a flash read a CSRF token and could create an admin).
Without it, an injected handler or `<script>` is refused by the browser.

What that takes:
- our pages carry no inline script: the dashboard's charts and the shared click bindings are
  static files (admin/static/), and a script Flask-Admin writes inline (its modals) carries
  the per-request nonce it asks `nonce()` for;
- Flask-Admin's own templates bind four clicks with inline handlers (`onclick="…"`: the bulk
  action menu, the delete button's confirm, "add a phrasing", the filter menu). The template
  loader rewrites each known handler into a data attribute when the template is read
  (`HandlerFreeLoader`), and admin/static/kefu-panel.js binds those attributes. An inline
  handler of any other form is left alone for the browser to refuse, and a test fails on it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Callable

from flask import current_app, g
from jinja2 import BaseLoader, Environment

POLICY = ("default-src 'self'; script-src 'self'{nonce}; connect-src 'self'{live}; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'self'; "
          "form-action 'self'; frame-ancestors 'none'")

# Flask-Admin 2.2's inline handlers, as its template sources spell them -> the data attribute
# admin/static/kefu-panel.js binds (the Jinja expression inside is kept, now escaped as an
# attribute value instead of sitting in a JavaScript string).
HANDLERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"""onclick="return modelActions\.execute\('(.*?)'\);\""""), r'data-kefu-action="\1"'),
    (re.compile(r"""onclick="return (?:faHelpers\.safeConfirm|confirm)\('(.*?)'\);?\""""), r'data-kefu-confirm="\1"'),
    (re.compile(r"""onclick="faForm\.addInlineField\(this, '(.*?)'\);\""""), r'data-kefu-add-inline="\1"'),
    (re.compile(r"""onclick="return false;\""""), "data-kefu-prevent"),
)


def without_inline_handlers(source: str) -> str:
    """A template's source with every known inline handler turned into its data attribute."""
    for pattern, replacement in HANDLERS:
        source = pattern.sub(replacement, source)
    return source


class HandlerFreeLoader(BaseLoader):
    """The app's template loader, every template read through `without_inline_handlers`."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None,
                                                                           Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        return without_inline_handlers(source), filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


def nonce() -> str:
    """This request's script nonce (Flask-Admin's `csp_nonce_generator`), made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return str(g.csp_nonce)


def policy() -> str:
    """The Content-Security-Policy header for this response."""
    used = g.get("csp_nonce")
    live = current_app.config.get("KEFU_LIVE_ORIGIN", "")  # the workbench's live stream (admin/workbench_live.py)
    return POLICY.format(nonce=f" 'nonce-{used}'" if used else "", live=f" {live}" if live else "")


def install(app: Any) -> None:
    """Read the app's templates through `HandlerFreeLoader` (before any template is loaded)."""
    app.jinja_env.loader = HandlerFreeLoader(app.jinja_env.loader)
