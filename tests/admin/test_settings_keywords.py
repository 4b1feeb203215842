"""The settings page warns when a handoff keyword overlaps an FAQ phrasing (issue 25)."""

from __future__ import annotations

from tests.admin.conftest import Panel
from tests.factories import make_faq


def test_a_keyword_inside_an_faq_phrasing_is_warned(admin_panel: Panel) -> None:
    assert 'id="keyword-overlaps"' not in admin_panel.get("/admin/settings/").get_data(as_text=True)
    make_faq("人工客服工作时间为每天9:00-23:00", ["客服几点上班", "营业时间"])
    html = admin_panel.get("/admin/settings/").get_data(as_text=True)
    assert 'id="keyword-overlaps"' in html and "「客服几点上班」含关键词「客服」" in html and "营业时间" not in html
