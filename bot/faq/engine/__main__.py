"""`python -m bot.faq.engine`: convert the model now (else the first start does) and say which engine runs."""

from __future__ import annotations

import logging
import sys


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from bot.faq.semantic import load_embedder

    embedder = load_embedder()
    if embedder is None:
        print("FAQ embeddings off: matching is lexical only", file=sys.stderr)
        return 1
    print(f"FAQ embeddings: {embedder.name} on {embedder.engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
