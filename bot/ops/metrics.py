"""Prometheus metrics: what kefu counts, and the text an operator's Prometheus scrapes.

Why prometheus-client: the field's library, with its text format and a multi-process mode.
Two kinds of numbers:

- events a process sees (messages in, duplicates, replies by stage, latency, late replies,
  platform errors, token refreshes, job runs, leadership, the FAQ index it holds): counters,
  histograms and gauges on prometheus-client's registry. With several `kefu serve` on one
  host, set `PROMETHEUS_MULTIPROC_DIR` (an empty folder, cleared at each start, the same for
  all of them) before they start: each process writes its values there and any one of them
  answers /metrics with the sum (`MultiProcessCollector`).
- state that lives in the database (outbox backlog and oldest row, queue, agents online,
  open conversations, campaign deliveries): read at scrape time by `DatabaseCollector`, so
  every process reports the same truth and nothing is double counted across processes.

This module imports no transport; the webhook server and the admin call `render()`.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime
from typing import Any, Iterator, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

INBOUND = Counter("kefu_inbound_messages", "Inbound messages handled (first deliveries)", ["channel", "kind"])
DUPLICATES = Counter("kefu_duplicates_dropped", "Platform retries of a message already stored", ["channel"])
REPLIES = Counter("kefu_replies", "Customer messages by how the bot answered them: exact, lexical or semantic "
                  "FAQ match, abstained (unsure), handed_over (to an agent or the queue)", ["channel", "stage"])
LATENCY = Histogram("kefu_reply_latency_seconds", "Time to decide and store the replies to one message", ["channel"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0))
LATE = Counter("kefu_late_replies", "Replies ready after the passive-reply deadline (sent through the outbox)",
               ["channel"])
PLATFORM_ERRORS = Counter("kefu_platform_errors", "Non-zero errcodes answered by the platform's API", ["errcode"])
TOKEN_REFRESHES = Counter("kefu_token_refreshes", "access_token fetches from the platform", ["app"])
JOB_RUNS = Counter("kefu_job_runs", "Scheduled job runs by outcome (ok, idle, failed)", ["job", "outcome"])
LEADER = Gauge("kefu_scheduler_leader", "1 while this process's scheduler leads", multiprocess_mode="livesum")
FAQ_INDEX = Gauge("kefu_faq_index_faqs", "FAQs in the process's index", multiprocess_mode="livemax")
FAQ_WARMING = Gauge("kefu_faq_warming", "1 while phrasings are being embedded (answers are lexical meanwhile)",
                    multiprocess_mode="livemax")

HANDED_OVER = frozenset({"handoff", "queued"})


def reply_stage(action: str, metas: Sequence[Mapping[str, Any]]) -> str | None:
    """How the bot answered a customer message, from the dispatcher's action and the replies'
    meta (bot.conversation.routing writes the matcher's stage and `abstained`); None when it did not
    answer (an agent's message, a relay to the agent, a rating)."""
    if action in HANDED_OVER:
        return "handed_over"
    for meta in metas:
        if meta.get("abstained"):
            return "abstained"
        if action == "faq" and meta.get("stage"):
            return str(meta["stage"])
    return None


def observe_message(channel: str, kind: str, duplicate: bool, stage: str | None, seconds: float) -> None:
    """One message handled by the dispatcher."""
    if duplicate:
        _child(DUPLICATES, channel).inc()
        return
    _child(INBOUND, channel, kind).inc()
    _child(LATENCY, channel).observe(seconds)
    if stage:
        _child(REPLIES, channel, stage).inc()


_CHILDREN: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: prometheus-client checks and joins the labels under a
    lock on every call, three times a message; the child it returns is the same object each
    time (nothing here removes one)."""
    key = (metric, *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


# --- state read from the database at scrape time --------------------------------------------------

def _when(value: Any) -> datetime | None:
    from bot.core.db import UTCDateTimeField

    if value is None or isinstance(value, datetime):
        return value
    return UTCDateTimeField().python_value(value)


def _age(now: datetime, value: Any) -> float:
    when = _when(value)
    return max((now - when).total_seconds(), 0.0) if when else 0.0


class DatabaseCollector(Collector):
    """Gauges of shared state, read when Prometheus scrapes (one query each, grouped)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from peewee import fn

        from bot.core import clock
        from bot.core.models import Agent, Conversation, Delivery, Outbox

        now = clock.now()
        backlog = GaugeMetricFamily("kefu_outbox_backlog", "Outbox rows not sent, by channel and status",
                                    labels=["channel", "status"])
        oldest = GaugeMetricFamily("kefu_outbox_oldest_age_seconds", "Age of the oldest outbox row not sent",
                                   labels=["channel", "status"])
        rows = (Outbox.select(Outbox.channel, Outbox.status, fn.COUNT(Outbox.id), fn.MIN(Outbox.created_at))
                .where(Outbox.status.not_in(("sent", "cancelled"))).group_by(Outbox.channel, Outbox.status).tuples())
        for channel, status, count, first in rows:
            backlog.add_metric([channel, status], count)
            oldest.add_metric([channel, status], _age(now, first))
        yield backlog
        yield oldest
        queued = (Conversation.select(fn.COUNT(Conversation.id), fn.MIN(Conversation.queued_at))
                  .where(Conversation.status == "queued").tuples().get())
        yield GaugeMetricFamily("kefu_queue_length", "Conversations waiting for an agent", value=queued[0])
        yield GaugeMetricFamily("kefu_queue_longest_wait_seconds", "How long the first in the queue has waited",
                                value=_age(now, queued[1]))
        online = Agent.select().where((Agent.status == "online") & (Agent.active == True)).count()  # noqa: E712
        yield GaugeMetricFamily("kefu_agents_online", "Agents online", value=online)
        open_ = GaugeMetricFamily("kefu_open_conversations", "Conversations not resolved, by status",
                                  labels=["status"])
        for status, count in (Conversation.select(Conversation.status, fn.COUNT(Conversation.id))
                              .where(Conversation.status != "resolved").group_by(Conversation.status).tuples()):
            open_.add_metric([status], count)
        yield open_
        deliveries = GaugeMetricFamily("kefu_campaign_deliveries", "Campaign deliveries by status",
                                       labels=["status"])
        for status, count in (Delivery.select(Delivery.status, fn.COUNT(Delivery.id))
                              .where(Delivery.campaign.is_null(False)).group_by(Delivery.status).tuples()):
            deliveries.add_metric([status], count)
        yield deliveries


_DATABASE_REGISTRY = CollectorRegistry(auto_describe=False)
_DATABASE_REGISTRY.register(DatabaseCollector())


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


def render(with_database: bool = True) -> tuple[bytes, str]:
    """The exposition text (blocking: it queries the database) and its content type."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if with_database:
        body += generate_latest(_DATABASE_REGISTRY)
    return body, CONTENT_TYPE_LATEST


def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>` with the configured token (constant-time compare)."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def mark_process_dead(pid: int | None = None) -> None:
    """In multi-process mode, drop a stopped process's live gauges (call at shutdown)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid or os.getpid())

