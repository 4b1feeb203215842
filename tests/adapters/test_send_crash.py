"""A sender that dies mid-batch, at each point of a send: nothing is sent twice blindly.

The crash is injected in-process (an exception no handler catches, like the process
vanishing: what was committed stays, nothing else runs) at three points of the async
delivery: after the claim before the attempt mark, between the mark and the platform call,
and between the platform's answer and its recording. Then a new sender starts after the
lease has lapsed, as a restarted `kefu serve` would. The stand-in counts what arrived.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Callable

import pytest

from adapters.api_client import WeChatApi
from adapters.delivery import AsyncDelivery
from adapters.wechat_mp import OfficialAccountSender
from bot.campaigns import runs
from bot.campaigns import fanout
from bot.sending import outbox
from bot.core import clock
from bot.core.models import Campaign, Customer, Delivery, Message, Outbox
from bot.sending.results import SendResult
from jobs import campaigns as campaign_jobs
from tests.adapters.wechat_kit import APP_ID, stand

__all__ = ["stand"]

KINDS = {"mp": "wechat_mp"}
PEOPLE = 6


class Crash(BaseException):
    """The process dies here (no `except Exception` catches it)."""


async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def api(database, stand):  # type: ignore[no-untyped-def]
    client = WeChatApi.for_mp(stand.base, APP_ID, "mp-secret", run_blocking)
    yield client
    await client.close()


def sender_process(api: WeChatApi) -> AsyncDelivery:
    """A fresh `kefu serve`'s sender (default lease)."""
    return AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking, max_attempts=5)


def campaign_handed_over() -> Campaign:
    """A text campaign to PEOPLE followers inside the window, handed over to the outbox."""
    now = clock.now()
    Customer.insert_many([dict(channel="mp", external_id=f"o_{i}", nickname=f"顾客{i}", source="mp",
                               first_contact_at=now, last_contact_at=now, last_inbound_at=now)
                          for i in range(PEOPLE)]).execute()
    campaign = Campaign.create(name="双十二", target_kind="all", content_kind="text",
                               content={"text": "{nickname}您好，双十二预售开始啦"}, status="draft")
    runs.schedule(campaign)
    campaign_jobs.wanted("Asia/Shanghai")
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "sending"
    return Campaign.get_by_id(campaign.id)


def replies_queued() -> None:
    """PEOPLE answers a customer is waiting for (outbox rows with their message)."""
    now = clock.now()
    for i in range(PEOPLE):
        customer = Customer.create(channel="mp", external_id=f"o_{i}", last_inbound_at=now)
        message = Message.create(channel="mp", external_id=f"out:{i}", customer=customer, direction="out",
                                 author="bot", peer_id=customer.external_id, text="您的订单已发货", state="queued")
        outbox.enqueue(f"reply:{i}", "mp", customer.external_id, {"kind": "text", "text": "您的订单已发货"}, message)


def crash_at(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash(stage)

    if stage == "before the attempt mark":
        monkeypatch.setattr(outbox, "mark_attempts", die)
    elif stage == "between the mark and the call":
        monkeypatch.setattr(OfficialAccountSender, "send", die)
    else:  # between the platform's answer and its recording
        monkeypatch.setattr(outbox, "record_many", die)


async def crash_then_restart(api: WeChatApi, stage: str, monkeypatch: pytest.MonkeyPatch, fake_clock: Any) -> None:
    with monkeypatch.context() as patched:
        crash_at(stage, patched)
        await sender_process(api).deliver_due()
    assert Outbox.select().where(Outbox.status == "sending").count() == PEOPLE  # the dead sender's claims
    assert await sender_process(api).deliver_due() == 0  # the lease still holds: nobody takes them yet
    fake_clock.advance(seconds=outbox.LEASE_SECONDS + 1)
    restarted = sender_process(api)
    while await restarted.deliver_due():
        pass


def arrivals(stand: Any) -> Counter[str]:
    return Counter(c.body["touser"] for c in stand.sandbox.sends("/custom/send"))


STAGES = ["before the attempt mark", "between the mark and the call", "between the answer and its recording"]


@pytest.mark.parametrize("stage", STAGES)
async def test_a_campaign_send_cut_short_is_never_sent_twice(api, stand, fake_clock, monkeypatch, stage) -> None:
    campaign = campaign_handed_over()
    await crash_then_restart(api, stage, monkeypatch, fake_clock)
    got = arrivals(stand)
    assert all(n == 1 for n in got.values())  # nobody twice, whatever the stage
    statuses = Counter(r.status for r in Outbox.select())
    progress = runs.progress(campaign)
    if stage == "before the attempt mark":  # claimed, never attempted: safe to send, sent once
        assert len(got) == PEOPLE and statuses == {"sent": PEOPLE}
        assert progress["sent"] == PEOPLE and progress["in_doubt"] == 0
    else:  # attempted, outcome unknown: in doubt, reported, not resent
        expected_arrivals = 0 if stage == "between the mark and the call" else PEOPLE
        assert len(got) == expected_arrivals and statuses == {"in_doubt": PEOPLE}
        assert progress["in_doubt"] == PEOPLE and progress["sent"] == 0
        assert all("outcome unknown" in r.last_error for r in Outbox.select())
    # every recipient has an outcome: the run is done, counting those in doubt
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert Campaign.get_by_id(campaign.id).status == "done"
    assert progress["queued"] == progress["sending"] == 0 and progress["total"] == PEOPLE


@pytest.mark.parametrize("stage", STAGES[1:])
async def test_a_reply_cut_short_is_resent_the_customer_is_waiting(api, stand, fake_clock, monkeypatch,
                                                                   stage) -> None:
    replies_queued()
    await crash_then_restart(api, stage, monkeypatch, fake_clock)
    rows = list(Outbox.select())
    assert {r.status for r in rows} == {"sent"}
    assert all(r.attempts == 2 for r in rows)  # the cut-short attempt counts
    assert {m.state for m in Message.select()} == {"sent"}
    # the policy for replies: a doubled answer rather than none (a crash after the answer
    # arrived doubles it; one before the call does not)
    expected = 2 if stage == "between the answer and its recording" else 1
    assert set(arrivals(stand).values()) == {expected} and len(arrivals(stand)) == PEOPLE


async def test_the_operator_resends_those_in_doubt_once(api, stand, fake_clock, monkeypatch) -> None:
    campaign = campaign_handed_over()
    await crash_then_restart(api, "between the mark and the call", monkeypatch, fake_clock)
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert runs.resend_in_doubt(campaign.id) == PEOPLE
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.status == "running"  # not done while the resends are queued
    assert runs.progress(campaign)["queued"] == PEOPLE
    delivery = sender_process(api)
    while await delivery.deliver_due():
        pass
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert runs.progress(Campaign.get_by_id(campaign.id))["sent"] == PEOPLE
    assert set(arrivals(stand).values()) == {1} and len(arrivals(stand)) == PEOPLE
    assert runs.resend_in_doubt(campaign.id) == 0  # nothing left in doubt


async def test_a_late_answer_settles_the_doubt(api, stand, fake_clock) -> None:
    """A sender whose lease lapsed mid-call (stalled, not dead) still stores its answer,
    after the rows were put in doubt; it cannot store over a newer claim."""
    campaign_handed_over()
    rows = outbox.claim(10, ("mp",))
    assert outbox.mark_attempts(rows) == {r.id for r in rows}
    fake_clock.advance(seconds=outbox.LEASE_SECONDS + 1)
    assert outbox.claim(10, ("mp",)) == []  # settled in doubt, not taken
    assert outbox.record_many([(r, SendResult.ok()) for r in rows], 5) == ["sent"] * PEOPLE
    assert {r.status for r in Outbox.select()} == {"sent"}
    fanout.sync_outcomes(Delivery.job_key.is_null(False))
    assert {d.status for d in Delivery.select()} == {"sent"}


def test_a_sender_whose_claim_was_taken_over_neither_sends_nor_records(database, fake_clock) -> None:
    assert outbox.enqueue("k", "mp", "o_1", {"kind": "text", "text": "hi"})
    first = outbox.claim(10, ("mp",))
    fake_clock.advance(seconds=outbox.LEASE_SECONDS + 1)
    second = outbox.claim(10, ("mp",))  # never attempted: another sender may take it
    assert [r.key for r in second] == ["k"]
    assert outbox.mark_attempts(first) == set()  # the first must not call the platform now
    assert outbox.record(first[0], SendResult("retry", "busy"), 5) == "pending"
    assert Outbox.get().status == "sending"  # ... nor store over the second's claim
    assert outbox.mark_attempts(second) == {second[0].id}
    assert outbox.record(second[0], SendResult.ok(), 5) == "sent"
    assert Outbox.get().status == "sent"


def test_the_lease_is_renewed_while_the_batch_is_sent(database, fake_clock) -> None:
    assert outbox.enqueue("k", "mp", "o_1", {"kind": "text", "text": "hi"})
    rows = outbox.claim(10, ("mp",), lease_seconds=3)
    for _ in range(5):  # 10 s of sending, renewed every 2 s: never lapses
        fake_clock.advance(seconds=2)
        assert outbox.renew({str(rows[0].claim_token)}, 3) == 1
        assert outbox.claim(10, ("mp",)) == []
    fake_clock.advance(seconds=3.5)  # the sender died: picked up within the lease
    assert [r.key for r in outbox.claim(10, ("mp",))] == ["k"]


async def test_the_async_sender_renews_its_lease_during_a_slow_batch(api, stand, monkeypatch) -> None:
    assert outbox.enqueue("k", "mp", "o_1", {"kind": "text", "text": "hi"})
    stand.sandbox.inject(0, "/custom/send", latency=0.5)
    renewals: list[int] = []
    real = outbox.renew

    def counting(tokens: Any, lease: float) -> int:
        renewals.append(real(tokens, lease))
        return renewals[-1]

    monkeypatch.setattr(outbox, "renew", counting)
    delivery = AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking, lease_seconds=0.3)
    assert await delivery.deliver_due() == 1
    assert renewals and renewals[0] == 1  # renewed while the call was under way
    assert Outbox.get().status == "sent"
