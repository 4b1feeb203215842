"""The stand-in's WeCom customer groups (客户群): seeded chats, `groupchat/list` and
`groupchat/get`, and builders for the `change_external_chat` callbacks.

Shapes follow the platform: `groupchat/list` {status_filter, owner_filter, cursor, limit
(1-1000)} → `group_chat_list` of {chat_id, status} and `next_cursor`; `groupchat/get`
{chat_id, need_name} → `group_chat` {chat_id, name, owner, create_time, notice,
member_list of {userid, type 1 employee | 2 external, join_time, join_scene, name,
unionid}, admin_list, member_version}. An unknown chat or a bad request is 40058 (invalid
parameter), as we read the platform's list. Errcodes are injected like every other
endpoint's (`Sandbox.inject`).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

ERRMSG = {40058: "invalid parameter"}


def state(sb: Any) -> dict[str, Any]:
    """The stand-in's group data, created on first use and cleared by reset."""
    data = getattr(sb, "wecom_groups", None)
    if data is None or data.get("_calls") is not sb.calls:
        data = sb.wecom_groups = {"_calls": sb.calls, "chats": {}, "version": 0}
    return data


def member(userid: str, external: bool = True, name: str = "", unionid: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {"userid": userid, "type": 2 if external else 1, "join_time": 1_700_000_000,
                           "join_scene": 1, "name": name}
    if unionid:
        row["unionid"] = unionid
    return row


def seed_chat(sb: Any, chat_id: str, name: str, owner: str, externals: list[str]) -> None:
    """A customer group owned by employee `owner` with these external members."""
    state(sb)["chats"][chat_id] = {"chat_id": chat_id, "name": name, "owner": owner, "create_time": 1_700_000_000,
                                   "notice": "", "status": 0, "admin_list": [],
                                   "member_list": [member(owner, external=False)] + [member(e) for e in externals]}


def _err(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "error")}


def _list(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    limit = body.get("limit")
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        return _err(40058)
    chats = sorted(state(sb)["chats"].values(), key=lambda c: c["chat_id"])
    cursor = str(body.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    page = chats[start:start + limit]
    return {"group_chat_list": [{"chat_id": c["chat_id"], "status": c["status"]} for c in page],
            "next_cursor": str(start + limit) if start + limit < len(chats) else ""}


def _get(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    chat = state(sb)["chats"].get(str(body.get("chat_id") or ""))
    if chat is None:
        return _err(40058)
    data = state(sb)
    return {"group_chat": {k: v for k, v in chat.items() if k != "status"} | {"member_version": str(data["version"])}}


class Items:
    """MemChangeList's <Item>s, written as XML (not CDATA text) by `WeChatServer.event_xml`."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __str__(self) -> str:
        return "".join(f"<Item>{escape(i)}</Item>" for i in self.ids)


def change_fields(change: str, chat_id: str, detail: str = "", ids: list[str] | None = None,
                  version: int = 0) -> dict[str, Any]:
    """The fields of a change_external_chat event (for `WeChatServer.event_xml`'s extra)."""
    fields: dict[str, Any] = {"ChatId": chat_id, "ChangeType": change}
    if detail:
        fields["UpdateDetail"] = detail
    if ids:
        fields.update(MemChangeCnt=str(len(ids)), MemChangeList=Items(ids))
    if version:
        fields["CurMemVer"] = str(version)
    return fields


def members_changed(sb: Any, chat_id: str, detail: str, ids: list[str]) -> dict[str, Any]:
    """Members join (add_member) or leave (del_member) the stand-in's chat; the event's fields."""
    data = state(sb)
    chat, data["version"] = data["chats"][chat_id], data["version"] + 1
    kept = [m for m in chat["member_list"] if m["userid"] not in ids]
    chat["member_list"] = kept + [member(i) for i in ids] if detail == "add_member" else kept
    return change_fields("update", chat_id, detail, ids, data["version"])


ENDPOINTS = {
    "/cgi-bin/externalcontact/groupchat/list": _list,
    "/cgi-bin/externalcontact/groupchat/get": _get,
}
