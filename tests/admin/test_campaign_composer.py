"""The campaign composer that cannot misfire (issue 25): the audience picked from a list with
its count, each bad input refused at its field, sending only through a confirmation page that
previews the message and names the count, a test send to one chosen person."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.core import clock
from bot.core.models import Campaign, Coupon, Customer, CustomerGroup, GroupMember, Outbox
from tests.admin.conftest import Panel
from tests.factories import make_agent


def _customers(n: int) -> list[Customer]:
    now = clock.now()
    Customer.insert_many([dict(channel="web", external_id=f"v{i}", nickname=f"顾客{i}", last_inbound_at=now)
                          for i in range(n)]).execute()
    return list(Customer.select().order_by(Customer.id))


def _form(**fields: str) -> dict[str, str]:
    return {"name": "双十二", "audience": "all:", "text": "{nickname}您好", "coupon": "", "run_at": "",
            "repeat": "", "repeat_weekday": "mon", "repeat_day": "1", "repeat_at": "10:00", "cron": "", **fields}


def test_the_audience_is_picked_from_a_list_with_counts(admin_panel: Panel) -> None:
    people = _customers(3)
    group = CustomerGroup.create(name="直播间粉丝", kind="直播群")
    GroupMember.create(group=group, customer=people[0])
    html = admin_panel.get("/admin/campaign/new/").get_data(as_text=True)
    assert f'value="group:{group.id}"' in html and "直播间粉丝 · 直播群（1 人）" in html
    assert "全部顾客（3 人）" in html and 'name="target_value"' not in html
    live = admin_panel.get(f"/admin/campaign/audience/?audience=group:{group.id}").get_json()
    assert live["count"] == 1 and live["paths"]["customer_service"] == 1
    assert admin_panel.get("/admin/campaign/audience/?audience=group:999").status_code == 400


def test_each_bad_input_is_refused_at_its_field(admin_panel: Panel) -> None:
    _customers(1)
    bad = {
        "不存在的群": _form(audience="group:不存在的群"),
        "没有选择要发的券": _form(text="送您 {coupon}"),
        "已经过去": _form(run_at=(clock.now() - timedelta(hours=1)).astimezone(timezone(timedelta(hours=8)))
                      .strftime("%Y-%m-%d %H:%M:%S")),
        "重复发送的时间应为": _form(repeat="weekly", repeat_at="25:61"),
    }
    for says, form in bad.items():
        response = admin_panel.post("/admin/campaign/new/", form)
        assert response.status_code == 200, says  # the form again, not a redirect
        assert says in response.get_data(as_text=True), says
    assert Campaign.select().count() == 0


def test_a_repeat_in_words_is_saved_as_cron_and_shown_in_words(admin_panel: Panel) -> None:
    _customers(1)
    response = admin_panel.post("/admin/campaign/new/", _form(repeat="weekly", repeat_weekday="mon", repeat_at="10:00"))
    assert response.status_code == 302
    campaign = Campaign.get()
    assert campaign.cron == "0 10 * * mon" and campaign.target_kind == "all"
    assert "每周一 10:00" in admin_panel.get("/admin/campaign/").get_data(as_text=True)
    form = admin_panel.get(f"/admin/campaign/edit/?id={campaign.id}").get_data(as_text=True)
    assert '<option selected value="weekly">' in form or 'value="weekly" selected' in form


def test_sending_needs_the_confirmation_naming_the_count(admin_panel: Panel) -> None:
    people = _customers(3)
    group = CustomerGroup.create(name="会员群", kind="会员群")
    for person in people[:2]:
        GroupMember.create(group=group, customer=person)
    coupon = Coupon.create(name="新人券", kind="amount", value=10)
    campaign = Campaign.create(name="会员日", target_kind="group", target_value=str(group.id),
                               content={"text": "{nickname}，送您 {coupon}", "coupon_id": coupon.id})
    details = admin_panel.get(f"/admin/campaign/details/?id={campaign.id}").get_data(as_text=True)
    assert 'name="do-schedule"' not in details and "/admin/campaign/confirm/" in details
    # straight to the change without the confirmation: refused
    admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule"})
    assert Campaign.get_by_id(campaign.id).status == "draft"
    page = admin_panel.get(f"/admin/campaign/confirm/?id={campaign.id}").get_data(as_text=True)
    assert "确认发送给 2 位顾客" in page and "顾客0，送您 K" in page and "{coupon}" in page
    assert admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule",
                                                        "confirm_count": 1, "confirmed": "yes"}).status_code == 302
    assert Campaign.get_by_id(campaign.id).status == "draft"  # the count confirmed is not the count now
    admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule", "confirm_count": 2,
                                                 "confirmed": "yes"})
    assert Campaign.get_by_id(campaign.id).status == "scheduled"


def test_an_empty_group_cannot_be_confirmed(admin_panel: Panel) -> None:
    group = CustomerGroup.create(name="空群", kind="普通群")
    campaign = Campaign.create(name="空", target_kind="group", target_value=str(group.id), content={"text": "你好"})
    page = admin_panel.get(f"/admin/campaign/confirm/?id={campaign.id}").get_data(as_text=True)
    assert "0 人" in page and 'name="do-confirm"' not in page


def test_test_send_to_one_chosen_agent_or_customer(admin_panel: Panel) -> None:
    people = _customers(2)
    first = make_agent("小美", "agent-xm")
    make_agent("阿力", "agent-al")
    campaign = Campaign.create(name="预热", target_kind="all", content={"text": "{nickname}您好"})
    admin_panel.post("/admin/campaign/test-send/", {"id": campaign.id, "to": f"a:{first.id}"})
    assert [r.recipient for r in Outbox.select()] == ["agent-xm"]
    admin_panel.post("/admin/campaign/test-send/", {"id": campaign.id, "to": "all", "customer": str(people[1].id)})
    assert Outbox.select().order_by(Outbox.id.desc()).get().content["text"] == "【测试】顾客1您好"


def test_the_batch_key_is_in_shop_time(admin_panel: Panel) -> None:
    from bot.campaigns import runs

    assert runs.run_key(1, datetime(2026, 12, 6, 21, 20, tzinfo=timezone.utc)) == "campaign:1:2026-12-07T05:20+0800"


def test_the_faq_export_is_named_by_the_shop_day(admin_panel: Panel, fake_clock) -> None:  # type: ignore[no-untyped-def]
    fake_clock.set(datetime(2026, 12, 6, 21, 20, tzinfo=timezone.utc))  # already the 7th in Shanghai
    response = admin_panel.get("/admin/faq-tools/export.csv")
    assert "faq-20261207.csv" in response.headers["Content-Disposition"]


def test_both_forms_load_the_live_count_script(admin_panel: Panel) -> None:
    campaign = Campaign.create(name="预热", target_kind="all", content={"text": "你好"})
    for url in ("/admin/campaign/new/", f"/admin/campaign/edit/?id={campaign.id}"):
        html = admin_panel.get(url).get_data(as_text=True)
        assert "kefu-campaign.js" in html and 'data-count-url="/admin/campaign/audience/"' in html, url
    assert 'value="预热"' in admin_panel.get(f"/admin/campaign/edit/?id={campaign.id}").get_data(as_text=True)
