"""The agents' workbench in the panel: a live inbox, the thread, the customer beside it.

The page reads and acts through the JSON endpoints here (session cookie, CSRF on every
POST). It is kept live by the webhook server's event stream (adapters/workbench_stream.py),
not by this panel: under a WSGI server a held-open connection would pin a thread per agent.
The panel only issues the stream's short-lived token (`live`, admin/workbench_live.py); while
the stream is not open the page polls these endpoints every two seconds. Every read and
action goes through `bot.conversation.workbench.visible` / `owned`, so a guessed id gets a 404.

Who: a panel user with the role "agent" works as their linked Agent and sees only this
(`confine_agents` keeps them out of every other panel page); an admin or operator sees
every conversation read-only (they have no Agent to reply as).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, abort, current_app, jsonify, redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from admin.auth import SecureView
from admin import workbench_live
from admin.faq_views import shared_store
from bot.conversation import workbench
from bot.agents import assignment, last_seen
from bot.core import clock
from bot.faq.learning import LearningError
from bot.core.db import fetch_one
from bot.core.models import AdminUser, Agent
from bot.conversation.relay_delivery import emit, say, take_offline

MAX_REPLY = 2000
MAX_PHRASE = 500  # QuickPhrase.text
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
AGENT_PATHS = ("/admin/workbench", "/admin/login", "/admin/logout", "/admin/password", "/kefu-static/",
               "/admin/static/", "/favicon.ico")


def current_agent() -> Agent | None:
    """The Agent the signed-in user works as (None: an admin or operator); read once per
    request (a reply asks twice: to check the conversation is theirs, and to reply as them)."""
    row: AdminUser = current_user.row
    if current_user.role != "agent":
        return None
    cached = request.environ.get("kefu.agent")  # this request's, never another's
    if cached is not None:
        return cached
    agent = fetch_one(Agent, '"id" = ? AND "active" = ?', (row.agent_id, True))  # fixed SQL: every request
    if agent is None:
        abort(403)
    _seen(agent)  # every workbench request (the inbox poll every few seconds) is a sign of life
    request.environ["kefu.agent"] = agent
    return agent


def _seen(agent: Agent) -> None:
    """`last_seen.seen` when the row just read says it is due: the UPDATE writes nothing within
    `SEEN_EVERY` anyway, but each call was a write statement, a turn at the writer's lock on
    every reply (issue 22's bench: 6% of the process's time)."""
    stamp = agent.last_seen_at
    if stamp is None or stamp < clock.now() - last_seen.SEEN_EVERY:
        last_seen.seen(agent.id)


def _acting_agent() -> Agent:
    agent = current_agent()
    if agent is None:
        abort(403)  # admins watch; replies come from an agent
    return agent


def _conversation(own: bool) -> Any:
    """The conversation named by the request's `id` (query or form), if this user may see it
    (`own`: act on it); a 404 otherwise, the same for one that does not exist."""
    raw = request.values.get("id", "")
    if not raw.isdigit() or len(raw) > 18:
        abort(404)
    conversation_id = int(raw)
    agent = _acting_agent() if own else current_agent()
    try:
        return workbench.owned(conversation_id, agent) if own else workbench.visible(conversation_id, agent)
    except workbench.Refused:
        abort(404)


def _channel_kind(name: str) -> str:
    """The configured kind of a channel ("" when it is no longer configured)."""
    return next((c.kind for c in current_app.config["KEFU_CONFIG"].channels if c.name == name), "")


def _form_text(name: str, limit: int) -> str:
    value = (request.form.get(name) or "").strip()
    if not value or len(value) > limit:
        abort(400, description=f"{name}: 1-{limit} characters")
    return value


class WorkbenchView(SecureView):
    """`/admin/workbench/`: the page and its JSON endpoints (POSTs need the CSRF token)."""

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated and not current_user.must_change_password)

    @expose("/")
    def index(self) -> Any:
        return self.render("admin/kefu_workbench.html", agent=current_agent())

    @expose("/inbox.json")
    def inbox(self) -> Any:
        return jsonify(workbench.inbox(current_agent()))

    @expose("/live", methods=("POST",))
    def live(self) -> Any:
        """The live stream's address and a one-minute token for it (admin/workbench_live.py)."""
        return jsonify(workbench_live.ticket())

    @expose("/conversation.json")
    def conversation(self) -> Any:
        if "id" not in request.args:  # opened by hand: the workbench page lists them
            return redirect(url_for(".index"))
        found = _conversation(own=False)
        after = request.args.get("after", "0")
        return jsonify({"id": found.id, "status": found.status,
                        "mine": current_user.role == "agent" and found.agent_id == current_user.row.agent_id,
                        "messages": workbench.thread(found, int(after) if after.isdigit() else 0),
                        "brief": workbench.brief(found, current_agent()),
                        "customer": workbench.customer_card(found),
                        "suggestions": workbench.suggestions(found, shared_store()),
                        "agents": workbench.online_agents(exclude=found.agent_id),
                        "learnable": workbench.learnable(found),
                        "window": workbench.window(found, _channel_kind(found.channel))})

    @expose("/conversation/learn", methods=("POST",))
    def learn(self) -> Any:
        found = _conversation(own=True)
        question, faq = request.form.get("question_id", ""), request.form.get("faq_id", "")
        if not question.isdigit() or (faq and not faq.isdigit()):
            abort(400, description="question_id, faq_id: numbers")
        try:
            taught = workbench.learn(found, int(question), int(faq) if faq else None)
        except workbench.Refused:
            abort(404)
        except LearningError as exc:
            return jsonify({"ok": False, "error": str(exc)}), 400
        return jsonify({"ok": True, "faq_id": taught.id})

    @expose("/phrases.json")
    def phrases(self) -> Any:
        return jsonify({"phrases": workbench.phrases(current_agent(), request.args.get("q", "")[:50])})

    @expose("/phrases/add", methods=("POST",))
    def add_phrase(self) -> Any:
        phrase = workbench.add_phrase(current_agent(), _form_text("text", MAX_PHRASE))
        return jsonify({"ok": True, "id": phrase.id})

    @expose("/phrases/delete", methods=("POST",))
    def delete_phrase(self) -> Any:
        raw = request.form.get("phrase_id", "")
        if not raw.isdigit() or len(raw) > 18:
            abort(404)
        try:
            workbench.delete_phrase(current_agent(), int(raw))
        except workbench.Refused:
            abort(404)
        return jsonify({"ok": True})

    @expose("/conversation/reply", methods=("POST",))
    def reply(self) -> Any:
        found = _conversation(own=True)
        client_id = request.form.get("client_id", "")
        if not _CLIENT_ID.fullmatch(client_id):
            abort(400, description="client_id: 8-64 letters, digits, _ or -")
        faq = request.form.get("faq_id", "")
        sent = workbench.reply(found, _acting_agent(), _form_text("text", MAX_REPLY), client_id,
                               int(faq) if faq.isdigit() else None)
        return jsonify({"ok": True, "duplicate": not sent})

    @expose("/conversation/resolve", methods=("POST",))
    def resolve(self) -> Any:
        found = _conversation(own=True)
        workbench.resolve(found, _acting_agent())
        return jsonify({"ok": True})

    @expose("/conversation/transfer", methods=("POST",))
    def transfer(self) -> Any:
        found = _conversation(own=True)
        target = request.form.get("agent_id", "")
        note = (request.form.get("note") or "").strip()[:200]
        outcome = workbench.transfer(found, _acting_agent(), int(target) if target.isdigit() else 0, note)
        return jsonify({"ok": outcome == "ok", "outcome": outcome}), (200 if outcome == "ok" else 409)

    @expose("/conversation/claim", methods=("POST",))
    def claim(self) -> Any:
        found = _conversation(own=False)
        outcome = workbench.claim(found, _acting_agent())
        return jsonify({"ok": outcome == "ok", "outcome": outcome}), (200 if outcome == "ok" else 409)

    @expose("/status", methods=("POST",))
    def status(self) -> Any:
        agent = _acting_agent()
        wanted = request.form.get("status", "")
        if wanted not in ("online", "away", "offline"):
            abort(400, description="status: online, away or offline")
        if wanted == "offline":
            emit(take_offline(agent).messages, f"wb-offline:{agent.id}:{request.form.get('client_id', '')}"[:100])
        else:
            assignment.set_status(agent, wanted)
            emit([say(agent, f"您的状态已设为：{'在线' if wanted == 'online' else '离开'}")],
                 f"wb-status:{agent.id}:{request.form.get('client_id', '')}"[:100])
        return jsonify({"ok": True, "status": wanted})


def confine_agents() -> Any:
    """A user with the role agent sees the workbench and nothing else of the panel."""
    if not current_user.is_authenticated or current_user.role != "agent":
        return None
    if request.path.startswith(AGENT_PATHS) or request.path == "/admin/static":
        return None
    if request.path in ("/admin", "/admin/"):
        return redirect(url_for("workbench.index"))
    abort(403)


def register(app: Flask, admin: Admin) -> None:
    admin.add_view(WorkbenchView(name=_l("工作台"), category=_l("客服"), endpoint="workbench", url="/admin/workbench"))
    app.before_request(confine_agents)
    workbench_live.install(app)
