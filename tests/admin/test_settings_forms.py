"""Every setting is a form field (issue 25): saved through the settings page and read back by
the code that uses it; a bad value is refused with the reason and nothing is stored; HTML in a
value is shown as text."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from bot.core import settings
from bot.crm import levels
from bot.core.models import Coupon, Setting
from tests.admin.conftest import Panel

_INPUT = re.compile(r'<(select|textarea)\b([^>]*)>(.*?)</(?:select|textarea)>|<(input)\b([^>]*)>()', re.S)


def _field(tag: str, attrs: str, inner: str) -> tuple[str, str | None] | None:
    """One form control's name and the value the browser would post (None: not posted)."""
    name = re.search(r'name="([^"]+)"', attrs)
    if not name:
        return None
    if tag == "textarea":
        return name.group(1), html.unescape(inner)
    if tag == "select":
        chosen = re.search(r'<option value="([^"]*)" selected', inner) or re.search(r'<option value="([^"]*)"', inner)
        return name.group(1), chosen.group(1) if chosen else ""
    if 'type="checkbox"' in attrs:
        return name.group(1), "on" if re.search(r"\bchecked\b", attrs) else None
    value = re.search(r'value="([^"]*)"', attrs)
    return name.group(1), html.unescape(value.group(1)) if value else ""


def page_form(panel: Panel) -> dict[str, str]:
    """The settings form as the page shows it: posting it back unchanged changes nothing."""
    page = panel.get("/admin/settings/").get_data(as_text=True)
    form = page[page.index('id="settings-form"'):]
    fields = {}
    for match in _INPUT.findall(form):
        tag, attrs, inner = match[:3] if match[0] else match[3:]
        found = _field(tag, attrs, inner)
        if found and found[1] is not None and found[0] != "csrf_token":
            fields[found[0]] = found[1]
    return fields


def save(panel: Panel, **changes: Any) -> str:
    form = page_form(panel)
    for name, value in changes.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    return panel.post("/admin/settings/", data=form, follow_redirects=True).get_data(as_text=True)


def test_no_setting_is_raw_json(admin_panel: Panel) -> None:
    html = admin_panel.get("/admin/settings/").get_data(as_text=True)
    assert "JSON" not in html
    for key in ("birthday_greeting", "member_levels", "pool_return_days", "retention", "coupon_reminder"):
        assert f"<code>{key}</code>" not in html and f'name="json_{key}"' not in html
    assert "会员等级" in html and "数据保留" in html and "生日祝福" in html


def test_labels_in_english(admin_panel: Panel) -> None:
    html = admin_panel.get("/admin/settings/?lang=en").get_data(as_text=True)
    assert "Member level" in html and "Data retention" in html and "Birthday greeting" in html
    assert "会员等级" not in html and "生日祝福" not in html


def test_unchanged_form_saves_the_defaults(admin_panel: Panel) -> None:
    html = save(admin_panel)
    assert "设置已保存" in html
    for key in ("member_levels", "retention", "pool_return_days", "birthday_greeting", "revisit"):
        assert settings.get(key) == settings.DEFAULTS[key], key


def test_member_levels_table_read_by_the_level_rules(admin_panel: Panel) -> None:
    save(admin_panel, **{"member_levels__spend_1": "500", "member_levels__spend_2": "1500",
                         "member_levels__spend_3": "5000", "member_levels__spend_4": "12000",
                         "member_levels__orders_1": "", "member_levels__orders_2": "", "member_levels__orders_3": "",
                         "member_levels__orders_4": "", "member_levels__notify": "off"})
    rules = levels.current_rules()
    assert rules.spend == (Decimal(500), Decimal(1500), Decimal(5000), Decimal(12000))
    assert rules.orders == () and rules.notify == "off"


def test_retention_days_and_pool_days_read_back(admin_panel: Panel) -> None:
    from jobs import housekeeping

    save(admin_panel, retention__outbox_days="7", retention__message_days="365", pool_return_days="45")
    assert settings.get("retention") == {"outbox_days": 7, "delivery_days": 180, "message_days": 365}
    assert settings.get("pool_return_days") == 45
    assert housekeeping._retention("outbox_days", 30) == 7 and housekeeping._retention("message_days", 0) == 365


def test_scheduled_message_with_coupon_and_template(admin_panel: Panel) -> None:
    coupon = Coupon.create(name="生日券", value=Decimal(10))
    save(admin_panel, birthday_greeting__coupon_id=str(coupon.id), birthday_greeting__text="生日快乐 {nickname}",
         birthday_greeting__template_id="TPL-1", birthday_greeting__template_data="first=生日快乐\nremark={coupon}",
         revisit__low_score="3", revisit__enabled=None)
    birthday = settings.get("birthday_greeting")
    assert birthday["coupon_id"] == coupon.id and birthday["text"] == "生日快乐 {nickname}"
    assert birthday["template"] == {"template_id": "TPL-1", "data": {"first": "生日快乐", "remark": "{coupon}"}}
    revisit = settings.get("revisit")
    assert revisit["low_score"] == 3 and revisit["enabled"] is False
    # shown again as it was saved
    form = page_form(admin_panel)
    assert form["birthday_greeting__template_data"].splitlines() == ["first=生日快乐", "remark={coupon}"]
    assert form["birthday_greeting__coupon_id"] == str(coupon.id) and "revisit__enabled" not in form


def _refused(panel: Panel, reason: str, **changes: Any) -> None:
    before = {row.key: row.value for row in Setting.select()}
    html = save(panel, **changes)
    assert 'id="settings-error"' in html and reason in html, html[:2000]
    assert {row.key: row.value for row in Setting.select()} == before


def test_bad_values_refused_with_the_reason_and_nothing_stored(admin_panel: Panel) -> None:
    _refused(admin_panel, "会员等级（累计消费（元））：门槛须大于 0 且 VIP1 到 VIP4 递增",
             member_levels__spend_2="100", welcome_message="新的欢迎语")
    _refused(admin_panel, "VIP1–VIP4 四个门槛要么都填，要么都留空", member_levels__orders_3="")
    _refused(admin_panel, "数据保留（聊天消息保留天数）：请输入整数", retention__message_days="永久")
    _refused(admin_panel, "专属客户多久未联系退回公海（天）：应在 1 到 3650 之间", pool_return_days="0")
    _refused(admin_panel, "所选优惠券不存在", dormant_revisit__coupon_id="999")
    _refused(admin_panel, "模板字段应写成 字段=值", coupon_reminder__template_id="T", coupon_reminder__template_data="oops")
    _refused(admin_panel, "启用时需填写消息内容或模板 ID", birthday_greeting__text="")
    assert settings.get("welcome_message") == settings.DEFAULTS["welcome_message"]


def test_html_in_a_value_is_shown_as_text(admin_panel: Panel) -> None:
    evil = "<script>alert(1)</script>"
    save(admin_panel, birthday_greeting__text=evil, member_levels__message=evil,
         coupon_reminder__template_id="T", coupon_reminder__template_data=f"x={evil}")
    assert settings.get("birthday_greeting")["text"] == evil
    html = admin_panel.get("/admin/settings/").get_data(as_text=True)
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    refused = save(admin_panel, pool_return_days=evil)
    assert evil not in refused and 'id="settings-error"' in refused
