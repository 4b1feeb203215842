"""Small builders for test data (the demo pack is tested on its own)."""

from __future__ import annotations

import itertools

from bot.core.events import Inbound
from bot.core.models import Agent, Faq, FaqQuestion

_ids = itertools.count(1)

SHIPPING = "现货商品付款后48小时内发货。"
RETURNS = "支持7天无理由退货，请在订单详情页申请。"
SIZES = "请参考商品页的尺码表，按胸围和身高选择。"


def make_faq(answer: str, questions: list[str], category: str = "更多问题") -> Faq:
    faq = Faq.create(answer=answer, category=category)
    for q in questions:
        FaqQuestion.create(faq=faq, text=q)
    return faq


def shop_faqs() -> dict[str, Faq]:
    return {
        "shipping": make_faq(SHIPPING, ["发货要多久", "什么时候发货", "几天能发货"], "物流问题"),
        "returns": make_faq(RETURNS, ["怎么退货", "可以退货吗", "退货流程是什么"], "售后问题"),
        "sizes": make_faq(SIZES, ["尺码怎么选", "我该穿多大码", "尺码表在哪里"], "商品问题"),
    }


def make_agent(name: str, user_id: str | None = None, channel: str = "web", max_open: int = 5,
               status: str = "online") -> Agent:
    return Agent.create(name=name, display_name=name, channel=channel, im_user_id=user_id or f"agent-{name}",
                        max_open=max_open, status=status)


def text(user: str, body: str, msg_id: str | None = None, channel: str = "web") -> Inbound:
    return Inbound(channel=channel, user_id=user, msg_id=msg_id or f"m{next(_ids)}", kind="text", text=body)
