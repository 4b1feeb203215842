"""Admin users: hashed passwords, roles, the first admin of a fresh install.

Why: every admin page needs login; the demo user must change the well-known password on
first login; repeated wrong passwords lock the account for a while.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from werkzeug.security import check_password_hash, generate_password_hash

from admin.messages import text
from bot.core import clock
from bot.core.db import update_one
from bot.core.models import AdminUser

ROLES = ("admin", "operator", "agent")  # agent: only the workbench, as its linked Agent (issue 22)
MAX_FAILED = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 8


class UserError(ValueError):
    """A refused change. `str()` is English, for the CLI (`kefu admin-user add`); `shown` is
    what the panel shows, in the operator's language (a msgid marked with `_l` when there is
    one, formatted with `values` by `shown_text`)."""

    def __init__(self, message: str, shown: Any = None, **values: Any) -> None:
        super().__init__(message)
        self.shown = message if shown is None else shown
        self.values = values

    def shown_text(self) -> str:
        """What the panel shows: translated now, as plain text (admin/messages.py)."""
        return text(self.shown, **self.values)


class WrongPassword(UserError):
    """The current password given to change it was wrong (counted like a failed login)."""


def _too_short() -> UserError:
    return UserError(f"password must be at least {MIN_PASSWORD} characters", _l("密码至少 %(n)s 位"), n=MIN_PASSWORD)


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def create_user(username: str, password: str, role: str = "admin", must_change: bool = False,
                agent_id: int | None = None) -> AdminUser:
    """A panel user; the role "agent" needs the Agent it works as (one panel user per agent)."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if (role == "agent") != (agent_id is not None):
        raise UserError("the role agent needs --agent NAME, and only it takes one")
    if agent_id is not None and AdminUser.select().where(AdminUser.agent_id == agent_id).exists():
        raise UserError("that agent already has a panel user")
    if not username.strip():
        raise UserError("username is empty")
    if AdminUser.select().where(AdminUser.username == username).exists():
        raise UserError(f"user {username!r} already exists")
    if len(password) < MIN_PASSWORD and not must_change:
        raise _too_short()
    return AdminUser.create(username=username, password_hash=generate_password_hash(password), role=role,
                            must_change_password=must_change, agent_id=agent_id)


def ensure_initial_admin() -> str | None:
    """Create admin/admin (password change forced) when there is no admin user at all."""
    if AdminUser.select().exists():
        return None
    create_user("admin", "admin", "admin", must_change=True)
    return "admin"


# One statement per failure, so guesses sent in parallel count like sequential ones (issue 23:
# read the count, check the password, write count + 1 let 18 parallel guesses leave 3): the
# count goes up by one, and the failure that reaches MAX_FAILED locks the account and starts
# the count again. A guess that lands while the account is locked changes nothing.
_COUNT_FAILURE = ('"failed_logins" = CASE WHEN "failed_logins" + 1 >= ? THEN 0 ELSE "failed_logins" + 1 END, '
                  '"locked_until" = CASE WHEN "failed_logins" + 1 >= ? THEN ? ELSE "locked_until" END')
_NOT_LOCKED = '"id" = ? AND ("locked_until" IS NULL OR "locked_until" <= ?)'


def authenticate(username: str, password: str) -> AdminUser | None:
    user = AdminUser.get_or_none(AdminUser.username == username)
    now = clock.now()
    if user is None or not user.active:
        generate_password_hash(password)  # spend the same time as a real check
        return None
    if user.locked_until and user.locked_until > now:
        return None
    stamp = AdminUser.locked_until.db_value(now)
    if not check_password_hash(user.password_hash, password):
        until = AdminUser.locked_until.db_value(now + timedelta(minutes=LOCK_MINUTES))
        update_one(AdminUser, _COUNT_FAILURE, (MAX_FAILED, MAX_FAILED, until), _NOT_LOCKED, (user.id, stamp))
        return None
    # the right password counts only if no guess running beside it has locked the account
    return update_one(AdminUser, '"failed_logins" = 0, "locked_until" = NULL, "last_login_at" = ?', (stamp,),
                      _NOT_LOCKED, (user.id, stamp))


NEXT_SESSION = AdminUser.session_version + 1  # ends every session opened before (admin/auth.py)


def end_sessions(user_id: int) -> None:
    """Every session of this user ends at its next request (logout, a role change)."""
    AdminUser.update(session_version=NEXT_SESSION).where(AdminUser.id == user_id).execute()


def change_password(user: AdminUser, current_password: str, new_password: str) -> AdminUser:
    """The user's own change: the current password first (a session left open is not enough
    to take the account over); every other session of theirs ends. Returns the row as saved."""
    if not check_password_hash(user.password_hash, current_password):
        raise WrongPassword("the current password is wrong", _l("当前密码不正确"))
    if len(new_password) < MIN_PASSWORD:
        raise _too_short()
    if check_password_hash(user.password_hash, new_password):
        raise UserError("the new password must differ from the old one", _l("新密码不能与旧密码相同"))
    AdminUser.update(password_hash=generate_password_hash(new_password), must_change_password=False,
                     session_version=NEXT_SESSION).where(AdminUser.id == user.id).execute()
    return AdminUser.get_by_id(user.id)


def reset_password(username: str, password: str) -> AdminUser:
    """From the terminal (`kefu admin-user reset-password`): a forgotten password or a locked
    account. Sets `password`, clears the lock and the failed attempts, reactivates the user,
    and makes them choose their own password at the next login (whoever typed this one
    knows it); the sessions open under the old password end."""
    user = AdminUser.get_or_none(AdminUser.username == username)
    if user is None:
        raise UserError(f"no panel user named {username!r}")
    if len(password) < MIN_PASSWORD:
        raise _too_short()
    AdminUser.update(password_hash=generate_password_hash(password), must_change_password=True, failed_logins=0,
                     locked_until=None, active=True, session_version=NEXT_SESSION).where(
        AdminUser.id == user.id).execute()
    return AdminUser.get_by_id(user.id)
