"""The agents' workbench under load (issue 22): A agents signed in to the workbench, C customers
writing through the web chat API, against `kefu run` as a real process on 127.0.0.1.

Why this shape: what an agent feels is the time from a customer's message to it showing on
their screen, and what a customer feels is the time from the agent's reply to their chat
page. By default (`--mode live`) both ride on what the pages now use: each agent holds the
workbench's event stream open (a ticket from `POST /admin/workbench/live`, then
`GET /api/workbench/stream`) and each customer a waiting poll (`&wait=5` here, 25 on the page: the run ends sooner); `--mode poll` plays
the pages' old 2-second polls instead, for comparison. It prints p50/p95 of both, the
requests' own times, the server's resident memory per connected agent, and its CPU time per
question (user + system of the server and its children while the customers write: on a shared
machine the figure to judge a change by, where the latencies move with others' load).

    .venv/bin/python bench/workbench.py                          # 20 agents, 200 customers, 30 s, SQLite, live
    .venv/bin/python bench/workbench.py --mode poll              # the 2 s polls the pages had before
    .venv/bin/python bench/workbench.py --database postgresql://postgres@127.0.0.1:5432/test

Each customer asks for a person (转人工), then writes a question, waits for the agent's answer
(at most 15 s), thinks 1-4 s and writes again until the run ends. The p50/p95 are printed
over the whole run and again for the lines sent after the first OPENING_S seconds: at the
start all 200 customers ask for a person in the same second, and on PostgreSQL those 200
handoffs take turns on the assignment lock (held to each one's commit, see
bot/agents/assignment.py), so the whole run's p95 is the opening's. Each agent answers every new
customer line it is shown through `/admin/workbench/conversation/reply` (session cookie, CSRF
token, a client id per reply), at once by default.

How real that load is: 200 customers thinking 1-4 s write about 80 lines a second once the
answers come back quickly, and 20 agents answering each at once is 4 replies a second per agent;
a person types a reply in 5-30 s. So the default is a stress test of the server, some tens of
times what 20 agents can answer. `--think 5-20 --typing 5-15` plays people at that pace
(customers reading and typing, agents typing); the default stays the one the goal is stated at.

    .venv/bin/python bench/workbench.py --think 5-20 --typing 5-15  # people's pace
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
from datetime import datetime
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
OPENING_S = 5.0  # the opening burst: every customer asks for a person in the same second
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


def family(pid: int) -> list[int]:
    """The process and its children (`kefu run`'s panel child on PostgreSQL)."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (MB)."""
    total = 0
    for p in family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process and its children have used so far: the figure
    a change to the server's work per message is judged by on a shared machine, where the
    wall-clock latencies move with the other processes' load."""
    ticks = 0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


class Run:
    """The shared record: when each line was sent and when the other side first saw it."""

    def __init__(self, base: str, admin: str, poll: float, stop_at: float, live: bool,
                 think: tuple[float, float] = (1.0, 4.0), typing: tuple[float, float] = (0.0, 0.0)) -> None:
        self.base, self.admin, self.poll, self.stop_at, self.live = base, admin, poll, stop_at, live
        self.think, self.typing = think, typing
        self.asked: dict[str, float] = {}  # question text -> sent at
        self.to_agent: list[float] = []
        self.replied: dict[str, float] = {}  # reply text -> reply posted at
        self.to_customer: list[float] = []
        self.started = float("inf")  # when the customers began (time.monotonic())
        self.to_agent_late: list[float] = []  # the same figures for lines sent after the opening burst
        self.to_customer_late: list[float] = []
        self.inbox_ms: list[float] = []
        self.stored_to_screen: list[float] = []  # the message row's created_at -> the agent's stream
        self.send_ms: list[float] = []  # a customer's message answered (the bot's reply or its ack)
        self.reply_ms: list[float] = []  # an agent's reply posted to the panel
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
        began = time.monotonic()
        async with http.post(api + "/messages", json={**who, "msg_id": uuid.uuid4().hex, "text": text}) as resp:
            if resp.status != 200:
                run.error(f"customer send {resp.status}")
            await resp.read()
        run.send_ms.append((time.monotonic() - began) * 1000)

    async def poll() -> None:
        nonlocal last_id
        waiting = {"wait": "5"} if run.live else {}
        while time.monotonic() < run.stop_at + 5:
            began = time.monotonic()
            try:
                async with http.get(api + "/messages", params={**who, "after": str(last_id), **waiting}) as resp:
                    body = await resp.json()
            except aiohttp.ClientError:
                run.error("customer poll")
                await asyncio.sleep(run.poll)
                continue
            now = time.monotonic()
            if not run.live:  # a waiting poll's time is mostly its wait
                run.customer_poll_ms.append((now - began) * 1000)
            last_id = max(last_id, int(body.get("last_id", 0)))
            for m in body.get("messages", []):
                text = m.get("text", "")
                if text in run.replied and text not in seen:
                    seen.add(text)
                    run.to_customer.append((now - run.replied[text]) * 1000)
                    if run.replied[text] - run.started >= OPENING_S:
                        run.to_customer_late.append(run.to_customer[-1])
            if not run.live:
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
        await asyncio.sleep(random.uniform(*run.think))
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
        desk = run.admin + "/admin/workbench"
        answered: set[str] = set()

        async def answer(conversation_id: int, last: str, seen_at: float) -> None:
            answered.add(last)
            run.to_agent.append((seen_at - run.asked[last]) * 1000)
            if run.asked[last] - run.started >= OPENING_S:
                run.to_agent_late.append(run.to_agent[-1])
            if run.typing[1] > 0:  # the agent reads and types (off by default)
                await asyncio.sleep(random.uniform(*run.typing))
            reply = "答复" + last[2:]
            run.replied[reply] = time.monotonic()
            async with http.post(desk + "/conversation/reply",
                                 data={"id": str(conversation_id), "text": reply, "csrf_token": csrf,
                                       "client_id": uuid.uuid4().hex}, headers={"X-CSRFToken": csrf}) as r:
                if r.status != 200:
                    run.error(f"agent reply {r.status}")
                await r.read()
            run.reply_ms.append((time.monotonic() - run.replied[reply]) * 1000)

        if run.live:
            await live_desk(run, http, desk, csrf, signed_in, answered, answer)
            return
        signed_in.set()
        while time.monotonic() < run.stop_at + 5:
            began = time.monotonic()
            async with http.get(desk + "/inbox.json") as resp:
                inbox = await resp.json()
            now = time.monotonic()
            run.inbox_ms.append((now - began) * 1000)
            for row in inbox["mine"]:
                last = row["last"]
                if last in run.asked and last not in answered:
                    await answer(row["id"], last, now)
            await asyncio.sleep(max(0.0, run.poll - (time.monotonic() - began)))


async def live_desk(run: Run, http: aiohttp.ClientSession, desk: str, csrf: str, signed_in: asyncio.Event,
                    answered: set[str], answer: Any) -> None:
    """An agent on the event stream, as the page: a ticket from the panel, then the stream;
    each customer line it is sent is answered (a new ticket when the stream ends)."""
    replies: set[asyncio.Task[None]] = set()
    while time.monotonic() < run.stop_at + 5:
        async with http.post(desk + "/live", data={"csrf_token": csrf}, headers={"X-CSRFToken": csrf}) as resp:
            ticket = await resp.json()
        async with http.get(ticket["url"], params={"token": ticket["token"]},
                            timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as stream:
            if stream.status != 200:
                run.error(f"stream {stream.status}")
                await asyncio.sleep(1)
                continue
            event = ""
            while time.monotonic() < run.stop_at + 5:
                try:
                    raw = await asyncio.wait_for(stream.content.readline(), max(0.1, run.stop_at + 5 - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "hello":
                        signed_in.set()
                elif line.startswith("data: ") and event == "message":
                    data = json.loads(line[6:])
                    text = data["message"]["text"]
                    if data["message"]["author"] == "customer" and text in run.asked and text not in answered:
                        stored = datetime.fromisoformat(data["message"]["at"]).timestamp()
                        run.stored_to_screen.append((time.time() - stored) * 1000)
                        task = asyncio.create_task(answer(data["conversation"], text, time.monotonic()))
                        replies.add(task)
                        task.add_done_callback(replies.discard)
    if replies:
        await asyncio.gather(*replies)


def figures(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 1), "p95_ms": round(percentile(values, 95), 1)}


async def drive(base: str, admin: str, pid: int, agents: int, customers: int, seconds: float,
                poll: float, live: bool, think: tuple[float, float] = (1.0, 4.0),
                typing: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    run = Run(base, admin, poll, stop_at=float("inf"), live=live, think=think, typing=typing)
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
        run.started = time.monotonic()
        cpu_start = cpu_seconds(pid)
        people = [asyncio.create_task(customer(run, http, i)) for i in range(customers)]
        await asyncio.gather(*people, *desks)
        cpu_used = cpu_seconds(pid) - cpu_start
        rss_end, load = rss_mb(pid), os.getloadavg()[0]
    return {
        "mode": "live" if live else "poll", "agents": agents, "customers": customers, "seconds": seconds,
        "poll_seconds": None if live else poll,
        "think_seconds": list(think), "typing_seconds": list(typing),
        "questions_sent": len(run.asked),
        "customer_lines_per_second": round(len(run.asked) / seconds, 1),
        "server_cpu_seconds": round(cpu_used, 2),
        "server_cpu_ms_per_question": round(cpu_used * 1000 / max(1, len(run.asked)), 2),
        "agent_replies_per_second": round(len(run.replied) / seconds, 1),
        "message_to_agent_screen": figures(run.to_agent),
        "reply_to_customer_poll": figures(run.to_customer),
        f"message_to_agent_screen_after_{OPENING_S:.0f}s": figures(run.to_agent_late),
        f"reply_to_customer_poll_after_{OPENING_S:.0f}s": figures(run.to_customer_late),
        "stored_message_to_agent_screen": figures(run.stored_to_screen) if live else None,
        "customer_send_request": figures(run.send_ms),
        "agent_reply_request": figures(run.reply_ms),
        "inbox_request": figures(run.inbox_ms) if not live else None,
        "customer_poll_request": figures(run.customer_poll_ms) if not live else None,
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
                                       args.agents, args.customers, args.seconds, args.poll, args.mode == "live",
                                       args.think, args.typing))
        except BaseException:
            print(f"kept {tmp} (kefu.log) for a look", file=sys.stderr)
            raise
        finally:
            stop(procs)
    shutil.rmtree(tmp, ignore_errors=True)
    return {**result, "database": "sqlite" if args.database == "sqlite" else "postgresql",
            "cpus": os.cpu_count()}


def seconds_range(text: str) -> tuple[float, float]:
    """"1-4" -> (1.0, 4.0)."""
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW-HIGH seconds, e.g. 1-4") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW-HIGH seconds with 0 <= LOW <= HIGH")
    return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long customers keep writing")
    parser.add_argument("--mode", choices=("live", "poll"), default="live",
                        help="live: the event stream and waiting polls the pages use; poll: 2 s polls")
    parser.add_argument("--poll", type=float, default=2.0, help="--mode poll: interval of desks and chat pages")
    parser.add_argument("--think", type=seconds_range, default=(1.0, 4.0),
                        help="LOW-HIGH seconds a customer thinks after an answer before writing again (1-4)")
    parser.add_argument("--typing", type=seconds_range, default=(0.0, 0.0),
                        help="LOW-HIGH seconds an agent takes to answer a line it is shown (0-0: at once)")
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or postgresql://...")
    args = parser.parse_args()
    print(json.dumps(play(args), ensure_ascii=False))


if __name__ == "__main__":
    main()
