"""The campaign page after a crash: progress with the sends in doubt, and the "resend the
ones in doubt" action, which goes through only with its risk acknowledged; before sending,
who each path would reach."""

from __future__ import annotations

from bot.campaigns import runs
from bot.core import clock
from bot.core.models import Campaign, Customer, Delivery, Outbox
from jobs import campaigns as campaign_jobs
from tests.admin.conftest import Panel


def _campaign_with_sends_in_doubt(n: int = 4) -> Campaign:
    now = clock.now()
    Customer.insert_many([dict(channel="web", external_id=f"v{i}", last_inbound_at=now) for i in range(n)]).execute()
    campaign = Campaign.create(name="双十二", target_kind="all", content_kind="text", content={"text": "预售开始"})
    runs.schedule(campaign)
    campaign_jobs.wanted("Asia/Shanghai")
    assert runs.drive(campaign.id, {"web": "web"}, max_backlog=0) == "sending"
    # what a sender that died mid-call leaves, once its claims are settled (bot/sending/outbox.py)
    Outbox.update(status="in_doubt", last_error="attempted, outcome unknown").execute()
    assert runs.drive(campaign.id, {"web": "web"}, max_backlog=0) == "done"
    return Campaign.get_by_id(campaign.id)


def test_sends_in_doubt_are_counted_and_resent_only_with_the_risk_acknowledged(admin_panel: Panel) -> None:
    campaign = _campaign_with_sends_in_doubt()
    html = admin_panel.get(f"/admin/campaign/details/?id={campaign.id}").get_data(as_text=True)
    assert '<td id="count-in_doubt">4</td>' in html and '<td id="count-queued">0</td>' in html
    assert 'name="do-resend-in-doubt"' in html and "会再收到一次" in html  # says what it risks
    listed = admin_panel.get("/admin/campaign/").get_data(as_text=True)
    assert "结果未知 4" in listed
    refused = admin_panel.post("/admin/campaign/resend-in-doubt/", {"id": campaign.id}, follow_redirects=True)
    assert refused.status_code == 200 and "请先勾选确认" in refused.get_data(as_text=True)
    assert Outbox.select().where(Outbox.status == "in_doubt").count() == 4  # nothing resent
    admin_panel.post("/admin/campaign/resend-in-doubt/", {"id": campaign.id, "accept_risk": "yes"})
    assert Outbox.select().where(Outbox.status == "pending").count() == 4
    assert {d.status for d in Delivery.select()} == {"claimed"}
    assert Campaign.get_by_id(campaign.id).status == "running"  # not done while they are queued
    html = admin_panel.get(f"/admin/campaign/details/?id={campaign.id}").get_data(as_text=True)
    assert '<td id="count-queued">4</td>' in html and 'name="do-resend-in-doubt"' not in html


def test_the_page_shows_who_each_path_would_reach_before_sending(admin_panel: Panel) -> None:
    Customer.insert_many([dict(channel="web", external_id=f"v{i}") for i in range(3)]).execute()
    Customer.update(blocked=True).where(Customer.external_id == "v0").execute()
    campaign = Campaign.create(name="上新", target_kind="all", content_kind="text", content={"text": "上新了"})
    html = admin_panel.get(f"/admin/campaign/details/?id={campaign.id}").get_data(as_text=True)
    assert '<td id="path-customer_service">2</td>' in html and '<td id="path-mass">0</td>' in html
