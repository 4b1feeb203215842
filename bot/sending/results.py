"""What a channel said about one send: the one result type every sender returns.

Why a module of its own: the outbox records it and the send window refuses with it, and
the outbox also asks the send window first; with the type here both import it from below
and neither imports the other's type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    """What a channel said about one send.

    outcome: sent | retry (transient: back off and try again) | window_closed (the 48-hour
    window is shut) | limit_reached (per-turn reply limit) | failed (permanent).
    """

    outcome: str
    error: str = ""
    retry_after: float | None = None
    # A send split into parts (long text): how many parts the platform has accepted so
    # far, kept in the row's content so a retry resumes after them instead of resending.
    parts_sent: int | None = None
    # the platform's id for what it accepted (a mass send's msg_id), kept in the row's
    # content as `msg_id`: its MASSSENDJOBFINISH report names the job by it
    platform_id: str = ""

    @classmethod
    def ok(cls) -> "SendResult":
        return cls("sent")
