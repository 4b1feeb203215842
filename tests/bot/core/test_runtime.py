"""The JSON log lines: one object a line, structured fields merged as they are."""

from __future__ import annotations

import json
import logging

import pytest

from bot.conversation.dispatcher import Dispatcher
from bot.core.runtime import JsonFormatter, LogFields
from tests.factories import shop_faqs, text


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("kefu.test", logging.INFO, __file__, 1, msg, args, None)


def test_log_fields_are_merged_into_the_line() -> None:
    line = json.loads(JsonFormatter().format(_record("%s", LogFields(event="message", text="发货要多久", replies=1))))
    assert (line["event"], line["text"], line["replies"], line["logger"], line["level"]) == \
        ("message", "发货要多久", 1, "kefu.test", "info")
    assert "msg" not in line


def test_a_plain_message_and_a_json_message() -> None:
    assert json.loads(JsonFormatter().format(_record("refused %s", "a callback")))["msg"] == "refused a callback"
    assert json.loads(JsonFormatter().format(_record('{"event": "x", "n": 2}')))["n"] == 2


def test_log_fields_print_as_json_with_any_other_formatter() -> None:
    assert json.loads(logging.Formatter("%(message)s").format(_record("%s", LogFields(a="客服")))) == {"a": "客服"}


def test_the_dispatcher_logs_one_line_per_message(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    shop_faqs()
    with caplog.at_level(logging.INFO, logger="kefu.dispatcher"):
        dispatcher.handle(text("u1", "发货要多久", msg_id="m1"))
        dispatcher.handle(text("u1", "发货要多久", msg_id="m1"))
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "kefu.dispatcher"]
    assert [(line["event"], line["msg_id"], line["action"]) for line in lines] == \
        [("message", "m1", "faq"), ("message", "m1", "duplicate")]
