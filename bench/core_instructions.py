"""Machine instructions the core spends a message: a count that does not drift with the host.

Why: on this shared host the same pure-Python loop takes anywhere from 125 to 257 ms of CPU
from one second to the next, so CPU-time A/B tests of the hot path cannot see a 5 % change;
valgrind's instruction count (cachegrind, no cache simulation) is the same to 0.2 % from one
run to the next. It counts the webhook's core in process: messages through the group
commit (`adapters.group_commit.decide_batch`, 16 a batch) on a fresh SQLite file with the
demo shop, FAQs matched lexically (the embedding model, its threads and its warm-up would
drown the count), from 97 customers in turn, so after the warm-up (112 messages) every
message is a returning customer's, as under steady load. Each figure is (count after the
warm-up and 800 messages - count after the warm-up) / 800: start-up and imports cancel out.

Loads: `faq` (demo FAQ questions), `unknown` (questions no FAQ answers), `handoff` (转人工;
most of them from customers already waiting), `mixed` (13 : 4 : 3 of them).

    .venv/bin/python bench/core_instructions.py [--loads mixed,faq] [--compare DIR]

Needs valgrind (Debian: `apt-get install valgrind`); prints why and exits 0 without it. Not
the webhook's whole cost: HTTP, crypto and the event loop are not in it (bench/webhook.py).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
LOADS = {
    "faq": ["发货要多久", "怎么退货", "尺码怎么选", "有什么优惠券", "可以开发票吗"],
    "unknown": ["你们老板是谁啊", "火星上能送货吗", "今天天气怎么样"],
    "handoff": ["转人工", "我要找人工"],
    "mixed": ["发货要多久", "怎么退货", "尺码怎么选", "你们老板是谁啊", "有什么优惠券", "可以开发票吗", "火星上能送货吗",
              "转人工", "发货要多久", "怎么退货", "尺码怎么选", "有什么优惠券", "可以开发票吗", "发货要多久", "怎么退货",
              "今天天气怎么样", "我要找人工", "尺码怎么选", "有什么优惠券", "可以开发票吗"],
}
WARM, MEASURED, BATCH, CUSTOMERS = 112, 800, 16, 97


def run_core(tree: str, load: str, messages: int, database_url: str | None = None,
             measure: Callable[[int, Callable[[], object]], object] | None = None) -> None:
    """The measured program (run under valgrind): seed, warm up, then `messages` more.
    `database_url`: another database than a fresh SQLite file (bench/core_statements.py);
    `measure(n, run)`: called for each batch after the warm-up (n messages) to run it."""
    sys.path.insert(0, tree)
    import concurrent.futures
    import logging
    import tempfile

    from adapters.group_commit import Pending, decide_batch
    from bot import demo
    from bot.conversation.dispatcher import Dispatcher
    from bot.core import db, migrations
    from bot.core.config import Config, DatabaseConfig
    from bot.core.events import Inbound
    from bot.faq.store import FaqStore

    logging.disable(logging.INFO)
    data = tempfile.mkdtemp(prefix="kefu-bench-")
    config = Config(data_dir=data, database=DatabaseConfig(url=database_url or f"sqlite:///{data}/kefu.db"))
    db.connect(config.database_url)
    migrations.upgrade()
    demo.seed(config)
    store = FaqStore(check_seconds=2, embedder=None)
    store.refresh(True)
    dispatcher = Dispatcher(config, store)
    questions = LOADS[load]
    for start in range(0, WARM + messages, BATCH):
        batch = [Pending(Inbound(channel="mp", user_id=f"u{n % CUSTOMERS}", msg_id=f"m{n}",
                                 text=questions[n % len(questions)]),
                         None, concurrent.futures.Future())  # type: ignore[arg-type]
                 for n in range(start, start + BATCH)]
        if measure is not None and start >= WARM:
            measure(len(batch), functools.partial(decide_batch, dispatcher, batch))
        else:
            decide_batch(dispatcher, batch)
    db.database.obj.close()


def instructions(tree: str, load: str, messages: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--run", tree, load, str(messages)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, cwd="/tmp", check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_message(tree: str, load: str) -> float:
    return (instructions(tree, load, MEASURED) - instructions(tree, load, 0)) / MEASURED


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        run_core(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default="mixed,faq,unknown,handoff")
    parser.add_argument("--compare", default=None, metavar="DIR", help="also count another version's source tree")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts (apt-get install valgrind)")
        return
    trees = [("kefu", str(ROOT))] + ([("compared", str(Path(args.compare).resolve()))] if args.compare else [])
    print(f"instructions a message (valgrind, {MEASURED} messages after {WARM}, {BATCH} a batch, "
          f"{CUSTOMERS} returning customers, lexical FAQ match)")
    for load in args.loads.split(","):
        figures = {name: per_message(tree, load) for name, tree in trees}
        line = "  ".join(f"{name} {value / 1e6:.3f}M" for name, value in figures.items())
        if args.compare:
            line += f"  ({figures['kefu'] / figures['compared'] - 1:+.1%})"
        print(f"{load:<8} {line}")


if __name__ == "__main__":
    main()
