"""Every admin page, walked in Chinese and in English (issue 25's small visible defects): no
search box reads "None", no page shows its title twice, and no English page keeps a Chinese
label.

Why walk the registered URLs instead of a list: a view added tomorrow is walked too. Why
stored data is read from the database: what operators and customers wrote (FAQ answers,
tags, messages) may be Chinese on an English page; everything else is a label.
"""

from __future__ import annotations

import json
import re
from typing import Any

import peewee
from flask import Flask

from bot.core import settings
from bot.core.models import ALL_MODELS
from tests.admin.conftest import Panel
from tests.admin.test_access import SAMPLE_ARGS, shop  # noqa: F401 (the demo shop, a fixture)

CJK = re.compile(r"[\u3400-\u9fff]+")
# What an English page may still show in Chinese: the product's name and the link back to Chinese.
ALLOWED = {"客服后台", "中文"}
# Not shown as labels: scripts, the filters' JSON (its labels are checked as rendered), stored keys in value="…".
SKIP = re.compile(r"<script.*?</script>|<div id=\"filter-groups-data\".*?</div>|\svalue=\"[^\"]*\"", re.S)


def stored_text() -> str:
    """Every text the database holds, and every setting's value: the data a page may show."""
    parts: list[str] = []
    for model in ALL_MODELS:
        fields = [f for f in model._meta.sorted_fields if isinstance(f, (peewee.CharField, peewee.TextField))]
        if fields:
            parts += [str(v) for row in model.select(*fields).tuples() for v in row if v]
    parts += [json.dumps(settings.get(k), ensure_ascii=False) for k in settings.DEFAULTS]
    return "\n".join(parts)


def labels_left(page: str, stored: str) -> list[str]:
    """Chinese text on the page that is not stored data."""
    return sorted({m for m in CJK.findall(SKIP.sub(" ", page)) if m not in ALLOWED and m not in stored})


def headings(page: str) -> list[str]:
    """The headings of the page (Flask-Admin's h4 title and ours), tags dropped."""
    return [re.sub(r"<[^>]+>|\s+", " ", h).strip() for h in re.findall(r"<h[1-4][^>]*>(.*?)</h[1-4]>", page, re.S)]


def page_urls(app: Flask) -> list[str]:
    """Every GET URL under /admin (list, create, details and edit with a row, custom pages);
    one with an argument the walk has no sample for is another test's to fill in."""
    urls = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "GET" not in rule.methods or rule.endpoint.endswith("static"):
            continue
        if rule.rule.endswith("/ajax/lookup/") or not set(rule.arguments) <= set(SAMPLE_ARGS):
            continue
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<{name}>", SAMPLE_ARGS[name])
        urls.add(url + "?id=1" if url.endswith(("/details/", "/edit/")) else url)
    return sorted(urls)


def walk(app: Flask, panel: Panel, lang: str) -> dict[str, str]:
    """Every HTML page a GET reaches, by URL."""
    pages = {}
    for url in page_urls(app):
        response = panel.get(f"{url}{'&' if '?' in url else '?'}lang={lang}", follow_redirects=True)
        assert response.status_code == 200, url
        if response.mimetype == "text/html":
            pages[url] = response.get_data(as_text=True)
    return pages


def test_every_page_in_both_languages(app: Flask, admin_panel: Panel, shop: None) -> None:
    problems = []
    stored = stored_text()
    for lang in ("zh", "en"):
        pages = walk(app, admin_panel, lang)
        assert len(pages) > 50
        for url, page in pages.items():
            if re.search(r'placeholder="(None)?"', page):
                problems.append(f"{lang} {url}: search box placeholder None")
            heads = [h for h in headings(page) if h]
            if len(heads) != len(set(heads)):
                problems.append(f"{lang} {url}: a title twice {heads}")
            if lang == "en" and (left := labels_left(page, stored)):
                problems.append(f"en {url}: Chinese labels {left[:8]}")
    assert problems == [], "\n".join(problems)



def test_the_panel_serves_a_favicon_without_login(app: Flask) -> None:
    response = app.test_client().get("/favicon.ico")
    assert response.status_code == 200 and response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file


async def test_the_webhook_server_serves_the_same_favicon(aiohttp_client: Any, config: Any, database: Any) -> None:
    from adapters.server import FAVICON, create_app as create_server

    client = await aiohttp_client(create_server(config, run_sender=False))
    response = await client.get("/favicon.ico")
    assert response.status == 200 and response.content_type == "image/x-icon"
    assert await response.read() == FAVICON.read_bytes()
