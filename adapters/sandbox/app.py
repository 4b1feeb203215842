"""A stand-in for the WeChat APIs kefu calls (api.weixin.qq.com and qyapi.weixin.qq.com).

Why: tests, benchmarks and the demo must exercise the real send path (tokens, errcodes,
retries) without the internet. The stand-in answers like the platform for the endpoints
kefu uses, records every call, and injects faults on demand.

Platform rules it keeps:
- one valid access_token per app: fetching a new one invalidates the previous one
  (40001 afterwards), `expire_tokens()` makes the current ones expired (42001);
- a call without a token is 41001;
- an app whose secret was registered (`apps`, `kefu sandbox --app ID=SECRET`) is refused a
  token for any other secret: 40125 (公众号 invalid appsecret) or 40001 (WeCom invalid
  corpsecret); an app not registered gets a token for any secret.

Mass sends keep the platform's rules too: `message/mass/send` takes 2 to 10,000 openids
(40130 otherwise); a `clientmsgid` (at most 64 bytes, 45067) seen within `MASS_DEDUP_SECONDS`
is not sent again but answered 45065 with the first job's msg_id (45066 when repeated
within a minute); a follower receives at most `MASS_PER_FOLLOWER_PER_MONTH` mass messages
a month (the rest count as errors in the job's report). `mass_report(msg_id)` gives the
MASSSENDJOBFINISH fields the platform would call back with.

Faults: `inject(errcode, path="", times=1, latency=0, after=0)` answers the next `times`
calls whose path contains `path` (after letting `after` of them through) with `errcode`
(-1, 45009, 45015, 45047, ...), after `latency` seconds (`errcode=0` with a latency only
slows the calls down).

Control API (for a stand-in in another process, e.g. `kefu sandbox`):
`GET /sandbox/calls?after=N`, `GET /sandbox/messages?touser=ID&after=N`,
`POST /sandbox/faults {"errcode", "path", "times", "latency"}`, `POST /sandbox/expire`,
`POST /sandbox/reset`, `POST /sandbox/kf/messages {"open_kfid", "external_userid", "text"}`,
`GET /sandbox/mass/jobs` (each job with its report fields), `GET /sandbox/qrcodes`.

Parametric QR codes (渠道活码): `qrcode/create` keeps the platform's shapes and limits —
`action_name` QR_SCENE / QR_STR_SCENE (temporary, `expire_seconds` 60 to 2,592,000, 60 when
absent as on the platform; a longer one is refused here, which we assume) or QR_LIMIT_SCENE / QR_LIMIT_STR_SCENE (permanent), a `scene_str` of 1 to 64
characters or a `scene_id` (1 to 100,000 for a permanent one); anything else is 40053. The
answer is `ticket`, `expire_seconds` (temporary only) and `url`. `scan_event_key(ticket,
subscribe)` gives the EventKey WeChat would send when someone scans it (`qrscene_<scene>`
for a new follower, the bare scene for SCAN).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from adapters.sandbox import mp_users, wecom_contacts, wecom_groupmsg, wecom_groups

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40014: "invalid access_token",
    41001: "access_token missing",
    42001: "access_token expired",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    40003: "invalid openid",
    40125: "invalid appsecret",
}
SANDBOX = web.AppKey("sandbox", object)
ERRMSG.update({40130: "invalid openid list size, at least two openid", 45065: "clientmsgid exist",
               45066: "same clientmsgid retry too fast", 45067: "clientmsgid size out of limit",
               40053: "invalid action info, please check document"})
QR_TEMPORARY = ("QR_SCENE", "QR_STR_SCENE")
QR_PERMANENT = ("QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE")
QR_MAX_SECONDS = 2_592_000
MASS_DEDUP_SECONDS = 24 * 3600  # how long a clientmsgid is remembered (we assume a day)
MASS_RETRY_SECONDS = 60
MASS_PER_FOLLOWER_PER_MONTH = 4
MASS_MAX_OPENIDS = 10_000


@dataclass
class Call:
    n: int
    method: str
    path: str
    params: dict[str, str]
    body: Any
    errcode: int
    at: float


@dataclass
class Fault:
    errcode: int
    path: str = ""
    times: int = 1
    latency: float = 0.0
    after: int = 0  # let this many matching calls through first


@dataclass
class KfMessage:
    msgid: str
    open_kfid: str
    external_userid: str
    send_time: int
    origin: int = 3  # 3: from the customer, 4: system event, 5: from a servicer
    msgtype: str = "text"
    body: dict[str, Any] = field(default_factory=dict)


class Sandbox:
    def __init__(self, token_ttl: int = 7200, apps: dict[str, str] | None = None) -> None:
        self.token_ttl = token_ttl
        self.apps: dict[str, str] = dict(apps or {})  # appid (or corpid) -> the right secret
        self.reset()

    def reset(self) -> None:
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, str] = {}  # app -> current token
        self.token_apps: dict[str, str] = {}  # any token ever issued -> its app
        self.expired: set[str] = set()
        self.token_fetches: dict[str, int] = {}
        self.kf: list[KfMessage] = []
        self.kf_states: dict[tuple[str, str], int] = {}
        self.tags: dict[int, dict[str, Any]] = {}
        self.welcome_codes: dict[str, str] = {}  # kf enter_session code -> external_userid
        self.mass_jobs: dict[int, dict[str, Any]] = {}  # msg_id -> the job and its report fields
        self.mass_by_client_id: dict[str, tuple[int, float]] = {}  # clientmsgid -> (msg_id, last seen)
        self.mass_received: dict[tuple[str, str], int] = {}  # (openid, "YYYY-MM") -> mass messages
        self.qrcodes: dict[str, dict[str, Any]] = {}  # ticket -> the created code
        self.skew = 0.0  # seconds added to the stand-in's clock for the mass rules (`time_passes`)
        self._ids = itertools.count(1000)

    # -- test helpers ------------------------------------------------------------------------

    def inject(self, errcode: int, path: str = "", times: int = 1, latency: float = 0.0, after: int = 0) -> None:
        self.faults.append(Fault(errcode, path, times, latency, after))

    def time_passes(self, seconds: float) -> None:
        """Move the stand-in's clock for its time rules (the clientmsgid windows) forward."""
        self.skew += seconds

    def expire_tokens(self) -> None:
        self.expired.update(self.tokens.values())

    def sends(self, path: str = "") -> list[Call]:
        """Successful calls to send endpoints (optionally those whose path contains `path`)."""
        return [c for c in self.calls if c.errcode == 0 and "/send" in c.path and path in c.path]

    def texts_to(self, user: str) -> list[str]:
        out = []
        for call in self.sends():
            body = call.body if isinstance(call.body, dict) else {}
            to = body.get("touser") or body.get("external_userid") or self.welcome_codes.get(str(body.get("code")))
            if (to == user or (isinstance(to, list) and user in to)) and body.get("msgtype") == "text":
                out.append(str(body.get("text", {}).get("content", "")))
        return out

    def mass_report(self, msg_id: int) -> dict[str, str]:
        """The MASSSENDJOBFINISH fields of a job, as the platform calls them back."""
        job = self.mass_jobs[msg_id]
        return {"MsgID": str(msg_id), "Status": "send success", **{k: str(job[k]) for k in
                                                                  ("TotalCount", "FilterCount", "SentCount",
                                                                   "ErrorCount")}}

    def scan_event_key(self, ticket: str, subscribe: bool = True) -> str:
        """The EventKey of a scan of the code `ticket`: a new follower's subscribe event
        carries `qrscene_<scene>`, an existing follower's SCAN the scene alone."""
        scene = str(self.qrcodes[ticket]["scene"])
        return f"qrscene_{scene}" if subscribe else scene

    def add_kf_message(self, open_kfid: str, external_userid: str, text: str = "", msgtype: str = "text",
                       body: dict[str, Any] | None = None, origin: int = 3) -> str:
        msgid = f"kf{next(self._ids)}"
        content = body if body is not None else {"content": text}
        self.kf.append(KfMessage(msgid, open_kfid, external_userid, int(time.time()), origin, msgtype, content))
        return msgid

    def add_kf_enter_session(self, open_kfid: str, external_userid: str, scene: str = "") -> str:
        """A customer opens the 客服 chat: a system event carrying a one-time welcome_code."""
        code = f"wc_{secrets.token_hex(6)}"
        self.welcome_codes[code] = external_userid
        self.add_kf_message(open_kfid, "", msgtype="event", origin=4, body={
            "event_type": "enter_session", "open_kfid": open_kfid, "external_userid": external_userid,
            "scene": scene, "welcome_code": code})
        return code

    # -- the app -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app[SANDBOX] = self
        app.router.add_route("*", "/cgi-bin/{tail:.*}", self._api)
        app.router.add_get("/sandbox/calls", self._calls)
        app.router.add_get("/sandbox/messages", self._messages)
        app.router.add_post("/sandbox/faults", self._faults)
        app.router.add_post("/sandbox/expire", self._expire)
        app.router.add_post("/sandbox/reset", self._reset)
        app.router.add_post("/sandbox/kf/messages", self._kf_add)
        app.router.add_get("/sandbox/mass/jobs", self._mass_jobs)
        app.router.add_get("/sandbox/qrcodes", self._qrcodes)
        wecom_groupmsg.add_routes(app, self)  # customer groups and their group messages, for a demo
        return app

    async def _api(self, request: web.Request) -> web.Response:
        path = request.path
        params = dict(request.query)
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw.decode()) if raw else None
            except (ValueError, UnicodeDecodeError):
                return self._answer(request, path, params, raw.decode(errors="replace"), {"errcode": 47001,
                                                                                       "errmsg": "data format error"})
        if path in ("/cgi-bin/token", "/cgi-bin/gettoken"):
            return self._answer(request, path, params, body, self._issue_token(path, params))
        fault = self._take_fault(path)
        if fault is not None and fault.latency:
            await asyncio.sleep(fault.latency)
        if fault is not None and fault.errcode:
            return self._answer(request, path, params, body, _err(fault.errcode))
        token = params.get("access_token", "")
        if not token:
            return self._answer(request, path, params, body, _err(41001))
        app_key = self.token_apps.get(token)
        if app_key is None or self.tokens.get(app_key) != token:
            return self._answer(request, path, params, body, _err(40001))
        if token in self.expired:
            return self._answer(request, path, params, body, _err(42001))
        handler = ENDPOINTS.get(path)
        if handler is None:
            return self._answer(request, path, params, body, {"errcode": 48001, "errmsg": "api unauthorized"})
        return self._answer(request, path, params, body, handler(self, body if isinstance(body, dict) else {}, params))

    def _issue_token(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if path == "/cgi-bin/token":
            app, secret = params.get("appid", ""), params.get("secret", "")
        else:
            app, secret = f"{params.get('corpid', '')}:{params.get('corpsecret', '')}", params.get("corpsecret", "")
        if not app or not secret:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        registered = self.apps.get(params.get("appid") or params.get("corpid", ""))
        if registered is not None and registered != secret:
            return _err(40125 if path == "/cgi-bin/token" else 40001)
        fault = self._take_fault(path)
        if fault is not None and fault.errcode:
            return _err(fault.errcode)
        token = f"tk_{secrets.token_hex(12)}"
        self.tokens[app] = token  # the previous token of this app stops working
        self.token_apps[token] = app
        self.token_fetches[app] = self.token_fetches.get(app, 0) + 1
        return {"access_token": token, "expires_in": self.token_ttl}

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.path in path:
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _answer(self, request: web.Request, path: str, params: dict[str, str], body: Any,
                data: dict[str, Any]) -> web.Response:
        data.setdefault("errcode", 0)
        data.setdefault("errmsg", "ok")
        self.calls.append(Call(len(self.calls) + 1, request.method, path, params, body, int(data["errcode"]),
                               time.time()))
        return web.json_response(data, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    # -- control API -------------------------------------------------------------------------

    async def _calls(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return web.json_response({"calls": [asdict(c) for c in self.calls[after:]]},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _messages(self, request: web.Request) -> web.Response:
        texts = self.texts_to(request.query.get("touser", ""))
        after = int(request.query.get("after", "0"))
        return web.json_response({"messages": texts[after:], "count": len(texts)},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _faults(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.inject(int(data.get("errcode", 0)), str(data.get("path", "")), int(data.get("times", 1)),
                    float(data.get("latency", 0.0)), int(data.get("after", 0)))
        return web.json_response({"ok": True})

    async def _expire(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"ok": True})

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _mass_jobs(self, request: web.Request) -> web.Response:
        return web.json_response({"jobs": [{"msg_id": n, **job} for n, job in self.mass_jobs.items()]},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _qrcodes(self, request: web.Request) -> web.Response:
        return web.json_response({"qrcodes": [{"ticket": t, **c} for t, c in self.qrcodes.items()]},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _kf_add(self, request: web.Request) -> web.Response:
        data = await request.json()
        msgid = self.add_kf_message(str(data["open_kfid"]), str(data["external_userid"]), str(data.get("text", "")))
        return web.json_response({"msgid": msgid})


def _err(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "error")}


# -- endpoint handlers: (sandbox, json body, query) -> answer ----------------------------------


def _ok(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    return {}


def _with_msgid(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    return {"msgid": next(sb._ids)}


def _mass(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """sendall (a tag, everyone) and send (an openid list), with the clientmsgid dedup."""
    openids = body.get("touser")
    if openids is not None and (not isinstance(openids, list) or not 2 <= len(openids) <= MASS_MAX_OPENIDS):
        return _err(40130)
    client_id = str(body.get("clientmsgid") or "")
    if len(client_id.encode()) > 64:
        return _err(45067)
    now = time.time() + sb.skew
    seen = sb.mass_by_client_id.get(client_id) if client_id else None
    if seen is not None and now - seen[1] < MASS_DEDUP_SECONDS:
        sb.mass_by_client_id[client_id] = (seen[0], now)
        code = 45066 if now - seen[1] < MASS_RETRY_SECONDS else 45065
        return {**_err(code), "msg_id": seen[0]}
    n = next(sb._ids)
    if client_id:
        sb.mass_by_client_id[client_id] = (n, now)
    month = time.strftime("%Y-%m", time.gmtime(now))
    sent = errors = 0
    for openid in openids or ():
        got = sb.mass_received.get((openid, month), 0)
        if got >= MASS_PER_FOLLOWER_PER_MONTH:
            errors += 1
            continue
        sb.mass_received[(openid, month)] = got + 1
        sent += 1
    total = len(openids or ())
    sb.mass_jobs[n] = {"touser": list(openids or ()), "clientmsgid": client_id, "TotalCount": total,
                       "FilterCount": total, "SentCount": sent, "ErrorCount": errors}
    return {"errmsg": "send job submission success", "msg_id": n, "msg_data_id": n}


def _wecom_send(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    return {"invaliduser": "", "msgid": f"wc{next(sb._ids)}"}


def _tag_create(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    tag_id = next(sb._ids)
    name = str((body.get("tag") or {}).get("name", ""))
    sb.tags[tag_id] = {"id": tag_id, "name": name, "openids": set()}
    return {"tag": {"id": tag_id, "name": name}}


def _tag_get(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    return {"tags": [{"id": t["id"], "name": t["name"], "count": len(t["openids"])} for t in sb.tags.values()]}


def _tag_members(add: bool) -> Any:
    def handler(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        tag = sb.tags.get(int(body.get("tagid", 0) or 0))
        if tag is None:
            return {"errcode": 45159, "errmsg": "invalid tag id"}
        ids = set(body.get("openid_list") or [])
        tag["openids"] = tag["openids"] | ids if add else tag["openids"] - ids
        return {}
    return handler


def _tag_users(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    tag = sb.tags.get(int(body.get("tagid", 0) or 0))
    openids = sorted(tag["openids"]) if tag else []
    return {"count": len(openids), "data": {"openid": openids}, "next_openid": ""}


def _kf_sync(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    start = int(body.get("cursor") or 0)
    limit = max(1, min(int(body.get("limit") or 1000), 1000))
    kfid = body.get("open_kfid")
    chosen = [m for m in sb.kf[start:start + limit]]
    items = [{"msgid": m.msgid, "open_kfid": m.open_kfid, "external_userid": m.external_userid,
              "send_time": m.send_time, "origin": m.origin, "msgtype": m.msgtype, m.msgtype: m.body}
             for m in chosen if not kfid or m.open_kfid == kfid]
    end = start + len(chosen)
    return {"next_cursor": str(end), "has_more": int(end < len(sb.kf)), "msg_list": items}


def _kf_state_get(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    key = (str(body.get("open_kfid", "")), str(body.get("external_userid", "")))
    return {"service_state": sb.kf_states.get(key, 0), "servicer_userid": ""}


def _kf_state_trans(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    key = (str(body.get("open_kfid", "")), str(body.get("external_userid", "")))
    sb.kf_states[key] = int(body.get("service_state", 0))
    return {"msg_code": ""}


def _qrcode_create(sb: Sandbox, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """qrcode/create: a temporary or permanent parametric code, with the platform's checks."""
    action = str(body.get("action_name") or "")
    scene = (body.get("action_info") or {}).get("scene") if isinstance(body.get("action_info"), dict) else None
    if action not in QR_TEMPORARY + QR_PERMANENT or not isinstance(scene, dict):
        return _err(40053)
    if "STR" in action:
        value: Any = scene.get("scene_str")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            return _err(40053)
    else:
        value = scene.get("scene_id")
        if not isinstance(value, int) or value < 1 or (action in QR_PERMANENT and value > 100_000):
            return _err(40053)
    ticket = f"gQ{secrets.token_urlsafe(24)}"
    code: dict[str, Any] = {"action_name": action, "scene": str(value), "url": f"http://weixin.qq.com/q/{ticket[2:20]}"}
    answer: dict[str, Any] = {"ticket": ticket, "url": code["url"]}
    if action in QR_TEMPORARY:
        seconds = int(body.get("expire_seconds") or 60)
        if not 60 <= seconds <= QR_MAX_SECONDS:
            return _err(40053)
        code["expire_seconds"] = answer["expire_seconds"] = seconds
    sb.qrcodes[ticket] = code
    return answer


ENDPOINTS = {
    "/cgi-bin/qrcode/create": _qrcode_create,
    "/cgi-bin/message/custom/send": _ok,
    "/cgi-bin/message/template/send": _with_msgid,
    "/cgi-bin/message/mass/sendall": _mass,
    "/cgi-bin/message/mass/send": _mass,
    "/cgi-bin/tags/create": _tag_create,
    "/cgi-bin/tags/get": _tag_get,
    "/cgi-bin/tags/members/batchtagging": _tag_members(True),
    "/cgi-bin/tags/members/batchuntagging": _tag_members(False),
    "/cgi-bin/user/tag/get": _tag_users,
    "/cgi-bin/message/send": _wecom_send,
    "/cgi-bin/kf/sync_msg": _kf_sync,
    "/cgi-bin/kf/send_msg": _wecom_send,
    "/cgi-bin/kf/send_msg_on_event": _wecom_send,
    "/cgi-bin/kf/service_state/get": _kf_state_get,
    "/cgi-bin/kf/service_state/trans": _kf_state_trans,
}
ENDPOINTS.update(wecom_contacts.ENDPOINTS)  # 客户联系 (adapters/sandbox/wecom_contacts.py)
ERRMSG.update(wecom_contacts.ERRMSG)
ENDPOINTS.update(wecom_groups.ENDPOINTS)  # 客户群 (adapters/sandbox/wecom_groups.py)
ENDPOINTS.update(wecom_groupmsg.ENDPOINTS)  # 群发到客户群, 入群欢迎语 (adapters/sandbox/wecom_groupmsg.py)
ENDPOINTS.update(mp_users.ENDPOINTS)  # 公众号 followers' unionid (adapters/sandbox/mp_users.py)
ERRMSG.update(mp_users.ERRMSG)


def serve(host: str = "127.0.0.1", port: int = 8090,
          apps: dict[str, str] | None = None) -> None:  # pragma: no cover - used by `kefu sandbox`
    web.run_app(Sandbox(apps=apps).app(), host=host, port=port, access_log=None,
                print=lambda *_: print(f"WeChat stand-in listening on http://{host}:{port}", flush=True))
