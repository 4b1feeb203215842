"""WeRoBot answering the benchmark's questions: the framework a shop might pick instead of kefu.

Why ours and this small: bench/webhook.py measures kefu against a bare WeChat framework on
the same load. This robot does what such a shop bot does at its simplest: safe-mode crypto,
an answer from a dict for a known question, a fixed handoff text for a request for a person,
a fixed "not sure" text otherwise. It stores nothing (no session, no dedup: a retry is
answered again). Run under gunicorn with one sync worker:

    BENCH_TOKEN=... BENCH_APP_ID=... BENCH_AES_KEY=... gunicorn -w 1 -k sync bench.werobot_app:app
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from werobot import WeRoBot

FAQ_FILE = Path(__file__).resolve().parent.parent / "bot" / "demo_data" / "faq_zh.jsonl"
HANDOFF_WORDS = ("转人工", "人工", "客服")
HANDOFF_TEXT = "已为您转接人工客服，请稍候。"
UNSURE_TEXT = "抱歉，这个问题我还不太确定。您可以换个说法，或回复“转人工”联系人工客服。"


def answers() -> dict[str, str]:
    """Every phrasing of the demo FAQ pack -> its answer."""
    table: dict[str, str] = {}
    for line in FAQ_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            for question in item["questions"]:
                table[question] = item["answer"]
    return table


ANSWERS = answers()
robot = WeRoBot(token=os.environ.get("BENCH_TOKEN", "bench_token"), app_id=os.environ.get("BENCH_APP_ID", ""),
                encoding_aes_key=os.environ.get("BENCH_AES_KEY", ""))
robot.config["SESSION_STORAGE"] = False  # no session: its default is a SQLite file, committed per message


@robot.text
def reply(message: Any) -> str:
    question = message.content.strip()
    if question in ANSWERS:
        return ANSWERS[question]
    if any(word in question for word in HANDOFF_WORDS):
        return HANDOFF_TEXT
    return UNSURE_TEXT


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The robot's WSGI app, plus the /healthz the benchmark waits for."""
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return robot.wsgi(environ, start_response)
