"""Group welcome templates (入群欢迎语素材): what a customer group says to a customer who joins.

Why kefu keeps them: the operator writes the shop's greetings in the panel, next to the
campaigns and codes, and the platform holds the material under a `template_id` that the
owners pick in WeCom (`externalcontact/group_welcome_template/add|edit|get|del`). kefu
stores what was written and the template_id the platform gave; a change goes to the
platform first and is stored only when the platform took it, so the two never disagree.
Transport-free: the HTTP calls are injected (`Fetch`, as in bot/crm/wecom_contacts.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from bot.core import clock
from bot.crm import wecom_contacts
from bot.crm.wecom_contacts import Fetch, SyncError
from bot.core.models import WecomGroupWelcome

ADD = "/cgi-bin/externalcontact/group_welcome_template/add"
EDIT = "/cgi-bin/externalcontact/group_welcome_template/edit"
GET = "/cgi-bin/externalcontact/group_welcome_template/get"
DEL = "/cgi-bin/externalcontact/group_welcome_template/del"
MAX_TEXT_BYTES = 4000
UNKNOWN_TEMPLATE = 40058  # the platform no longer has the template_id (deleted in WeCom)


class WelcomeError(Exception):
    """The template cannot be saved or deleted as asked (the reason, for the operator)."""


def problems(row: WecomGroupWelcome) -> list[str]:
    """What keeps the template from being sent to the platform, each for the operator."""
    found: list[str] = []
    if not (row.name or "").strip():
        found.append("请填写名称")
    if not (row.text or "").strip() and not row.image_url and not row.link_url:
        found.append("欢迎语至少要有文字、图片或链接之一")
    if len((row.text or "").encode()) > MAX_TEXT_BYTES:
        found.append(f"文字超过企业微信的 {MAX_TEXT_BYTES} 字节上限")
    if bool(row.link_title) != bool(row.link_url):
        found.append("链接需要同时填写标题和网址")
    for url in (row.image_url, row.link_url, row.link_picurl):
        if url and not url.startswith(("https://", "http://")):
            found.append(f"网址应以 https:// 开头：{url}")
    return found


def body(row: WecomGroupWelcome) -> dict[str, Any]:
    """The template as the platform takes it: text, image (by its URL), link."""
    out: dict[str, Any] = {}
    if (row.text or "").strip():
        out["text"] = {"content": row.text}
    if row.image_url:
        out["image"] = {"pic_url": row.image_url}
    if row.link_title and row.link_url:
        out["link"] = {"title": row.link_title, "url": row.link_url,
                       **{k: v for k, v in (("picurl", row.link_picurl), ("desc", row.link_desc)) if v}}
    return out


def save(row: WecomGroupWelcome, fetch: Fetch) -> WecomGroupWelcome:
    """Add the template to the platform (new) or edit it there, then store it. WelcomeError
    (nothing stored) for a problem or the platform's refusal."""
    found = problems(row)
    if found:
        raise WelcomeError("；".join(found))
    try:
        if row.template_id:
            wecom_contacts.checked_answer(fetch, EDIT, {"template_id": row.template_id, **body(row)})
        else:
            answer = wecom_contacts.checked_answer(fetch, ADD, {**body(row), "notify": 1 if row.notify else 0})
            if not answer.get("template_id"):
                raise WelcomeError("企业微信没有返回 template_id")
            row.template_id = str(answer["template_id"])[:128]
    except SyncError as exc:
        raise WelcomeError(f"企业微信拒绝了这条欢迎语：{exc}") from None
    row.updated_at = clock.now()
    row.save()
    return row


def delete(row: WecomGroupWelcome, fetch: Fetch) -> None:
    """Delete it on the platform, then here (one the platform no longer has is deleted here)."""
    if row.template_id:
        answer = fetch(DEL, {"template_id": row.template_id}, None)
        errcode = int(answer.get("errcode") or 0)
        if errcode and errcode != UNKNOWN_TEMPLATE:
            raise WelcomeError(f"企业微信拒绝删除：{errcode} {answer.get('errmsg', '')}".strip())
    row.delete_instance()


def on_platform(row: WecomGroupWelcome, fetch: Fetch) -> Mapping[str, Any]:
    """The platform's copy of the template (text, image, link…); WelcomeError when it has none."""
    try:
        return wecom_contacts.checked_answer(fetch, GET, {"template_id": row.template_id})
    except SyncError as exc:
        raise WelcomeError(f"企业微信没有这条欢迎语：{exc}") from None
