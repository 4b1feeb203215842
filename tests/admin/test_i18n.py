"""Chinese by default (Flask-Admin's zh_Hans_CN catalog and ours), English on request, and
our English catalog complete and compiled."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import read_mo

import admin.translations.en as en
from tests.admin.conftest import Panel

MO = Path(en.__file__).parent / "en" / "LC_MESSAGES" / "messages.mo"


def test_chinese_by_default_english_on_request(admin_panel: Panel) -> None:
    zh = admin_panel.get("/admin/faq/").get_data(as_text=True)
    assert "知识库" in zh and "创建" in zh  # ours, and Flask-Admin's own zh_Hans_CN
    english = admin_panel.get("/admin/faq/?lang=en").get_data(as_text=True)
    assert "Knowledge base" in english and "Create" in english and "Phrasings" in english
    assert "Knowledge base" in admin_panel.get("/admin/").get_data(as_text=True)  # the choice sticks
    back = admin_panel.get("/admin/?lang=zh_Hans_CN").get_data(as_text=True)
    assert "数据看板" in back


def test_every_string_has_english_and_the_catalog_is_compiled() -> None:
    missing = [msgid for msgid in en.extract() if msgid not in en.EN]
    assert missing == [], "add English to admin/translations/en.py, then run python -m admin.translations.en"
    with open(MO, "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    assert compiled == {m: en.EN[m] for m in en.extract()}, "stale: run python -m admin.translations.en"


def test_every_column_a_list_or_detail_page_shows_has_a_chinese_label(app) -> None:  # type: ignore[no-untyped-def]
    """Flask-Admin names an unlabelled column after the field ("Run Key", "Created At"): in the
    Chinese panel every column shown needs its own label."""
    from flask_admin.model import BaseModelView

    unlabelled = []
    with app.test_request_context("/admin/"):
        for view in app.extensions["admin"][0]._views:
            if isinstance(view, BaseModelView):
                for name, label in [*view.get_list_columns(), *view.get_details_columns()]:
                    if name != "id" and str(label) == view._prettify_name(name):
                        unlabelled.append(f"{view.endpoint}.{name}")
    assert unlabelled == []
