"""Demo data for a fresh install: a Chinese shop FAQ pack, two agents, a group, a coupon.

Why: `kefu run` on a new machine must show a working shop at once. Seeding is idempotent
(keyed by the FAQs' ids and the agents' names), so running it twice changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources

from bot.core import settings
from bot.agents.presence import add_agent
from bot.core.config import Config
from bot.faq import io as faq_io
from bot.core.models import Agent, Coupon, CustomerGroup, Faq, Setting, Synonym, Tag

DEMO_AGENTS = (
    ("xiaomei", "小美", "agent-xiaomei"),
    ("ali", "阿力", "agent-ali"),
)
DEMO_SYNONYMS = (("发货", "寄出 发出"), ("快递", "物流 快件"), ("退货", "退回"), ("优惠券", "券 红包"))


def faq_pack_lines() -> list[str]:
    return resources.files("bot").joinpath("demo_data/faq_zh.jsonl").read_text(encoding="utf-8").splitlines()


DEMO_HOURS = ("09:00", "23:00")  # what the demo FAQs 客服几点上班 / 怎么联系客服 promise: 每天9:00-23:00


def demo_business_hours() -> dict[str, object]:
    """The default hours with every day 09:00-23:00 (节假日正常在线), so the demo shop's
    offline message and its own FAQs tell a customer the same hours."""
    hours = dict(settings.DEFAULTS["business_hours"])
    hours["weekly"] = {day: list(DEMO_HOURS) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return hours


def seed(config: Config) -> dict[str, int]:
    """Seed what is missing; returns counts of what was created."""
    created = {"faqs": 0, "agents": 0, "groups": 0}
    if not Faq.select().exists():
        report = faq_io.apply(faq_io.parse_jsonl(faq_pack_lines(), "demo_data/faq_zh.jsonl"))
        created["faqs"] = report.created
        for canonical, variants in DEMO_SYNONYMS:
            Synonym.get_or_create(canonical=canonical, defaults={"variants": variants})
        if not Setting.select().where(Setting.key == "business_hours").exists():  # never an operator's own
            settings.put("business_hours", demo_business_hours())
    web = next((c.name for c in config.channels if c.kind == "web"), None)
    if web:
        for name, display, user_id in DEMO_AGENTS:
            if not Agent.select().where(Agent.name == name).exists():
                add_agent(config, name, web, user_id, max_open=5, display_name=display, status="online")
                created["agents"] += 1
    _, made = CustomerGroup.get_or_create(name="新品尝鲜群", defaults={"kind": "普通群", "description": "演示用群组"})
    created["groups"] += int(made)
    for tag in ("老客", "高价值", "待回访"):
        Tag.get_or_create(name=tag)
    Coupon.get_or_create(name="新人满100减10", defaults={"kind": "amount", "value": Decimal("10"),
                                                        "min_spend": Decimal("100"), "valid_days": 30})
    return created
