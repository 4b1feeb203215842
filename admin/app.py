"""The admin panel application.

Why Flask-Admin over peewee: CRUD for every model comes from the model definitions, and
the panel shares `bot.core.models` with the bot, so what an operator saves is what the bot reads
(the FAQ store picks edits up within seconds). Every view requires login (admin/auth.py);
`CSRFProtect` checks a token on every POST, and the model forms carry that same token;
customer-written text is escaped by Jinja's autoescape. Chinese by default with Flask-Admin's
zh_Hans_CN catalog and ours (admin/translations); `?lang=en` switches to English.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, request, session
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_babel import Babel
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect, generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

from admin import channel_code_views, csp, metrics_view, workbench
from admin.auth import LoginIndexView, SessionUser
from admin.filters import local_time
from admin.messages import flashed_messages
from admin.views import register_views
from bot.core.config import Config
from bot.core.secrets import ensure_secret

LANGUAGES = ("zh_Hans_CN", "en")
# What operators type or links carry for Chinese: the locale Flask-Admin's catalog is named by
# (zh_Hans_CN) is not what anyone writes by hand.
LANGUAGE_ALIASES = {"zh": "zh_Hans_CN", "zh_cn": "zh_Hans_CN", "zh-cn": "zh_Hans_CN", "zh_hans": "zh_Hans_CN",
                    "zh-hans": "zh_Hans_CN", "zh_hans_cn": "zh_Hans_CN", "zh-hans-cn": "zh_Hans_CN",
                    "en": "en", "en_us": "en", "en-us": "en", "en_gb": "en", "en-gb": "en"}


def select_locale() -> str:
    """`?lang=` switches the language for the session; `zh`, `zh_CN`, `zh-CN` and `zh_Hans_CN`
    all mean Chinese (case-insensitive), anything unknown keeps the current choice."""
    asked = LANGUAGE_ALIASES.get((request.args.get("lang") or "").strip().lower())
    if asked in LANGUAGES:
        session["lang"] = asked
    return session.get("lang", "zh_Hans_CN")


def create_app(config: Config, testing: bool = False) -> Flask:
    app = Flask(__name__, static_url_path="/kefu-static")
    app.config.update(
        SECRET_KEY=ensure_secret(config.data_dir, "admin-session.key", config.admin.secret_key),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.admin.secure_cookies,  # behind TLS: never sent over plain http
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        BABEL_DEFAULT_LOCALE="zh_Hans_CN",
        TESTING=testing,
        WTF_CSRF_TIME_LIMIT=None,
        KEFU_CONFIG=config,
    )
    if config.admin.proxies:  # the client's address, not the proxy's, for the login throttle
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.admin.proxies,  # type: ignore[method-assign]
                                x_proto=config.admin.proxies)
    csp.install(app)  # Flask-Admin's inline click handlers become data attributes (admin/csp.py)
    app.jinja_env.globals["csrf_token"] = generate_csrf
    app.jinja_env.globals["get_flashed_messages"] = flashed_messages  # always text, never markup
    app.jinja_env.filters["local_time"] = lambda value: local_time(None, value, "") if value else ""
    CSRFProtect(app)  # every POST, whatever view serves it

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Everything the panel loads is served by itself (Flask-Admin's and our vendored
        # assets), and no script runs inline (admin/csp.py); inline styles remain allowed.
        response.headers.setdefault("Content-Security-Policy", csp.policy())
        return response
    Babel(app, locale_selector=select_locale)
    login = LoginManager(app)
    login.login_view = "admin.login_view"

    login.user_loader(SessionUser.load)  # every request: the session's version must still be the user's

    admin = Admin(app, name="kefu 客服后台", index_view=LoginIndexView(name=_l("首页"), url="/admin"),
                  theme=Bootstrap4Theme(swatch="default", base_template="admin/kefu_base.html"),
                  csp_nonce_generator=csp.nonce)
    register_views(admin, config)
    channel_code_views.register(admin, config)  # 营销 › 渠道活码 (issue 18)
    workbench.register(app, admin)  # 客服 › 工作台, and agents confined to it (issue 22)
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))  # no 404 per page
    metrics_view.register(app, config)  # token-authenticated /metrics, outside the panel's login
    return app
