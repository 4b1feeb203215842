"""The request id: one value on every log line of one webhook request, in whichever thread
the core handles it.

Why a context variable: the aiohttp handler, the core's worker thread (`CoreBridge` runs
the core in a copy of the request's context) and the dispatcher's one line per message all
see the same id without passing it through every signature. The JSON formatter
(`bot.core.runtime.JsonFormatter`, the standard library's logging: no second logging stack to
configure beside aiohttp's, werkzeug's and APScheduler's loggers) adds it as `request_id`.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import os
import re
import secrets
from typing import Iterator

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("kefu_request_id", default="")
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,64}")  # a proxy's X-Request-Id, if it looks like one


def new_request_id(offered: str | None = None) -> str:
    """The proxy's id when it is a plain token (nginx `$request_id`), else a fresh one: this
    process's random prefix and its count of requests, 16 hex digits. (A uuid4 per request
    read the kernel's random source each time: 8 % of the event loop's busy time under load.)"""
    if offered and _ACCEPTED.fullmatch(offered):
        return offered
    return f"{_prefix}{next(_serial) & 0xFFFFFFFF:08x}"


def _new_process() -> None:
    """A prefix of its own for every process, a forked child's included."""
    global _prefix, _serial
    _prefix, _serial = secrets.token_hex(4), itertools.count(1)


_prefix, _serial = "", itertools.count(1)
_new_process()
os.register_at_fork(after_in_child=_new_process)


@contextlib.contextmanager
def request_scope(request_id: str | None) -> Iterator[None]:
    """Log under `request_id` for the duration: the outbox sender sends a row under the id
    of the request that wrote it, so a late reply's lines carry the id of its message."""
    token = REQUEST_ID.set(request_id or "")
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True
