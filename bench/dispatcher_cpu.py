"""CPU cost of the core for one FAQ-answered message, in process (no HTTP, no crypto).

Why: the webhook benchmark showed the core, not the WeChat path, bounds throughput. This
isolates `Dispatcher.handle` on a fresh SQLite file with the demo shop: it prints the SQL
statements one returning customer's question costs and the CPU milliseconds per message
over N messages (CPU time of the calling thread: neither a busy machine nor the embedding
model's threads count in it, as they would in wall or process time). With `--batch B` the
messages go through the webhook's group commit instead (`adapters.group_commit.decide_batch`,
B messages a transaction, as the server under load decides them), a fifth of them the same
message twice (WeChat's retry landing in the batch). The best of `--rounds` runs.

    .venv/bin/python bench/dispatcher_cpu.py [--messages 300] [--batch 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import demo  # noqa: E402
from bot.core import db, migrations
from bot.core.config import Config, DatabaseConfig  # noqa: E402
from bot.conversation.dispatcher import Dispatcher  # noqa: E402
from bot.core.events import Inbound  # noqa: E402
from bot.faq.store import FaqStore  # noqa: E402

QUESTIONS = ("发货要多久", "怎么退货", "尺码怎么选", "有什么优惠券", "可以开发票吗")


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.statements.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--batch", type=int, default=0, help="decide B messages a transaction (group commit)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the measured run, print the best")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the dispatcher's per-message log line is not the subject
    data = tempfile.mkdtemp(prefix="kefu-bench-")
    config = Config(data_dir=data, database=DatabaseConfig(url=f"sqlite:///{data}/kefu.db"))
    db.connect(config.database_url)
    migrations.upgrade()
    demo.seed(config)
    store = FaqStore(check_seconds=2)
    store.refresh(True)
    store.wait_warm()  # the demo phrasings are embedded in a background thread: not the subject
    dispatcher = Dispatcher(config, store)
    serial = iter(range(10**9))

    def ask(user: str, text: str) -> None:
        dispatcher.handle(Inbound(channel="web", user_id=user, msg_id=f"m{next(serial)}", text=text))

    for i in range(20):
        ask(f"warm{i}", QUESTIONS[i % len(QUESTIONS)])
    counter = _Count()
    sql_log = logging.getLogger("peewee")
    logging.disable(logging.NOTSET)
    sql_log.setLevel(logging.DEBUG)
    sql_log.addHandler(counter)
    ask("warm3", QUESTIONS[0])
    sql_log.removeHandler(counter)
    sql_log.setLevel(logging.WARNING)
    logging.disable(logging.INFO)
    per_message = min(run(ask, dispatcher, args.messages, args.batch, serial, f"r{n}") for n in range(args.rounds))
    print(f"statements for one returning customer's FAQ answer: {len(counter.statements)}")
    print(f"CPU per message: {per_message:.2f} ms over {args.messages} messages "
          f"(at most ~{1000 / per_message:.0f} messages/s on one core)")


def run(ask, dispatcher: Dispatcher, messages: int, batch: int, serial, tag: str) -> float:  # type: ignore[no-untyped-def]
    """CPU ms of the calling thread per message over `messages` from 100 customers new to
    this run (`tag`): with 300 messages a third are first contacts. One at a time, or `batch`
    at a time through the group commit."""
    started = time.thread_time()
    if not batch:
        for i in range(messages):
            ask(f"{tag}c{i % 100}", QUESTIONS[i % len(QUESTIONS)])
        return (time.thread_time() - started) / messages * 1000
    import concurrent.futures

    from adapters.group_commit import Pending, decide_batch

    pending: list[Pending] = []
    for i in range(messages):
        user = f"{tag}c{i % 100}"
        inbound = Inbound(channel="web", user_id=user, msg_id=f"m{next(serial)}", text=QUESTIONS[i % len(QUESTIONS)])
        pending.append(Pending(inbound, None, concurrent.futures.Future()))  # type: ignore[arg-type]
        if i % 5 == 4:
            pending.append(Pending(inbound, None, concurrent.futures.Future()))  # type: ignore[arg-type]
        if len(pending) >= batch:
            decide_batch(dispatcher, pending)
            pending = []
    if pending:
        decide_batch(dispatcher, pending)
    return (time.thread_time() - started) / messages * 1000


if __name__ == "__main__":
    main()
