"""What each customer reads: a campaign's content with its {placeholders} filled, as the
outbox row one customer gets (and as one 公众号 mass message when it can be one).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from bot.campaigns import fanout
from bot.campaigns.targets import LEVEL_NAMES
from bot.core.models import Campaign
from bot.crm.coupons import issue_coupon

PLACEHOLDER_PATTERN = re.compile(r"\{([a-z_]+)\}")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace {name} placeholders; unknown ones (and other braces) stay as written."""
    if "{" not in text:
        return text
    return PLACEHOLDER_PATTERN.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def fill_all(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [fill_all(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_all(v, values) for k, v in value.items()}
    return value



def placeholder_values(customer: fanout.Person, coupon: str = "") -> dict[str, str]:
    return {"nickname": customer.nickname or customer.name or "顾客", "level": LEVEL_NAMES.get(customer.level, ""),
            "coupon": coupon}


def as_message(kind: str, content: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outbox form of a campaign's content for one kind."""
    if kind == "text":
        return {"kind": "text", "text": content["text"]} if content.get("text") else None
    if kind == "image":
        image = {k: content[k] for k in ("media_id", "url") if content.get(k)}
        return {"kind": "image", **image} if image else None
    if kind == "news":
        return {"kind": "news", "articles": list(content["articles"])} if content.get("articles") else None
    if kind == "template":
        template = content.get("template") if "template" in content else content
        if not template or not template.get("template_id"):
            return None
        return {"kind": "template", **{k: template[k] for k in ("template_id", "url", "data") if k in template}}
    return None


def render(campaign: Campaign, customer: fanout.Person, delivery_key: str) -> fanout.Rendered:
    """What one customer gets: the content within the window and the template fallback.
    A `coupon_id` in the content issues the customer a coupon for {coupon}."""
    content: Mapping[str, Any] = campaign.content or {}
    code = ""
    if content.get("coupon_id"):
        issued = issue_coupon(int(content["coupon_id"]), customer.id, delivery_key)
        code = issued.code if issued else ""
    values = placeholder_values(customer, code)
    main = as_message(campaign.content_kind, content)
    template = as_message("template", content) if campaign.content_kind != "template" and content.get("template") else None
    if campaign.content_kind == "template":
        main, template = None, main
    return fanout.Rendered(
        content=fill_all(main, values) if main else None,
        template=fill_all(template, values) if template else None,
        reason="" if (main or template) else "the campaign has no content",
        mass=as_mass(campaign),
    )


PERSONAL = ("{nickname}", "{level}", "{coupon}")


def as_mass(campaign: Campaign) -> dict[str, Any] | None:
    """The campaign as one 公众号 mass message for every follower, or None when it cannot be
    one: a text with per-customer placeholders or a coupon each, news with links (mass
    sends take uploaded articles only), templates."""
    content: Mapping[str, Any] = campaign.content or {}
    if campaign.content_kind == "text" and content.get("text") and not content.get("coupon_id"):
        text = str(content["text"])
        return None if any(p in text for p in PERSONAL) else {"kind": "mass", "msgtype": "text", "text": text}
    if campaign.content_kind == "image" and content.get("media_id"):
        return {"kind": "mass", "msgtype": "image", "image": {"media_id": content["media_id"]}}
    return None
