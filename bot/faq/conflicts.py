"""FAQs that contradict each other: a phrasing that another FAQ would answer.

Why: adding 可以发顺丰吗 (补10元) beside 能发顺丰吗 (补6元) left two fees, one answered in
试一试 and the other in the chat, and nothing said so. A phrasing conflicts with another FAQ
when the matcher itself, with the phrasing's own FAQ left out (`FaqStore.match(exclude=)`),
would answer it from that other FAQ: its confidence reaches the answering threshold. The
check uses the bot's own score and threshold, so the warning means exactly "a customer
asking this could get the other answer". The panel's FAQ form, both imports (panel and
`kefu faq import`) and 试一试 show these with both answers; nothing is refused, since two
FAQs may rightly share words, but the operator decides knowingly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from bot.core import settings
from bot.faq.matcher import Match
from bot.faq.store import FaqStore
from bot.core.models import Faq

MAX_REPORTED = 20  # an import of a thousand near-duplicates names the first ones only


@dataclass(frozen=True)
class Conflict:
    """`phrasing` of FAQ `faq_id` (answer `answer`) would be answered by `other_id`."""

    phrasing: str
    faq_id: int | None
    answer: str
    other_id: int
    other_phrasing: str  # the other FAQ's phrasing that matched best
    other_answer: str
    score: float  # the matcher's confidence for the other FAQ


def answering_threshold(default: float) -> float:
    """The threshold the bot answers at: the panel's setting, else the config file's."""
    configured = settings.get("faq_threshold")
    return float(configured) if configured is not None else float(default)


def describe(conflict: Conflict) -> str:
    """One line for the CLI: both phrasings, both answers, the score."""
    mine = f"#{conflict.faq_id} " if conflict.faq_id else ""
    return (f"「{conflict.phrasing}」({mine}{conflict.answer[:40]}) would be answered by FAQ #{conflict.other_id} "
            f"「{conflict.other_phrasing}」({conflict.other_answer[:40]}), score {conflict.score:.2f}")


def _answer_of(store: FaqStore, faq_id: int) -> str:
    found = store.answer_for(faq_id)
    if found is not None:
        return found.answer
    row = Faq.get_or_none(Faq.id == faq_id)
    return row.answer if row else ""


def for_phrasings(store: FaqStore, phrasings: Iterable[str], threshold: float, faq_id: int | None = None,
                  answer: str = "") -> list[Conflict]:
    """The phrasings of one FAQ (`faq_id`, None when not saved yet) another FAQ would answer."""
    found: list[Conflict] = []
    seen: set[str] = set()
    for phrasing in phrasings:
        phrasing = phrasing.strip()
        if not phrasing or phrasing in seen:
            continue
        seen.add(phrasing)
        best = store.match(phrasing, limit=2, exclude=faq_id).best
        if best is not None and best.score >= threshold:
            other = int(best.faq_id)
            found.append(Conflict(phrasing, faq_id, answer, other, best.question, _answer_of(store, other),
                                  round(best.score, 4)))
    return found


def for_faqs(store: FaqStore, faq_ids: Sequence[int], threshold: float) -> list[Conflict]:
    """Conflicts of stored FAQs' phrasings (after an import), at most MAX_REPORTED."""
    store.refresh(force=True)  # the FAQs just written, whatever the store's check interval
    found: list[Conflict] = []
    for faq in Faq.select().where(Faq.id.in_(list(faq_ids))).order_by(Faq.id):
        if not faq.enabled:
            continue  # a disabled FAQ answers nobody
        texts = [q.text for q in faq.questions]
        found.extend(for_phrasings(store, texts, threshold, faq.id, faq.answer))
        if len(found) >= MAX_REPORTED:
            return found[:MAX_REPORTED]
    return found


def rivals(store: FaqStore, match: Match, threshold: float) -> list[tuple[int, str, str, float]]:
    """For 试一试: every FAQ that reaches the threshold for one question, as (id, phrasing,
    answer, score); two or more means the customer's answer depends on wording."""
    return [(int(c.faq_id), c.question, _answer_of(store, int(c.faq_id)), round(c.score, 4))
            for c in match.candidates if c.score >= threshold]


def imported_ids(external_ids: Iterable[str]) -> list[int]:
    """The stored FAQ ids of an import file's records (their `id` column is the external id)."""
    ids = [e for e in external_ids if e]
    return [f.id for f in Faq.select(Faq.id).where(Faq.external_id.in_(ids))] if ids else []
