"""Operator settings stored in the database, with typed defaults.

Why in the database and not the config file: the operator edits them in the admin panel and
every running process must see the change without a restart. Reads are cached per process:
for a few seconds, or for as long as the version row says nothing changed (the webhook checks
it once per batch of messages, bot/core/cache_version.py), so the hot path does not query on
every message.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import cache_version, clock
from bot.core.models import Setting

DEFAULTS: dict[str, Any] = {
    "reception_mode": "bot_first",  # bot_first | human_first | mixed
    "welcome_message": "您好，欢迎光临！我是智能客服小蜜，有什么可以帮您？",
    "card_questions": ["发货要多久", "怎么退换货", "尺码怎么选", "有什么优惠券"],
    "rating_cards": False,  # add 👍/👎 cards (reply 1/2) under every FAQ answer
    "handoff_keywords": ["转人工", "人工", "人工客服", "客服", "真人", "human", "agent"],
    "handoff_after_unanswered": 2,
    "faq_threshold": None,  # None: the config's faq.threshold
    "agent_sla_seconds": 180,
    "agent_idle_minutes": 10,  # an agent 在线 but not seen this long is shown as not seen (bot/agents/last_seen.py)
    "business_hours": {
        "timezone": "Asia/Shanghai",
        "weekly": {"mon": ["09:00", "22:00"], "tue": ["09:00", "22:00"], "wed": ["09:00", "22:00"],
                   "thu": ["09:00", "22:00"], "fri": ["09:00", "22:00"], "sat": ["10:00", "18:00"],
                   "sun": ["10:00", "18:00"]},
        "holidays": [],
        "always_open": True,
    },
    "abstain_message": "抱歉，这个问题我还不太确定。您可以换个说法，或者看看下面的问题：",
    "handoff_message": "已为您转接人工客服{agent}，请稍候。",
    # to a customer writing after the handoff before the agent's first reply, once; "": never
    "handoff_ack_message": "已收到，客服马上回复您，请稍候。",
    "queue_message": "当前人工客服繁忙，您现在排在第 {position} 位，请耐心等待。",  # 1: next in line
    "offline_message": "人工客服的服务时间是 {hours}，我们上班后会第一时间回复您。",
    "resolved_message": "本次服务已结束，感谢您的耐心！请为本次服务打分（回复 1-5）：",
    "idle_resolve_minutes": 30,
    # scheduled jobs (jobs/): "template" is the channel template used outside the 48-hour
    # window ({"template_id", "data": {...}}; null: skip those customers with the reason).
    "coupon_reminder": {"enabled": True, "days": 3,
                        "text": "亲爱的{nickname}，您的优惠券 {coupon} 将于 {expires} 到期，别忘了使用哦～",
                        "template": None},
    "revisit": {"enabled": True, "days": 3, "low_score": 2,
                "text": "亲爱的{nickname}，您的订单 {order} 已签收，请问您对商品和服务满意吗？请回复 1-5 分（5 分最满意）。",
                "template": None},
    "dormant_revisit": {"enabled": False, "days": 90, "coupon_id": None,
                        "text": "亲爱的{nickname}，好久不见！送您一张优惠券 {coupon}，欢迎回来逛逛～",
                        "template": None},
    "birthday_greeting": {"enabled": True, "coupon_id": None,
                          "text": "亲爱的{nickname}，祝您生日快乐！🎂 {coupon}",
                          "template": None},
    # rows in a final state; 0: keep forever. message_days also ends the inbound dedup keys.
    "retention": {"outbox_days": 30, "delivery_days": 180, "message_days": 0},
    # CRM (bot/crm): VIP1..VIP4 thresholds, either basis qualifies; null disables a basis.
    # notify: "up" (message on upgrade) | "any" | "off"; {level} is VIP1..VIP4 or 普通会员.
    "member_levels": {"spend": [1000, 3000, 8000, 20000], "orders": [3, 10, 30, 80], "notify": "up",
                      "message": "恭喜您成为{level}会员！感谢您的支持，会员专属优惠请留意店铺通知。"},
    "pool_return_days": 30,  # an owned customer with no contact this long returns to 公海
}

_cache: dict[str, tuple[float, int, Any]] = {}  # key: (read at, cache generation, value)
_lock = threading.Lock()


def get(key: str) -> Any:
    """The setting's value, or its default; cached (see the module's docstring)."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown setting {key!r}")
    stamp = time.monotonic()
    hit = _cache.get(key)  # one dict read is atomic: no lock on the hot path (a few per message)
    if hit and cache_version.trusted(hit[0], hit[1], stamp):
        return hit[2]
    generation = cache_version.generation()  # before the read: a drop meanwhile makes the entry stale
    row = Setting.get_or_none(Setting.key == key)
    value = DEFAULTS[key] if row is None or row.value is None else row.value
    with _lock:
        _cache[key] = (stamp, generation, value)
    return value


def put(key: str, value: Any) -> None:
    if key not in DEFAULTS:
        raise KeyError(f"unknown setting {key!r}")
    (
        Setting.insert(key=key, value=value, updated_at=clock.now())
        .on_conflict(conflict_target=[Setting.key], update={Setting.value: value, Setting.updated_at: clock.now()})
        .execute()
    )
    clear_cache()


def clear_cache() -> None:
    """Forget every cached setting (and, through the version, every cache it governs)."""
    cache_version.reset()


def _drop() -> None:
    with _lock:
        _cache.clear()


cache_version.on_change(_drop)


DEFAULT_ZONE = "Asia/Shanghai"


def zone_named(name: str | None) -> ZoneInfo:
    """The time zone `name`, or the default when it is empty or misspelt: an operator's typo
    must not stop the bot, the figures or the panel."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except Exception:
        return ZoneInfo(DEFAULT_ZONE)


def shop_zone() -> ZoneInfo:
    """The shop's time zone: the operator's setting (系统 → 营业时间), in which the panel shows
    times, the KPIs count days, and the bot tells its opening hours."""
    return zone_named((get("business_hours") or {}).get("timezone"))
