"""FAQ hits (bot/conversation/faq_hits.py): counted per answer, written once before the
commit, and never for a message whose writes were rolled back (a duplicate, a failure)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from adapters.group_commit import Pending, decide_batch
from bot.conversation import faq_hits
from bot.conversation.dispatcher import Dispatcher
from bot.core.events import Inbound
from bot.core.models import Faq
from tests.factories import shop_faqs, text


def _pending(inbound: Inbound) -> Pending:
    return Pending(inbound, None, concurrent.futures.Future())  # type: ignore[arg-type]


def _hits(faq: Faq) -> int:
    return int(Faq.get_by_id(faq.id).hits)


def test_a_batch_counts_each_answer_once_and_not_its_duplicates_or_failures(
        database: Any, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    faqs = shop_faqs()
    real_route = dispatcher.router.route

    def route(turn: Any) -> Any:
        outgoing = real_route(turn)  # counts its hit, then fails: the hit must go with it
        if turn.inbound.msg_id == "bad":
            raise RuntimeError("a bug after the answer")
        return outgoing

    monkeypatch.setattr(dispatcher.router, "route", route)
    ship = text("u1", "发货要多久", "a")
    batch = [ship, text("u2", "怎么退货", "b"), ship, text("u3", "怎么退货", "bad"), text("u4", "发货要多久", "c")]
    outcomes = decide_batch(dispatcher, [_pending(m) for m in batch])

    assert isinstance(outcomes[3], RuntimeError)
    assert _hits(faqs["shipping"]) == 2  # a and c; the retry of a replayed without counting
    assert _hits(faqs["returns"]) == 1  # b; "bad" was rolled back
    assert faq_hits.since() == 0  # nothing left over for the next transaction of this thread


def test_a_message_alone_counts_its_hit_and_a_retry_does_not(database: Any, dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    dispatcher.handle(text("u1", "怎么退货", "m1"))
    assert dispatcher.handle(text("u1", "怎么退货", "m1")).duplicate
    dispatcher.handle(text("u2", "怎么退货", "m2"))
    assert _hits(faqs["returns"]) == 2
    assert faq_hits.since() == 0


def test_the_hits_of_several_faqs_are_added_in_one_statement(database: Any) -> None:
    from bot.core.db import database as proxy
    from bot.core.db import transaction

    faqs = list(shop_faqs().values())
    before = {faq.id: _hits(faq) for faq in faqs}
    first, second = faqs[0], faqs[1]
    seen: list[str] = []
    proxy.obj.query_hooks.append(lambda event: seen.append(event.sql))
    try:
        with transaction():
            faq_hits.reset()
            for faq_id in (second.id, first.id, second.id, second.id):
                faq_hits.count(faq_id)
            faq_hits.write()
            faq_hits.write()  # nothing counted since: no statement
    finally:
        proxy.obj.query_hooks.pop()
    assert [sql for sql in seen if "faq" in sql and "UPDATE" in sql.upper()] == [seen[0]] and len(seen) == 1
    assert {faq.id: _hits(faq) - before[faq.id] for faq in faqs} == {
        faq.id: {first.id: 1, second.id: 3}.get(faq.id, 0) for faq in faqs}
