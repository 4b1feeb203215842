"""Crash while a campaign is being sent: SIGKILL the sending process at ~30 %, restart it,
and count what the customers got. The walk-through of issue 24, on 127.0.0.1.

Why real processes: the guarantee is about what survives a SIGKILL (nothing in memory, a
claim left in the database, an HTTP call that may or may not have reached the platform),
which only a killed process shows. So this runs what an operator runs: the WeChat
stand-in slowed to `--latency` s per send, N followers of a 公众号 channel in one group, a
text campaign to the group scheduled with `kefu campaign change schedule`, and either

- `--kill run`: one `kefu run` (server, sender, scheduler), SIGKILLed and started again; or
- `--kill serve`: `kefu serve` (the sender) SIGKILLed and started again while `kefu
  scheduler` lives on;

then it waits until `kefu campaign list` says `done` and prints, from the stand-in's
record of accepted sends and the database:

    doubled     customers who received the campaign more than once (must be 0)
    missing     customers who received nothing and are not reported in doubt (must be 0)
    in_doubt    customers reported in doubt (attempted when the process died), and how
                many of those did in fact receive it
    seconds_kill_to_done, seconds_restart_to_done

    .venv/bin/python bench/crash_send.py                      # both kills, SQLite
    .venv/bin/python bench/crash_send.py --kill serve --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import broadcast_fanout  # noqa: E402
from bench.broadcast_fanout import start as launch  # noqa: E402
from bench.common import free_port, wait_http  # noqa: E402

PY = sys.executable
KEFU = str(Path(PY).parent / "kefu")
SEND_PATH = "/cgi-bin/message/custom/send"


@contextlib.contextmanager
def scratch_database(database: str, tmp: Path) -> Iterator[str]:
    """A database URL of its own for this run: a SQLite file in `tmp`, or a fresh schema on
    the given PostgreSQL server (dropped afterwards)."""
    if database == "sqlite":
        yield f"sqlite:///{tmp / 'kefu.db'}"
        return
    from bot.core.db import open_database

    schema = f"kefu_crash_{uuid.uuid4().hex[:8]}"
    server = open_database(database)
    server.connect()
    server.execute_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
    finally:
        server.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
        server.close()


def config_file(tmp: Path, db_url: str, stand_in: str, port: int) -> Path:
    """The operator's config: defaults but for the addresses (the outbox lease and the
    scheduler's lease are the shipped defaults)."""
    return broadcast_fanout.write_config(tmp, db_url, stand_in, port, tuning="", channel_tuning="",
                                         credentials="crash")


def seed(db_url: str, followers: int) -> int:
    """N followers who wrote in the last hour (inside the 48-hour window), one group of all
    of them, and a draft text campaign to the group."""
    from bot.core import clock, db
    from bot.core.models import Campaign, Customer, CustomerGroup, GroupMember

    db.connect(db_url)
    now = clock.now()
    Customer.insert_many([{"channel": "mp", "external_id": f"o_crash_{i:05d}", "nickname": f"顾客{i}",
                           "source": "mp", "first_contact_at": now, "last_contact_at": now, "last_inbound_at": now}
                          for i in range(followers)]).execute()
    group = CustomerGroup.create(name="全部粉丝", kind="普通群")
    members = Customer.select(Customer.id).where(Customer.channel == "mp")
    GroupMember.insert_many([{"group": group.id, "customer": cid, "joined_at": now} for (cid,) in members.tuples()]
                            ).execute()
    campaign = Campaign.create(name="双十二预售", target_kind="group", target_value=str(group.id),
                               content_kind="text", content={"text": "{nickname}您好，双十二预售开始啦"})
    return int(campaign.id)


class StandIn:
    """The stand-in's record of accepted sends, read incrementally."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.calls: list[dict[str, Any]] = []

    def post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()

    def refresh(self) -> None:
        with urllib.request.urlopen(f"{self.base}/sandbox/calls?after={len(self.calls)}", timeout=60) as resp:
            self.calls += json.loads(resp.read())["calls"]

    def received(self) -> Counter[str]:
        return Counter(c["body"]["touser"] for c in self.calls if c["path"] == SEND_PATH and c["errcode"] == 0)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process still alive at once, then wait for each (SIGKILL after 15 s)."""
    alive = [proc for proc in procs if proc.poll() is None]
    for proc in alive:
        proc.terminate()
    for proc in alive:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def campaign_status(config: Path, campaign_id: int) -> dict[str, Any]:
    """What `kefu campaign list` says about the campaign (the operator's view)."""
    out = subprocess.run([KEFU, "campaign", "list", "--config", str(config)], capture_output=True, text=True,
                         cwd=str(ROOT), check=True).stdout
    for line in out.splitlines():
        row = json.loads(line)
        if row["id"] == campaign_id:
            return row
    raise SystemExit(f"campaign {campaign_id} not listed")


def play(kill: str, followers: int, latency: float, kill_at: float, database: str, timeout: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-crash-send-"))
    log = tmp / "processes.log"
    procs: list[subprocess.Popen[bytes]] = []
    ok = False
    try:
        with scratch_database(database, tmp) as db_url:
            stand_port, server_port = free_port(), free_port()
            stand = StandIn(f"http://127.0.0.1:{stand_port}")
            config = config_file(tmp, db_url, stand.base, server_port)
            subprocess.run([KEFU, "init", "--config", str(config)], check=True, cwd=str(ROOT), capture_output=True)
            campaign_id = seed(db_url, followers)
            procs.append(launch([PY, "-c", f"from adapters.sandbox.app import serve; serve(port={stand_port})"], log))
            wait_http(f"{stand.base}/sandbox/calls?after=999999999")
            stand.post("/sandbox/faults", {"errcode": 0, "path": "/custom/send", "times": 10 * followers,
                                           "latency": latency})
            sending = [KEFU, "run", "--no-admin", "--config", str(config)] if kill == "run" else \
                [KEFU, "serve", "--config", str(config)]
            sender = launch(sending, log)
            procs.append(sender)
            wait_http(f"http://127.0.0.1:{server_port}/healthz")
            if kill == "serve":
                procs.append(launch([KEFU, "scheduler", "--config", str(config)], log))
            subprocess.run([KEFU, "campaign", "change", "schedule", str(campaign_id), "--config", str(config)],
                           check=True, cwd=str(ROOT), capture_output=True)
            t0 = time.monotonic()
            deadline = t0 + timeout
            while len(stand.received()) < followers * kill_at:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no progress; see {log}")
                time.sleep(0.02)
                stand.refresh()
            # the count moves when a wave of answers arrives, when the sender is recording them
            # rather than calling: kill a random moment later, so that calls are on the wire too
            time.sleep(random.uniform(0, 3 * latency))
            sender.send_signal(signal.SIGKILL)
            sender.wait()
            t_kill = time.monotonic()
            time.sleep(0.5)  # calls the dead process had on the wire are answered by now
            stand.refresh()
            at_kill = len(stand.received())
            restarted = launch(sending, log)
            procs.append(restarted)
            wait_http(f"http://127.0.0.1:{server_port}/healthz")
            t_restart = time.monotonic()
            while True:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the campaign never finished; see {log}")
                listed = campaign_status(config, campaign_id)
                if listed["status"] == "done":
                    break
                time.sleep(0.5)
            t_done = time.monotonic()
            time.sleep(1.0)  # nothing more may arrive
            stand.refresh()
            result = tally(db_url, campaign_id, stand.received())
            result.update({
                "kill": f"kefu {kill}" + (" (scheduler lives)" if kill == "serve" else ""),
                "database": "sqlite" if database == "sqlite" else "postgresql",
                "followers": followers, "stand_in_latency_s": latency,
                "received_at_kill": at_kill, "seconds_schedule_to_kill": round(t_kill - t0, 2),
                "seconds_kill_to_done": round(t_done - t_kill, 2),
                "seconds_restart_to_done": round(t_done - t_restart, 2),
                "campaign_list_progress": listed["progress"],
            })
            ok = True
            return result
    finally:
        stop(procs)
        if ok:  # a failed run keeps its directory (processes.log) for a look
            shutil.rmtree(tmp, ignore_errors=True)


def tally(db_url: str, campaign_id: int, received: Counter[str]) -> dict[str, Any]:
    """Every recipient's fate, by the stand-in (what arrived) and kefu (what it reports)."""
    from bot.core import db
    from bot.core.models import Campaign, Customer, Delivery

    db.connect(db_url)
    run_key = Campaign.get_by_id(campaign_id).run_key
    fate = {openid: status for openid, status in Delivery.select(Customer.external_id, Delivery.status)
            .join(Customer).where(Delivery.job_key == run_key).tuples()}
    in_doubt = {openid for openid, status in fate.items() if status == "in_doubt"}
    return {
        "recipients": len(fate),
        "doubled": sum(1 for n in received.values() if n > 1),
        "missing": sum(1 for openid in fate if openid not in received and openid not in in_doubt),
        "in_doubt": len(in_doubt),
        "in_doubt_that_arrived": sum(1 for openid in in_doubt if openid in received),
        "sent_by_kefu_but_not_arrived": sum(1 for o, s in fate.items() if s == "sent" and o not in received),
        "statuses": dict(Counter(fate.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill", choices=("run", "serve", "both"), default="both")
    parser.add_argument("--followers", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=0.1, help="the stand-in's seconds per send")
    parser.add_argument("--kill-at", type=float, default=0.3, help="share received when the sender is killed")
    parser.add_argument("--database", default="sqlite", help="sqlite (a temp file) or a postgresql:// URL")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    for kill in (("run", "serve") if args.kill == "both" else (args.kill,)):
        print(json.dumps(play(kill, args.followers, args.latency, args.kill_at, args.database, args.timeout),
                         ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
