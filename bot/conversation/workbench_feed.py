"""What changed for each agent watching the workbench live (issue 22), from the message table.

Why the message table: every change an agent must see leaves a Message row — a customer's
line, the handoff and its brief, an agent's reply from the IM relay or the workbench, a
transfer, a resolve's rating request, a status change told to the agent — whichever process
made it (`kefu serve` behind a load balancer, the panel, the SLA job). So one indexed query
per look (`Feed.read`), per process and not per agent, finds them all, on SQLite and on
PostgreSQL alike, with no trigger and no second channel to keep in step.

Ids are handed out at insert but rows become visible at commit, so on PostgreSQL a row can
appear below the highest id already read; `Feed` remembers each id it skipped for
`GAP_SECONDS` and asks for those again, so a late commit is still delivered, once.

Who sees what is `bot.conversation.workbench.may_read` (the rule of the page's own reads): an agent is sent
the lines of conversations assigned to them or waiting in the queue, and an inbox refresh
when one of theirs, the queue, or a message addressed to them changed; never a line of
another agent's conversation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from bot.conversation import workbench
from bot.core.db import execute
from bot.core.models import Agent, Conversation, Customer, Message

GAP_SECONDS = 30.0  # a transaction holding an id longer than this is not waited for
MAX_GAPS = 200
BATCH = 500
MAX_KNOWN = 20000  # conversations whose last seen (status, agent) is remembered
QUEUE_SHOWN = 50  # bot.conversation.workbench.shared_inbox shows as many


@dataclass
class Fanout:
    """One look's result: for each watching agent id (None: an admin), the events to send,
    in order; and which outbound rows wait for delivery on which channels (to wake the sender)."""

    events: dict[int | None, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    pending_channels: set[str] = field(default_factory=set)
    rows: int = 0


_QUEUE = f'SELECT "id" FROM "conversation" WHERE "status" = ? ORDER BY "queued_at", "id" LIMIT {QUEUE_SHOWN}'

class Feed:
    """The process's cursor over the message table."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cursor: int | None = None
        self.gaps: dict[int, float] = {}  # id skipped -> when first skipped
        self.known: dict[int, tuple[str, int | None]] = {}  # conversation -> (status, agent) last seen
        self.queue: tuple[int, ...] | None = None  # the queue's first conversations, last seen
        self._monotonic = monotonic

    def start(self) -> int:
        """Begin at the newest row: what was there before anyone watched is on the page already."""
        newest = Message.select(Message.id).order_by(Message.id.desc()).first()
        self.cursor = newest.id if newest else 0
        return self.cursor

    def read(self) -> list[Message]:
        """The rows committed since the last look (and any skipped id that has turned up)."""
        if self.cursor is None:
            self.start()
            return []
        cursor = self.cursor
        condition = Message.id > cursor
        if self.gaps:
            condition = condition | Message.id.in_(sorted(self.gaps))
        rows = list(Message.select().where(condition).order_by(Message.id).limit(BATCH))
        now = self._monotonic()
        fresh: list[Message] = []
        for row in rows:
            if row.id <= cursor:
                self.gaps.pop(row.id, None)
            else:
                for missing in range(max(cursor + 1, row.id - MAX_GAPS), row.id):
                    self.gaps.setdefault(missing, now)
                cursor = row.id
            fresh.append(row)
        self.cursor = cursor
        self.gaps = {k: t for k, t in self.gaps.items() if now - t < GAP_SECONDS}
        if len(self.gaps) > MAX_GAPS:
            self.gaps = dict(sorted(self.gaps.items())[-MAX_GAPS:])
        return fresh

    def fan_out(self, rows: list[Message], watching: Iterable[int | None]) -> Fanout:
        """The events each watching agent (None: an admin) is to be sent for `rows`: the lines
        they may read; their whole inbox when a conversation of theirs changed hands or state,
        the queue changed, or a message was addressed to them; else only the inbox line of a
        conversation of theirs that has new lines (cheaper: one line, not the whole inbox)."""
        watching = set(watching)
        out = Fanout(rows=len(rows))
        out.pending_channels = {r.channel for r in rows if r.direction == "out" and r.state == "pending"}
        if not rows or not watching:
            self._remember(rows)
            return out
        conversation_ids = {r.conversation_id for r in rows if r.conversation_id}
        found = {c.id: c for c in Conversation.select(Conversation, Customer).join(Customer)
                 .where(Conversation.id.in_(conversation_ids))} if conversation_ids else {}
        agents = {a.id: a for a in Agent.select().where(Agent.id.in_(
            {a for a in watching if a is not None} | {r.agent_id for r in rows if r.agent_id}))}
        queue = tuple(i for (i,) in execute(_QUEUE, ("queued",)))  # fixed SQL: every look of the hub
        queue_changed = queue != self.queue or any(c.status == "queued" for c in found.values())
        self.queue = queue
        whole: set[int | None] = set()  # agents whose whole inbox is sent again
        lines_of: set[int] = set()  # conversations whose inbox line alone is sent again
        for conversation in found.values():
            now = (conversation.status, conversation.agent_id)
            before = self.known.get(conversation.id)
            if before != now:
                whole |= {now[1], before[1] if before else None}
            elif conversation.status == "assigned":
                lines_of.add(conversation.id)
            self.known[conversation.id] = now
        # told something outside any conversation (a status change, a notice); a customer's line
        # relayed to the agent's IM belongs to its conversation and changes only its inbox line
        addressed = {(r.channel, r.peer_id) for r in rows if r.direction == "out" and r.conversation_id is None}
        whole |= {a.id for a in agents.values() if (a.channel, a.im_user_id) in addressed}
        if whole - {None}:
            whole.add(None)  # an admin's inbox holds every agent's conversations
        for row in rows:
            if row.agent_id in agents:
                row.agent = agents[row.agent_id]  # drawn by name without a query per row
        shared = workbench.shared_inbox() if queue_changed or whole & watching else None
        line_rows = {cid: workbench.inbox_row(found[cid]) for cid in lines_of
                     if watching & {None, found[cid].agent_id}}
        # each thread line's event once, then handed to each viewer who may read it (built per
        # viewer before: 20 agents looked at every line of every tick)
        lines: list[tuple[Conversation, tuple[str, dict[str, Any]]]] = []
        for row in rows:
            conversation = found.get(row.conversation_id) if row.conversation_id else None
            if conversation is not None and workbench.in_thread(row, conversation.customer.external_id):
                lines.append((conversation, ("message", {"conversation": conversation.id, "status": conversation.status,
                                                         "message": workbench.message_row(row)})))
        for viewer in watching:
            events = [event for conversation, event in lines if workbench.may_read(conversation, viewer)]
            agent = agents.get(viewer) if viewer is not None else None
            if shared is not None and (queue_changed or viewer in whole) and (viewer is None or agent is not None):
                events.append(("inbox", {**workbench.mine(agent), **shared}))
            else:
                events += [("row", {"row": line}) for cid, line in line_rows.items()
                           if workbench.may_read(found[cid], viewer)]
            if events:
                out.events[viewer] = events
        self._forget_if_full()
        return out

    def _remember(self, rows: list[Message]) -> None:
        """Without watchers, the statuses still move on: the next watcher starts from now."""
        ids = {r.conversation_id for r in rows if r.conversation_id}
        if ids:
            for c in Conversation.select(Conversation.id, Conversation.status, Conversation.agent).where(
                    Conversation.id.in_(ids)):
                self.known[c.id] = (c.status, c.agent_id)
        self._forget_if_full()

    def _forget_if_full(self) -> None:
        if len(self.known) > MAX_KNOWN:
            self.known.clear()  # unknown again means a whole inbox sent: a refresh, not a miss
