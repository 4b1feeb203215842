"""The terminal side of `kefu chat`: lines typed by a person, until /quit or end of input."""

from __future__ import annotations

from typing import Iterator

QUIT = ("/quit", "/exit")


def typed_lines(prompt: str = "> ") -> Iterator[str]:
    """Each non-empty line the person types; stops at /quit, /exit or end of input."""
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            return
        if line in QUIT:
            return
        if line:
            yield line
