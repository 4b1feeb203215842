"""A group of 100,000 members: the admin pages that show it, adding 100,000 customers from the
customer list's filter, and planning a campaign's deliveries to the group.

Why this shape: the issue's figures are the operator's (issue 24: the old group page grew with
the square of its members, 200 members was 1.8 MB and 1.75 s), so the bench drives the panel
itself (Flask's test client in this process, logged in, CSRF tokens and all: the time is the
server's, without a network) on a database of its own, and plans through the campaigns' own
`bot.campaigns.fanout.plan` under tracemalloc, at the full size and at a tenth of it, so a Python heap
that grows with the audience would show.

    .venv/bin/python bench/group_scale.py                       # SQLite (a temporary file)
    .venv/bin/python bench/group_scale.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/group_scale.py --members 20000       # quicker

It prints one JSON object: the seconds and size of each admin page (its first load, and the
slowest of 3 more), the bulk add of every customer the list's filter matches (and the same
add again, which adds nobody), a CSV of the members' openids added to a second group, and
the plan's seconds and Python heap peak for both sizes.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.webhook import drop_schema, pg_schema_url  # noqa: E402  (a scratch schema on PostgreSQL)

SEED_BATCH = 2000


def seed(members: int, others: int) -> None:
    """`members` VIP2 customers (the filter's match) and `others` at level 0, on a 公众号 channel."""
    from bot.core import clock
    from bot.core.db import transaction
    from bot.core.models import Customer

    now = clock.now()
    total = members + others
    for start in range(0, total, SEED_BATCH):
        rows = [(("mp", f"o{i:08d}", f"顾客{i}", 2 if i < members else 0, now, now, now))
                for i in range(start, min(start + SEED_BATCH, total))]
        with transaction():
            Customer.insert_many(rows, fields=[Customer.channel, Customer.external_id, Customer.nickname,
                                               Customer.level, Customer.first_contact_at, Customer.last_contact_at,
                                               Customer.last_inbound_at]).execute()


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def page(panel: Any, url: str, repeat: int = 3) -> dict[str, Any]:
    """The first load of `url` (its template compiled, the process's caches cold), the slowest
    of `repeat` loads after it, and its size."""
    loads = []
    for _ in range(repeat + 1):
        seconds, response = timed(lambda: panel.get(url))
        assert response.status_code == 200, (url, response.status_code)
        loads.append(seconds)
    return {"first_s": round(loads[0], 3), "then_s": round(max(loads[1:]), 3),
            "kb": round(len(response.get_data()) / 1024, 1)}


def plan(group_id: int, label: str, heap: bool) -> dict[str, Any]:
    """Plan a text campaign to the group through bot.campaigns.fanout; with `heap`, under tracemalloc
    (which slows Python down several times: its seconds are not the plan's speed)."""
    from bot.campaigns import targets as campaign_targets
    from bot.campaigns import fanout
    from bot.core.models import Campaign, Delivery

    campaign = Campaign.create(name=f"群发 {label}", target_kind="group", target_value=str(group_id),
                               content_kind="text", content={"text": "{nickname}您好"}, status="draft")
    key = f"bench:{campaign.id}"
    if heap:
        tracemalloc.start()
    seconds, (planned, complete) = timed(lambda: fanout.plan(key, campaign_targets.targets(campaign), campaign.id))
    figures = {"recipients": planned, "seconds": round(seconds, 2)}
    if heap:
        figures["python_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 2)
        tracemalloc.stop()
    assert complete and Delivery.select().where(Delivery.job_key == key).count() == planned
    return figures


def run(members: int, database_url: str, data_dir: Path) -> dict[str, Any]:
    from admin import users
    from admin.app import create_app
    from bot.core import db, migrations
    from bot.core.config import Config, DatabaseConfig
    from bot.crm import groups
    from bot.core.models import CustomerGroup
    from tests.admin.conftest import PASSWORD, Panel, login
    from tests.admin.test_group_members import filter_arg

    db.connect(database_url)
    migrations.upgrade()
    seed_s, _ = timed(lambda: seed(members, members // 10))
    users.create_user("bench", PASSWORD, "admin")
    app = create_app(Config(data_dir=str(data_dir), database=DatabaseConfig(url=database_url)), testing=True)
    client = app.test_client()
    assert login(client, "bench").status_code == 302
    panel = Panel(client)
    group = CustomerGroup.create(name="双十二 VIP2", kind="会员群")

    listing_url = f"/admin/customer/?flt0_{filter_arg(panel, '会员等级', '等于')}=2"
    pages = {"customer list, filtered": page(panel, listing_url)}
    found = re.search(r'href="(/admin/customer/add-to-group/\?[^"]+)"', panel.get(listing_url).get_data(as_text=True))
    assert found, "the customer list offers no add-all-matching link"
    add_url = found.group(1).replace("&amp;", "&")
    pages["add to group: choose (counts the matches)"] = page(panel, add_url)
    add_s, response = timed(lambda: panel.post(add_url, {"group_id": str(group.id)}))
    assert response.status_code == 302 and groups.member_count(group) == members, groups.member_count(group)
    again_s, _ = timed(lambda: panel.post(add_url, {"group_id": str(group.id)}))
    assert groups.member_count(group) == members

    last_page = (members - 1) // 50
    for name, url in [
        ("group list", "/admin/group/"),
        ("group edit", f"/admin/group/edit/?id={group.id}"),
        ("members, first page", f"/admin/group/members/?id={group.id}"),
        ("members, last page", f"/admin/group/members/?id={group.id}&page={last_page}"),
        ("members, search a nickname", f"/admin/group/members/?id={group.id}&search=顾客{members // 2}"),
        ("members, search a number", f"/admin/group/members/?id={group.id}&search=%23{members // 3}"),
        ("all group members list", "/admin/groupmember/"),
        ("group member form (customer looked up)", "/admin/groupmember/new/"),
    ]:
        pages[name] = page(panel, url)

    csv_group = CustomerGroup.create(name="CSV 导入", kind="普通群")
    body = "openid\n" + "".join(f"o{i:08d}\n" for i in range(members)) + "nobody\n"
    csv_s, response = timed(lambda: panel.post(f"/admin/group/members/csv/?id={csv_group.id}",
                                               {"file": (io.BytesIO(body.encode()), "members.csv")},
                                               content_type="multipart/form-data"))
    assert response.status_code == 200 and groups.member_count(csv_group) == members

    tenth = CustomerGroup.create(name="十分之一", kind="普通群")
    groups.add_ids(tenth, range(1, members // 10 + 1))
    return {
        "database": database_url.split(":", 1)[0],
        "members": members,
        "customers": members + members // 10,
        "seed_seconds": round(seed_s, 1),
        "pages": pages,
        "slowest_page_seconds": max(max(v["first_s"], v["then_s"]) for v in pages.values()),
        "bulk_add_from_filter_seconds": round(add_s, 2),
        "bulk_add_again_seconds (adds nobody)": round(again_s, 2),
        "csv_of_openids_seconds": round(csv_s, 2),
        "plan_campaign_to_group": plan(group.id, "full", heap=False),
        "plan_campaign_to_group_under_tracemalloc": plan(group.id, "full, heap", heap=True),
        "plan_campaign_to_a_tenth_under_tracemalloc": plan(tenth.id, "tenth, heap", heap=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or a postgresql:// URL")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kefu-group-scale-"))
    schema = ""
    url = f"sqlite:///{tmp / 'kefu.db'}"
    if args.database != "sqlite":
        url, schema = pg_schema_url(args.database)
    try:
        print(json.dumps(run(args.members, url, tmp / "data"), ensure_ascii=False, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if schema:
            from bot.core.db import database

            database.close()
            drop_schema(args.database, schema)


if __name__ == "__main__":
    main()
