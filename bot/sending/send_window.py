"""The platforms' customer-service send limits, checked before the API is called.

Why: a send the platform is sure to refuse costs an API call, a slot of the channel's rate
limit and a token round trip, and otherwise is only learnt from the errcode (45015, 45047).
So every outbox delivery path asks `refusal` first (the async one in adapters/delivery.py
in a worker thread, the synchronous `bot.sending.outbox.deliver_due` directly), and a send that
cannot pass is recorded as `window_closed` / `limit_reached` without any call, exactly
like the errcode outcome (same statuses, same admin view, never retried). The errcode
classification (`adapters.api_client.classify`) stays as the backstop.

The sender says which rules apply and what a send makes: `channel_kind` (below) and
`plan(content)`, whose `.messages` is the platform messages the content makes from where it
resumes (adapters/wechat_mp.py `SendPlan`). A sender without `plan` makes one message per
send. The delivery works the plan out once and hands it to the check (`messages`) and then
to `send`, so a split text is cut once per attempt.

The rules (only the channel kinds below; web, wecom app and every other kind are free):
- 公众号 (`wechat_mp`), customer-service messages (`message/custom/send`, content kinds
  text / image / news): only within `CUSTOMER_SERVICE_WINDOW` (48 h) of the customer's last
  interaction. Template messages (`kind: template`) and mass sends (`kind: mass`) are not
  customer-service messages and are never limited. The window starts at
  `Customer.last_inbound_at`, which the dispatcher stamps for every message *and* event of
  the customer (message, menu click, subscribe, scan all count on this platform).
- 微信客服 (`wechat_kf`, `kf/send_msg`): only within 48 h of the customer's last *message*,
  and at most `KF_MESSAGES_PER_CUSTOMER_MESSAGE` (5) platform messages after it; the count
  starts again when the customer writes again. Entering the session (`enter_session`,
  stored as an inbound Message of kind `event`) is not a message: it neither opens the
  window nor resets the count. The welcome sent with its one-time code
  (`kf/send_msg_on_event`, content carries `welcome_code`) is separate and never limited
  nor counted.

The recipient: usually a customer; an agent linked on a 公众号 / 微信客服 channel (who gets
relays, handoff briefs and notices through that account) is under the same rules with
their own history: their inbound messages (author `agent`) count as their interactions
(on 微信客服 their messages only, not events). When one IM user is both a customer row and
an agent, the later of the two histories counts.

Per account: the platform keeps the 微信客服 limits per customer per 客服账号 (open_kfid). A
wechat_kf channel is exactly one account (config requires `open_kfid`; the adapter pulls
and sends only as it), so counting per channel and recipient is counting per account and
customer; the same customer writing to two accounts is two channels, two counts.

What counts toward the 5 (wechat_kf): the platform messages actually delivered to the same
channel and recipient since the customer's last message, i.e. Outbox rows with status
`sent` and `sent_at >= ` that message's `created_at`, excluding welcome rows. A text split
into parts counts one per part (each part is one `kf/send_msg`); a row that was resumed
after a transient error (`parts_sent` in its content) counts only the parts of its last,
successful attempt, because when the earlier parts went out is not recorded. The send
being checked needs as many messages as it has parts still to send, and is refused whole
when they do not all fit (`limit_reached`): the customer never gets half an answer.

Principle: refuse only what is known to be refused. Whenever the history is unknown the
send goes ahead and the platform decides (the errcode backstop):
- neither a Customer nor an Agent row for the recipient (e.g. a mass recipient
  `tag:...`), or one with no recorded message;
- parts delivered by a row that later ended `failed` / `limit_reached`, and earlier parts
  of a resumed row (not counted: at worst one call too many, answered 45047);
- our timestamps are when kefu handled the message, a moment after the platform saw it;
  events that do not open the 公众号 window (unsubscribe, a link menu) still stamp
  `last_inbound_at`. Both err on the side of calling.

Concurrency: one process sends to one recipient one row at a time, and each outcome is
stored before the next row of that recipient is checked (adapters/delivery.py), so the
count is exact within a process. Across processes the claim makes each *row* single-owner,
not each recipient: two processes may check two rows for the same customer at once, both
see 4 sent and both send; the platform refuses the 6th with 45047 and the backstop records
`limit_reached`. A customer message arriving between the check and the call is likewise
not seen: a send refused as `window_closed` a moment before the customer writes again
stays refused (the customer's new message gets its own replies). Taking a per-recipient
lock across processes for this would cost more than the rare extra call it saves.

Cost: nothing for other channel kinds and exempt content; one query per 公众号 send (the
customer by UNIQUE(channel, external_id), and in the same statement the agent by
UNIQUE(channel, im_user_id), then that agent's messages by message(agent_id)); two per
微信客服 send: the last message (the same two lookups, messages by message(customer_id) /
message(agent_id)) and the recipient's sends since. The second is served by an outbox (channel, recipient, sent_at)
index when the schema has one; without it, it reads the channel's outbox rows
(outbox(channel)). Always in a worker thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Protocol

from bot.core import clock
from bot.core.db import execute
from bot.core.models import Message, Outbox
from bot.sending.results import SendResult

log = logging.getLogger("kefu.send_window")

# The platforms' rules. The window is inclusive: exactly 48 h after the last message still passes.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=48)
KF_MESSAGES_PER_CUSTOMER_MESSAGE = 5

MP = "wechat_mp"
KF = "wechat_kf"
WINDOWED_KINDS = frozenset({MP, KF})  # channel kinds with the 48-hour customer-service window
# 公众号 content kinds that do not go through message/custom/send (adapters/wechat_mp.py)
MP_UNLIMITED_CONTENT_KINDS = frozenset({"template", "mass"})
# Sends read back when counting: a bound for a broken history; the platform lets at most
# 5 limited ones (plus welcomes) through per customer message.
MAX_SENDS_READ = 50

PartsOf = Callable[[Mapping[str, Any]], int]


class Planned(Protocol):
    """What a sender's `plan(content)` returns, as far as the check is concerned."""

    messages: int


def is_limited(channel_kind: str, content: Mapping[str, Any]) -> bool:
    """Whether this send is a customer-service message subject to the window (and, on
    微信客服, counted toward the 5)."""
    if channel_kind == MP:
        return str(content.get("kind") or "text") not in MP_UNLIMITED_CONTENT_KINDS
    if channel_kind == KF:
        return not content.get("welcome_code")
    return False


def decide(channel_kind: str, content: Mapping[str, Any], parts: int, last_inbound: datetime | None,
           sent_since: int, now: datetime) -> SendResult | None:
    """The pre-send decision: None when the send may go ahead, else the outcome to record.

    parts: the platform messages this send still makes (a split text: its parts left);
    last_inbound: the recipient's last message (None: unknown, the platform decides);
    sent_since: platform messages already delivered to this recipient since `last_inbound`.
    """
    if not is_limited(channel_kind, content) or last_inbound is None:
        return None
    age = now - last_inbound
    if age > CUSTOMER_SERVICE_WINDOW:
        return SendResult("window_closed", f"not sent (checked before sending): the recipient's last message was "
                                           f"{_hours(age)} ago, the platform allows customer-service messages "
                                           f"within {_hours(CUSTOMER_SERVICE_WINDOW)}")
    if channel_kind == KF and sent_since + parts > KF_MESSAGES_PER_CUSTOMER_MESSAGE:
        left = max(KF_MESSAGES_PER_CUSTOMER_MESSAGE - sent_since, 0)
        need = f"needs {parts} messages, " if parts > 1 else ""
        return SendResult("limit_reached", f"not sent (checked before sending): {need}{left} of "
                                           f"{KF_MESSAGES_PER_CUSTOMER_MESSAGE} left since the recipient's last "
                                           f"message ({sent_since} already sent)")
    return None


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"


# -- the history, from the database ------------------------------------------------------------

# The recipient as a customer and as an agent (an IM user may be both), in one statement each.
_AGENT_MESSAGES = (
    'SELECT MAX(m."created_at") FROM "message" m WHERE m."agent_id" = '
    '(SELECT a."id" FROM "agent" a WHERE a."channel" = ? AND a."im_user_id" = ?) '
    "AND m.\"direction\" = 'in' AND m.\"author\" = 'agent'"
)
_NOT_EVENT = " AND m.\"kind\" <> 'event'"
# 公众号: every interaction counts (the dispatcher stamps customers' last_inbound_at for events too)
_MP_LAST_INBOUND = (
    'SELECT (SELECT c."last_inbound_at" FROM "customer" c WHERE c."channel" = ? AND c."external_id" = ?), '
    f"({_AGENT_MESSAGES})"
)
# 微信客服: messages only (entering the session is an event), through message(customer_id) / (agent_id)
_KF_LAST_MESSAGE = (
    'SELECT (SELECT MAX(m."created_at") FROM "message" m WHERE m."customer_id" = '
    '(SELECT c."id" FROM "customer" c WHERE c."channel" = ? AND c."external_id" = ?) '
    "AND m.\"direction\" = 'in' AND m.\"author\" = 'customer'" + _NOT_EVENT + "), "
    f"({_AGENT_MESSAGES}{_NOT_EVENT})"
)
_SENT_SINCE = (
    'SELECT "content" FROM "outbox" WHERE "channel" = ? AND "recipient" = ? '
    "AND \"status\" = 'sent' AND \"sent_at\" >= ? LIMIT " + str(MAX_SENDS_READ)
)


@dataclass(frozen=True)
class History:
    last_inbound: datetime | None
    sent: tuple[Mapping[str, Any], ...] = ()  # contents of the sends delivered since (微信客服 only)


def history(channel: str, channel_kind: str, recipient: str) -> History:
    """What the decision needs about one recipient (blocking: call it in a worker thread)."""
    if channel_kind not in WINDOWED_KINDS:
        return History(None)
    query = _MP_LAST_INBOUND if channel_kind == MP else _KF_LAST_MESSAGE
    last = _latest(execute(query, (channel, recipient, channel, recipient)).fetchone())
    if channel_kind == MP or last is None:
        return History(last)
    rows = execute(_SENT_SINCE, (channel, recipient, Outbox.sent_at.db_value(last))).fetchall()
    return History(last, tuple(Outbox.content.python_value(r[0]) or {} for r in rows))


def _latest(row: tuple[Any, ...] | None) -> datetime | None:
    """The later of the recipient's last interaction as a customer and as an agent."""
    values = [Message.created_at.python_value(v) for v in (row or ()) if v is not None]
    return max(values) if values else None


def sent_count(channel_kind: str, sent: tuple[Mapping[str, Any], ...], parts_of: PartsOf) -> int:
    """Platform messages delivered by these sends (welcomes and other unlimited sends: 0)."""
    return sum(parts_of(content) for content in sent if is_limited(channel_kind, content))


def check(channel: str, channel_kind: str, recipient: str, content: Mapping[str, Any], parts_of: PartsOf,
          now: datetime | None = None, messages: int | None = None) -> SendResult | None:
    """The pre-send check for one outbox row: None to send, else the outcome to record.

    `parts_of(content)` is the sender's count of the platform messages a content makes
    from where it resumes (`parts_sent`), used for the sends already delivered; `messages`
    is that count for this send when the caller has it already (its plan), else it is
    `parts_of(content)`. Blocking: run it in a worker thread."""
    if not is_limited(channel_kind, content):
        return None
    past = history(channel, channel_kind, recipient)
    needed = parts_of(content) if messages is None else messages
    return decide(channel_kind, content, needed, past.last_inbound, sent_count(channel_kind, past.sent, parts_of),
                  now or clock.now())


# -- the one entry point for the delivery paths -------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A send looked at before calling: `refusal` is the outcome to record instead of
    calling (None: call), `planned` the sender's plan to hand to `send` (None: the sender
    has no `plan`, or the send is refused)."""

    refusal: SendResult | None
    planned: Planned | None = None

    def send_args(self, recipient: str, content: Mapping[str, Any]) -> tuple[Any, ...]:
        """The arguments of the sender's `send`: the plan too when the sender made one."""
        return (recipient, content) if self.planned is None else (recipient, content, self.planned)


def kind_of(sender: object) -> str:
    """The channel kind whose rules apply to this sender's sends ("" for none)."""
    return str(getattr(sender, "channel_kind", "") or "")


def applies(sender: object, content: Mapping[str, Any]) -> bool:
    """Whether `prepare` reads the database for this send: the async delivery runs it in a
    worker thread only then (other kinds, templates, mass sends, welcomes: no query)."""
    return is_limited(kind_of(sender), content)


def parts_counter(sender: object) -> PartsOf:
    """The sender's count of the platform messages a content makes: `plan(content).messages`,
    or one per send for a sender without a plan."""
    plan: Callable[[Mapping[str, Any]], Planned] | None = getattr(sender, "plan", None)
    if plan is None:
        return _one_message
    return lambda content: plan(content).messages


def _one_message(content: Mapping[str, Any]) -> int:
    return 1


def prepare(channel: str, recipient: str, content: Mapping[str, Any], sender: object,
            now: datetime | None = None) -> Prepared:
    """What every outbox delivery path does before calling `sender`: plan the send once
    (a split text is cut here, counted by the check and then sent as planned) and check
    the platform's limits. Refusals: `window_closed` / `limit_reached`; `failed` for a
    content the sender cannot plan (it would never go out); `retry` when the history
    cannot be read (a database that does not answer could not record the send either).
    Blocking when `applies(sender, content)`; otherwise it reads nothing."""
    plan: Callable[[Mapping[str, Any]], Planned] | None = getattr(sender, "plan", None)
    try:
        planned = plan(content) if plan is not None else None
    except (TypeError, ValueError) as exc:
        return Prepared(SendResult("failed", f"content cannot be sent: {exc}"))
    kind = kind_of(sender)
    if not is_limited(kind, content):
        return Prepared(None, planned)
    try:
        refused = check(channel, kind, recipient, content, parts_counter(sender), now,
                        planned.messages if planned is not None else None)
    except Exception as exc:
        log.warning("send-limit check for %s on %s raised %s: %s", recipient[-8:], channel, type(exc).__name__, exc)
        return Prepared(SendResult("retry", f"send-limit check failed: {type(exc).__name__}: {exc}"))
    return Prepared(refused, None if refused is not None else planned)
