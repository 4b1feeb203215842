"""Demo data for a fresh install: a Chinese shop FAQ pack, two agents, a group, a coupon.

Why: `kefu run` on a new machine must show a working shop at once. Seeding is idempotent
(keyed by the FAQs' ids and the agents' names), so running it twice changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources

from bot.agents import add_agent
from bot.config import Config
from bot.faq import io as faq_io
from bot.models import Agent, Coupon, CustomerGroup, Faq, Synonym, Tag

DEMO_AGENTS = (
    ("xiaomei", "小美", "agent-xiaomei"),
    ("ali", "阿力", "agent-ali"),
)
DEMO_SYNONYMS = (("发货", "寄出 发出"), ("快递", "物流 快件"), ("退货", "退回"), ("优惠券", "券 红包"))


def faq_pack_lines() -> list[str]:
    return resources.files("bot").joinpath("demo_data/faq_zh.jsonl").read_text(encoding="utf-8").splitlines()


def seed(config: Config) -> dict[str, int]:
    """Seed what is missing; returns counts of what was created."""
    created = {"faqs": 0, "agents": 0, "groups": 0}
    if not Faq.select().exists():
        report = faq_io.apply(faq_io.parse_jsonl(faq_pack_lines(), "demo_data/faq_zh.jsonl"))
        created["faqs"] = report.created
        for canonical, variants in DEMO_SYNONYMS:
            Synonym.get_or_create(canonical=canonical, defaults={"variants": variants})
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
