"""The platforms' customer-service send limits, checked before the API is called.

Why: a send the platform is sure to refuse costs an API call, a slot of the channel's rate
limit and a token round trip, and today it is only learnt from the errcode (45015, 45047).
So the async delivery (adapters/delivery.py) asks `check` first, in a worker thread, and a
send that cannot pass is recorded as `window_closed` / `limit_reached` without any call,
exactly like the errcode outcome (same statuses, same admin view, never retried). The
errcode classification (`adapters.api_client.classify`) stays as the backstop.

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
- no Customer row for the recipient (e.g. an agent on that channel receiving relays, a
  mass recipient `tag:...`), or a customer with no recorded message;
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

Cost: nothing for other channel kinds and exempt content; one indexed query per 公众号
send (customer by UNIQUE(channel, external_id)); two per 微信客服 send: the last message
(the customer by that key, then their messages by message(customer_id)) and the
recipient's sends since. The second is served by an outbox (channel, recipient, sent_at)
index when the schema has one; without it, it reads the channel's outbox rows
(outbox(channel)). Always in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from bot import clock
from bot.db import execute
from bot.models import Customer, Outbox
from bot.outbox import SendResult

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
    last_inbound: the customer's last message (None: unknown, the platform decides);
    sent_since: platform messages already delivered to this recipient since `last_inbound`.
    """
    if not is_limited(channel_kind, content) or last_inbound is None:
        return None
    age = now - last_inbound
    if age > CUSTOMER_SERVICE_WINDOW:
        return SendResult("window_closed", f"not sent (checked before sending): the customer's last message was "
                                           f"{_hours(age)} ago, the platform allows customer-service messages "
                                           f"within {_hours(CUSTOMER_SERVICE_WINDOW)}")
    if channel_kind == KF and sent_since + parts > KF_MESSAGES_PER_CUSTOMER_MESSAGE:
        left = max(KF_MESSAGES_PER_CUSTOMER_MESSAGE - sent_since, 0)
        need = f"needs {parts} messages, " if parts > 1 else ""
        return SendResult("limit_reached", f"not sent (checked before sending): {need}{left} of "
                                           f"{KF_MESSAGES_PER_CUSTOMER_MESSAGE} left since the customer's last "
                                           f"message ({sent_since} already sent)")
    return None


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"


# -- the history, from the database ------------------------------------------------------------

_MP_LAST_INBOUND = 'SELECT "last_inbound_at" FROM "customer" WHERE "channel" = ? AND "external_id" = ?'
# the customer's messages through message(customer_id); events (enter_session) excluded
_KF_LAST_MESSAGE = (
    'SELECT MAX(m."created_at") FROM "message" m WHERE m."customer_id" = '
    '(SELECT c."id" FROM "customer" c WHERE c."channel" = ? AND c."external_id" = ?) '
    "AND m.\"direction\" = 'in' AND m.\"author\" = 'customer' AND m.\"kind\" <> 'event'"
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
    if channel_kind == MP:
        row = execute(_MP_LAST_INBOUND, (channel, recipient)).fetchone()
        value = row[0] if row else None
        return History(None if value is None else Customer.last_inbound_at.python_value(value))
    if channel_kind != KF:
        return History(None)
    row = execute(_KF_LAST_MESSAGE, (channel, recipient)).fetchone()
    if row is None or row[0] is None:
        return History(None)
    last = Customer.last_inbound_at.python_value(row[0])
    rows = execute(_SENT_SINCE, (channel, recipient, Outbox.sent_at.db_value(last))).fetchall()
    return History(last, tuple(Outbox.content.python_value(r[0]) or {} for r in rows))


def sent_count(channel_kind: str, sent: tuple[Mapping[str, Any], ...], parts_of: PartsOf) -> int:
    """Platform messages delivered by these sends (welcomes and other unlimited sends: 0)."""
    return sum(parts_of(content) for content in sent if is_limited(channel_kind, content))


def check(channel: str, channel_kind: str, recipient: str, content: Mapping[str, Any], parts_of: PartsOf,
          now: datetime | None = None) -> SendResult | None:
    """The pre-send check for one outbox row: None to send, else the outcome to record.

    `parts_of(content)` is the sender's count of the platform messages a content makes
    from where it resumes (`parts_sent`). Blocking: run it in a worker thread."""
    if not is_limited(channel_kind, content):
        return None
    past = history(channel, channel_kind, recipient)
    return decide(channel_kind, content, parts_of(content), past.last_inbound,
                  sent_count(channel_kind, past.sent, parts_of), now or clock.now())
