"""Broadcast fan-out: a campaign to N customers through the real processes, against the local
WeChat stand-in (adapters/sandbox), everything on 127.0.0.1.

Why this shape: the figures that matter are the product's, so the bench runs what an
operator runs — `kefu serve` (the outbox sender) and `kefu scheduler` (the fan-out), as
separate processes on one database — and counts what the stand-in received.

    .venv/bin/python bench/broadcast_fanout.py --customers 100000            # throughput, memory
    .venv/bin/python bench/broadcast_fanout.py --customers 100000 --kill-at 0.5
    .venv/bin/python bench/broadcast_fanout.py --database postgresql://postgres@127.0.0.1:5432/test ...
    .venv/bin/python bench/broadcast_fanout.py --customers 20000 --heap   # the fan-out's Python heap

It prints: deliveries/s (first hand-over to last send, rate limit off), peak RSS of the
scheduler and the sender, and with --kill-at: the scheduler is SIGKILLed once that share is
handed over, a standby takes over, and the bench prints the time until the fan-out moved
again plus the stand-in's count of sends (must be exactly N, each customer once).
"""

from __future__ import annotations

import argparse
import json
import os
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, wait_http  # noqa: E402

PY = sys.executable
KEFU = str(Path(PY).parent / "kefu")






def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process: on a shared machine, deliveries per
    CPU-second say more about kefu than wall-clock rates do."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


FANOUT_TUNING = """
[scheduler]
lease_seconds = 3
[outbox]
batch = 200
poll_seconds = 0.2
"""


def write_config(tmp: Path, db_url: str, sandbox: str, port: int, tuning: str = FANOUT_TUNING,
                 channel_tuning: str = "rate_per_second = 0", credentials: str = "bench") -> Path:
    """A config on one 公众号 channel pointed at the stand-in. `tuning` and `channel_tuning`:
    this bench's shorter leases, bigger batches and no send rate limit ("" for the shipped
    defaults)."""
    path = tmp / "kefu.toml"
    path.write_text(f"""
data_dir = "{tmp / 'data'}"
[database]
url = "{db_url}"
[server]
host = "127.0.0.1"
port = {port}
{tuning}
[log]
level = "WARNING"
[[channels]]
name = "mp"
kind = "wechat_mp"
token = "{credentials}token"
app_id = "wx{credentials}"
app_secret = "{credentials}secret"
api_base = "{sandbox}"
{channel_tuning}
""")
    return path


def seed(db_url: str, customers: int) -> int:
    from bot.core import clock, db
    from bot.core.models import Campaign, Customer

    db.connect(db_url)
    now = clock.now()
    batch = []
    for i in range(customers):
        batch.append({"channel": "mp", "external_id": f"o{i:07d}", "nickname": f"顾客{i}", "source": "mp",
                      "first_contact_at": now, "last_contact_at": now, "last_inbound_at": now})
        if len(batch) == 5000:
            Customer.insert_many(batch).execute()
            batch = []
    if batch:
        Customer.insert_many(batch).execute()
    campaign = Campaign.create(name="压测群发", target_kind="all", content_kind="text",
                               content={"text": "{nickname}您好，{level}专享双十二预售开始啦"}, status="draft")
    return int(campaign.id)


class Counts:
    def __init__(self, db_url: str, campaign_id: int) -> None:
        from bot.core import db

        self.database = db.connect(db_url)
        self.campaign_id = campaign_id

    def handed_over(self) -> int:
        return int(self.database.execute_sql(
            "SELECT COUNT(*) FROM delivery WHERE campaign_id = %s AND status <> 'pending'" % self.campaign_id
        ).fetchone()[0])

    def sent(self) -> int:
        return int(self.database.execute_sql(
            "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND substr(key, 1, 9) = 'delivery:'").fetchone()[0])

    def status(self) -> str:
        return str(self.database.execute_sql("SELECT status FROM campaign WHERE id = %s" % self.campaign_id)
                   .fetchone()[0])

    def leading(self) -> bool:
        from bot.core.db import is_postgres

        if is_postgres():
            return bool(self.database.execute_sql(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0])
        return bool(self.database.execute_sql("SELECT COUNT(*) FROM lease WHERE name = 'scheduler'").fetchone()[0])


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=str(ROOT),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def run(customers: int, kill_at: float | None, database: str, timeout: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-fanout-bench-"))
    schema = None
    if database == "sqlite":
        db_url = f"sqlite:///{tmp / 'kefu.db'}"
    else:
        from bot.core.db import open_database

        schema = f"kefu_bench_{uuid.uuid4().hex[:8]}"
        admin = open_database(database)
        admin.connect()
        admin.execute_sql(f'CREATE SCHEMA "{schema}"')
        admin.close()
        sep = "&" if "?" in database else "?"
        db_url = f"{database}{sep}options=-csearch_path%3D{schema}"
    sandbox_port, server_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    config = write_config(tmp, db_url, sandbox_url, server_port)
    log = tmp / "processes.log"
    procs: list[subprocess.Popen[bytes]] = []
    finished = False
    try:
        subprocess.run([KEFU, "init", "--config", str(config)], check=True, cwd=str(ROOT), capture_output=True)
        campaign_id = seed(db_url, customers)
        sandbox = start([PY, "-c", f"from adapters.sandbox.app import serve; serve(port={sandbox_port})"], log)
        procs.append(sandbox)
        wait_http(f"{sandbox_url}/sandbox/calls?after=999999999")
        sender = start([KEFU, "serve", "--config", str(config)], log)
        procs.append(sender)
        wait_http(f"http://127.0.0.1:{server_port}/healthz")
        leader = start([KEFU, "scheduler", "--config", str(config)], log)
        procs.append(leader)
        counts = Counts(db_url, campaign_id)
        deadline = time.monotonic() + 30
        while not counts.leading():
            if time.monotonic() > deadline:
                raise SystemExit("the scheduler never took the lead; see " + str(log))
            time.sleep(0.1)
        standby = None
        if kill_at is not None:
            standby = start([KEFU, "scheduler", "--config", str(config)], log)
            procs.append(standby)
            time.sleep(2.0)  # let it start and stand by

        from bot.campaigns import runs
        from bot.core.models import Campaign

        t_start = time.monotonic()
        runs.schedule(Campaign.get_by_id(campaign_id))
        t_first = t_kill = t_resume = None
        at_kill = 0
        peak_leader = peak_standby = cpu_leader = cpu_standby = float("nan")
        cpu_sender_before = cpu_seconds(sender.pid)
        cpu_leader_before = cpu_seconds(leader.pid)
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; see {log}")
            handed = counts.handed_over()
            if t_first is None and handed:
                t_first = time.monotonic()
            if kill_at is not None and t_kill is None and handed >= customers * kill_at:
                peak_leader = peak_rss_mb(leader.pid)
                cpu_leader = cpu_seconds(leader.pid)
                leader.send_signal(signal.SIGKILL)
                leader.wait()
                t_kill, at_kill = time.monotonic(), counts.handed_over()
            if t_kill is not None and t_resume is None and handed > at_kill:
                t_resume = time.monotonic()
            if counts.sent() >= customers and counts.status() == "done":
                break
            time.sleep(0.05)
        t_end = time.monotonic()
        if standby is None:
            peak_leader, cpu_leader = peak_rss_mb(leader.pid), cpu_seconds(leader.pid)
        else:
            peak_standby, cpu_standby = peak_rss_mb(standby.pid), cpu_seconds(standby.pid)
        peak_sender = peak_rss_mb(sender.pid)
        cpu_sender = cpu_seconds(sender.pid) - cpu_sender_before
        cpu_scheduler = cpu_leader - cpu_leader_before + (0 if standby is None else cpu_standby)
        load = os.getloadavg()[0]
        time.sleep(1.0)  # nothing more may arrive
        with urllib.request.urlopen(f"{sandbox_url}/sandbox/calls", timeout=120) as resp:
            calls = json.loads(resp.read())["calls"]
        sends = [c for c in calls if c["path"] == "/cgi-bin/message/custom/send" and c["errcode"] == 0]
        per_user = Counter(c["body"]["touser"] for c in sends)
        finished = True
        return {
            "customers": customers,
            "database": "sqlite" if database == "sqlite" else "postgresql",
            "deliveries_per_s": round(customers / (t_end - t_first), 1) if t_first else None,
            "seconds_first_handover_to_last_send": round(t_end - (t_first or t_start), 2),
            "seconds_schedule_to_first_handover": round((t_first or t_start) - t_start, 2),
            "cpu_seconds_scheduler": round(cpu_scheduler, 2),
            "cpu_seconds_sender": round(cpu_sender, 2),
            "deliveries_per_cpu_second_scheduler": round(customers / cpu_scheduler, 1) if cpu_scheduler else None,
            "deliveries_per_cpu_second_sender": round(customers / cpu_sender, 1) if cpu_sender else None,
            "load_average_1min_at_end": round(load, 2),
            "peak_rss_mb_scheduler": round(peak_leader, 1),
            "peak_rss_mb_standby_after_takeover": round(peak_standby, 1),
            "peak_rss_mb_sender": round(peak_sender, 1),
            "killed_at_handed_over": at_kill if t_kill else None,
            "seconds_kill_to_resume": round(t_resume - t_kill, 2) if t_kill and t_resume else None,
            "sends_at_stand_in": len(sends),
            "distinct_recipients": len(per_user),
            "recipients_sent_twice": sum(1 for n in per_user.values() if n > 1),
        }
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if finished:  # a failed run keeps its directory (processes.log) for a look
            shutil.rmtree(tmp, ignore_errors=True)
        if schema:
            from bot.core.db import open_database

            admin = open_database(database)
            admin.connect()
            admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()


def heap(customers: int) -> dict[str, Any]:
    """The fan-out alone, in this process, under tracemalloc: the Python heap's peak while
    planning and handing over a campaign (no sender; the outbox just fills up)."""
    import tracemalloc

    from bot.campaigns import runs
    from bot.core import db, migrations
    from bot.core.models import Campaign

    tmp = Path(tempfile.mkdtemp(prefix="kefu-fanout-heap-"))
    db_url = f"sqlite:///{tmp / 'kefu.db'}"
    db.connect(db_url)
    migrations.upgrade()
    campaign_id = seed(db_url, customers)
    runs.schedule(Campaign.get_by_id(campaign_id))
    runs.start_run(campaign_id)
    tracemalloc.start()
    started = time.perf_counter()
    outcome = runs.drive(campaign_id, {"mp": "wechat_mp"}, max_backlog=0)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"customers": customers, "outcome": outcome, "python_heap_peak_mb": round(peak / 1e6, 2),
            "hand_over_per_s_under_tracemalloc": round(customers / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--kill-at", type=float, default=None, help="kill the scheduler at this share (e.g. 0.5)")
    parser.add_argument("--database", default="sqlite", help="sqlite (a temp file) or a postgresql:// URL")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--heap", action="store_true", help="only the fan-out, in process, under tracemalloc")
    args = parser.parse_args()
    if args.heap:
        print(json.dumps(heap(args.customers), ensure_ascii=False, indent=2))
        return
    result = run(args.customers, args.kill_at, args.database, args.timeout)
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
