"""The stand-in's WeCom customer contact (客户联系): seeded external contacts per employee,
the sync endpoints, 联系我 codes and the `change_external_contact` callbacks.

Shapes follow the platform: `get_follow_user_list` → `follow_user`; `list?userid=` →
`external_userid`; `get?external_userid=` → `external_contact` and `follow_user`;
`batch/get_by_user` {userid_list (1-100), cursor, limit (1-100)} → `external_contact_list`
of {external_contact, follow_info} and `next_cursor`; `add_contact_way` {type 1|2, scene
1|2, state ≤30, user} → `config_id` (and `qr_code` for scene 2); `send_welcome_msg`
{welcome_code} accepts a code once. Unknown ids are 84061 (not external contact), a bad
request 40058 (invalid parameter) — errcodes as we read the platform's list. Errcodes are
injected like every other endpoint's (`Sandbox.inject`).
"""

from __future__ import annotations

import secrets
from typing import Any

ERRMSG = {84061: "not external contact", 40058: "invalid parameter", 40096: "invalid external userid",
          41051: "externaluser has started chatting"}


def state(sb: Any) -> dict[str, Any]:
    """The stand-in's customer-contact data, created on first use and cleared by reset."""
    data = getattr(sb, "wecom_contacts", None)
    if data is None or data.get("_calls") is not sb.calls:
        data = sb.wecom_contacts = {"_calls": sb.calls, "contacts": {}, "follows": {}, "ways": {}, "welcomed": {}}
    return data


def seed_contact(sb: Any, external_userid: str, name: str, users: list[str], unionid: str = "",
                 state_: str = "") -> None:
    """A customer who added `users` (employee userids) in WeCom."""
    data = state(sb)
    contact = {"external_userid": external_userid, "name": name, "type": 1, "avatar": "", "gender": 0}
    if unionid:
        contact["unionid"] = unionid
    data["contacts"][external_userid] = contact
    for user in users:
        data["follows"].setdefault(user, {})[external_userid] = {
            "userid": user, "remark": "", "description": "", "createtime": 1_700_000_000, "tags": [],
            "state": state_, "add_way": 1}


def _err(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "error")}


def _follow_users(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    return {"follow_user": sorted(state(sb)["follows"])}


def _list(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    follows = state(sb)["follows"].get(params.get("userid", ""))
    if follows is None:
        return _err(84061)
    return {"external_userid": sorted(follows)}


def _get(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    data, ext = state(sb), params.get("external_userid", "")
    if ext not in data["contacts"]:
        return _err(84061)
    follow = [f[ext] for f in data["follows"].values() if ext in f]
    return {"external_contact": data["contacts"][ext], "follow_user": follow, "next_cursor": ""}


def _batch(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    data, users = state(sb), body.get("userid_list")
    limit = body.get("limit", 50)
    if not isinstance(users, list) or not 1 <= len(users) <= 100 or not isinstance(limit, int) \
            or not 1 <= limit <= 100:
        return _err(40058)
    rows = [(u, e) for u in users for e in sorted(data["follows"].get(u, {}))]
    cursor = str(body.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    page = rows[start:start + limit]
    return {"external_contact_list": [{"external_contact": data["contacts"][e], "follow_info": data["follows"][u][e]}
                                      for u, e in page],
            "next_cursor": str(start + limit) if start + limit < len(rows) else ""}


def _add_contact_way(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    users, way_state = body.get("user"), body.get("state", "")
    if body.get("type") not in (1, 2) or body.get("scene") not in (1, 2) or not isinstance(users, list) \
            or not users or (body["type"] == 1 and len(users) != 1) or not isinstance(way_state, str) \
            or len(way_state) > 30:
        return _err(40058)
    config_id = secrets.token_hex(16)
    answer: dict[str, Any] = {"config_id": config_id}
    if body["scene"] == 2:
        answer["qr_code"] = f"https://wework.qpic.cn/wwpic/{config_id[:12]}/0"
    state(sb)["ways"][config_id] = {**body, **answer}
    return answer


def _send_welcome(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    code = str(body.get("welcome_code") or "")
    welcomed = state(sb)["welcomed"]
    if not code or code in welcomed:
        return _err(41051)
    welcomed[code] = body
    return {}


def add_event(sb: Any, config_id: str, external_userid: str, name: str, unionid: str = "") -> dict[str, str]:
    """A customer scans the 联系我 code `config_id`: seeded as a contact of its first employee;
    the fields of the add_external_contact event WeCom then posts (State, WelcomeCode)."""
    way = state(sb)["ways"][config_id]
    user = str(way["user"][0])
    seed_contact(sb, external_userid, name, [user], unionid, str(way.get("state") or ""))
    return change_fields("add_external_contact", user, external_userid, State=str(way.get("state") or ""),
                         WelcomeCode=f"wc{secrets.token_hex(8)}")


def change_fields(change: str, user: str, external_userid: str, **extra: str) -> dict[str, str]:
    """The fields of a change_external_contact event (for `WeChatServer.event_xml`'s extra)."""
    return {"ChangeType": change, "UserID": user, "ExternalUserID": external_userid, **extra}


ENDPOINTS = {
    "/cgi-bin/externalcontact/get_follow_user_list": _follow_users,
    "/cgi-bin/externalcontact/list": _list,
    "/cgi-bin/externalcontact/get": _get,
    "/cgi-bin/externalcontact/batch/get_by_user": _batch,
    "/cgi-bin/externalcontact/add_contact_way": _add_contact_way,
    "/cgi-bin/externalcontact/send_welcome_msg": _send_welcome,
}
