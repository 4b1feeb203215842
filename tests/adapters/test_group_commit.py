"""Group commit (adapters/group_commit.py): concurrent messages decided in one transaction
(the stored ones found first and the others decided without a savepoint each, the batch
redone message by message should one fail, or turn out stored by another process). Exactly once still holds: a retry landing in the same batch as
its first delivery is stored once and answered with the first reply; one message's failure
costs only itself; a SIGKILL in the middle of a batch loses no acknowledged message."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters import group_commit
from adapters.group_commit import Pending, decide_batch
from adapters.server import BRIDGE
from bot.conversation.dispatcher import Dispatcher, Result
from bot.core.events import Inbound
from bot.core.models import Message
from tests.adapters.wechat_kit import kefu_client, mp_channel, stand, wechat
from tests.factories import RETURNS, SHIPPING, shop_faqs

__all__ = ["stand"]
ROOT = Path(__file__).resolve().parents[2]


def _inbound(user: str, text: str, msg_id: str) -> Inbound:
    return Inbound(channel="mp", user_id=user, msg_id=msg_id, kind="text", text=text)


def _pending(inbound: Inbound) -> Pending:
    """A queued message as the event loop would queue it; `decide_batch` never touches the
    future (the event loop's runner settles it), so a plain one stands in."""
    return Pending(inbound, None, concurrent.futures.Future())  # type: ignore[arg-type]


def _watched(dispatcher: Dispatcher, batch: list[Pending]) -> tuple[list[Any], list[str]]:
    """`decide_batch` with every statement it sends (peewee's query hook): outcomes, SQL."""
    from bot.core.db import database as proxy

    seen: list[str] = []
    proxy.obj.query_hooks.append(lambda event: seen.append(event.sql))
    try:
        return decide_batch(dispatcher, batch), seen
    finally:
        proxy.obj.query_hooks.pop()


def _stored(msg_id: str) -> tuple[int, list[str]]:
    """Inbound rows with this MsgId, and the texts of the replies to them."""
    inbound = list(Message.select().where((Message.channel == "mp") & (Message.external_id == msg_id)))
    replies = [r.text for r in Message.select().where(Message.in_reply_to.in_([m.id for m in inbound]))
               .order_by(Message.id)] if inbound else []
    return len(inbound), replies


async def test_concurrent_retries_in_one_batch_are_stored_once_and_all_get_the_first_reply(
        aiohttp_client: Any, config: Any, database: Any, stand: Any, dispatcher: Dispatcher,
        monkeypatch: pytest.MonkeyPatch) -> None:
    shop_faqs()
    questions = {f"m{n}": ("发货要多久" if n % 2 else "怎么退货") for n in range(8)}
    batches: list[list[str]] = []
    blocking, all_queued = threading.Event(), threading.Event()
    real_decide_batch, real_submit = decide_batch, group_commit.GroupCommit.submit
    submitted: list[str] = []

    def recording(dispatcher: Dispatcher, batch: list[Pending]) -> list[Result | BaseException]:
        batches.append([p.inbound.msg_id for p in batch])
        if any(p.inbound.msg_id == "blocker" for p in batch):
            blocking.set()
            all_queued.wait(60)  # meanwhile every copy below is queued: they make the next batch together
        return real_decide_batch(dispatcher, batch)

    def counting(self: Any, inbound: Inbound, slot: Any) -> Any:
        submitted.append(inbound.msg_id)
        if len(submitted) == 1 + 3 * len(questions):
            all_queued.set()
        return real_submit(self, inbound, slot)

    monkeypatch.setattr(group_commit, "decide_batch", recording)
    monkeypatch.setattr(group_commit.GroupCommit, "submit", counting)
    client = await kefu_client(aiohttp_client, config, mp_channel(stand.base), dispatcher=dispatcher)
    bridge = client.server.app[BRIDGE]
    # batches of many, one at a time, on either database (PostgreSQL serves one message per
    # batch by default, several side by side: this proves batching safe there too)
    bridge.group_commit = group_commit.GroupCommit(dispatcher, bridge.executor)
    server = wechat("safe")

    async def ask(user: str, text: str, msg_id: str) -> str:
        params, body = server.sign(server.text_xml(user, text, msg_id))  # each copy signed afresh, as WeChat's retries
        resp = await client.post("/wechat/mp", params=params, data=body)
        assert resp.status == 200
        reply = server.open_reply(await resp.text())
        return str(reply["Content"]) if reply else ""

    blocker = asyncio.create_task(ask("o_blocker", "发货要多久", "blocker"))
    while not blocking.is_set():
        await asyncio.sleep(0.01)
    copies = [ask(f"o_{msg_id}", text, msg_id) for msg_id, text in questions.items() for _ in range(3)]
    answers = await asyncio.gather(*copies)
    assert await blocker == SHIPPING

    assert all_queued.is_set()
    together = [b for b in batches if "blocker" not in b]
    assert sorted(together[0]) == sorted(m for m in questions for _ in range(3)), batches  # every copy, one batch
    for n, (msg_id, text) in enumerate(questions.items()):
        expected = SHIPPING if text == "发货要多久" else RETURNS
        assert answers[3 * n: 3 * n + 3] == [expected] * 3, msg_id
        assert _stored(msg_id) == (1, [expected]), msg_id
    assert Message.select().where(Message.direction == "in").count() == len(questions) + 1


def test_a_failing_message_costs_only_itself_and_its_retry_is_decided_afresh(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_faqs()
    real_route = dispatcher.router.route

    def route(turn: Any) -> Any:
        if turn.inbound.msg_id == "bad":
            raise RuntimeError("a bug in one decision")
        return real_route(turn)

    monkeypatch.setattr(dispatcher.router, "route", route)
    first = _inbound("o_a", "发货要多久", "a")
    batch = [_pending(first), _pending(_inbound("o_b", "怎么退货", "bad")), _pending(first),
             _pending(_inbound("o_c", "怎么退货", "c"))]
    outcomes = decide_batch(dispatcher, batch)

    assert isinstance(outcomes[1], RuntimeError)
    a, retry, c = outcomes[0], outcomes[2], outcomes[3]
    assert isinstance(a, Result) and isinstance(retry, Result) and isinstance(c, Result)
    assert not a.duplicate and retry.duplicate
    assert [r.text for r in a.replies] == [r.text for r in retry.replies] == [SHIPPING]
    assert [r.text for r in c.replies] == [RETURNS]
    assert _stored("a") == (1, [SHIPPING]) and _stored("c") == (1, [RETURNS])
    assert _stored("bad") == (0, [])  # rolled back (its savepoint, or the batch redone alone): nothing stored

    monkeypatch.setattr(dispatcher.router, "route", real_route)
    again = decide_batch(dispatcher, [_pending(_inbound("o_b", "怎么退货", "bad"))])[0]  # the platform's retry
    assert isinstance(again, Result) and not again.duplicate and [r.text for r in again.replies] == [RETURNS]
    assert _stored("bad") == (1, [RETURNS])


CRASHING_BATCH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from bot.core import db
    from bot.core.config import Config, DatabaseConfig, FaqConfig
    from bot.conversation.dispatcher import Dispatcher
    from bot.core.events import Inbound
    from bot.faq.store import FaqStore
    from adapters.group_commit import decide_batch
    from tests.adapters.test_group_commit import _pending

    db.connect(sys.argv[2])
    config = Config(database=DatabaseConfig(url=sys.argv[2]), faq=FaqConfig(threshold=0.55))
    dispatcher = Dispatcher(config, FaqStore(check_seconds=0, embedder=None))
    ask = lambda user, msg_id: _pending(Inbound(channel="mp", user_id=user, msg_id=msg_id, kind="text", text="发货要多久"))
    first = decide_batch(dispatcher, [ask("o_1", "k1")])  # committed: answered, acknowledged
    print("acknowledged", first[0].replies[0].text, flush=True)
    real = dispatcher.decide
    def decide(inbound, *args):
        if inbound.msg_id == "k3":
            os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: k2 decided, nothing committed
        return real(inbound, *args)
    dispatcher.decide = decide
    decide_batch(dispatcher, [ask("o_2", "k2"), ask("o_3", "k3")])
""")


def test_a_sigkill_in_the_middle_of_a_batch_loses_no_acknowledged_message(database: Any, database_url: str,
                                                                        dispatcher: Dispatcher) -> None:
    shop_faqs()
    database.close()  # the child writes; SQLite wants no open transaction of ours meanwhile
    child = subprocess.run([sys.executable, "-c", CRASHING_BATCH, str(ROOT), database_url], capture_output=True,
                           text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == f"acknowledged {SHIPPING}"

    assert _stored("k1") == (1, [SHIPPING])  # the acknowledged message survives the kill
    assert _stored("k2") == (0, []) and _stored("k3") == (0, [])  # never answered: nothing half-stored
    # WeChat retries all three: the acknowledged one replays its reply, the others are decided afresh
    outcomes = decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "发货要多久", f"k{n}")) for n in (1, 2, 3)])
    assert [(o.duplicate, [r.text for r in o.replies]) for o in outcomes] == [  # type: ignore[union-attr]
        (True, [SHIPPING]), (False, [SHIPPING]), (False, [SHIPPING])]
    for n in (1, 2, 3):
        assert _stored(f"k{n}") == (1, [SHIPPING])


def test_copies_in_one_batch_are_decided_once_and_get_the_first_reply(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_faqs()
    real_decide, decided = dispatcher._decide, []

    def decide(inbound: Inbound, *args: Any) -> Any:
        decided.append(inbound.user_id)
        return real_decide(inbound, *args)

    monkeypatch.setattr(dispatcher, "_decide", decide)
    ship, other_sender = _inbound("o_a", "发货要多久", "a"), _inbound("o_x", "怎么退货", "a")
    outcomes = decide_batch(dispatcher, [_pending(ship), _pending(ship), _pending(other_sender), _pending(ship)])

    # the copies were not decided again, nor another sender's "a": stored earlier in the batch
    assert decided == ["o_a"]
    first, copies = outcomes[0], [outcomes[1], outcomes[3]]
    assert isinstance(first, Result) and not first.duplicate
    assert all(isinstance(c, Result) and c.duplicate and [r.text for r in c.replies] == [SHIPPING] for c in copies)
    assert [r.meta["message_id"] for r in copies[0].replies] == [r.meta["message_id"] for r in first.replies]
    stranger = outcomes[2]
    assert isinstance(stranger, Result) and stranger.duplicate and stranger.replies == []  # not its replies
    assert _stored("a") == (1, [SHIPPING])


def test_a_message_found_stored_only_when_written_redoes_the_batch_alone_and_stores_nothing_twice(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """What another process could do on PostgreSQL (and SQLite's write lock rules out): the
    message is stored after the batch looked. Without a savepoint its writes cannot be undone
    alone, so the batch rolls back and every message is decided again in its own transaction."""
    shop_faqs()
    stored = decide_batch(dispatcher, [_pending(_inbound("o_a", "发货要多久", "a"))])[0]
    assert isinstance(stored, Result) and not stored.duplicate
    monkeypatch.setattr(Dispatcher, "stored_keys", staticmethod(lambda inbounds: set()))  # the look missed it
    alone: list[str] = []
    real_alone = group_commit._alone

    def counting(dispatcher: Dispatcher, pending: Pending) -> Any:
        alone.append(pending.inbound.msg_id)
        return real_alone(dispatcher, pending)

    monkeypatch.setattr(group_commit, "_alone", counting)
    outcomes = decide_batch(dispatcher, [_pending(_inbound("o_b", "怎么退货", "b")),
                                         _pending(_inbound("o_a", "发货要多久", "a")),
                                         _pending(_inbound("o_c", "发货要多久", "c"))])

    b, a, c = outcomes
    assert isinstance(a, Result) and a.duplicate and [r.text for r in a.replies] == [SHIPPING]
    assert isinstance(b, Result) and [r.text for r in b.replies] == [RETURNS]
    assert isinstance(c, Result) and [r.text for r in c.replies] == [SHIPPING]
    for msg_id, reply in (("a", SHIPPING), ("b", RETURNS), ("c", SHIPPING)):
        assert _stored(msg_id) == (1, [reply]), msg_id
    assert alone == ["b", "a", "c"]


def test_a_batch_reads_its_lone_senders_together_and_no_agent_becomes_a_customer(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch upserts the customers of its senders with one new message each, and
    touches their open conversations, at once (`Dispatcher.known_senders`); a sender with two
    goes message by message; an agent's message is the agent's, never a customer's; a digit
    1-5 (maybe a rating of a closed conversation) touches no open conversation."""
    from bot.core import clock
    from bot.core.models import Conversation, Customer
    from tests.factories import make_agent

    shop_faqs()
    agent = make_agent("小美", user_id="o_agent", channel="mp")
    decide_batch(dispatcher, [_pending(_inbound("o_p", "你好", "p0")), _pending(_inbound("o_digit", "你好", "d0"))])
    before = {c.customer_id: c.last_message_at for c in Conversation.select()}
    together: list[list[str]] = []
    real = Dispatcher.known_senders

    def recording(inbounds: Any) -> Any:
        together.append(sorted(i.user_id for i in inbounds))
        return real(inbounds)

    monkeypatch.setattr(Dispatcher, "known_senders", staticmethod(recording))
    later = clock.now()
    outcomes = decide_batch(dispatcher, [_pending(_inbound("o_p", "发货要多久", "p1")),
                                         _pending(_inbound("o_twice", "怎么退货", "t1")),
                                         _pending(_inbound("o_agent", "list", "g1")),
                                         _pending(_inbound("o_digit", "3", "d1")),
                                         _pending(_inbound("o_q", "怎么退货", "q1")),
                                         _pending(_inbound("o_twice", "发货要多久", "t2"))])

    assert all(isinstance(o, Result) for o in outcomes), outcomes
    assert [[r.text for r in o.replies] for o in (outcomes[0], outcomes[4])] == [[SHIPPING], [RETURNS]]  # type: ignore[union-attr]
    assert together == [["o_agent", "o_digit", "o_p", "o_q"]]  # the agent sorted out inside
    assert {c.external_id for c in Customer.select()} == {"o_p", "o_q", "o_twice", "o_digit"}
    assert Customer.select().where(Customer.external_id == "o_twice").count() == 1
    assert Message.get(Message.external_id == "g1").agent_id == agent.id
    p = Customer.get(Customer.external_id == "o_p")
    conversation = Conversation.get(Conversation.customer == p.id)  # still the one, touched
    assert conversation.last_message_at >= later > before[p.id]
    assert Message.get(Message.external_id == "p1").conversation_id == conversation.id
    digit = Customer.get(Customer.external_id == "o_digit")
    assert Conversation.get(Conversation.customer == digit.id).last_message_at >= later  # its card pick touched it


def test_the_inbound_rows_and_the_replies_of_a_batch_go_in_one_insert_each(database: Any, dispatcher: Dispatcher) -> None:
    """Messages to open conversations are stored together (`Dispatcher.known_senders`): one
    INSERT for their inbound rows, each row with its own customer and conversation, and one
    for their replies (`held_rows`), each pointing at its own message and answered inline
    with its own row's id."""
    from bot.core.models import Conversation, Customer

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "你好", f"h{n}")) for n in range(3)])  # conversations open
    outcomes, seen = _watched(dispatcher, [_pending(_inbound("o_0", "发货要多久", "k0")),
                                             _pending(_inbound("o_1", "怎么退货", "k1")),
                                             _pending(_inbound("o_2", "发货要多久", "k2"))])
    assert all(isinstance(o, Result) and not o.duplicate for o in outcomes), outcomes
    inserts = [sql for sql in seen if sql.startswith('INSERT INTO "message"')]
    assert len(inserts) == 2  # the three inbound rows, then the three replies
    for n, answer in ((0, SHIPPING), (1, RETURNS), (2, SHIPPING)):
        row = Message.get(Message.external_id == f"k{n}")
        customer = Customer.get(Customer.external_id == f"o_{n}")
        assert (row.customer_id, row.conversation_id) == (customer.id, Conversation.get(Conversation.customer == customer.id).id)
        assert _stored(f"k{n}") == (1, [answer])
        replies = list(Message.select().where(Message.in_reply_to == row.id))
        assert [r.in_reply_to_id for r in replies] == [row.id]
        assert [(r.text, r.meta["message_id"]) for r in outcomes[n].replies] == [(answer, replies[0].id)]  # type: ignore[union-attr]


TWO_PROCESSES = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from bot.core import db
    from bot.core.config import Config, DatabaseConfig, FaqConfig
    from bot.conversation.dispatcher import Dispatcher
    from bot.core.events import Inbound
    from bot.faq.store import FaqStore
    from adapters.group_commit import decide_batch
    from tests.adapters.test_group_commit import _pending

    db.connect(sys.argv[2])
    config = Config(database=DatabaseConfig(url=sys.argv[2]), faq=FaqConfig(threshold=0.55))
    dispatcher = Dispatcher(config, FaqStore(check_seconds=0, embedder=None))
    order = json.loads(sys.argv[4])
    while time.time() < float(sys.argv[3]):  # both processes start together
        time.sleep(0.001)
    outcomes = []
    size = int(sys.argv[5])
    for start in range(0, len(order), size):  # the same messages as the other process's
        batch = [_pending(Inbound(channel="mp", user_id=f"o_{n}", msg_id=f"x{n}", kind="text",
                                  text="发货要多久" if n % 2 else "怎么退货")) for n in order[start:start + size]]
        for n, o in zip(order[start:start + size], decide_batch(dispatcher, batch)):
            outcomes.append([n, o.duplicate, [r.text for r in o.replies]] if hasattr(o, "duplicate") else [n, "error", repr(o)])
    print(json.dumps(outcomes))
""")


def test_two_processes_deciding_the_same_messages_at_once_store_each_once_and_answer_alike(
        database: Any, database_url: str, dispatcher: Dispatcher) -> None:
    """WeChat's retries may reach two kefu processes at once. Each decides batches of the same
    20 messages (one in order, one in reverse) on the same database, 5 a batch: on PostgreSQL
    each batch finds the other's messages only when it writes them, or deadlocks with the
    other (each waiting for a row the other wrote), and is redone message by message. Every
    message is stored once with one reply, decided by exactly one process, and the other
    replays that reply."""
    import json
    import time

    shop_faqs()
    database.close()
    start = time.time() + 3
    children = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, str(ROOT), database_url, str(start),
                                  json.dumps(order), "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
                for order in (list(range(20)), list(range(19, -1, -1)))]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-2000:]
        results.append({n: (dup, replies) for n, dup, replies in json.loads(out)})
    for n in range(20):
        expected = SHIPPING if n % 2 else RETURNS
        first, second = results[0][n], results[1][n]
        assert sorted([first[0], second[0]]) == [False, True], (n, first, second)  # decided by exactly one
        assert first[1] == second[1] == [expected], (n, first, second)
        assert _stored(f"x{n}") == (1, [expected])


def test_a_sender_writing_twice_in_one_batch_reads_the_reply_to_the_first(database: Any, dispatcher: Dispatcher) -> None:
    """Reply rows wait for the end of the batch (`held_rows`), but not when a message could
    read them: a card's number answers the cards of the reply before it in the same batch."""
    from bot.core.models import FaqQuestion

    shop_faqs()
    outcomes = decide_batch(dispatcher, [_pending(_inbound("o_x", "火星上能送货吗", "x1")),
                                         _pending(_inbound("o_lone", "怎么退货", "l1")),
                                         _pending(_inbound("o_x", "1", "x2"))])
    asked, lone, picked = outcomes
    assert isinstance(asked, Result) and asked.replies[0].cards  # the bot is unsure: suggestions
    card = asked.replies[0].cards[0].title
    answer = FaqQuestion.get(FaqQuestion.text == card).faq.answer
    assert isinstance(lone, Result) and [r.text for r in lone.replies] == [RETURNS]
    assert isinstance(picked, Result) and [r.text for r in picked.replies] == [answer]  # card 1 of x1's reply
    assert _stored("x2") == (1, [answer])


def test_a_reply_held_for_the_batch_and_queued_reaches_the_outbox_under_its_own_request_id(
        database: Any, dispatcher: Dispatcher) -> None:
    """A reply the waiting request gave up on is `queued`: its outbox row is written with the
    batch's replies and carries the request id of its own message, not of the batch."""
    from bot.conversation.dispatcher import ReplySlot
    from bot.core.logs import REQUEST_ID
    from bot.core.models import Outbox

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "你好", f"h{n}")) for n in range(2)])  # lone senders
    batch = []
    for n in range(2):
        token = REQUEST_ID.set(f"req-{n}")
        slot = ReplySlot()
        if n == 1:
            slot.abandon()  # the request gave up: the reply goes through the outbox
        batch.append(Pending(_inbound(f"o_{n}", "发货要多久", f"q{n}"), slot, concurrent.futures.Future()))  # type: ignore[arg-type]
        REQUEST_ID.reset(token)
    inline, late = decide_batch(dispatcher, batch)
    assert isinstance(inline, Result) and [r.text for r in inline.replies] == [SHIPPING]
    assert isinstance(late, Result) and late.replies == []
    row = Message.get((Message.in_reply_to == Message.get(Message.external_id == "q1").id))
    assert row.state == "queued"
    sends = list(Outbox.select())
    assert [(s.key, s.message_id, s.request_id, s.content["text"]) for s in sends] == [
        (f"msg:{row.id}", row.id, "req-1", SHIPPING)]


def test_held_rows_that_cannot_be_written_redo_the_batch_alone(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.conversation import held_rows

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "你好", f"h{n}")) for n in range(3)])
    real, calls = held_rows.insert_rows, []

    def failing_once(rows: Any) -> bool:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return real(rows)

    monkeypatch.setattr(held_rows, "insert_rows", failing_once)
    outcomes = decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "发货要多久", f"r{n}")) for n in range(3)])
    assert calls == [3]  # the batch's one insert failed; alone, each message writes its own row
    assert all(isinstance(o, Result) and [r.text for r in o.replies] == [SHIPPING] for o in outcomes), outcomes
    for n in range(3):
        assert _stored(f"r{n}") == (1, [SHIPPING])


def test_the_unanswered_questions_of_a_batch_go_in_one_insert(database: Any, dispatcher: Dispatcher) -> None:
    """Questions the bot abstains on are kept for the learning loop, a batch's in one insert
    before its commit (`held_rows`), each with its own message and customer."""
    from bot.core.models import Conversation, UnansweredQuestion

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound(f"o_{n}", "发货要多久", f"h{n}")) for n in range(3)])  # answered
    questions = ["火星上能送货吗", "你们老板是谁啊", "今天天气怎么样"]
    outcomes, seen = _watched(dispatcher, [_pending(_inbound(f"o_{n}", q, f"u{n}")) for n, q in enumerate(questions)])
    assert all(isinstance(o, Result) and o.replies and o.replies[0].meta.get("abstained") for o in outcomes), outcomes
    assert len([sql for sql in seen if sql.startswith('INSERT INTO "unanswered_question"')]) == 1
    counted = [sql for sql in seen if sql.startswith('UPDATE "conversation" SET "unanswered_turns"')]
    assert len(counted) == 1  # each conversation's count of unanswered turns, in one statement
    rows = {q.text: q for q in UnansweredQuestion.select().where(UnansweredQuestion.reason == "abstained")}
    for n, question in enumerate(questions):
        message = Message.get(Message.external_id == f"u{n}")
        assert (rows[question].message_id, rows[question].customer_id) == (message.id, message.customer_id)
        assert Conversation.get_by_id(message.conversation_id).unanswered_turns == 1
    decide_batch(dispatcher, [_pending(_inbound("o_0", "发货要多久", "a0")), _pending(_inbound("o_1", "火星上能送货吗", "a1"))])
    turns = [Conversation.get(Conversation.customer == Message.get(Message.external_id == f"a{n}").customer_id)
             .unanswered_turns for n in (0, 1)]
    assert turns == [0, 2]  # answered: counted afresh; unsure again: two in a row (then a person takes over)


def test_first_contacts_of_a_batch_open_their_conversations_in_one_insert(database: Any, dispatcher: Dispatcher) -> None:
    """New customers' conversations are opened together (`conversations.open_new`), and
    their messages stored with the others; a digit (a rating? a revisit's answer?) is left to
    its own decision."""
    from bot.core.models import Conversation, Customer

    shop_faqs()
    outcomes, seen = _watched(dispatcher, [_pending(_inbound("o_new1", "发货要多久", "f1")),
                                             _pending(_inbound("o_new2", "怎么退货", "f2")),
                                             _pending(_inbound("o_digit", "3", "f3"))])
    assert [[r.text for r in o.replies][-1:] for o in outcomes[:2]] == [[SHIPPING], [RETURNS]]  # type: ignore[union-attr]
    opened = [sql for sql in seen if sql.startswith('INSERT INTO "conversation"')]
    assert len(opened) == 2 and opened[0].count("), (") == 1  # the two first contacts' in one, then the digit's
    assert len([sql for sql in seen if sql.startswith('INSERT INTO "message"')]) == 1 + 1 + 1  # inbound, digit, replies
    for n in (1, 2):
        customer = Customer.get(Customer.external_id == f"o_new{n}")
        conversation = Conversation.get(Conversation.customer == customer.id)
        assert (conversation.open_key, conversation.status) == (customer.id, "bot")
        assert Message.get(Message.external_id == f"f{n}").conversation_id == conversation.id
    digit = Customer.get(Customer.external_id == "o_digit")  # nothing to rate: a message like any other
    assert Message.get(Message.external_id == "f3").conversation_id == Conversation.get(Conversation.customer == digit.id).id


def test_a_conversation_opened_meanwhile_redoes_the_batch_alone(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """What another process could do on PostgreSQL: open the conversation of one of the
    batch's new customers after the batch looked. The batch is redone message by message,
    and the message joins that conversation."""
    from bot.crm import conversations
    from bot.core.models import Conversation, Customer

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound("o_b", "发货要多久", "b0"))])  # o_b has one open
    monkeypatch.setattr(conversations, "touch_open", lambda ids: {})  # the look missed it
    outcomes = decide_batch(dispatcher, [_pending(_inbound("o_a", "发货要多久", "a1")),
                                         _pending(_inbound("o_b", "怎么退货", "b1"))])
    assert [[r.text for r in o.replies][-1:] for o in outcomes] == [[SHIPPING], [RETURNS]]  # type: ignore[union-attr]
    b = Customer.get(Customer.external_id == "o_b")
    assert Conversation.select().where(Conversation.customer == b.id).count() == 1
    assert _stored("a1") == (1, [SHIPPING]) and _stored("b1") == (1, [RETURNS])


def test_a_batch_asks_once_who_was_ever_answered_and_welcomes_only_the_others(database: Any, dispatcher: Dispatcher) -> None:
    """The welcome goes before the first thing the bot ever says to a customer; a batch
    learns who was answered before in one statement (`conversations.answered_before`)
    instead of one a question it cannot answer."""
    from bot.core import settings

    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound("o_old", "发货要多久", "w0"))])
    (new, old), seen = _watched(dispatcher, [_pending(_inbound("o_new", "火星上能送货吗", "w1")),
                                             _pending(_inbound("o_old", "火星上能送货吗", "w2"))])
    welcome = settings.get("welcome_message")
    assert isinstance(new, Result) and new.replies[0].text.startswith(welcome)
    assert isinstance(old, Result) and old.replies[0].meta.get("abstained") and not old.replies[0].text.startswith(welcome)
    assert len([sql for sql in seen if '"direction" = \'out\'' in sql]) == 1
    _, seen = _watched(dispatcher, [_pending(_inbound("o_new", "发货要多久", "w3")),  # every question answered:
                                    _pending(_inbound("o_x", "怎么退货", "w4"))])  # nobody needs to know
    assert seen and not [sql for sql in seen if '"direction" = \'out\'' in sql]


def test_a_retry_of_a_message_committed_before_does_not_break_up_the_held_replies(
        database: Any, dispatcher: Dispatcher) -> None:
    """WeChat's retry of a message an earlier batch committed replays what is stored; the
    replies this batch holds stay together (a storm is mostly such retries)."""
    shop_faqs()
    decide_batch(dispatcher, [_pending(_inbound("o_b", "怎么退货", "d0")), _pending(_inbound("o_a", "你好", "h0"))])
    outcomes, seen = _watched(dispatcher, [_pending(_inbound("o_a", "发货要多久", "a1")),
                                           _pending(_inbound("o_b", "怎么退货", "d0")),  # the retry
                                           _pending(_inbound("o_c", "怎么退货", "c1"))])
    assert [(o.duplicate, [r.text for r in o.replies][-1:]) for o in outcomes] == [  # type: ignore[union-attr]
        (False, [SHIPPING]), (True, [RETURNS]), (False, [RETURNS])]
    replies = [sql for sql in seen if sql.startswith('INSERT INTO "message"') and '"in_reply_to_id"' in sql]
    assert len(replies) == 1
