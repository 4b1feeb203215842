"""Group membership in bulk (bot.crm.groups): idempotent adds from ids, a query, a segment and
a CSV with a per-row report; removal; one page of members with search."""

from __future__ import annotations

import io

import peewee
import pytest

from bot.core import clock
from bot.crm import groups
from bot.core.models import Customer, CustomerGroup, GroupMember, Segment
from tests.bot.crm.helpers import customer


@pytest.fixture
def group(database: peewee.Database) -> CustomerGroup:
    return CustomerGroup.create(name="直播粉丝群", kind="直播群")


def member_ids(group: CustomerGroup) -> list[int]:
    return sorted(m.customer_id for m in GroupMember.select().where(GroupMember.group == group))


def csv_file(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def test_add_ids_is_idempotent_and_skips_erased_and_unknown(group: CustomerGroup) -> None:
    a, b = customer("a"), customer("b")
    gone = customer("gone", erased_at=clock.now())
    first = groups.add_ids(group, [a.id, b.id, gone.id, 999_999])
    assert (first.added, first.already, first.skipped) == (2, 0, 2)
    again = groups.add_ids(group, [a.id, b.id])
    assert (again.added, again.already, again.skipped) == (0, 2, 0)
    assert member_ids(group) == [a.id, b.id]


def test_add_matching_walks_the_query_in_chunks(group: CustomerGroup) -> None:
    vip = [customer(f"v{i}", level=2) for i in range(7)]
    customer("plain")
    report = groups.add_matching(group, Customer.select().where(Customer.level == 2).order_by(Customer.nickname),
                                 chunk=3)
    assert report.added == 7
    assert member_ids(group) == sorted(c.id for c in vip)
    assert groups.add_matching(group, Customer.select().where(Customer.level == 2), chunk=3).already == 7


def test_add_segment_adds_what_the_segment_selects(group: CustomerGroup) -> None:
    rich = customer("rich", total_spend=5000)
    customer("poor", total_spend=10)
    segment = Segment.create(name="高消费", filter={"spend_min": 1000})
    assert groups.add_segment(group, segment).added == 1
    assert member_ids(group) == [rich.id]


def test_remove_takes_only_members_of_this_group_out(group: CustomerGroup) -> None:
    other = CustomerGroup.create(name="会员群")
    a, b = customer("a"), customer("b")
    groups.add_ids(group, [a.id, b.id])
    groups.add_ids(other, [a.id])
    assert groups.remove(group, [a.id, 12345]) == 1
    assert member_ids(group) == [b.id] and member_ids(other) == [a.id]


def test_members_page_paginates_newest_customers_first_and_searches(group: CustomerGroup) -> None:
    people = [customer(f"user-{chr(97 + i)}", nickname=f"顾客{chr(65 + i)}") for i in range(12)]  # no digits
    groups.add_ids(group, [c.id for c in people])
    groups.add_ids(CustomerGroup.create(name="别的群"), [customer("outsider", nickname="顾客Lx").id])
    total, page = groups.members(group, page=0, per_page=5)
    assert total == 12 and [c.id for c, _ in page] == [c.id for c in reversed(people[-5:])]
    _, last = groups.members(group, page=2, per_page=5)
    assert len(last) == 2
    seen = {c.id for c, _ in page} | {c.id for c, _ in groups.members(group, page=1, per_page=5)[1]} | {
        c.id for c, _ in last}
    assert seen == {c.id for c in people}
    assert page[0][1] is not None and page[0][1].tzinfo is not None  # joined_at, an aware time
    total, found = groups.members(group, search="顾客L")
    assert total == 1 and found[0][0].id == people[11].id
    total, found = groups.members(group, search=f"#{people[3].id}")
    assert total == 1 and found[0][0].id == people[3].id  # "#N" is the customer number only
    Customer.update(phone=f"1380000{people[3].id:04d}").where(Customer.id == people[5].id).execute()
    total, found = groups.members(group, search=str(people[3].id))  # the number, or in a phone
    assert sorted(c.id for c, _ in found) == sorted([people[3].id, people[5].id]) and total == 2
    assert groups.members(group, search="user-f")[0] == 1  # the platform id
    Customer.update(nickname="Lucy 露西").where(Customer.id == people[7].id).execute()
    assert [c.id for c, _ in groups.members(group, search="lucy")[1]] == [people[7].id]  # a name ignores case
    assert [c.id for c, _ in groups.members(group, search="露西")[1]] == [people[7].id]
    assert groups.members(group, search="顾客", page=5, per_page=5) == (11, [])  # past the last page
    assert groups.members(group, search="99999999999999999999")[0] == 0  # no overflow on PostgreSQL


def test_csv_of_numbers_and_openids_without_header(group: CustomerGroup) -> None:
    a, b = customer("oA1"), customer("oB2")
    gone = customer("oGone", erased_at=clock.now())
    report = groups.add_csv(group, csv_file(f"{a.id}\n\n#{b.id}\noA1\nnobody\n{gone.id}\n424242\n"))
    assert member_ids(group) == [a.id, b.id]
    assert (report.added, report.already) == (2, 1)  # oA1 is a again
    assert [(p.line, p.value, p.reason) for p in report.problems] == [
        (5, "nobody", "not_found"), (6, str(gone.id), "erased"), (7, "424242", "not_found")]


def test_csv_with_header_channel_and_bom(group: CustomerGroup) -> None:
    web = customer("same-id", channel="web")
    mp = customer("same-id", channel="mp")
    text = "\ufeff渠道,openid,备注\nmp,same-id,x\n,same-id,ambiguous without a channel\nweb,missing,\n"
    report = groups.add_csv(group, csv_file(text))
    assert member_ids(group) == [mp.id]
    assert [(p.line, p.reason) for p in report.problems] == [(3, "ambiguous"), (4, "not_found")]
    assert web.id not in member_ids(group)


def test_csv_number_column_refuses_what_is_not_a_number(group: CustomerGroup) -> None:
    a = customer("a")
    report = groups.add_csv(group, csv_file(f"客户编号\n{a.id}\nabc\n"))
    assert member_ids(group) == [a.id]
    assert [(p.line, p.value, p.reason) for p in report.problems] == [(3, "abc", "not_a_number")]


def test_gb18030_file_from_excel_is_read(group: CustomerGroup) -> None:
    a = customer("a")
    assert groups.add_csv(group, csv_file(f"客户编号,姓名\n{a.id},张三\n", "gb18030")).added == 1


@pytest.mark.parametrize(("data", "line", "reason"), [
    (b"", 0, "empty"),
    (b"\n\n", 0, "empty"),
    ("渠道,备注\nmp,x\n".encode(), 1, "no_id_column"),
    (b"1\n2\n\xff\xfe\xfa\n", 3, "not_text"),
    (b'1\n2\n"3"x\n', 3, "bad_csv"),
    (b"PK\x03\x04\x14\x00\x06\x00", 1, "binary"),
])
def test_a_bad_file_names_the_line_and_adds_nobody(group: CustomerGroup, data: bytes, line: int, reason: str) -> None:
    customer("a"), customer("b")
    with pytest.raises(groups.MemberFileError) as caught:
        groups.add_csv(group, io.BytesIO(data))
    assert (caught.value.line, caught.value.reason) == (line, reason)
    assert member_ids(group) == []


def test_a_big_report_keeps_its_first_rows_and_counts_all(group: CustomerGroup) -> None:
    text = "".join(f"nobody-{i}\n" for i in range(groups.REPORT_LIMIT + 20))
    report = groups.add_csv(group, csv_file(text), chunk=100)
    assert report.problem_count == groups.REPORT_LIMIT + 20 and len(report.problems) == groups.REPORT_LIMIT
