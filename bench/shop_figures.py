"""The dashboard's shop figures (bot.agents.kpi_shop) over 100,000 conversations.

Why: issue 25 asks for 咨询人数, 自助解决率, 转人工率, first response and CSAT over any date
range, computed in SQL so they stay fast however busy the shop. This seeds a scratch database
with `--conversations` conversations (a third handed off, a fifth rated) and two customer
messages each over 30 days, then times `figures` and `hours_of_day` for the last 7 days and
for all 30 (the slowest of `--repeat` runs each), and the whole dashboard page through the
panel (Flask's test client, logged in).

    .venv/bin/python bench/shop_figures.py                       # SQLite (a temporary file)
    .venv/bin/python bench/shop_figures.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/shop_figures.py --conversations 20000 # quicker

It prints one JSON object: the row counts, and the seconds of each call.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.crash_send import scratch_database  # noqa: E402

BATCH = 2000


def seed(conversations: int, now: datetime) -> dict[str, int]:
    from bot.core.db import transaction
    from bot.core.models import Conversation, Customer, Message

    rng = random.Random(25)
    customers = max(conversations // 2, 1)
    with transaction():
        for start in range(0, customers, BATCH):
            Customer.insert_many([{"channel": "web", "external_id": f"b{i}", "nickname": f"顾客{i}",
                                   "is_spam": i % 97 == 0} for i in range(start, min(start + BATCH, customers))]).execute()
    ids = [c for (c,) in Customer.select(Customer.id).tuples()]
    rows, msgs = [], []
    for n in range(conversations):
        opened = now - timedelta(seconds=rng.randint(0, 30 * 86400))
        human = n % 3 == 0
        after = lambda low, high: opened + timedelta(seconds=rng.randint(low, high)) if human else None  # noqa: E731
        # every row names every column: insert_many takes its columns from the first row
        row: dict[str, Any] = {"customer": ids[n % len(ids)], "channel": "web", "opened_at": opened,
                               "last_message_at": opened, "status": "resolved", "resolved_at": opened + timedelta(minutes=9),
                               "queued_at": opened if human else None, "assigned_at": after(0, 60),
                               "first_response_at": after(70, 600), "handoff_reason": "requested" if human else "",
                               "satisfaction": rng.randint(1, 5) if n % 5 == 0 else None}
        rows.append(row)
        for k in range(2):
            msgs.append({"channel": "web", "external_id": f"b{n}-{k}", "customer": row["customer"], "direction": "in",
                         "author": "customer", "text": "发货要多久", "created_at": opened + timedelta(seconds=k)})
    with transaction():
        for start in range(0, len(rows), BATCH):
            Conversation.insert_many(rows[start:start + BATCH]).execute()
        for start in range(0, len(msgs), BATCH):
            Message.insert_many(msgs[start:start + BATCH]).execute()
    return {"customers": customers, "conversations": conversations, "messages": len(msgs)}


def slowest(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(max(times), 4)


def run(conversations: int, database: str, repeat: int) -> dict[str, Any]:
    from bot.agents import kpi_shop
    from bot.core import db, migrations, settings
    from bot.core.config import Config, DatabaseConfig

    with tempfile.TemporaryDirectory() as tmp, scratch_database(database, Path(tmp)) as url:
        bound = db.connect(url)
        migrations.upgrade()
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        counts = seed(conversations, now)
        seeded = round(time.perf_counter() - started, 1)
        zone = settings.shop_zone()
        today = now.astimezone(zone).date()
        out: dict[str, Any] = {"database": "postgresql" if db.is_postgres() else "sqlite", **counts,
                               "seed_seconds": seeded}
        for days in (7, 30):
            start, end = kpi_shop.local_range(today - timedelta(days=days - 1), today, zone)
            out[f"figures_{days}d_seconds"] = slowest(lambda: kpi_shop.figures(start, end), repeat)
            out[f"hours_{days}d_seconds"] = slowest(lambda: kpi_shop.hours_of_day(start, end, zone), repeat)
        out["figures_30d"] = kpi_shop.figures(*kpi_shop.local_range(today - timedelta(days=29), today, zone)).__dict__
        page = dashboard_page(Config(database=DatabaseConfig(url=url)), today)
        out["dashboard_page_seconds"] = slowest(page, repeat)
        bound.close()
    return out


def dashboard_page(config: Any, today: date) -> Callable[[], None]:
    """The dashboard with the last 30 days as its range, for a logged-in admin."""
    from admin import users
    from admin.app import create_app
    from tests.admin.conftest import login

    users.create_user("bench", "bench-password-9", "admin")
    client = create_app(config, testing=True).test_client()
    login(client, "bench", "bench-password-9")

    def get() -> None:
        response = client.get(f"/admin/?from={today - timedelta(days=29)}&to={today}")
        assert response.status_code == 200, response.status_code

    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or a postgresql:// URL")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.conversations, args.database, args.repeat), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
