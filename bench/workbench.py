"""The agents' workbench under load (issue 22): A agents signed in to the workbench, C customers
writing through the web chat API, against `kefu run` as a real process on 127.0.0.1.

Why this shape: what an agent feels is the time from a customer's message to it showing in
their inbox, and what a customer feels is the time from the agent's reply to their chat page;
both ride on polls (the workbench and the chat page each poll every 2 s), so the bench polls
exactly as the pages do and measures end to end, poll wait included. It also prints the
requests' own times (what the server costs per poll) and the server's resident memory per
signed-in agent.

    .venv/bin/python bench/workbench.py                          # 20 agents, 200 customers, 30 s, SQLite
    .venv/bin/python bench/workbench.py --seconds 60 --poll 0.5  # a faster poll than the pages'
    .venv/bin/python bench/workbench.py --database postgresql://postgres@127.0.0.1:5432/test

Each customer asks for a person (转人工), then writes a question, waits for the agent's answer
(at most 15 s), thinks 1-4 s and writes again until the run ends. Each agent polls
`/admin/workbench/inbox.json` and answers every new customer line through
`/admin/workbench/conversation/reply` (session cookie, CSRF token, a client id per reply).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import broadcast_fanout  # noqa: E402
from bench.broadcast_fanout import start as launch  # noqa: E402
from bench.common import free_port, wait_http  # noqa: E402
from bench.crash_send import KEFU, scratch_database, stop  # noqa: E402
from bench.webhook import percentile  # noqa: E402
from tests.admin.conftest import csrf_token  # noqa: E402

PASSWORD = "bench-desk-pass-9"
_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


def write_config(tmp: Path, db_url: str, port: int, admin_port: int) -> Path:
    """The fan-out bench's config with the shipped defaults (its 公众号 channel idles: nothing
    is sent to it), the panel on a port of its own and the web channel the customers use."""
    path = broadcast_fanout.write_config(tmp, db_url, "http://127.0.0.1:9", port, channel_tuning="",
                                         tuning=f'[admin]\nhost = "127.0.0.1"\nport = {admin_port}')
    path.write_text(path.read_text() + '\n[[channels]]\nname = "web"\nkind = "web"\n')
    return path


def seed_agents(db_url: str, agents: int, capacity: int) -> None:
    """Online web agents, each with a panel user of the role agent (as `kefu admin-user add`)."""
    from admin.users import create_user
    from bot.core import db
    from bot.core.models import Agent

    database = db.connect(db_url)
    for k in range(agents):
        agent = Agent.create(name=f"desk{k}", channel="web", im_user_id=f"bench-agent-{k}", status="online",
                             max_open=capacity)
        create_user(f"desk{k}", PASSWORD, "agent", agent_id=agent.id)
    database.close()


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (MB)."""
    total = 0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Run:
    """The shared record: when each line was sent and when the other side first saw it."""

    def __init__(self, base: str, admin: str, poll: float, stop_at: float) -> None:
        self.base, self.admin, self.poll, self.stop_at = base, admin, poll, stop_at
        self.asked: dict[str, float] = {}  # question text -> sent at
        self.to_agent: list[float] = []
        self.replied: dict[str, float] = {}  # reply text -> reply posted at
        self.to_customer: list[float] = []
        self.inbox_ms: list[float] = []
        self.customer_poll_ms: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def customer(run: Run, http: aiohttp.ClientSession, index: int) -> None:
    api = f"{run.base}/api/web/web"
    async with http.post(api + "/session") as resp:
        session = await resp.json()
    who = {"user_id": session["user_id"], "token": session["token"]}
    last_id = 0
    seen: set[str] = set()

    async def send(text: str) -> None:
        async with http.post(api + "/messages", json={**who, "msg_id": uuid.uuid4().hex, "text": text}) as resp:
            if resp.status != 200:
                run.error(f"customer send {resp.status}")
            await resp.read()

    async def poll() -> None:
        nonlocal last_id
        while time.monotonic() < run.stop_at + 5:
            began = time.monotonic()
            try:
                async with http.get(api + "/messages", params={**who, "after": str(last_id)}) as resp:
                    body = await resp.json()
            except aiohttp.ClientError:
                run.error("customer poll")
                await asyncio.sleep(run.poll)
                continue
            now = time.monotonic()
            run.customer_poll_ms.append((now - began) * 1000)
            last_id = max(last_id, int(body.get("last_id", 0)))
            for m in body.get("messages", []):
                text = m.get("text", "")
                if text in run.replied and text not in seen:
                    seen.add(text)
                    run.to_customer.append((now - run.replied[text]) * 1000)
            await asyncio.sleep(run.poll)

    await send("转人工")
    poller = asyncio.create_task(poll())
    await asyncio.sleep(random.uniform(0, 3))
    n = 0
    while time.monotonic() < run.stop_at:
        question = f"问题{index}-{n}"
        run.asked[question] = time.monotonic()
        await send(question)
        answer = f"答复{index}-{n}"
        waited = time.monotonic() + 15
        while answer not in seen and time.monotonic() < min(waited, run.stop_at + 5):
            await asyncio.sleep(0.05)
        await asyncio.sleep(random.uniform(1, 4))
        n += 1
    await poller


async def agent(run: Run, index: int, signed_in: asyncio.Event) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(run.admin + "/admin/login/") as resp:
            token = csrf_token(await resp.text())
        async with http.post(run.admin + "/admin/login/", data={"csrf_token": token, "username": f"desk{index}",
                                                                 "password": PASSWORD}) as resp:
            page = await resp.text()
        found = _DATA_CSRF.search(page)
        if found is None:
            raise SystemExit(f"desk{index} did not reach the workbench after signing in")
        csrf = found.group(1)
        signed_in.set()
        answered: set[str] = set()
        desk = run.admin + "/admin/workbench"
        while time.monotonic() < run.stop_at + 5:
            began = time.monotonic()
            async with http.get(desk + "/inbox.json") as resp:
                inbox = await resp.json()
            now = time.monotonic()
            run.inbox_ms.append((now - began) * 1000)
            for row in inbox["mine"]:
                last = row["last"]
                if last in run.asked and last not in answered:
                    answered.add(last)
                    run.to_agent.append((now - run.asked[last]) * 1000)
                    reply = "答复" + last[2:]
                    run.replied[reply] = time.monotonic()
                    async with http.post(desk + "/conversation/reply",
                                         data={"id": str(row["id"]), "text": reply, "csrf_token": csrf,
                                               "client_id": uuid.uuid4().hex}, headers={"X-CSRFToken": csrf}) as r:
                        if r.status != 200:
                            run.error(f"agent reply {r.status}")
                        await r.read()
            await asyncio.sleep(max(0.0, run.poll - (time.monotonic() - began)))


def figures(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 1), "p95_ms": round(percentile(values, 95), 1)}


async def drive(base: str, admin: str, pid: int, agents: int, customers: int, seconds: float,
                poll: float) -> dict[str, Any]:
    run = Run(base, admin, poll, stop_at=float("inf"))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        rss_before = rss_mb(pid)
        events = [asyncio.Event() for _ in range(agents)]
        desks = [asyncio.create_task(agent(run, k, events[k])) for k in range(agents)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
        await asyncio.sleep(poll * 3)  # every desk polled a few times, nothing to show yet
        rss_agents = rss_mb(pid)
        run.inbox_ms.clear()
        run.stop_at = time.monotonic() + seconds
        people = [asyncio.create_task(customer(run, http, i)) for i in range(customers)]
        await asyncio.gather(*people, *desks)
        rss_end, load = rss_mb(pid), os.getloadavg()[0]
    return {
        "agents": agents, "customers": customers, "seconds": seconds, "poll_seconds": poll,
        "questions_sent": len(run.asked),
        "message_to_agent_inbox": figures(run.to_agent),
        "reply_to_customer_poll": figures(run.to_customer),
        "inbox_request": figures(run.inbox_ms),
        "customer_poll_request": figures(run.customer_poll_ms),
        "server_rss_mb_before_agents": round(rss_before, 1),
        "server_rss_mb_agents_signed_in": round(rss_agents, 1),
        "server_rss_mb_end": round(rss_end, 1),
        "rss_kb_per_connected_agent": round((rss_agents - rss_before) * 1024 / agents, 1),
        "errors": run.errors,
        "load_average_1min_at_end": round(load, 2),
    }


def play(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-workbench-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    with scratch_database(args.database, tmp) as db_url:
        port, admin_port = free_port(), free_port()
        config = write_config(tmp, db_url, port, admin_port)
        try:
            subprocess.run([KEFU, "init", "--config", str(config)], check=True, cwd=str(ROOT), capture_output=True)
            seed_agents(db_url, args.agents, max(1, -(-args.customers // args.agents)))
            procs.append(launch([KEFU, "run", "--config", str(config), "--no-scheduler"], tmp / "kefu.log"))
            wait_http(f"http://127.0.0.1:{port}/healthz", 60)
            wait_http(f"http://127.0.0.1:{admin_port}/admin/login/", 60)
            result = asyncio.run(drive(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", procs[0].pid,
                                       args.agents, args.customers, args.seconds, args.poll))
        except BaseException:
            print(f"kept {tmp} (kefu.log) for a look", file=sys.stderr)
            raise
        finally:
            stop(procs)
    shutil.rmtree(tmp, ignore_errors=True)
    return {**result, "database": "sqlite" if args.database == "sqlite" else "postgresql",
            "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long customers keep writing")
    parser.add_argument("--poll", type=float, default=2.0, help="poll interval of desks and chat pages (the pages': 2)")
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or postgresql://...")
    args = parser.parse_args()
    print(json.dumps(play(args), ensure_ascii=False))


if __name__ == "__main__":
    main()
