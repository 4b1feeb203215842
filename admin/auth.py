"""Login, logout and the forced password change; the base class every view inherits.

Why: the panel shows customers' personal data; nothing is served before login, operators
cannot reach users or settings, and the demo password must be changed before anything else.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import jsonify, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.contrib.peewee import ModelView
from flask_admin.form import BaseForm
from flask_admin.menu import MenuLink
from flask_admin.model import typefmt
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import _FlaskFormCSRF, generate_csrf, validate_csrf
from wtforms import SelectField, ValidationError

from admin import throttle, users
from admin.messages import flash, text
from admin.spreadsheet import neutralise
from admin.filters import (
    FreshFilterOptions, KefuFilterConverter, KefuModelConverter, LabelledChoiceFilters, local_time, readable_float,
    readable_float_detail,
)
from bot.core.models import AdminUser
from bot.core.db import fetch_one


class CsrfForm(BaseForm):
    """The base of every model form, delete form and list-action form: it carries the same
    Flask-WTF token that `CSRFProtect` checks on every POST (see admin/app.py)."""

    class Meta:
        csrf = True
        csrf_class = _FlaskFormCSRF
        csrf_field_name = "csrf_token"
        csrf_secret = None  # the app's SECRET_KEY
        csrf_time_limit = None  # bound to the session instead of a clock


class SessionUser:
    """Flask-Login's view of an AdminUser row.

    Why the id carries the row's session version ("7:3"): the session cookie is signed but
    lives in the browser, so logging out cannot take it back. Logout, a password change and
    a role change bump the version (admin/users.py), and `load` refuses a session opened
    under an older one, on every request."""

    def __init__(self, row: AdminUser) -> None:
        self.row = row
        self.id = row.id
        self.role = row.role
        self.must_change_password = row.must_change_password

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.row.session_version}"

    @classmethod
    def load(cls, session_id: str) -> SessionUser | None:
        """The user a session names, if it is still theirs: active, same session version."""
        user_id, _, version = session_id.partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None  # a session from before versions, or forged: log in again
        # fixed SQL: every panel request loads its user (peewee building this select was most of it)
        row = fetch_one(AdminUser, '"id" = ? AND "active" = ? AND "session_version" = ?',
                        (int(user_id), True, int(version)))
        return cls(row) if row else None


def _csrf_ok() -> bool:
    try:
        validate_csrf(request.form.get("csrf_token", ""))
    except ValidationError:
        return False
    return True


# A path inside the panel: no scheme or host, no backslash (browsers read it as a slash), no
# control character (CR/LF in a Location header is a 500, or a header injected).
_PANEL_PATH = re.compile(r"/admin(?:[/?#][^\\\x00-\x1f\x7f]*)?")


def _safe_next(target: str | None) -> str:
    """Where to go after login: `next` when it is a path inside the panel, else the index."""
    if target and _PANEL_PATH.fullmatch(target):
        return target
    return url_for("admin.index")


class LoginIndexView(AdminIndexView):
    PUBLIC = ("login_view", "logout_view", "password_view")

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        if name in self.PUBLIC:
            return None  # these check what they need themselves
        return super()._handle_view(name, **kwargs)

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated)

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        return redirect(url_for("admin.login_view", next=request.path))

    @expose("/")
    def index(self) -> Any:
        if not current_user.is_authenticated:
            return redirect(url_for("admin.login_view", next=request.path))
        if current_user.must_change_password:
            return redirect(url_for("admin.password_view"))
        from admin.dashboard import summary
        from admin.dashboard_period import period

        return self.render("admin/kefu_index.html", summary=summary(), shop=period(request.args))

    @expose("/dashboard.json")
    def dashboard_data(self) -> Any:
        """The data the dashboard's charts are drawn from."""
        if current_user.must_change_password:
            return redirect(url_for("admin.password_view"))
        from admin.dashboard import summary

        return jsonify(summary())

    @expose("/login/", methods=("GET", "POST"))
    def login_view(self) -> Any:
        error = ""
        if request.method == "POST":
            address = request.remote_addr or ""
            if not _csrf_ok():
                error = text(_l("表单已过期，请重试"))
            elif throttle.is_locked(address):
                error = text(_l("登录失败次数过多，请 15 分钟后再试"))
            else:
                user = users.authenticate(request.form.get("username", ""), request.form.get("password", ""))
                if user is None:
                    throttle.record_failure(address)
                    error = text(_l("用户名或密码错误（多次失败将暂时锁定）"))
                else:
                    throttle.record_success(address)
                    login_user(SessionUser(user))
                    if user.must_change_password:
                        return redirect(url_for("admin.password_view"))
                    return redirect(_safe_next(request.args.get("next")))
        return self.render("admin/kefu_login.html", error=error, csrf_token=generate_csrf())

    @expose("/logout/", methods=("POST",))
    def logout_view(self) -> Any:
        if _csrf_ok():
            if current_user.is_authenticated:
                users.end_sessions(current_user.id)  # a copy of this cookie no longer opens the panel
            logout_user()
        return redirect(url_for("admin.login_view"))

    @expose("/password/", methods=("GET", "POST"))
    def password_view(self) -> Any:
        if not current_user.is_authenticated:
            return redirect(url_for("admin.login_view"))
        error = ""
        if request.method == "POST":
            address = request.remote_addr or ""
            if not _csrf_ok():
                error = text(_l("表单已过期，请重试"))
            elif throttle.is_locked(address):
                error = text(_l("登录失败次数过多，请 15 分钟后再试"))
            elif request.form.get("new_password") != request.form.get("confirm"):
                error = text(_l("两次输入的密码不一致"))
            else:
                try:
                    row = users.change_password(current_user.row, request.form.get("current_password", ""),
                                                request.form.get("new_password", ""))
                except users.UserError as exc:
                    if isinstance(exc, users.WrongPassword):
                        throttle.record_failure(address)  # guessing through an open session is throttled too
                    error = exc.shown_text()
                else:
                    flash(_l("密码已修改"), "success")
                    login_user(SessionUser(row))  # this session goes on under the new version; others end
                    return redirect(url_for("admin.index"))
        return self.render("admin/kefu_password.html", error=error, csrf_token=generate_csrf())


class AccessRules:
    """Login required, password change enforced; `admin_only` views are hidden from
    operators (users, settings, channels)."""

    admin_only = False

    def is_accessible(self) -> bool:
        if not current_user.is_authenticated or current_user.must_change_password:
            return False
        return current_user.role == "admin" or not self.admin_only

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        if current_user.is_authenticated and current_user.must_change_password:
            return redirect(url_for("admin.password_view"))
        if current_user.is_authenticated:
            flash(_l("没有权限访问该页面"), "error")
            return redirect(url_for("admin.index"))
        return redirect(url_for("admin.login_view", next=request.path))


class SecureMenuLink(AccessRules, MenuLink):
    """A menu link (not a view) shown under the same rule as the views: Flask-Admin shows a
    plain `MenuLink` to everyone, so the login page would list it to a logged-out visitor."""


class SecureView(AccessRules, BaseView):
    """A custom page (settings, FAQ tools, channels); `CSRFProtect` guards its POSTs."""


class SecureModelView(AccessRules, FreshFilterOptions, LabelledChoiceFilters, ModelView):
    """CRUD with CSRF on every form (SecureForm) and on list actions; times in the shop's
    time zone, scores rounded, filter choices of related rows read per request, stored keys
    shown and filtered by their labels (`column_choices`)."""

    form_base_class = CsrfForm
    filter_converter = KefuFilterConverter()
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: local_time, float: readable_float}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: local_time, float: readable_float_detail}
    model_form_converter = KefuModelConverter
    page_size = 50
    can_view_details = True

    def search_placeholder(self) -> str | None:
        """What the search box searches, in the panel's language ("搜索：答案、分类"); Flask-Admin's
        peewee views have none, and its template then printed "None"."""
        names = [self.column_labels.get(c, self._prettify_name(c)) if isinstance(c, str) else  # type: ignore[union-attr]
                 self.column_labels.get(c.name, self._prettify_name(c.name))  # type: ignore[union-attr]
                 for c in (self.column_searchable_list or ())]
        return text(_l("搜索：%(fields)s"), fields=text(_l("、")).join(str(n) for n in names)) if names else None

    def get_export_value(self, model: Any, name: str) -> Any:
        """Flask-Admin's CSV export (a view with `can_export`) writes no cell a spreadsheet
        would run as a formula (admin/spreadsheet.py), like the FAQ export."""
        return neutralise(super().get_export_value(model, name))

    def scaffold_form(self) -> Any:
        """Column labels become form labels, and `form_choices` (which Flask-Admin applies
        only to SQLAlchemy) become plain selects, in the form's own field order."""
        overrides = dict(self.form_overrides or {})
        args: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (self.form_args or {}).items()}
        for name, label in (self.column_labels or {}).items():
            args.setdefault(name, {}).setdefault("label", label)
        for name, options in (getattr(self, "form_choices", None) or {}).items():
            overrides.setdefault(name, SelectField)
            args.setdefault(name, {}).update(choices=[(str(v), t) for v, t in options], coerce=str)
        self.form_overrides, self.form_args = overrides, args
        return super().scaffold_form()


class ReadOnlyView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
