"""Text normalization for matching: width, case, punctuation, traditional -> simplified.

Why: customers type 「發貨要多久？？」, "ＳＫＵ", "发货要多久" and mean the same thing; the
matcher should see one form. Synonyms (快递=物流=发货) are applied on top of this by the
store, from the shop's editable list.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_PUNCT = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65!-/:-@\[-`{-~·…—–‘’“”、。，！？；：（）【】《》〈〉「」『』]+")


@functools.lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    try:
        from opencc import OpenCC  # opencc-python-reimplemented
    except ImportError:  # pragma: no cover - the dependency is declared
        return None
    return OpenCC("t2s")


@functools.lru_cache(maxsize=65536)
def to_simplified(text: str) -> str:
    converter = _t2s()
    return converter.convert(text) if converter else text


@functools.lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """NFKC (full width -> half width), lower case, simplified Chinese, no punctuation.
    Cached: a message is read several times over (the handoff keywords, each of them, the
    matcher), and customers ask the same few questions."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        text = to_simplified(text)
    return _PUNCT.sub(" ", text).strip()


def apply_synonyms(text: str, synonyms: dict[str, str]) -> str:
    """Replace each variant by its canonical word, longest variants first."""
    if not synonyms:
        return text
    for variant in sorted(synonyms, key=len, reverse=True):
        if variant in text:
            text = text.replace(variant, synonyms[variant])
    return text
