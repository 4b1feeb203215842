"""Boundary types between adapters and the core: frozen, transport-free.

Why: an adapter's only job is to turn a platform request into an `Inbound` and a list of
`Reply` back into the platform's response; the core never sees a request object.
Platform-specific fields stay in `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

KINDS = ("text", "image", "voice", "video", "shortvideo", "location", "link", "file", "event", "unknown")


@dataclass(frozen=True)
class Inbound:
    """One message or event from an IM user (customer or agent), normalized."""

    channel: str
    user_id: str
    msg_id: str  # unique per channel; the dedup key
    kind: str = "text"
    text: str = ""
    media: Mapping[str, Any] = field(default_factory=dict)
    event: str = ""  # subscribe, unsubscribe, click, ... when kind == "event"
    event_key: str = ""
    nickname: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stored_key(self) -> tuple[str, str]:
        """The dedup key as the message table stores it: (channel, external_id), the id cut to
        the column's 128 characters."""
        return self.channel, self.msg_id[:128]


@dataclass(frozen=True)
class Card:
    """A clickable suggestion; the customer may also answer with its number."""

    title: str
    payload: str = ""


@dataclass(frozen=True)
class Reply:
    """Something to say to one IM user."""

    text: str
    kind: str = "text"
    cards: tuple[Card, ...] = ()
    to_user: str = ""  # empty: the sender of the inbound message
    meta: Mapping[str, Any] = field(default_factory=dict)

    def as_content(self) -> dict[str, Any]:
        """The JSON form stored in the outbox and in message payloads."""
        content: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.cards:
            content["cards"] = [{"title": c.title, "payload": c.payload} for c in self.cards]
        return content

    def rendered_text(self) -> str:
        """Plain text for channels without cards: numbered suggestions after the text."""
        if not self.cards:
            return self.text
        lines = [self.text] + [f"{i}. {c.title}" for i, c in enumerate(self.cards, 1)]
        return "\n".join(lines)
