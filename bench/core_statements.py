"""SQL statements the core spends a message, and its time, on SQLite or PostgreSQL.

Why: on PostgreSQL every statement is a round trip while a batch holds its one transaction
open (one batch in flight at a time, adapters/group_commit.py), so kefu's PostgreSQL
throughput follows the statements a message more than its CPU; bench/core_instructions.py
counts the CPU side. Same core, same loads as there (messages through the group commit, 16
a batch, 97 returning customers, lexical FAQ match, after a warm-up of 112 messages), run
twice per load: once timed (each batch's wall-clock and the thread's CPU time), once with
a peewee query hook counting statements (the hook sends every statement through peewee's
slower path, so that run is not timed). BEGIN and COMMIT, which peewee sends past its
hooks, are one each a batch and not counted. PostgreSQL: a fresh schema, dropped after.

    .venv/bin/python bench/core_statements.py [--postgres URL] [--loads mixed,faq] [--compare DIR]

The wall-clock figures move with the host (and on PostgreSQL with the server's load, on
the other core); compare versions within one run (--compare). Not the webhook's whole
cost: HTTP, crypto and the event loop are not in it (bench/webhook.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench.webhook, in the parent only (see child)

import core_instructions  # noqa: E402 - bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]
MEASURED = 800


def measure(tree: str, load: str, database_url: str | None, count: bool) -> dict[str, Any]:
    """In this process (a child of `main`): the figures of one load on one tree."""
    totals = {"messages": 0, "wall_s": 0.0, "cpu_s": 0.0, "statements": 0}
    kinds: Counter[str] = Counter()

    def hook(event: Any) -> None:
        totals["statements"] += 1
        kinds[" ".join(event.sql.split()[:3])[:40]] += 1

    def batch(n: int, run: Callable[[], object]) -> None:
        from bot.core import db  # the tree's: run_core has put it first on the path

        hooks = db.database.obj.query_hooks
        if count:
            hooks.append(hook)
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            run()
        finally:
            totals["wall_s"] += time.perf_counter() - started
            totals["cpu_s"] += time.thread_time() - cpu
            totals["messages"] += n
            if count:
                hooks.remove(hook)

    core_instructions.run_core(tree, load, MEASURED, database_url, batch)
    n = totals["messages"]
    if count:
        return {"statements": totals["statements"] / n,
                "kinds": {k: round(v / n, 2) for k, v in kinds.most_common(8)}}
    return {"wall_ms": totals["wall_s"] * 1000 / n, "cpu_ms": totals["cpu_s"] * 1000 / n}


def child(tree: str, load: str, postgres: str | None, count: bool) -> dict[str, Any]:
    """One measurement in a fresh process (a fresh database, the tree's own modules)."""
    from bench.webhook import drop_schema, pg_schema_url  # here: the child must import the tree's bot first

    url, schema = pg_schema_url(postgres) if postgres else (None, None)
    try:
        out = subprocess.run([sys.executable, __file__, "--run", tree, load, url or "", "count" if count else "time"],
                             capture_output=True, text=True, check=True, cwd="/tmp")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if postgres and schema:
            drop_schema(postgres, schema)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--run":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4] or None, sys.argv[5] == "count")))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=None, metavar="URL", help="run on this PostgreSQL (a scratch schema)")
    parser.add_argument("--loads", default="mixed,faq,unknown,handoff")
    parser.add_argument("--compare", default=None, metavar="DIR", help="also measure another version's source tree")
    args = parser.parse_args()
    trees = [("kefu", str(ROOT))] + ([("compared", str(Path(args.compare).resolve()))] if args.compare else [])
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"a message on {where} ({MEASURED} after {core_instructions.WARM}, {core_instructions.BATCH} a batch, "
          f"{core_instructions.CUSTOMERS} returning customers, lexical FAQ match): statements besides BEGIN/COMMIT, "
          "the batch's wall-clock and CPU ms")
    for load in args.loads.split(","):
        for name, tree in trees:
            counted = child(tree, load, args.postgres, count=True)
            timed = child(tree, load, args.postgres, count=False)
            print(f"{load:<8} {name:<9} {counted['statements']:5.2f} statements  {timed['wall_ms']:6.3f} ms  "
                  f"cpu {timed['cpu_ms']:6.3f} ms   {counted['kinds']}", flush=True)


if __name__ == "__main__":
    main()
