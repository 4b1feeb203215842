"""Send outcomes stored in groups (the fan-out's sender side): same statuses as one by one,
fewer transactions."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import pytest

from adapters.delivery import AsyncDelivery
from bot.sending import outbox
from bot.core import clock
from bot.core.models import Outbox
from bot.sending.results import SendResult

pytestmark = pytest.mark.usefixtures("database", "fake_clock")


class FlakySender:
    rate_per_second = 0.0

    async def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        await asyncio.sleep(0)
        if recipient.endswith("7"):
            return SendResult("retry", "busy")
        if recipient.endswith("9"):
            return SendResult("failed", "invalid openid")
        return SendResult.ok()


async def test_outcomes_are_recorded_in_groups(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for i in range(40):
        outbox.enqueue(f"k{i}", "mp", f"user{i}", {"kind": "text", "text": "hi"})
    calls: list[int] = []
    real = outbox.record_many

    def counting(outcomes, max_attempts):  # type: ignore[no-untyped-def]
        calls.append(len(outcomes))
        return real(outcomes, max_attempts)

    monkeypatch.setattr(outbox, "record_many", counting)

    async def run_blocking(fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(fn, *args)

    delivery = AsyncDelivery({"mp": FlakySender()}, run_blocking)
    assert await delivery.deliver_due(100) == 40
    assert sum(calls) == 40 and len(calls) < 40  # grouped
    by_status = {row.recipient: (row.status, row.attempts) for row in Outbox.select()}
    assert by_status["user1"] == ("sent", 1)
    assert by_status["user7"] == ("pending", 1)
    assert by_status["user9"] == ("failed", 1)
    assert sum(1 for s, _ in by_status.values() if s == "sent") == 32
    assert Outbox.get(Outbox.recipient == "user1").sent_at == clock.now()
