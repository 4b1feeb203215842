"""The learning loop: what the bot could not answer becomes FAQs; what it answered gets rated.

Why here, as plain functions: the admin panel, the CLI and the tests need the same one-step
operations (turn a group of unanswered questions into a new FAQ, or into phrasings of an
existing one), each in one transaction and each followed by `touch`, so every running
process answers the new phrasing within seconds.

- Unanswered questions are stored by the router when it abstains; `collect_handoffs`
  adds the questions a customer asked just before asking for a human although the bot had
  answered them (the answer did not help). `unanswered_groups` clusters the open ones by
  character similarity (leader clustering, newest first) with counts and latest examples.
- Ratings: a 👍/👎 (or its card number) right after an FAQ answer is stored once per answer
  message and counted on the FAQ; `low_rated_faqs` lists the ones customers dislike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

import numpy as np

from bot.core import clock, settings
from bot.core.db import insert_new, transaction
from bot.faq.handoff_intent import asks_for_human
from bot.faq.lexical import LexicalIndex
from bot.faq.normalize import normalize
from bot.faq.semantic import Embedder, embed_cached, load_embedder
from bot.faq.store import DbVectorCache, touch
from bot.core.models import AnswerRating, Conversation, Customer, Faq, FaqQuestion, Message, UnansweredQuestion

GROUP_SIMILARITY = 0.5  # mean of char unigram and bigram Dice to the group's newest question
# with the model: the mean of that and the embedding cosine. Measured by `kefu faq learn-eval`
# (5 seeds, K = 30): 0.72 / 0.75 / 0.78 mix questions of different FAQs in 13 / 0.7 / 0 % of
# the groups acted on in ATEC dev and 9 / 5 / 0.7 % in BQ; 0.78 keeps a margin on both.
GROUP_SIMILARITY_SEMANTIC = 0.78
_DEFAULT = object()
MAX_PHRASINGS = 10
DEFAULT_CATEGORY = "更多问题"


class LearningError(ValueError):
    pass


@dataclass(frozen=True)
class Group:
    """Similar open unanswered questions; `text` is the newest one."""

    text: str
    count: int
    question_ids: tuple[int, ...]
    examples: tuple[str, ...]  # the latest distinct texts, newest first
    latest_at: datetime
    best_faq_id: int | None  # the FAQ the bot found closest most often (a hint for add_as_phrasing)
    best_score: float = 0.0  # the matcher's best score for that FAQ among the group's questions

    def confident(self, threshold: float) -> bool:
        """Whether the hint may be pre-selected: the matcher's own score reached its answering
        threshold. Below it the nearest FAQ is often wrong (是不是正品 → 发错货), and one click
        would teach the bot a wrong phrasing, so the operator picks."""
        return self.best_faq_id is not None and self.best_score >= threshold


# --- the unanswered list ---------------------------------------------------------------


def collect_handoffs(since: timedelta = timedelta(days=7)) -> int:
    """Record, once, each question the bot answered right before the customer asked for a human."""
    keywords = settings.get("handoff_keywords")
    added = 0
    cutoff = clock.now() - since
    conversations = Conversation.select(Conversation.id).where(
        (Conversation.handoff_reason == "requested") & (Conversation.opened_at >= cutoff))
    for conv in conversations:
        inbound = list(Message.select().where((Message.conversation == conv.id) & (Message.direction == "in")
                                              & (Message.author == "customer") & (Message.kind == "text"))
                       .order_by(Message.id))
        for before, after in zip(inbound, inbound[1:]):
            if not asks_for_human(after.text, keywords):
                continue
            answer = Message.get_or_none((Message.in_reply_to == before.id) & Message.faq.is_null(False))
            if answer is None or UnansweredQuestion.select().where(UnansweredQuestion.message == before.id).exists():
                continue
            UnansweredQuestion.create(text=before.text[:2000], normalized=normalize(before.text),
                                      customer=before.customer_id, message=before.id, reason="handoff",
                                      best_faq=answer.faq_id, best_score=answer.score, created_at=before.created_at)
            added += 1
    return added


def question_similarity(texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
    """Pairwise similarity of questions: the mean of the embedding cosine and the character
    similarity when vectors are given, else the character similarity alone."""
    index = LexicalIndex(texts)
    lexical = np.stack([index.scores(t) for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
    if vectors is None:
        return lexical
    return (np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T + lexical) / 2.0


def group_questions(texts: Sequence[str], vectors: np.ndarray | None = None,
                    similarity: float | None = None) -> list[list[int]]:
    """Clusters of `texts` (normalized, newest first) as index lists, biggest first (ties: the
    newest first), each newest member first: every member is close to the group's newest
    question. Pure, so the admin's list and `kefu faq learn-eval` group alike."""
    if not texts:
        return []
    close_enough = similarity if similarity is not None else (
        GROUP_SIMILARITY if vectors is None else GROUP_SIMILARITY_SEMANTIC)
    pairs = question_similarity(texts, vectors)
    assigned = np.zeros(len(texts), dtype=bool)
    clusters: list[list[int]] = []
    for leader in range(len(texts)):
        if assigned[leader]:
            continue
        close = pairs[leader] >= close_enough
        close[leader] = True
        members = [int(j) for j in np.flatnonzero(close & ~assigned)]  # newest first
        assigned[members] = True
        clusters.append(members)
    clusters.sort(key=lambda members: (-len(members), members[0]))
    return clusters


def question_vectors(texts: Sequence[str], embedder: Embedder | None) -> np.ndarray | None:
    """The texts' embedding vectors through the shared vector table (each text is embedded
    once, by whichever process asks first), or None without the model."""
    if embedder is None or not texts:
        return None
    return embed_cached(embedder, texts, DbVectorCache(embedder.name))


def unanswered_groups(limit: int = 50, scan: int = 2000, similarity: float | None = None,
                      embedder: Embedder | None | object = _DEFAULT) -> list[Group]:
    """The open unanswered questions grouped by similarity, biggest groups first. With the
    embedding model the grouping reads meaning as well as characters (`kefu faq learn-eval`:
    groups mixing questions of different FAQs fell from 16 % to under 1 % of those acted on
    in ATEC dev, 9 % to 1 % in BQ)."""
    rows = list(UnansweredQuestion.select().where(UnansweredQuestion.resolved == False)  # noqa: E712
                .order_by(UnansweredQuestion.created_at.desc(), UnansweredQuestion.id.desc()).limit(scan))
    texts = [r.normalized or normalize(r.text) for r in rows]
    model = load_embedder() if embedder is _DEFAULT else embedder
    vectors = question_vectors(texts, model)  # type: ignore[arg-type]
    groups: list[Group] = []
    for members in group_questions(texts, vectors, similarity)[:limit]:
        hints = [rows[j].best_faq_id for j in members if rows[j].best_faq_id]
        groups.append(Group(
            text=rows[members[0]].text, count=len(members), question_ids=tuple(rows[j].id for j in members),
            examples=tuple(dict.fromkeys(rows[j].text for j in members))[:5], latest_at=rows[members[0]].created_at,
            best_faq_id=(best := max(set(hints), key=hints.count) if hints else None),
            best_score=max((float(rows[j].best_score or 0) for j in members if rows[j].best_faq_id == best), default=0.0),
        ))
    return groups


def _questions(group: Group | Sequence[int]) -> list[UnansweredQuestion]:
    ids = list(group.question_ids if isinstance(group, Group) else group)
    rows = list(UnansweredQuestion.select().where(UnansweredQuestion.id.in_(ids))
                .order_by(UnansweredQuestion.created_at.desc(), UnansweredQuestion.id.desc())) if ids else []
    if not rows:
        raise LearningError("这组问题不存在或已处理")
    return rows


def choose_phrasings(texts: Sequence[str], existing: Sequence[str] = ()) -> list[str]:
    """Which of a group's texts (newest first) become phrasings: distinct by normalized form,
    none an FAQ has already, at most MAX_PHRASINGS. Pure, shared with `kefu faq learn-eval`."""
    seen: dict[str, str] = {}
    known = {normalize(t) for t in existing}
    for text in texts:
        text = text.strip()[:512]
        key = normalize(text)
        if text and key and key not in seen and key not in known:
            seen[key] = text
    return list(seen.values())[:MAX_PHRASINGS]


def _phrasings(rows: Sequence[UnansweredQuestion]) -> list[str]:
    return choose_phrasings([row.text for row in rows])


def _resolve(rows: Sequence[UnansweredQuestion]) -> None:
    """Resolve the rows and every open one with the same text, all stamped with one time (the
    dashboard counts an action as one group resolved that day); resolved rows keep theirs."""
    ids = [r.id for r in rows]
    normalized = [r.normalized for r in rows if r.normalized]
    same = UnansweredQuestion.id.in_(ids)
    if normalized:
        same |= UnansweredQuestion.normalized.in_(normalized)
    UnansweredQuestion.update(resolved=True, resolved_at=clock.now()).where(
        same & (UnansweredQuestion.resolved == False)).execute()  # noqa: E712


def promote_to_new_faq(group: Group | Sequence[int], answer: str, category: str = DEFAULT_CATEGORY,
                       phrasings: Sequence[str] | None = None) -> Faq:
    """A new FAQ whose phrasings are the group's questions (or `phrasings`); the group is resolved."""
    rows = _questions(group)
    texts = [t.strip()[:512] for t in (phrasings if phrasings is not None else _phrasings(rows)) if t.strip()]
    if not texts or not answer.strip():
        raise LearningError("问法和答案都不能为空")
    with transaction():
        now = clock.now()
        faq = Faq.create(answer=answer.strip(), category=(category or DEFAULT_CATEGORY)[:32], created_at=now,
                         updated_at=now)
        FaqQuestion.insert_many([{"faq": faq.id, "text": t} for t in dict.fromkeys(texts)]).execute()
        _resolve(rows)
    return faq


def add_as_phrasing(group: Group | Sequence[int], faq_id: int) -> list[FaqQuestion]:
    """The group's questions become phrasings of an existing FAQ; the group is resolved."""
    rows = _questions(group)
    faq = Faq.get_or_none(Faq.id == faq_id)
    if faq is None:
        raise LearningError("FAQ 不存在")
    with transaction():
        existing = [q.text for q in FaqQuestion.select().where(FaqQuestion.faq == faq)]
        added = [FaqQuestion.create(faq=faq, text=t) for t in choose_phrasings([r.text for r in rows], existing)]
        _resolve(rows)
        touch(faq.id)
    return added


def dismiss(group: Group | Sequence[int]) -> int:
    """Resolve a group without teaching the bot anything (spam, chit-chat)."""
    rows = _questions(group)
    _resolve(rows)
    return len(rows)


# --- ratings -----------------------------------------------------------------------------

LIKE_WORDS = ("👍", "有帮助", "有用", "满意")
DISLIKE_WORDS = ("👎", "没帮助", "没有帮助", "没用", "不满意")
LIKE_CARD = "👍 有帮助"
DISLIKE_CARD = "👎 没帮助"


def parse_rating(text: str) -> int | None:
    """1 for a thumbs up, -1 for a thumbs down, None for anything else."""
    stripped = text.strip()
    if not stripped or len(stripped) > 8:
        return None
    if any(w in stripped for w in DISLIKE_WORDS):
        return -1
    if any(w in stripped for w in LIKE_WORDS):
        return 1
    return None


def rate_answer(message: Message, value: int, customer: Customer | int | None = None) -> bool:
    """Store the rating of one FAQ answer; False when it was rated already or is no FAQ answer."""
    if message.faq_id is None or value not in (1, -1):
        return False
    created = insert_new(AnswerRating.insert(message=message.id, faq=message.faq_id, customer=customer,
                                             value=value, created_at=clock.now()).on_conflict_ignore())
    if not created:
        return False
    counter = Faq.likes if value > 0 else Faq.dislikes
    Faq.update({counter: counter + 1}).where(Faq.id == message.faq_id).execute()
    return True


@dataclass(frozen=True)
class RatedFaq:
    faq_id: int
    question: str
    hits: int
    likes: int
    dislikes: int

    @property
    def dislike_share(self) -> float:
        return self.dislikes / max(self.likes + self.dislikes, 1)


def low_rated_faqs(min_ratings: int = 3, min_dislike_share: float = 0.5, limit: int = 50) -> list[RatedFaq]:
    """FAQs with at least `min_ratings` ratings, at least `min_dislike_share` of them 👎, worst first."""
    rows = Faq.select().where((Faq.likes + Faq.dislikes >= min_ratings) & (Faq.dislikes > 0))
    out = [RatedFaq(f.id, str(f), f.hits, f.likes, f.dislikes) for f in rows]
    out = [r for r in out if r.dislike_share >= min_dislike_share]
    out.sort(key=lambda r: (-r.dislike_share, -r.dislikes))
    return out[:limit]
