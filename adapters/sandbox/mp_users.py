"""The stand-in's 公众号 followers' profiles: `cgi-bin/user/info` and `user/info/batchget`.

Shapes follow the platform: `user/info?openid=&lang=` → {subscribe, openid, language,
subscribe_time, unionid (only when the account is bound to an open platform), remark,
groupid, tagid_list, subscribe_scene, qr_scene, qr_scene_str}; `user/info/batchget`
{user_list (1-100) of {openid, lang}} → user_info_list of the same. An openid the account
never saw is 40003 (invalid openid). Errcodes are injected like every other endpoint's.
"""

from __future__ import annotations

from typing import Any

ERRMSG = {40003: "invalid openid"}
BATCH_MAX = 100


def state(sb: Any) -> dict[str, Any]:
    """The stand-in's followers, created on first use and cleared by reset."""
    data = getattr(sb, "mp_users", None)
    if data is None or data.get("_calls") is not sb.calls:
        data = sb.mp_users = {"_calls": sb.calls, "users": {}}
    return data


def seed_user(sb: Any, openid: str, unionid: str = "", subscribed: bool = True) -> None:
    """A follower (or former follower) of the 公众号; `unionid` when the account is bound to
    an open platform."""
    user: dict[str, Any] = {"subscribe": 1 if subscribed else 0, "openid": openid, "language": "zh_CN",
                            "subscribe_time": 1_700_000_000, "remark": "", "groupid": 0, "tagid_list": [],
                            "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0, "qr_scene_str": ""}
    if unionid:
        user["unionid"] = unionid
    state(sb)["users"][openid] = user


def _err(code: int) -> dict[str, Any]:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "error")}


def _info(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    user = state(sb)["users"].get(params.get("openid", ""))
    return dict(user) if user is not None else _err(40003)


def _batchget(sb: Any, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    wanted = body.get("user_list")
    if not isinstance(wanted, list) or not 1 <= len(wanted) <= BATCH_MAX:
        return {"errcode": 40058, "errmsg": "invalid parameter"}
    users = state(sb)["users"]
    out = []
    for item in wanted:
        openid = str(item.get("openid") or "") if isinstance(item, dict) else ""
        if openid not in users:
            return _err(40003)
        out.append(dict(users[openid]))
    return {"user_info_list": out}


ENDPOINTS = {
    "/cgi-bin/user/info": _info,
    "/cgi-bin/user/info/batchget": _batchget,
}
