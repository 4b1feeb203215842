"""Scale-out on PostgreSQL: two `kefu serve` and two `kefu scheduler` under a mixed load, one
server and the leading scheduler SIGKILLed midway, everything on 127.0.0.1 (issue 17).

Why real processes: what a deployment promises — nothing acknowledged lost or stored twice,
no send doubled, no conversation handed to two agents, a standby scheduler that takes over —
is about what survives a SIGKILL, which only a killed process shows. So the bench runs what
an operator runs, on a schema of its own (dropped afterwards):

- the WeChat stand-in (`adapters.sandbox`), its sends slowed to `--latency` s;
- `kefu serve` A and B behind a round-robin "load balancer" in this process (a request that
  fails is posted again to the next live server, as WeChat retries an unanswered message);
- `kefu scheduler` A (leading) and B (standing by);
- customers: signed, encrypted 公众号 text (FAQ questions, some 转人工), `--concurrency` at
  a time, a share of them posted twice at once and again after the answer (WeChat's retries);
- agents: linked 公众号 accounts replying (relayed to their customer) and resolving;
- a running campaign to `--followers` followers of a second 公众号 account, held to
  `--campaign-rate` sends/s per sender so that it is still running at the kills.

Timeline of `--seconds` S: [0, S/4) one server takes the load, [S/4, S/2) both; at S/2 server
B is SIGKILLed (and dropped from the balancer), at 0.6 S the leading scheduler; the load goes
on to S. Then the bench waits for the campaign and the outbox to finish and prints, as JSON:

    acknowledged / stored_once / acknowledged_missing   every 200 answered is one inbound row
    sends_doubled                the stand-in's sends per (recipient, text) above kefu's rows
    campaign                     bench/crash_send.py's tally: doubled, missing, in doubt
    conversations_assigned_twice two open assignment stints of one conversation at once
    scheduler_takeover_s         SIGKILL of the leader to the standby's "now the leader" line
    phases                       messages/s (acknowledged) and p50/p99 ms: one serve, two, after the kill
    load_average                 this machine's 1-minute load (2 cores, shared with others)

    .venv/bin/python bench/scale_out.py                  # 60 s, postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/scale_out.py --seconds 20     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.broadcast_fanout import start as launch  # noqa: E402
from bench.common import free_port, wait_http  # noqa: E402
from bench.crash_send import KEFU, PY, SEND_PATH, StandIn, campaign_status, scratch_database, stop, tally  # noqa: E402
from bench.crash_send import seed as seed_campaign  # noqa: E402
from bench.webhook import AES_KEY, faq_questions, percentile, wait_faq_ready  # noqa: E402

from adapters.sandbox.client import WeChatServer  # noqa: E402

SHOP_TOKEN, SHOP_APP = "scaletoken", "wxscaleshop000001"
CUSTOMERS, AGENTS = 400, 4
HANDOFF_SHARE, TWIN_SHARE, AGAIN_SHARE = 0.04, 0.05, 0.05


def config_file(tmp: Path, name: str, db_url: str, stand_in: str, level: str, campaign_rate: float) -> Path:
    """One process's config: the shop's 公众号 (safe mode) for customers and agents, the
    campaign's 公众号 (crash_send's channel "mp", held to `campaign_rate` sends/s)."""
    path = tmp / f"{name}.toml"
    path.write_text(f"""
data_dir = "{tmp / name}"
[database]
url = "{db_url}"
[server]
host = "127.0.0.1"
[log]
level = "{level}"
[outbox]
poll_seconds = 0.2
[[channels]]
name = "shop"
kind = "wechat_mp"
token = "{SHOP_TOKEN}"
app_id = "{SHOP_APP}"
app_secret = "shopsecret"
encoding_aes_key = "{AES_KEY}"
api_base = "{stand_in}"
deadline_seconds = 4.0
[[channels]]
name = "mp"
kind = "wechat_mp"
token = "campaigntoken"
app_id = "wxscalecampaign01"
app_secret = "campaignsecret"
api_base = "{stand_in}"
rate_per_second = {campaign_rate}
""")
    return path


def seed_agents() -> None:
    """Agents linked to the shop's 公众号, online, room for 20 conversations each."""
    from bot.core.models import Agent

    for k in range(AGENTS):
        Agent.create(name=f"坐席{k}", channel="shop", im_user_id=f"o_agent_{k}", status="online", max_open=20)


class Balancer:
    """Round robin over the live servers (what nginx does in front of `kefu serve`)."""

    def __init__(self, urls: list[str]) -> None:
        self.live = list(urls)
        self._turn = 0

    def pick(self) -> str:
        self._turn += 1
        return self.live[self._turn % len(self.live)]


class Load:
    """The traffic and what it saw: acknowledged MsgIds, latency per phase."""

    def __init__(self, balancer: Balancer, stop_at: float) -> None:
        self.balancer = balancer
        self.stop_at = stop_at
        self.phase = "one serve"
        self.server = WeChatServer(SHOP_TOKEN, SHOP_APP, AES_KEY, mode="safe")
        self.acked: set[str] = set()
        self.posted: set[str] = set()
        self.unacked: set[str] = set()
        self.latency: dict[str, list[float]] = {}
        self.counts = Counter[str]()
        self._ids = 0

    def next_id(self, tag: str) -> str:
        self._ids += 1
        return f"{tag}{self._ids}"

    async def post(self, http: aiohttp.ClientSession, xml: str, msg_id: str) -> bool:
        """WeChat's way: no 200 within 5 s, post the same message again (up to 3 retries),
        each attempt to the next live server. Acknowledged = a 200."""
        self.posted.add(msg_id)
        began = time.perf_counter()
        for attempt in range(4):
            params, body = self.server.sign(xml)
            try:
                async with http.post(self.balancer.pick(), params=params, data=body,
                                     timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.acked.add(msg_id)
                        self.latency.setdefault(self.phase, []).append(time.perf_counter() - began)
                        self.counts["retried_after_failure"] += attempt > 0
                        return True
                    self.counts[f"http_{resp.status}"] += 1
            except (asyncio.TimeoutError, aiohttp.ClientError):
                self.counts["connection_failures"] += 1
        self.unacked.add(msg_id)
        return False

    async def customer(self, http: aiohttp.ClientSession, questions: list[str]) -> None:
        rnd = random.Random()
        while time.monotonic() < self.stop_at:
            who = f"o_cust_{rnd.randrange(CUSTOMERS):04d}"
            text = "转人工" if rnd.random() < HANDOFF_SHARE else rnd.choice(questions)
            msg_id = self.next_id("c")
            xml = self.server.text_xml(who, text, msg_id)
            roll = rnd.random()
            if roll < TWIN_SHARE:  # a retry racing the first delivery
                self.counts["twin_posts"] += 1
                await asyncio.gather(self.post(http, xml, msg_id), self.post(http, xml, msg_id))
            elif await self.post(http, xml, msg_id) and roll < TWIN_SHARE + AGAIN_SHARE:
                self.counts["posted_again_after_answer"] += 1
                await self.post(http, xml, msg_id)  # the answer was lost on the way: posted again

    async def agents(self, http: aiohttp.ClientSession) -> None:
        """One agent message every 50 ms, in turn: replies (relayed), every fourth a /resolve."""
        turn = 0
        while time.monotonic() < self.stop_at:
            turn += 1
            text = "/resolve" if turn % (4 * AGENTS) < AGENTS else f"您好，我是客服，马上为您处理（{turn}）"
            msg_id = self.next_id("a")
            await self.post(http, self.server.text_xml(f"o_agent_{turn % AGENTS}", text, msg_id), msg_id)
            await asyncio.sleep(0.05)


async def drive(load: Load, servers: dict[str, subprocess.Popen[bytes]], urls: dict[str, str],
                schedulers: list[subprocess.Popen[bytes]], seconds: float, concurrency: int) -> dict[str, Any]:
    """The load, and the kills on the timeline; returns when each happened (wall clock)."""
    questions = faq_questions()
    events: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4 * concurrency)) as http:
        traffic = [asyncio.create_task(load.customer(http, questions)) for _ in range(concurrency)]
        traffic.append(asyncio.create_task(load.agents(http)))
        began = time.monotonic()
        phases = [("one serve", 0.0), ("two serves", seconds / 4), ("after the kill, one serve", seconds / 2)]
        for name, at in phases:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            if name == "two serves":
                load.balancer.live = [urls["A"], urls["B"]]
            elif name.startswith("after"):
                load.balancer.live = [urls["A"]]  # nginx stops sending to the dead one
                servers["B"].send_signal(signal.SIGKILL)
                servers["B"].wait()
                events["serve_killed_at_s"] = round(time.monotonic() - began, 1)
            events.setdefault("phase_seconds", {})[name] = time.monotonic()
            load.phase = name
        await asyncio.sleep(max(0.0, began + 0.6 * seconds - time.monotonic()))
        schedulers[0].send_signal(signal.SIGKILL)
        schedulers[0].wait()
        events["scheduler_killed_wall"] = time.time()
        events["scheduler_killed_at_s"] = round(time.monotonic() - began, 1)
        events["load_average_at_kills"] = round(os.getloadavg()[0], 2)
        await asyncio.gather(*traffic)
        events["ended"] = time.monotonic()
    return events


def leader_since(log: Path) -> float | None:
    """When a scheduler's log says it leads (its JSON line's timestamp), or None."""
    if not log.exists():
        return None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "scheduler is now the leader" in line and line.startswith("{"):
            return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
    return None


def wait_until(check: Any, seconds: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen in {seconds:.0f} s; see the logs in {logs}")
        time.sleep(0.1)


def backlog() -> int:
    """Outbox rows still to be decided (pending, or claimed by a sender)."""
    from bot.core.models import Outbox

    return Outbox.select().where(Outbox.status.in_(("pending", "sending"))).count()


def sends_doubled(stand: StandIn) -> dict[str, int]:
    """Each (recipient, text) the stand-in accepted on the shop's account, against the sent
    outbox rows of that recipient and text: more at the stand-in is a doubled send."""
    from bot.core.models import Outbox

    rows = Counter((r.recipient, str((r.content or {}).get("text", ""))) for r in
                   Outbox.select(Outbox.recipient, Outbox.content).where(
                       (Outbox.channel == "shop") & (Outbox.status == "sent")))
    shop_users = {user for user, _ in rows}
    arrived = Counter((c["body"]["touser"], str(c["body"].get("text", {}).get("content", ""))) for c in stand.calls
                      if c["path"] == SEND_PATH and c["errcode"] == 0 and c["body"].get("touser") in shop_users)
    resent = Outbox.select().where((Outbox.channel == "shop") & Outbox.last_error.startswith("resent:")).count()
    return {"shop_sends_at_stand_in": sum(arrived.values()), "shop_outbox_rows_sent": sum(rows.values()),
            "sends_doubled": sum(max(0, n - rows[key]) for key, n in arrived.items()),
            "replies_resent_after_the_kill": resent}


def conversations_check() -> dict[str, int]:
    """No conversation with two assignment stints open at once; no customer with two open
    conversations."""
    from bot.core.models import AssignmentLog, Conversation

    stints = list(AssignmentLog.select(AssignmentLog.conversation, AssignmentLog.assigned_at, AssignmentLog.ended_at))
    by_conversation: dict[int, list[Any]] = {}
    for stint in stints:
        by_conversation.setdefault(stint.conversation_id, []).append(stint)
    twice = 0
    for runs in by_conversation.values():
        runs.sort(key=lambda s: s.assigned_at)
        twice += any(b.assigned_at < (a.ended_at or b.assigned_at.replace(year=9999)) for a, b in zip(runs, runs[1:]))
    open_per_customer = Counter(c.customer_id for c in Conversation.select(Conversation.customer).where(
        Conversation.status != "resolved"))
    return {"assignments": len(stints), "conversations_assigned": len(by_conversation),
            "conversations_assigned_twice": twice,
            "customers_with_two_open_conversations": sum(1 for n in open_per_customer.values() if n > 1)}


def stored_once(load: Load) -> dict[str, int]:
    from bot.core.models import Message

    rows = Counter(m for (m,) in Message.select(Message.external_id).where(
        (Message.channel == "shop") & (Message.direction == "in")).tuples())
    return {"posted": len(load.posted), "acknowledged": len(load.acked),
            "stored_once": sum(1 for m in load.acked if rows[m] == 1),
            "acknowledged_missing": sum(1 for m in load.acked if rows[m] == 0),
            "stored_more_than_once": sum(1 for n in rows.values() if n > 1),
            "unacknowledged_but_stored": sum(1 for m in load.unacked if rows[m])}


def phase_figures(load: Load, events: dict[str, Any]) -> dict[str, Any]:
    starts = events["phase_seconds"]
    names = list(starts)
    out = {}
    for n, name in enumerate(names):
        length = (starts[names[n + 1]] if n + 1 < len(names) else events["ended"]) - starts[name]
        latencies = load.latency.get(name, [])
        out[name] = {"seconds": round(length, 1), "messages_per_s": round(len(latencies) / length, 1),
                     "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                     "p99_ms": round(percentile(latencies, 99) * 1000, 1)}
    return out


def play(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-scale-out-"))
    procs: list[subprocess.Popen[bytes]] = []
    ok = False
    try:
        with scratch_database(args.database, tmp) as db_url:
            stand_port = free_port()
            stand = StandIn(f"http://127.0.0.1:{stand_port}")
            configs = {name: config_file(tmp, name, db_url, stand.base, level, args.campaign_rate)
                       for name, level in (("serveA", "WARNING"), ("serveB", "WARNING"),
                                           ("schedulerA", "INFO"), ("schedulerB", "INFO"))}
            subprocess.run([KEFU, "init", "--demo", "--config", str(configs["serveA"])], check=True, cwd=str(ROOT),
                           capture_output=True)
            campaign_id = seed_campaign(db_url, args.followers)
            seed_agents()
            procs.append(launch([PY, "-c", f"from adapters.sandbox.app import serve; serve(port={stand_port})"],
                                tmp / "stand-in.log"))
            wait_http(f"{stand.base}/sandbox/calls?after=999999999")
            stand.post("/sandbox/faults", {"errcode": 0, "path": "/custom/send", "times": 10 ** 7,
                                           "latency": args.latency})
            servers, urls = {}, {}
            for name in ("A", "B"):
                port = free_port()
                servers[name] = launch([KEFU, "serve", "--config", str(configs[f"serve{name}"]), "--port", str(port)],
                                       tmp / f"serve{name}.log")
                procs.append(servers[name])
                urls[name] = f"http://127.0.0.1:{port}/wechat/shop"
            for name, url in urls.items():
                port = int(url.split(":")[2].split("/")[0])
                wait_http(f"http://127.0.0.1:{port}/healthz", 60)
                wait_faq_ready(port)
            schedulers = []
            for name in ("A", "B"):  # A first, and leading, before B starts: B stands by
                schedulers.append(launch([KEFU, "scheduler", "--config", str(configs[f"scheduler{name}"])],
                                         tmp / f"scheduler{name}.log"))
                procs.append(schedulers[-1])
                if name == "A":
                    wait_until(lambda: leader_since(tmp / "schedulerA.log") is not None, 60, "scheduler A leading", tmp)
            time.sleep(2.0)  # B is up and standing by
            subprocess.run([KEFU, "campaign", "change", "schedule", str(campaign_id), "--config",
                            str(configs["serveA"])], check=True, cwd=str(ROOT), capture_output=True)
            load = Load(Balancer([urls["A"]]), time.monotonic() + args.seconds)
            events = asyncio.run(drive(load, servers, urls, schedulers, args.seconds, args.concurrency))
            load_end = round(os.getloadavg()[0], 2)
            from bot.core import db
            from bot.core.config import SchedulerConfig

            db.connect(db_url)
            wait_until(lambda: campaign_status(configs["serveA"], campaign_id)["status"] == "done" and not backlog(),
                       args.timeout, "the campaign and the outbox finishing", tmp)
            took_over = leader_since(tmp / "schedulerB.log")
            time.sleep(1.0)  # nothing more may arrive
            stand.refresh()
            received = Counter({user: n for user, n in stand.received().items() if user.startswith("o_crash_")})
            result = {
                "seconds": args.seconds, "concurrency": args.concurrency, "database": "postgresql",
                "cores": os.cpu_count(), **stored_once(load), "load": dict(load.counts),
                **sends_doubled(stand), "campaign": tally(db_url, campaign_id, received),
                **conversations_check(),
                "serve_killed_at_s": events["serve_killed_at_s"],
                "scheduler_killed_at_s": events["scheduler_killed_at_s"],
                "scheduler_takeover_s": round(took_over - events["scheduler_killed_wall"], 2) if took_over else None,
                "scheduler_lease_s": SchedulerConfig().lease_seconds,
                "phases": phase_figures(load, events),
                "load_average": {"at_kills": events["load_average_at_kills"], "at_end_of_load": load_end},
            }
            ok = True
            return result
    finally:
        stop(procs)
        if ok:  # a failed run keeps its directory (the processes' logs) for a look
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load (default 60)")
    parser.add_argument("--concurrency", type=int, default=16, help="customers posting at once")
    parser.add_argument("--followers", type=int, default=None, help="campaign recipients (default 25 x seconds)")
    parser.add_argument("--campaign-rate", type=float, default=20.0, help="campaign sends/s per sender")
    parser.add_argument("--latency", type=float, default=0.05, help="the stand-in's seconds per send")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--timeout", type=float, default=300.0, help="for the campaign to finish after the load")
    args = parser.parse_args()
    if not args.database.startswith("postgres"):
        raise SystemExit("scale-out is PostgreSQL's: several processes share one database")
    args.followers = args.followers or int(25 * args.seconds)
    print(json.dumps(play(args), ensure_ascii=False, indent=2), flush=True)


if __name__ == "__main__":
    main()
