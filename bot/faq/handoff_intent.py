"""Does a customer's message ask for a person? The handoff keywords read as a customer means them.

Why in faq/: the routing hands off on it and the learning loop collects the question the bot
answered just before a customer asked for a person; both read messages the same way, with
the FAQ's own normalization, and neither may import the other's module for it.
"""

from __future__ import annotations

from typing import Iterable

from bot.core.models import FaqQuestion
from bot.faq.normalize import normalize


def asks_for_human(text: str, keywords: Iterable[str]) -> bool:
    """A short message naming a handoff keyword (转人工, 客服 ...) asks for a person; a long
    question that merely mentions one (“客服说的优惠券怎么用”) is still a question."""
    norm = normalize(text)
    for keyword in keywords:
        key = normalize(keyword)
        if key and (norm == key or (key in norm and len(norm) <= len(key) + 6)):
            return True
    return False


# asking for a person whatever else the message says (a verb of wanting one) ...
REQUEST_VERBS = ("转人工", "找人工", "要人工", "接人工", "转客服", "找客服", "联系客服", "找真人", "要真人")
# ... and the names of one, a request when little else is said (人工客服呢, not 人工客服什么时候在)
REQUEST_NOUNS = ("人工客服", "真人客服", "人工服务")
NOUN_SLACK = 3
# a keyword with only these after it is calling for one (客服在吗, 人工呢)
CALLING = ("在不在", "在吗", "在么", "呢", "吗", "啊", "呀", "快点")


def explicit_request(text: str, keywords: Iterable[str]) -> bool:
    """The message is a request for a person, not a question that mentions one: a keyword
    alone or called (客服, 客服在吗), a verb of asking for one (转人工, 找人工 …), or its name with little
    else (人工客服, 人工客服呢). Such a message goes to a person even when an FAQ matches."""
    norm = normalize(text)
    keys = {normalize(k) for k in keywords if normalize(k)}
    if norm in keys or any(norm.endswith(c) and norm[: -len(c)] in keys for c in CALLING):
        return True
    if any(verb in norm for verb in REQUEST_VERBS):
        return True
    return any(noun in norm and len(norm) <= len(noun) + NOUN_SLACK for noun in REQUEST_NOUNS)


def keyword_overlaps(keywords: Iterable[str], limit: int = 20) -> list[tuple[str, str]]:
    """(keyword, FAQ phrasing) pairs where a phrasing would read as a handoff request on its
    own: the settings page warns that such a question reaches a person unless its FAQ
    answers it with confidence (an explicit request like 转人工 always does)."""
    keys = [k for k in keywords if normalize(k)]
    found: list[tuple[str, str]] = []
    for (question,) in FaqQuestion.select(FaqQuestion.text).tuples().iterator():
        for keyword in keys:
            if asks_for_human(question, [keyword]):
                found.append((keyword, question))
                break
        if len(found) >= limit:
            break
    return found
