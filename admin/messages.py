"""Translated messages as plain text: the one way the panel flashes or shows a message.

Why: a flask-babel lazy string has `__html__`, so Flask (the session's flash store) and Jinja
take it as safe markup, and a value formatted into it reached the page unescaped: an agent
named `<img onerror=…>` ran script in the admin's browser through `已转给 …`, an imported
file's id through the import error (issue 23). Here the message is translated now, in the
request's language, and the values are formatted in as plain `str`, which Jinja escapes like
any other text. Mark the msgid with `_l` (so the catalog finds it) and pass the values here:

    flash(_l("已转给 %(agent)s"), "success", agent=agent)

`flashed_messages` replaces Flask's `get_flashed_messages` in the panel's templates, so
whatever a flash carries back (Flask-Admin's own, or a slip) is shown as text too.
"""

from __future__ import annotations

from typing import Any

import flask


def text(message: Any, **values: Any) -> str:
    """`message` (a msgid marked with `_l`, or any text) in the request's language with
    `values` formatted in (`%(name)s`), as a plain `str`: never markup."""
    template = str(message)
    if not values:
        return template
    return template % {name: str(value) for name, value in values.items()}


def flash(message: Any, category: str = "message", **values: Any) -> None:
    """Flash `message` with `values` (see `text`) for the next page."""
    flask.flash(text(message, **values), category)


def flashed_messages(with_categories: bool = False, category_filter: Any = ()) -> list[Any]:
    """Flask's `get_flashed_messages` for the templates, each message plain text (escaped
    when shown), whatever type it was flashed with."""
    found = flask.get_flashed_messages(with_categories=with_categories, category_filter=category_filter)
    if with_categories:
        return [(category, text(message)) for category, message in found]
    return [text(message) for message in found]
