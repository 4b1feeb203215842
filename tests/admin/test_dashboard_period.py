"""The dashboard's shop figures for a chosen range (admin/dashboard_period.py): the page
shows what the hand-counted history in tests/bot/agents/test_kpi_shop.py says, and a bad range is
refused with a clear message instead of a 500."""

from __future__ import annotations

import re

from tests.admin.conftest import Panel
from tests.bot.agents.test_kpi_shop import history  # noqa: F401 (the seeded history, a fixture)


def kpi(page: str, name: str) -> str:
    found = re.search(rf'data-kpi="{name}">([^<]*)<', page)
    assert found, name
    return found.group(1).strip()


def test_the_range_shows_the_hand_counted_figures(admin_panel: Panel, history: object) -> None:  # noqa: F811
    page = admin_panel.get("/admin/?from=2026-11-23&to=2026-11-24").get_data(as_text=True)
    assert kpi(page, "customers") == "3"
    assert kpi(page, "self_service_rate") == "50.0%"
    assert kpi(page, "handoff_rate") == "66.7%"
    assert kpi(page, "first_response_median") == "1.0 分钟"  # 60 s
    assert kpi(page, "first_response_p90") == "1.7 分钟"
    assert (kpi(page, "csat"), kpi(page, "rated")) == ("4.0", "3")
    counts = dict(re.findall(r'data-hour="(\d+)" data-count="(\d+)"', page))
    assert (counts["10"], counts["14"], counts["23"], counts["3"]) == ("4", "1", "1", "0")
    assert 'id="period-error"' not in page
    # one day only: the 24th has b at 14:00 and c at 23:30
    day = admin_panel.get("/admin/?from=2026-11-24&to=2026-11-24").get_data(as_text=True)
    assert kpi(day, "customers") == "2"


def test_a_bad_range_is_refused_with_a_message(admin_panel: Panel) -> None:
    for query, message in (("from=2026-13-01", "日期格式应为"), ("from=2026-11-24&to=2026-11-23", "结束日期早于开始日期"),
                           ("from=2020-01-01&to=2026-01-01", "日期范围最长 366 天"), ("to=<script>", "日期格式应为"),
                           ("from=0001-01-01", "日期格式应为")):
        response = admin_panel.get(f"/admin/?{query}")
        page = response.get_data(as_text=True)
        assert response.status_code == 200, query
        assert message in page and 'id="period-error"' in page, query
        assert "<script>" not in page.split('id="period-form"')[1].split("</form>")[0], query


def test_the_range_in_english(admin_panel: Panel) -> None:
    page = admin_panel.get("/admin/?lang=en&from=2026-11-24&to=2026-11-23").get_data(as_text=True)
    assert "Self-service rate" in page and "The end date is before the start date" in page
