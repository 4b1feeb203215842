"""The stand-in's WeCom group mass messages (企业群发到客户群) and group welcome templates
(入群欢迎语素材).

Shapes follow the platform (developer.work.weixin.qq.com, documents 92135, 93338, 92366):
- `add_msg_template` {chat_type "group", sender (required for groups), chat_id_list (≤2000,
  only the sender's own chats; without it every chat the sender owns), text {content ≤4000
  bytes}, attachments (≤9: image {media_id|pic_url}, link {title, picurl, desc, url}, …)} →
  {msgid, fail_list}: the chats of the list the sender cannot send to are in fail_list.
  The owner then has a task in WeCom and sends it or not (`confirm`, or never).
- `get_groupmsg_list_v2` {chat_type, start_time, end_time (at most a month apart),
  creator, filter_type, limit ≤100, cursor} → group_msg_list of {msgid, creator,
  create_time, create_type 0 (the shop), text, attachments}, next_cursor (API-made
  messages carry no creator, as on the platform).
- `get_groupmsg_task` {msgid, limit ≤1000, cursor} → task_list of {userid, status 0 not
  sent | 2 sent, send_time}.
- `get_groupmsg_send_result` {msgid, userid, limit, cursor} → send_list of {chat_id,
  userid, status 1 sent | 3 the chat already received another group message, send_time};
  for a group message the platform lists only what the owner sent (nothing before).
- the once-a-day rule: a customer group takes one of the shop's group messages a day; a
  second one the same day is refused for that chat when the owner sends it (status 3).
- `group_welcome_template/add|edit|get|del` {template_id, text {content}, image {media_id|
  pic_url}, link {title, picurl, desc, url}, agentid, notify} → add answers template_id;
  an unknown template_id is 40058 (invalid parameter), as we read the platform's list.

Errcodes are injected like every other endpoint's (`Sandbox.inject`); every call is recorded.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters.sandbox import wecom_groups

ERRMSG = {40058: "invalid parameter"}
MAX_CHATS = 2000
MAX_TEXT_BYTES = 4000
MAX_ATTACHMENTS = 9
MONTH_SECONDS = 31 * 86400
SHOP_DAY = timezone(timedelta(hours=8))  # the platform's day: China time
SENT, ALREADY_RECEIVED = 1, 3  # send_result statuses


def state(sb: Any) -> dict[str, Any]:
    """The stand-in's group-message data, created on first use and cleared by reset."""
    data = getattr(sb, "wecom_groupmsg", None)
    if data is None or data.get("_calls") is not sb.calls:
        data = sb.wecom_groupmsg = {"_calls": sb.calls, "messages": {}, "received": {}, "templates": {},
                                    "ids": itertools.count(1)}
    return data


def _now(sb: Any) -> float:
    return time.time() + sb.skew


def _day(sb: Any) -> str:
    return datetime.fromtimestamp(_now(sb), SHOP_DAY).strftime("%Y-%m-%d")


def _err(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "error")}


def _content_ok(body: dict[str, Any]) -> bool:
    text = body.get("text") or {}
    attachments = body.get("attachments") or []
    if not isinstance(text, dict) or not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        return False
    content = str(text.get("content") or "")
    if len(content.encode()) > MAX_TEXT_BYTES:
        return False
    for item in attachments:
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in ("image", "link", "miniprogram", "video", "file") or not isinstance(item.get(kind), dict):
            return False
    return bool(content or attachments)


def _add(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if body.get("chat_type") != "group":
        return _err(40058)  # the stand-in plays group messages only
    sender, wanted = str(body.get("sender") or ""), body.get("chat_id_list")
    if not sender or not _content_ok(body) or (wanted is not None and (
            not isinstance(wanted, list) or len(wanted) > MAX_CHATS)):
        return _err(40058)
    chats = wecom_groups.state(sb)["chats"]
    owned = sorted(c for c, chat in chats.items() if chat["owner"] == sender and chat["status"] == 0)
    asked = [str(c) for c in wanted] if wanted is not None else owned
    fail = [c for c in asked if c not in owned]
    targets = [c for c in asked if c in owned]
    if not targets:  # none of the chats is the sender's
        return _err(40058)
    data = state(sb)
    msgid = f"msgGC{next(data['ids']):06d}"
    data["messages"][msgid] = {"msgid": msgid, "sender": sender, "chats": targets, "create_time": int(_now(sb)),
                               "text": body.get("text") or {}, "attachments": body.get("attachments") or [],
                               "task": {"status": 0, "send_time": None}, "results": {}}
    return {"fail_list": fail, "msgid": msgid}


def confirm(sb: Any, msgid: str) -> dict[str, int]:
    """The owner sends the task in WeCom: each chat gets it unless it already got a group
    message today (status 3). Returns the chats' statuses."""
    data = state(sb)
    message, day, now = data["messages"][msgid], _day(sb), int(_now(sb))
    message["task"] = {"status": 2, "send_time": now}
    for chat_id in message["chats"]:
        if (chat_id, day) in data["received"]:
            message["results"][chat_id] = {"status": ALREADY_RECEIVED, "send_time": now}
        else:
            data["received"][(chat_id, day)] = msgid
            message["results"][chat_id] = {"status": SENT, "send_time": now}
    return {c: r["status"] for c, r in message["results"].items()}


def messages_from(sb: Any, sender: str) -> list[str]:
    """The msgids of the group messages asked of `sender`, oldest first."""
    return [m for m, row in state(sb)["messages"].items() if row["sender"] == sender]


def _page(rows: list[Any], body: dict[str, Any], most: int, default: int) -> tuple[list[Any], str]:
    limit = body.get("limit")
    limit = limit if isinstance(limit, int) and 1 <= limit <= most else default
    cursor = str(body.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    return rows[start:start + limit], str(start + limit) if start + limit < len(rows) else ""


def _list_v2(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    start, end = body.get("start_time"), body.get("end_time")
    if body.get("chat_type") not in ("single", "group") or not isinstance(start, int) or not isinstance(end, int) \
            or not 0 <= end - start <= MONTH_SECONDS:
        return _err(40058)
    rows = [m for m in state(sb)["messages"].values() if body["chat_type"] == "group" and start <= m["create_time"] <= end]
    page, cursor = _page(rows, body, 100, 50)
    return {"group_msg_list": [{"msgid": m["msgid"], "create_time": str(m["create_time"]), "create_type": 0,
                                "text": m["text"], "attachments": m["attachments"]} for m in page],
            "next_cursor": cursor}


def _task(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    message = state(sb)["messages"].get(str(body.get("msgid") or ""))
    if message is None:
        return _err(40058)
    task = {"userid": message["sender"], "status": message["task"]["status"]}
    if message["task"]["send_time"]:
        task["send_time"] = message["task"]["send_time"]
    page, cursor = _page([task], body, 1000, 500)
    return {"task_list": page, "next_cursor": cursor}


def _send_result(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    message = state(sb)["messages"].get(str(body.get("msgid") or ""))
    if message is None or str(body.get("userid") or "") != message["sender"]:
        return _err(40058)
    rows = [{"chat_id": c, "userid": message["sender"], "status": r["status"], "send_time": r["send_time"]}
            for c, r in sorted(message["results"].items())]
    page, cursor = _page(rows, body, 1000, 500)
    return {"send_list": page, "next_cursor": cursor}


# -- group welcome templates ----------------------------------------------------------------------


TEMPLATE_PARTS = ("text", "image", "link", "miniprogram", "file", "video")


def _template_body(body: dict[str, Any]) -> dict[str, Any] | None:
    parts = {k: body[k] for k in TEMPLATE_PARTS if isinstance(body.get(k), dict) and body[k]}
    text = str((parts.get("text") or {}).get("content") or "")
    if len(text.encode()) > MAX_TEXT_BYTES or not parts:
        return None
    return parts


def _template_add(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    parts = _template_body(body)
    if parts is None:
        return _err(40058)
    data = state(sb)
    template_id = f"msgWT{next(data['ids']):06d}"
    data["templates"][template_id] = {**parts, "notify": body.get("notify", 1)}
    return {"template_id": template_id}


def _template_edit(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    templates = state(sb)["templates"]
    template_id = str(body.get("template_id") or "")
    parts = _template_body(body)
    if template_id not in templates or parts is None:
        return _err(40058)
    templates[template_id] = {**parts, "notify": templates[template_id].get("notify", 1)}
    return {}


def _template_get(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    template = state(sb)["templates"].get(str(body.get("template_id") or ""))
    if template is None:
        return _err(40058)
    return {k: v for k, v in template.items() if k in TEMPLATE_PARTS}


def _template_del(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if state(sb)["templates"].pop(str(body.get("template_id") or ""), None) is None:
        return _err(40058)
    return {}


ENDPOINTS = {
    "/cgi-bin/externalcontact/add_msg_template": _add,
    "/cgi-bin/externalcontact/get_groupmsg_list_v2": _list_v2,
    "/cgi-bin/externalcontact/get_groupmsg_task": _task,
    "/cgi-bin/externalcontact/get_groupmsg_send_result": _send_result,
    "/cgi-bin/externalcontact/group_welcome_template/add": _template_add,
    "/cgi-bin/externalcontact/group_welcome_template/edit": _template_edit,
    "/cgi-bin/externalcontact/group_welcome_template/get": _template_get,
    "/cgi-bin/externalcontact/group_welcome_template/del": _template_del,
}


# -- the stand-in's own routes, for a demo with `kefu sandbox` in its own process ---------------


def add_routes(app: Any, sb: Any) -> None:
    """`POST /sandbox/wecom/chats` {chat_id, name, owner, externals} seeds a customer group;
    `GET /sandbox/groupmsg` lists the group messages asked for (msgid, sender, chats, the
    owner's task, each chat's result); `POST /sandbox/groupmsg/confirm` {msgid} plays the
    owner sending it from WeCom."""
    from aiohttp import web

    async def seed(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("chat_id") or not body.get("owner"):
            return web.json_response({"error": "chat_id and owner are required"}, status=400)
        wecom_groups.seed_chat(sb, str(body["chat_id"]), str(body.get("name") or ""), str(body["owner"]),
                               [str(e) for e in body.get("externals") or ()])
        return web.json_response({"ok": True})

    async def listed(request: web.Request) -> web.Response:
        return web.json_response([{"msgid": m["msgid"], "sender": m["sender"], "chats": m["chats"],
                                   "task": m["task"], "results": m["results"]}
                                  for m in state(sb)["messages"].values()])

    async def confirmed(request: web.Request) -> web.Response:
        body = await request.json()
        msgid = str(body.get("msgid") or "") if isinstance(body, dict) else ""
        if msgid not in state(sb)["messages"]:
            return web.json_response({"error": f"no group message {msgid!r}"}, status=404)
        return web.json_response(confirm(sb, msgid))

    app.router.add_post("/sandbox/wecom/chats", seed)
    app.router.add_get("/sandbox/groupmsg", listed)
    app.router.add_post("/sandbox/groupmsg/confirm", confirmed)
