"""Operator settings stored in the database, with typed defaults.

Why in the database and not the config file: the operator edits them in the admin panel and
every running process must see the change without a restart. Reads are cached for a few
seconds per process so the hot path does not query on every message.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bot import clock
from bot.models import Setting

DEFAULTS: dict[str, Any] = {
    "reception_mode": "bot_first",  # bot_first | human_first | mixed
    "welcome_message": "您好，欢迎光临！我是智能客服小蜜，有什么可以帮您？",
    "card_questions": ["发货要多久", "怎么退换货", "尺码怎么选", "有什么优惠券"],
    "handoff_keywords": ["转人工", "人工", "人工客服", "客服", "真人", "human", "agent"],
    "handoff_after_unanswered": 2,
    "faq_threshold": None,  # None: the config's faq.threshold
    "agent_sla_seconds": 180,
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
    "queue_message": "当前人工客服繁忙，您前面还有 {position} 位，请耐心等待。",
    "offline_message": "人工客服的服务时间是 {hours}，我们上班后会第一时间回复您。",
    "resolved_message": "本次服务已结束，感谢您的耐心！请为本次服务打分（回复 1-5）：",
    "idle_resolve_minutes": 30,
}

_TTL_SECONDS = 3.0
_cache: dict[str, tuple[float, Any]] = {}
_lock = threading.Lock()


def get(key: str) -> Any:
    """The setting's value, or its default; cached for a few seconds."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown setting {key!r}")
    stamp = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and stamp - hit[0] < _TTL_SECONDS:
            return hit[1]
    row = Setting.get_or_none(Setting.key == key)
    value = DEFAULTS[key] if row is None or row.value is None else row.value
    with _lock:
        _cache[key] = (stamp, value)
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
    with _lock:
        _cache.clear()
