"""A group's members in the panel at the size shops have: a page of their own, paginated and
searchable, with remove; bulk add from the customer list (a selection, or all its filter
matches), a CSV (with the rows that added nobody listed) and a segment. Every POST needs the
CSRF token; customer-written text shows as text."""

from __future__ import annotations

import io
import json
import re

import pytest

from bot.core import clock
from bot.crm.conversations import upsert_customer
from bot.crm import groups
from bot.core.models import Customer, CustomerGroup, GroupMember, Segment
from tests.admin.conftest import Panel

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def group(admin_panel: Panel) -> CustomerGroup:
    return CustomerGroup.create(name="直播粉丝群", kind="直播群")


def people(n: int, prefix: str = "o", **fields: object) -> list[Customer]:
    out = []
    for i in range(n):
        row = upsert_customer("web", f"{prefix}{i:04d}", nickname=f"顾客{prefix}{i}")
        if fields:
            Customer.update(**fields).where(Customer.id == row.id).execute()
        out.append(row)
    return out


def member_ids(group: CustomerGroup) -> list[int]:
    return sorted(m.customer_id for m in GroupMember.select().where(GroupMember.group == group))


def filter_arg(panel: Panel, column: str, operation: str) -> str:
    """The customer list's own argument for a filter, as its filter menu builds the URL."""
    html = panel.get("/admin/customer/").get_data(as_text=True)
    data = json.loads(html.split('id="filter-groups-data" class="d-none">')[1].split("</div>")[0])
    return next(str(f["arg"]) for f in data[column] if f["operation"] == operation)


def page_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'name="customer" value="(\d+)"', html)]


def test_edit_page_no_longer_lists_every_customer(admin_panel: Panel, group: CustomerGroup) -> None:
    crowd = people(30)
    groups.add_ids(group, [c.id for c in crowd])
    html = admin_panel.get(f"/admin/group/edit/?id={group.id}").get_data(as_text=True)
    assert "顾客o0007" not in html and html.count("<option") < 10  # the kinds, not the customers
    assert f"/admin/group/members/?id={group.id}" in html
    listing = admin_panel.get("/admin/group/").get_data(as_text=True)
    assert "30 位 · 管理成员" in listing


def test_members_page_paginates_and_searches(admin_panel: Panel, group: CustomerGroup) -> None:
    crowd = people(120)
    groups.add_ids(group, [c.id for c in crowd])
    first = admin_panel.get(f"/admin/group/members/?id={group.id}").get_data(as_text=True)
    assert len(page_ids(first)) == 50 and "成员 (120)" in first
    third = admin_panel.get(f"/admin/group/members/?id={group.id}&page=2").get_data(as_text=True)
    assert len(page_ids(third)) == 20
    every = set(page_ids(first)) | set(page_ids(third)) | set(
        page_ids(admin_panel.get(f"/admin/group/members/?id={group.id}&page=1").get_data(as_text=True)))
    assert every == {c.id for c in crowd}
    found = admin_panel.get(f"/admin/group/members/?id={group.id}&search=顾客o77").get_data(as_text=True)
    assert page_ids(found) == [crowd[77].id]
    assert admin_panel.get("/admin/group/members/?id=98765").status_code == 302  # no such group


def test_remove_one_and_the_ticked_ones(admin_panel: Panel, group: CustomerGroup) -> None:
    a, b, c, d = people(4)
    groups.add_ids(group, [a.id, b.id, c.id, d.id])
    assert admin_panel.post(f"/admin/group/members/remove/?id={group.id}", {"only": str(a.id)}).status_code == 302
    assert member_ids(group) == [b.id, c.id, d.id]
    admin_panel.post(f"/admin/group/members/remove/?id={group.id}", {"customer": [str(b.id), str(c.id)]})
    assert member_ids(group) == [d.id]
    assert Customer.get_or_none(Customer.id == b.id) is not None  # the customer stays, only the membership goes


def test_every_action_needs_the_csrf_token(admin_panel: Panel, group: CustomerGroup) -> None:
    a, b = people(2)
    groups.add_ids(group, [a.id])
    client = admin_panel.client
    assert client.post(f"/admin/group/members/remove/?id={group.id}", data={"only": str(a.id)}).status_code == 400
    assert client.post("/admin/customer/add-to-group/", data={"group_id": str(group.id)}).status_code == 400
    assert client.post("/admin/customer/add-to-group/", data={
        "group_id": str(group.id), "scope": "selected", "ids": str(b.id)}).status_code == 400
    segment = Segment.create(name="全部", filter={})
    assert client.post(f"/admin/group/members/segment/?id={group.id}",
                       data={"segment_id": str(segment.id)}).status_code == 400
    assert client.post(f"/admin/group/members/csv/?id={group.id}",
                       data={"file": (io.BytesIO(f"{b.id}\n".encode()), "m.csv")},
                       content_type="multipart/form-data").status_code == 400
    assert member_ids(group) == [a.id]


def test_add_the_selection_from_the_customer_list(admin_panel: Panel, group: CustomerGroup) -> None:
    a, b, c = people(3)
    chooser = admin_panel.post("/admin/customer/action/", {"action": "add_to_group", "rowid": [str(a.id), str(b.id)]})
    html = chooser.get_data(as_text=True)
    assert chooser.status_code == 200 and "已选择 2 位顾客" in html and "直播粉丝群" in html
    done = admin_panel.post("/admin/customer/add-to-group/", {"scope": "selected", "ids": f"{a.id},{b.id}",
                                                              "group_id": str(group.id)})
    assert done.status_code == 302 and f"/admin/group/members/?id={group.id}" in done.headers["Location"]
    assert member_ids(group) == [a.id, b.id]
    admin_panel.post("/admin/customer/add-to-group/", {"scope": "selected", "ids": f"{a.id},{b.id}",
                                                       "group_id": str(group.id)})
    assert member_ids(group) == [a.id, b.id]  # twice is once
    assert c.id not in member_ids(group)


def test_add_everyone_the_list_filter_matches(admin_panel: Panel, group: CustomerGroup) -> None:
    vip = people(60, prefix="v", level=2)  # more than one page of the list
    people(5, prefix="p")
    listing = admin_panel.get(f"/admin/customer/?flt0_{filter_arg(admin_panel, '会员等级', '等于')}=2").get_data(as_text=True)
    assert "列表 (60)" in listing or "List (60)" in listing
    link = re.search(r'href="(/admin/customer/add-to-group/\?[^"]+)"', listing)
    assert link, "the list offers to add everything its filter matches"
    url = link.group(1).replace("&amp;", "&")
    chooser = admin_panel.get(url).get_data(as_text=True)
    assert "：60 位" in chooser
    assert admin_panel.post(url, {"group_id": str(group.id)}).status_code == 302
    assert member_ids(group) == sorted(c.id for c in vip)
    searched = admin_panel.get("/admin/customer/?search=顾客p3").get_data(as_text=True)
    url = re.search(r'href="(/admin/customer/add-to-group/\?[^"]+)"', searched).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    admin_panel.post(url, {"group_id": str(group.id)})
    assert len(member_ids(group)) == 61


def test_add_from_a_segment(admin_panel: Panel, group: CustomerGroup) -> None:
    rich = people(3, prefix="r", total_spend=5000)
    people(2, prefix="q")
    segment = Segment.create(name="高消费", filter={"spend_min": 1000})
    response = admin_panel.post(f"/admin/group/members/segment/?id={group.id}", {"segment_id": str(segment.id)})
    assert response.status_code == 302
    assert member_ids(group) == sorted(c.id for c in rich)
    html = admin_panel.get(f"/admin/group/members/?id={group.id}").get_data(as_text=True)
    assert "新增 3 位成员" in html


def test_add_from_csv_reports_the_rows_that_added_nobody(admin_panel: Panel, group: CustomerGroup) -> None:
    a, b = people(2)
    gone = people(1, prefix="g", erased_at=clock.now())[0]
    body = f"客户编号,openid\n{a.id},\n,o0001\n,{XSS}\n{gone.id},\n".encode()
    response = admin_panel.post(f"/admin/group/members/csv/?id={group.id}",
                                {"file": (io.BytesIO(body), "members.csv")}, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert member_ids(group) == [a.id, b.id]
    report = html[html.index('id="member-report"'):]
    assert "找不到这位顾客" in report and "该顾客的资料已删除" in report
    assert ">4<" in report and ">5<" in report  # the lines
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in report


def test_a_bad_csv_names_the_line_and_adds_nobody(admin_panel: Panel, group: CustomerGroup) -> None:
    a, = people(1)
    body = f"{a.id}\n\"{a.id}\"x\n".encode()
    response = admin_panel.post(f"/admin/group/members/csv/?id={group.id}",
                                {"file": (io.BytesIO(body), "members.csv")}, content_type="multipart/form-data",
                                follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "第 2 行" in html and "CSV 格式有误" in html
    assert member_ids(group) == []


def test_customer_written_text_shows_as_text(admin_panel: Panel) -> None:
    group = CustomerGroup.create(name=f"群{XSS}", kind="普通群")
    evil = upsert_customer("web", "evil", nickname=XSS)
    Customer.update(name=XSS, phone=XSS[:32]).where(Customer.id == evil.id).execute()
    groups.add_ids(group, [evil.id])
    pages = [f"/admin/group/members/?id={group.id}", f"/admin/group/members/?id={group.id}&search=%3Cimg",
             "/admin/group/", f"/admin/group/edit/?id={group.id}"]
    for url in pages:
        html = admin_panel.get(url).get_data(as_text=True)
        assert XSS not in html, url
    html = admin_panel.get(f"/admin/group/members/?id={group.id}").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    admin_panel.post(f"/admin/group/members/remove/?id={group.id}", {"only": str(evil.id)})
    flashed = admin_panel.get(f"/admin/group/members/?id={group.id}").get_data(as_text=True)
    assert "已从「群&lt;img" in flashed and XSS not in flashed
    chooser = admin_panel.post("/admin/customer/action/", {"action": "add_to_group", "rowid": [str(evil.id)]})
    assert XSS not in chooser.get_data(as_text=True)


def test_operator_may_manage_members_and_a_visitor_may_not(app, operator_panel: Panel) -> None:  # type: ignore[no-untyped-def]
    group = CustomerGroup.create(name="会员群")
    assert operator_panel.get(f"/admin/group/members/?id={group.id}").status_code == 200
    anonymous = app.test_client()
    response = anonymous.get(f"/admin/group/members/?id={group.id}")
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]


def test_group_member_form_looks_customers_up_instead_of_listing_them(admin_panel: Panel, group: CustomerGroup) -> None:
    crowd = people(30)
    html = admin_panel.get("/admin/groupmember/new/").get_data(as_text=True)
    assert "顾客o0012" not in html and "data-url" in html
    found = admin_panel.get("/admin/groupmember/ajax/lookup/?name=customer&query=o0012").get_json()
    assert [row[0] for row in found] == [crowd[12].id]
    response = admin_panel.post("/admin/groupmember/new/", {"group": str(group.id), "customer": str(crowd[12].id)})
    assert response.status_code == 302 and member_ids(group) == [crowd[12].id]
    again = admin_panel.post("/admin/groupmember/new/", {"group": str(group.id), "customer": str(crowd[12].id)})
    assert "这位顾客已在该群中" in again.get_data(as_text=True)
    listing = admin_panel.get("/admin/groupmember/?sort=0").get_data(as_text=True)  # names loaded per page
    assert "顾客o12" in listing and "直播粉丝群" in listing
