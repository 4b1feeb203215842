"""Revisit answers (回访): a customer's 1–5 reply to a satisfaction question after delivery.

Why in the core: the answer arrives as an ordinary inbound message, so the dispatcher asks
this module whether a digit is a revisit answer. It is when the customer has a revisited
order without a score from the last `ANSWER_DAYS`. The score goes on the order and into the
customer's notes; a low score opens a conversation queued for a human.
"""

from __future__ import annotations

from datetime import timedelta

from bot.crm import conversations
from bot.core import clock, settings
from bot.core.db import transaction
from bot.core.models import Conversation, Customer, Order

ANSWER_DAYS = 7


THANKS = "感谢您的评价，祝您生活愉快！"
SORRY = "非常抱歉给您带来不好的体验，已为您转接人工客服，请稍候。"


def pending_order(customer: Customer) -> Order | None:
    """The customer's latest revisited order still waiting for a score. A conversation with
    messages after the question means the digit may answer something else (a card)."""
    since = clock.now() - timedelta(days=ANSWER_DAYS)
    talking = Conversation.get_or_none(Conversation.open_key == customer.id)
    if talking is not None and talking.last_message_at > since:
        since = talking.last_message_at
    return (Order.select()
            .where((Order.customer == customer.id) & Order.revisited_at.is_null(False)
                   & (Order.revisited_at >= since) & Order.revisit_score.is_null())
            .order_by(Order.revisited_at.desc()).first())


def record_answer(customer: Customer, text: str) -> tuple[Order, int] | None:
    """Record `text` as the answer to the customer's latest open revisit; None when it is
    not one (not a digit 1–5, or no revisit waiting)."""
    text = text.strip()
    if len(text) != 1 or text not in "12345":
        return None
    order = pending_order(customer)
    if order is None:
        return None
    score = int(text)
    with transaction():
        if not Order.update(revisit_score=score).where(
            (Order.id == order.id) & Order.revisit_score.is_null()
        ).execute():
            return None  # answered concurrently
        note = f"{clock.now().astimezone(settings.shop_zone()):%Y-%m-%d} 回访评分 {score}（订单 {order.shop_order_id}）"
        Customer.update(notes=(Customer.notes.concat("\n" if customer.notes else "")).concat(note)).where(
            Customer.id == customer.id
        ).execute()
    if score <= int((settings.get("revisit") or {}).get("low_score", 2)):
        conversation, _ = conversations.open_conversation(customer)
        if conversation.status == "bot":
            conversations.enqueue(conversation, "revisit")
    order.revisit_score = score
    return order, score


def reply_to(customer: Customer, text: str) -> str | None:
    """The dispatcher's question: is this message a revisit answer? The reply if it was."""
    answer = record_answer(customer, text)
    if answer is None:
        return None
    low = int((settings.get("revisit") or {}).get("low_score", 2))
    return SORRY if answer[1] <= low else THANKS
