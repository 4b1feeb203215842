"""Order API throughput: signed order events into a real `kefu serve`, everything on 127.0.0.1.

Why: a shop's order system pushes every change of every order (a sale day is thousands of
events a minute), and each event is a signed request, a replay check, an upsert and a
customer/level refresh in one transaction. The bench runs what an operator runs and
checks the result, not just the speed.

    .venv/bin/python bench/orders_api.py --orders 2000 --concurrency 16
    .venv/bin/python bench/orders_api.py --database postgresql://postgres@127.0.0.1:5432/test ...

Each order gets two events (paid, then shipped), sent shuffled so about half arrive out of
order, and 10% of the requests are sent twice (replays). It prints events/s and latency
percentiles, then checks: one row per order, every order shipped, every replay answered
as a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, wait_http  # noqa: E402
PY = sys.executable
KEFU = str(Path(PY).parent / "kefu")
SECRET = "bench-secret"






def signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Kefu-Timestamp": ts, "X-Kefu-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def events(orders: int, run: str) -> list[bytes]:
    out: list[bytes] = []
    for n in range(orders):
        oid = f"B{run}-{n}"
        buyer = {"channel": "web", "user_id": f"v_{run}_{n % 500}"}  # 500 known buyers
        for status, minute in (("paid", 0), ("shipped", 30)):
            out.append(json.dumps({"shop_order_id": oid, "status": status, "amount": "99.00", "customer": buyer,
                                   "event_at": f"2026-11-24T10:{minute:02d}:00+08:00"}).encode())
    return out


async def fire(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], list[dict]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    answers: list[dict] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=body, headers=signed(body)) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"HTTP {resp.status}: {answer}")
            latencies.append(time.perf_counter() - started)
            answers.append(answer)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies, answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/kefu.db"
        env = {**os.environ, "KEFU_DATABASE_URL": url, "KEFU_DATA_DIR": tmp, "KEFU_ORDERS_SECRET": SECRET,
               "KEFU_LOG_LEVEL": "WARNING", "KEFU_SCHEDULER_ENABLED": "false"}
        subprocess.run([KEFU, "init"], env=env, check=True, capture_output=True)
        from bot.core import db
        from bot.core.models import Customer, Order

        db.connect(url)
        Customer.insert_many([{"channel": "web", "external_id": f"v_{run}_{n}", "source": "web"}
                              for n in range(500)]).execute()
        db.database.close()
        port = free_port()
        server = subprocess.Popen([KEFU, "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            bodies = events(args.orders, run)
            random.Random(7).shuffle(bodies)
            replays = bodies[: len(bodies) // 10]
            started = time.perf_counter()
            latencies, answers = asyncio.run(fire(f"http://127.0.0.1:{port}/api/orders", bodies + replays,
                                                 args.concurrency))
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(10)
        latencies.sort()
        total = len(latencies)
        print(f"{total} signed order events ({args.orders} orders x 2 + {len(replays)} replays), "
              f"concurrency {args.concurrency}, {'PostgreSQL' if 'postgres' in url else 'SQLite'}")
        print(f"  {total / elapsed:,.0f} events/s; latency p50 {latencies[total // 2] * 1000:.1f} ms, "
              f"p99 {latencies[int(total * 0.99)] * 1000:.1f} ms")
        outcomes: dict[str, int] = {}
        for a in answers:
            outcomes[a["outcome"]] = outcomes.get(a["outcome"], 0) + 1
        print(f"  outcomes: {json.dumps(outcomes, sort_keys=True)}")
        db.connect(url)
        mine = Order.select().where(Order.shop_order_id.startswith(f"B{run}-"))
        rows, shipped = mine.count(), mine.where(Order.status == "shipped").count()
        counted = sum(c.order_count for c in Customer.select().where(Customer.external_id.startswith(f"v_{run}_")))
        ok = (rows == args.orders and shipped == args.orders and counted == args.orders
              and outcomes.get("duplicate", 0) >= len(replays))
        print(f"  check: {rows} orders stored, {shipped} shipped, {counted} counted on 500 customers, "
              f"{outcomes.get('duplicate', 0)} duplicates (>= {len(replays)} replays): {'OK' if ok else 'FAILED'}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
