"""The panel's Content-Security-Policy has no 'unsafe-inline' for scripts (issue 23), and
no page needs it: no template the panel renders (ours or Flask-Admin's, as the loader
serves them) carries an inline event handler or a script without a nonce, and no page
served carries one either."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from tests.admin.conftest import Panel
from tests.admin.test_access import get_urls, shop  # noqa: F401  (the fixture)

INLINE_HANDLER = re.compile(r"""\son[a-z]+\s*=\s*["']""", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def policy(headers: Any) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))


def test_scripts_only_from_the_panel_and_never_inline(admin_panel: Panel) -> None:
    response = admin_panel.get("/admin/faq/")
    scripts = policy(response.headers)["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert scripts[0] == "'self'" and all(s == "'self'" or s.startswith("'nonce-") for s in scripts)
    nonce = next(s for s in scripts if s.startswith("'nonce-"))[7:-1]
    again = policy(admin_panel.get("/admin/faq/").headers)["script-src"]
    assert nonce not in again  # a new nonce per response
    html = response.get_data(as_text=True)
    assert f'nonce="{nonce}"' in html and "kefu-panel.js" in html


def test_no_template_the_panel_loads_has_an_inline_handler_or_script(app: Flask) -> None:
    env = app.jinja_env
    found = []
    for name in env.list_templates():
        if not name.endswith(".html"):
            continue
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        found += [f"{name}: {m.group(0)}" for m in INLINE_HANDLER.finditer(source)]
        found += [f"{name}: {m.group(0)}" for m in INLINE_SCRIPT.finditer(source)
                  if "admin_csp_nonce_attribute" not in m.group(0)]
    assert found == []


def test_no_page_the_panel_serves_has_an_inline_handler_or_script(admin_panel: Panel, app: Flask,
                                                                   shop: None) -> None:  # noqa: F811
    pages = 0
    for url in get_urls(app) + ["/admin/faq/new/", "/admin/customer/edit/?id=1", "/admin/faq/edit/?id=1"]:
        response = admin_panel.get(url)
        if response.status_code != 200 or not response.mimetype == "text/html":
            continue
        pages += 1
        html = response.get_data(as_text=True)
        assert not INLINE_HANDLER.search(html), (url, INLINE_HANDLER.search(html))
        nonce = policy(response.headers)["script-src"].split("'nonce-")[-1].rstrip("'")
        for tag in INLINE_SCRIPT.findall(html):
            assert f'nonce="{nonce}"' in tag, (url, tag)
    assert pages > 40


def test_flask_admins_clicks_become_data_attributes(admin_panel: Panel) -> None:
    from tests.factories import make_faq

    make_faq("两天", ["发货要多久"])
    listing = admin_panel.get("/admin/faq/").get_data(as_text=True)
    assert 'data-kefu-action="disable"' in listing and "data-kefu-confirm=" in listing
    from bot.core.models import Customer

    customer = Customer.create(channel="web", external_id="csp-1", nickname="小王")
    editor = admin_panel.get(f"/admin/customer/edit/?id={customer.id}").get_data(as_text=True)
    assert 'data-kefu-add-inline="tag_links"' in editor  # the FAQ editor's phrasings are one textarea now
