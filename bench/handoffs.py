"""Concurrent handoffs: P worker processes (each its own connection, like `kefu serve`
processes) send "转人工" from N new customers at K online agents, through the dispatcher.

Why: assignment serializes on one database lock (see bot/agents/assignment.py), so its cost bounds
how many handoffs per second a deployment can take; the bench prints that figure and checks
the fairness invariants on the result.

    .venv/bin/python bench/handoffs.py                                  # SQLite file, 4 x 100
    .venv/bin/python bench/handoffs.py --database postgresql://postgres@127.0.0.1:5432/test \\
        --workers 4 --handoffs 400 --agents 5 --capacity 80

On PostgreSQL the bench works in a scratch schema it drops afterwards. It prints: handoffs/s
(wall time from the start barrier to the last worker done), p50/p99 of one handoff's
dispatcher call, the loads per agent, and whether any conversation was assigned twice or
any capacity exceeded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(url: str, index: int, count: int, start: Any, results: Any) -> None:
    from bot.core import db
    from bot.core.config import ChannelConfig, Config, DatabaseConfig
    from bot.conversation.dispatcher import Dispatcher
    from bot.core.events import Inbound

    db.connect(url)
    dispatcher = Dispatcher(Config(database=DatabaseConfig(url=url), channels=(ChannelConfig(name="web", kind="web"),)))
    timings: list[float] = []
    start.wait(120)
    for i in range(count):
        user = f"b{index}-{i}"
        began = time.perf_counter()
        dispatcher.handle(Inbound(channel="web", user_id=user, msg_id=f"{user}-1", kind="text", text="转人工"))
        timings.append(time.perf_counter() - began)
    results.put((time.perf_counter(), timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="postgresql://... (default: a temporary SQLite file)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--handoffs", type=int, default=400)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=80)
    args = parser.parse_args()

    from bot.core import db, migrations
    from bot.core.models import Agent, AssignmentLog, Conversation

    schema = ""
    if args.database.startswith("postgres"):
        schema = f"kefu_bench_{uuid.uuid4().hex[:8]}"
        admin = db.open_database(args.database)
        admin.connect()
        admin.execute_sql(f'CREATE SCHEMA "{schema}"')
        admin.close()
        sep = "&" if "?" in args.database else "?"
        url = f"{args.database}{sep}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='kefu-bench-')}/kefu.db"
    try:
        db.connect(url)
        migrations.upgrade()
        agents = [Agent.create(name=f"agent{i}", channel="web", im_user_id=f"agent-{i}", status="online",
                               max_open=args.capacity) for i in range(args.agents)]
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(args.workers + 1), ctx.Queue()
        per = args.handoffs // args.workers
        procs = [ctx.Process(target=worker, args=(url, w, per, start, results)) for w in range(args.workers)]
        for p in procs:
            p.start()
        start.wait(120)
        began = time.perf_counter()
        outcomes = [results.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(60)
        wall = max(end for end, _ in outcomes) - began
        timings = sorted(t for _, ts in outcomes for t in ts)
        total = per * args.workers
        assigned = list(Conversation.select().where(Conversation.status == "assigned"))
        loads = Counter(c.agent_id for c in assigned)
        stints = Counter(r.conversation_id for r in AssignmentLog.select())
        values = [loads.get(a.id, 0) for a in agents]
        print(f"database: {'postgresql' if schema else 'sqlite'}  workers: {args.workers}  handoffs: {total}  "
              f"agents: {args.agents} x capacity {args.capacity}")
        print(f"handoffs/s: {total / wall:.0f}  (wall {wall:.2f} s)")
        print(f"one handoff: p50 {statistics.median(timings) * 1000:.1f} ms  "
              f"p99 {timings[int(len(timings) * 0.99) - 1] * 1000:.1f} ms")
        print(f"assigned: {len(assigned)}  queued: {Conversation.select().where(Conversation.status == 'queued').count()}"
              f"  loads: {values}  spread: {max(values) - min(values)}")
        print(f"assigned twice: {sum(1 for n in stints.values() if n > 1)}  "
              f"capacity exceeded: {sum(1 for a in agents if loads.get(a.id, 0) > a.max_open)}")
    finally:
        db.database.close()
        if schema:
            admin.connect()
            admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()


if __name__ == "__main__":
    main()
