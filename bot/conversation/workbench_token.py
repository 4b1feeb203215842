"""The short-lived signed token that opens an agent's live stream (issue 22).

Why: the workbench page is served by the panel (Flask session cookie), but the live stream
comes from the aiohttp server, on another port or host, which cannot read that session. So
the panel signs a token naming the panel user, the Agent they work as and their session
version, with the panel's own secret key (itsdangerous, as Flask signs its sessions); the
stream checks the signature, the age, and that the user row still says the same (active,
same role and agent, session not ended since: logout and a password change bump
`session_version`). A token opens a stream for `MAX_AGE_SECONDS` only; the stream itself
ends after `STREAM_SECONDS`, and the page asks the panel for a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.core.config import Config
from bot.core.models import AdminUser, Agent
from bot.core.secrets import ensure_secret

SALT = "kefu-workbench-stream"
MAX_AGE_SECONDS = 60  # to open a stream with it
STREAM_SECONDS = 600  # a stream is closed after this; the page opens the next with a fresh token
ROLES = ("agent", "admin", "operator")


class TokenRefused(ValueError):
    """Forged, expired, or naming a user who may no longer watch: the stream answers 403."""


@dataclass(frozen=True)
class Viewer:
    """Who a stream is for: a panel user working as `agent_id` (None: an admin or operator,
    who watches every conversation read-only, as on the page)."""

    user_id: int
    agent_id: int | None
    session_version: int


def panel_secret(config: Config) -> str:
    """The panel's session key (admin/app.py's SECRET_KEY), read the same way, so a token the
    panel signs is checked by every `kefu serve` sharing the config or data directory."""
    return ensure_secret(config.data_dir, "admin-session.key", config.admin.secret_key)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def issue(secret: str, user: AdminUser) -> str:
    """A token for this signed-in panel user."""
    agent_id = user.agent_id if user.role == "agent" else None
    return str(_serializer(secret).dumps({"u": user.id, "a": agent_id, "v": user.session_version}))


def verify(secret: str, token: str, max_age: float = MAX_AGE_SECONDS) -> Viewer:
    """The viewer a token names, if it is ours, young enough, and its user still matches."""
    try:
        claims: Any = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenRefused("expired") from exc
    except BadSignature as exc:
        raise TokenRefused("bad signature") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("u"), int) or not isinstance(claims.get("v"), int):
        raise TokenRefused("malformed")
    agent_id = claims.get("a")
    if agent_id is not None and not isinstance(agent_id, int):
        raise TokenRefused("malformed")
    viewer = Viewer(claims["u"], agent_id, claims["v"])
    if not still_valid(viewer):
        raise TokenRefused("user changed")
    return viewer


def still_valid(viewer: Viewer) -> bool:
    """The user row still says what the token said (checked again while the stream is open)."""
    user = AdminUser.get_or_none(AdminUser.id == viewer.user_id)
    if user is None or not user.active or user.must_change_password or user.role not in ROLES:
        return False
    if user.session_version != viewer.session_version:
        return False
    if user.role == "agent":
        if viewer.agent_id is None or user.agent_id != viewer.agent_id:
            return False
        return Agent.select().where((Agent.id == viewer.agent_id) & (Agent.active == True)).exists()  # noqa: E712
    return viewer.agent_id is None
