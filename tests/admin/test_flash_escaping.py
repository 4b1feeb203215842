"""Every flash and error message the panel shows escapes the values formatted into it
(issue 23): an agent's name, an imported file's id or name, a campaign's audience, a tag, a
segment filter, a setting typed by an operator. A flask-babel lazy string formatted with a
value is markup to Flask, so `已转给 <img onerror>` used to run in the admin's browser.

Each path is driven with HTML in every value it formats; the page that shows the message
must carry the value as text (escaped), never as markup. Plus two guards for the whole
class: no module of admin/ formats a lazy string with values or flashes through Flask
directly (admin/messages.py is the one way), and a message flashed as markup anyway is shown
as text."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from flask import Flask, flash, render_template_string
from flask_babel import lazy_gettext as _l

from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Campaign, Conversation, CustomerGroup, Tag, UnansweredQuestion
from tests.admin.conftest import Panel
from tests.admin.test_service_views import _settings_form
from tests.factories import make_agent, text

HTML = '<img src=x onerror="alert(1)">'
SVG = "<svg onload=alert(2)>"
NAME = "<img src=x onerror=alert(3)>"  # a file name: no quotes, which multipart would mangle
ADMIN = Path(__file__).resolve().parents[2] / "admin"


def assert_text_not_markup(html: str, *values: str) -> None:
    for value in values:
        assert value not in html, f"{value} rendered as markup"
        assert str(value.replace("&", "&amp;").replace("<", "&lt;")[:12]) in html, f"{value} not shown at all"


def reassign_to_hostile_agent(panel: Panel, dispatcher: Dispatcher) -> str:
    dispatcher.handle(text("visitor-x", "你好"))
    conversation = Conversation.get()
    agent = make_agent("evil")
    agent.display_name = HTML
    agent.save()
    return panel.post("/admin/conversation/reassign/", {"id": conversation.id, "agent_id": agent.id},
                      follow_redirects=True).get_data(as_text=True)


def upload(panel: Panel, body: bytes, name: str) -> str:
    return panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(body), name)},
                      content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)


def import_duplicate_id(panel: Panel, dispatcher: Dispatcher) -> str:
    line = json.dumps({"id": SVG, "questions": ["发货要多久"], "answer": "两天", "category": "物流问题"})
    return upload(panel, f"{line}\n{line}\n".encode(), f"{NAME}.jsonl")


def import_bad_csv_named_with_html(panel: Panel, dispatcher: Dispatcher) -> str:
    return upload(panel, "\ufeffwhat,ever\n1,2\n".encode(), f"{SVG}.csv")


def import_not_utf8(panel: Panel, dispatcher: Dispatcher) -> str:
    return upload(panel, b"\xff\xfe\x00bad", f"{NAME}.jsonl")


def campaign_to_unknown_tag(panel: Panel, dispatcher: Dispatcher) -> str:
    campaign = Campaign.create(name="活动", target_kind="tag", target_value=HTML, content={"text": "hi"},
                               content_kind="text")
    return panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule"},
                      follow_redirects=True).get_data(as_text=True)


def duplicate_tag(panel: Panel, dispatcher: Dispatcher) -> str:
    Tag.create(name=HTML)
    return panel.post("/admin/tag/new/", {"name": HTML, "color": ""}, follow_redirects=True).get_data(as_text=True)


def segment_naming_a_missing_tag(panel: Panel, dispatcher: Dispatcher) -> str:
    return panel.post("/admin/segment/new/", {"name": "坏的", "filter": json.dumps({"tags": [SVG]})},
                      follow_redirects=True).get_data(as_text=True)


def segment_with_unknown_key(panel: Panel, dispatcher: Dispatcher) -> str:
    return panel.post("/admin/segment/new/", {"name": "坏的", "filter": json.dumps({HTML: 1})},
                      follow_redirects=True).get_data(as_text=True)


def settings_with_html_hours(panel: Panel, dispatcher: Dispatcher) -> str:
    return panel.post("/admin/settings/", _settings_form(panel, bh_mon_start=HTML), follow_redirects=True).get_data(
        as_text=True)


def settings_with_html_time_zone(panel: Panel, dispatcher: Dispatcher) -> str:
    return panel.post("/admin/settings/", _settings_form(panel, bh_timezone=SVG), follow_redirects=True).get_data(
        as_text=True)


def group_campaign_to_missing_group(panel: Panel, dispatcher: Dispatcher) -> str:
    CustomerGroup.create(name="真的群", kind="直播群")
    campaign = Campaign.create(name="活动", target_kind="group", target_value=SVG, content={"text": "hi"},
                               content_kind="text")
    return panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule"},
                      follow_redirects=True).get_data(as_text=True)


def promote_with_html_phrasing(panel: Panel, dispatcher: Dispatcher) -> str:
    question = UnansweredQuestion.create(text=HTML)
    return panel.post("/admin/unanswered/promote/", {"ids": str(question.id), "answer": "", "category": SVG},
                      follow_redirects=True).get_data(as_text=True)


PATHS: dict[str, tuple[Callable[[Panel, Dispatcher], str], tuple[str, ...]]] = {
    "reassign: 已转给 <agent>": (reassign_to_hostile_agent, (HTML,)),
    "FAQ import: duplicate id, file name": (import_duplicate_id, (SVG, NAME)),
    "FAQ import: CSV header, file name": (import_bad_csv_named_with_html, (SVG,)),
    "FAQ import: not UTF-8, file name": (import_not_utf8, (NAME,)),
    "campaign: unknown tag": (campaign_to_unknown_tag, (HTML,)),
    "campaign: unknown group": (group_campaign_to_missing_group, (SVG,)),
    "tag: name taken": (duplicate_tag, (HTML,)),
    "segment: missing tag": (segment_naming_a_missing_tag, (SVG,)),
    "segment: unknown key": (segment_with_unknown_key, (HTML,)),
    "settings: business hours": (settings_with_html_hours, (HTML,)),
    "settings: time zone": (settings_with_html_time_zone, (SVG,)),
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_flash_and_error_path_shows_values_as_text(name: str, admin_panel: Panel,
                                                         dispatcher: Dispatcher) -> None:
    drive, values = PATHS[name]
    assert_text_not_markup(drive(admin_panel, dispatcher), *values)


def test_a_refused_promotion_shows_as_text(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    html = promote_with_html_phrasing(admin_panel, dispatcher)
    assert HTML not in html and SVG not in html and "问法和答案都不能为空" in html


def test_a_message_flashed_as_markup_is_still_shown_as_text(app: Flask) -> None:
    """Flask-Admin's own flashes, or a slip in ours: whatever the session carries back is
    shown as text by the panel's templates."""
    with app.test_request_context("/admin/"):
        flash(_l("已转给 %(agent)s", agent=HTML), "success")
        shown = render_template_string("{% for c, m in get_flashed_messages(with_categories=True) %}{{ m }}"
                                       "{% endfor %}|{% for m in get_flashed_messages() %}{{ m }}{% endfor %}")
    assert HTML not in shown and shown.count("&lt;img") == 2


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def test_no_admin_module_formats_a_lazy_string_or_flashes_around_the_helper() -> None:
    offenders: list[str] = []
    for path in sorted(ADMIN.rglob("*.py")):
        if "translations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ADMIN.parent)
        for call in _calls(tree):
            if _name(call) in ("_l", "lazy_gettext", "gettext", "_") and call.keywords:
                offenders.append(f"{where}:{call.lineno}: a translated string formatted with values")
        if path.name == "messages.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "flask" and any(a.name == "flash" for a in node.names):
                offenders.append(f"{where}:{node.lineno}: flask.flash imported (use admin.messages.flash)")
            if isinstance(node, ast.Attribute) and node.attr == "flash" and isinstance(node.value, ast.Name) \
                    and node.value.id == "flask":
                offenders.append(f"{where}:{node.lineno}: flask.flash called (use admin.messages.flash)")
    assert offenders == []


def test_the_helper_formats_plain_text(app: Flask) -> None:
    from markupsafe import Markup

    from admin.messages import text as message_text

    with app.test_request_context("/admin/?lang=en"):
        from admin.app import select_locale

        select_locale()
        shown: Any = message_text(_l("已转给 %(agent)s"), agent=HTML)
        assert type(shown) is str and not isinstance(shown, Markup)
        assert shown == f"Transferred to {HTML}"
