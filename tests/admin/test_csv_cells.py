"""CSV exports a spreadsheet opens as text (issue 23): a customer's question that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return is not run as a formula, and the panel's
importer reads its own export back unchanged."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask

from admin.faq_csv import parse_csv, to_csv
from admin.spreadsheet import RISKY, neutralise, restore
from bot.core.models import Faq, Synonym
from tests.admin.conftest import Panel
from tests.factories import make_faq

FORMULAS = ('=HYPERLINK("http://evil.example","点我")', "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1",
            "'=already quoted", "''", "'")


def cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_no_exported_cell_starts_like_a_formula() -> None:
    records = [{"id": "-7", "category": "@分类", "answer": "=1+1", "questions": ["+86 电话多少", "=第二个"]}]
    rows = cells(to_csv(records))
    assert rows[1] == ["'-7", "'@分类", "'=1+1", "'+86 电话多少\n=第二个"]
    for row in rows[1:]:
        assert not any(cell.startswith(RISKY) for cell in row)


@pytest.mark.parametrize("value", FORMULAS + ("发货要多久", "", "a'b", "1-2"))
def test_restore_gives_back_what_neutralise_was_given(value: str) -> None:
    assert restore(neutralise(value)) == value
    assert not neutralise(value).startswith(RISKY)


def test_the_importer_reads_its_own_export_back(admin_panel: Panel) -> None:
    make_faq("=IMPORTXML(\"http://evil\")", ["=1+1 是多少", "@客服 在吗"], "+加急")
    make_faq("-5 元优惠", ["'引号开头", "普通问法"])
    Faq.update(external_id=Faq.id.cast("text")).execute()  # as the panel's own FAQs have
    before = [(f.answer, f.category, sorted(q.text for q in f.questions)) for f in Faq.select().order_by(Faq.id)]
    body = admin_panel.get("/admin/faq-tools/export.csv").data
    assert all(not cell.startswith(RISKY) for row in cells(body)[1:] for cell in row)
    records = parse_csv(body)
    assert [(r.answer, r.category, sorted(r.questions)) for r in records] == before
    response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(body), "faq.csv")},
                                content_type="multipart/form-data", follow_redirects=True)
    assert "未变 2 条" in response.get_data(as_text=True)  # read back exactly: nothing to update


def test_flask_admin_exports_are_neutralised_too(app: Flask, admin_panel: Panel) -> None:
    """No model view exports today (`can_export`); one that does writes safe cells."""
    Synonym.create(canonical="=cmd|' /C calc'!A0", variants="+x")
    view: Any = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "synonym")
    with app.test_request_context("/admin/synonym/"):
        row = Synonym.get()
        assert view.get_export_value(row, "canonical") == "'=cmd|' /C calc'!A0"
        assert view.get_export_value(row, "variants") == "'+x"
