"""Helpers for the job tests: customers in bulk, a recording sender, a WeChat-like channel."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Mapping

import pytest

from bot.sending import outbox
from bot.core import clock
from bot.core.config import ChannelConfig, Config
from bot.core.models import Customer
from bot.sending.results import SendResult

KINDS = {"web": "web", "mp": "wechat_mp"}


class RecordingSender:
    """Accepts every send and remembers it (recipient, content)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        self.sent.append((recipient, dict(content)))
        return SendResult.ok()

    def recipients(self) -> list[str]:
        return [r for r, _ in self.sent]


def make_customers(n: int, channel: str = "web", prefix: str = "c", **fields: Any) -> list[Customer]:
    now = clock.now()
    rows = [dict(channel=channel, external_id=f"{prefix}{i}", nickname=f"顾客{i}", source=channel,
                 first_contact_at=now, last_contact_at=now, last_inbound_at=now, **fields) for i in range(n)]
    Customer.insert_many(rows).execute()
    return list(Customer.select().where(Customer.external_id.startswith(prefix) & (Customer.channel == channel))
                .order_by(Customer.id))


def deliver_all(senders: Mapping[str, Any]) -> int:
    total = 0
    while (n := outbox.deliver_due(senders, limit=500)):
        total += n
    return total


@pytest.fixture
def mp_config(config: Config) -> Config:
    return dataclasses.replace(config, channels=config.channels + (ChannelConfig(name="mp", kind="wechat_mp"),))


def hours_ago(h: float):  # type: ignore[no-untyped-def]
    return clock.now() - timedelta(hours=h)
