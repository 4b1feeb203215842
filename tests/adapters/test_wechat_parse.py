"""kefu's WeChat XML reading (adapters/wechat_common.py: the standard library's parser) gives
what wechatpy's `parse_message` over xmltodict gave: the same fields, the same event names,
the same Inbound, for every kind of message the platforms post, odd spacing and empty
elements included; and it refuses what must be refused."""

from __future__ import annotations

from typing import Any

import pytest
import wechatpy
import wechatpy.enterprise
import xmltodict

from adapters.wechat_common import BadRequest, parse_message, parse_xml, to_inbound

HEAD = "<ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o_fan]]></FromUserName>" \
       "<CreateTime>1796666743</CreateTime>"


def _xml(body: str) -> str:
    return f"<xml>{HEAD}{body}</xml>"


MP_MESSAGES = [
    _xml("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[发货要多久？]]></Content><MsgId>1001</MsgId>"),
    _xml("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[  前后有空格  ]]></Content><MsgId>1002</MsgId>"),
    _xml("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[]]></Content><MsgId>1003</MsgId>"),
    _xml("<MsgType><![CDATA[text]]></MsgType><Content>   </Content><MsgId>1004</MsgId>"),
    _xml("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a &lt; b <xml>]]></Content><MsgId>1005</MsgId>"),
    _xml("<MsgType><![CDATA[text]]></MsgType><Content>R&amp;D 😀</Content><MsgID>1006</MsgID>"),
    _xml("<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x/y.jpg]]></PicUrl>"
         "<MediaId><![CDATA[m1]]></MediaId><MsgId>1007</MsgId>"),
    _xml("<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format>"
         "<Recognition><![CDATA[你好]]></Recognition><MsgId>1008</MsgId>"),
    _xml("<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[m3]]></MediaId>"
         "<ThumbMediaId><![CDATA[t3]]></ThumbMediaId><MsgId>1009</MsgId>"),
    _xml("<MsgType><![CDATA[location]]></MsgType><Location_X>23.13</Location_X><Location_Y>113.26</Location_Y>"
         "<Scale>20</Scale><Label><![CDATA[广州]]></Label><MsgId>1010</MsgId>"),
    _xml("<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description>"
         "<Url><![CDATA[http://x]]></Url><MsgId>1011</MsgId>"),
    _xml("<MsgType><![CDATA[miniprogrampage]]></MsgType><Title><![CDATA[t]]></Title><MsgId>1012</MsgId>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
         "<EventKey><![CDATA[qrscene_live_0601]]></EventKey><Ticket><![CDATA[tk]]></Ticket>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
         "<EventKey><![CDATA[scanbarcode|EAN|123]]></EventKey>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[live_0601]]></EventKey>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event><EventKey><![CDATA[]]></EventKey>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MENU_1]]></EventKey>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.1</Latitude>"
         "<Longitude>113.2</Longitude><Precision>119</Precision>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>2001</MsgID>"
         "<Status><![CDATA[success]]></Status>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>2002</MsgID>"
         "<Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_waitmsg]]></Event>"
         "<EventKey><![CDATA[k]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>"
         "<ScanResult><![CDATA[r]]></ScanResult></ScanCodeInfo>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_weixin]]></Event><SendPicsInfo><Count>2</Count>"
         "<PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[b]]></PicMd5Sum></item>"
         "</PicList></SendPicsInfo>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[some_future_event]]></Event>"),
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<xml>\n  " + HEAD + "\n  <MsgType><![CDATA[text]]></MsgType>\n"
    "  <Content><![CDATA[带声明和换行]]></Content>\n  <MsgId>1013</MsgId>\n</xml>\n",
]

WECOM_MESSAGES = [
    _xml("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>3001</MsgId><AgentID>1000002</AgentID>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"
         "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
         "<ExternalUserID><![CDATA[wm_1]]></ExternalUserID><State><![CDATA[live]]></State>"
         "<WelcomeCode><![CDATA[wc]]></WelcomeCode>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event>"
         "<ChatId><![CDATA[wr_1]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>"
         "<UpdateDetail><![CDATA[add_member]]></UpdateDetail><MemChangeCnt>2</MemChangeCnt>"
         "<MemChangeList><Item><![CDATA[wm_1]]></Item><Item><![CDATA[wm_2]]></Item></MemChangeList>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event>"
         "<ChatId><![CDATA[wr_1]]></ChatId><MemChangeList><Item><![CDATA[wm_9]]></Item></MemChangeList>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey>"),
]


def _theirs(xml: str, enterprise: bool) -> tuple[str, dict[str, Any]]:
    """What the earlier code read: wechatpy's message (its `event`, else the Event field) and fields."""
    message = (wechatpy.enterprise.parse_message if enterprise else wechatpy.parse_message)(xml)
    fields = dict(message._data)
    return (getattr(message, "event", "") or (fields.get("Event") or "")).lower(), fields


@pytest.mark.parametrize("xml, enterprise", [(m, False) for m in MP_MESSAGES] + [(m, True) for m in WECOM_MESSAGES])
def test_the_same_fields_event_and_inbound_as_wechatpy_gave(xml: str, enterprise: bool) -> None:
    event, fields = parse_message(xml.encode(), enterprise=enterprise)
    their_event, their_fields = _theirs(xml, enterprise)
    assert fields == their_fields
    if fields.get("MsgType") == "event":
        assert event == their_event
    else:
        assert event == ""
    assert to_inbound("mp", event, fields) == to_inbound("mp", their_event, their_fields)


def test_the_envelope_reads_as_xmltodict_read_it() -> None:
    envelope = "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[abc+/==]]></Encrypt></xml>"
    assert parse_xml(envelope.encode()) == dict(xmltodict.parse(envelope)["xml"])


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<xml>", b"<xml></xml>", b"<root><a>1</a></root>", b"<xml>text only</xml>",
    b"<?xml version='1.0'?><!DOCTYPE xml [<!ENTITY e 'x'>]><xml><a>&e;</a></xml>",
    b"<xml><a>\xff\xfe</a></xml>", b"<xml><a>1</a></xml><xml><a>2</a></xml>",
])
def test_what_is_not_a_message_envelope_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_xml(body)


@pytest.mark.parametrize("body", [
    _xml("<Content><![CDATA[no type]]></Content>"),
    _xml("<MsgType></MsgType><Content>x</Content>"),
    _xml("<MsgType><![CDATA[event]]></MsgType><Event></Event>"),
])
def test_a_message_without_a_type_or_with_an_empty_event_is_refused(body: str) -> None:
    with pytest.raises(BadRequest):
        parse_message(body.encode())


def test_a_wecom_event_without_event_is_refused() -> None:
    with pytest.raises(BadRequest):
        parse_message(_xml("<MsgType><![CDATA[event]]></MsgType>").encode(), enterprise=True)


# -- and the passive reply kefu writes ---------------------------------------------------------

@pytest.mark.parametrize("text", ["亲，一般48小时内发货哦😀", "a ]]> b ]]]]> c <xml>&amp;", "", "x" * 2000])
def test_a_passive_reply_renders_and_encrypts_so_wechatpy_reads_it_back(text: str) -> None:
    import base64

    from wechatpy.crypto import WeChatCrypto

    from adapters.wechat_common import encrypt_reply, render_passive
    from bot.core.events import Reply

    key = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode().rstrip("=")
    crypto = WeChatCrypto("tok", key, "wx_app")
    xml = render_passive(Reply(text=text), to_user="o_fan", from_user="gh_shop", agent_id="1000002")
    sealed = encrypt_reply(crypto.key, "tok", "wx_app", xml, "nonce-1", "1796666743")
    envelope = parse_xml(sealed.encode())
    opened = crypto.decrypt_message(sealed, envelope["MsgSignature"], "1796666743", "nonce-1")  # checks the signature
    assert opened == xml
    fields = dict(xmltodict.parse(opened)["xml"])
    assert (fields["ToUserName"], fields["FromUserName"], fields["MsgType"], fields["AgentID"]) == (
        "o_fan", "gh_shop", "text", "1000002")
    assert (fields.get("Content") or "") == text.strip()  # a "]]>" in the text survives whole
    other = encrypt_reply(crypto.key, "tok", "wx_app", xml, "nonce-1", "1796666743")
    assert parse_xml(other.encode())["Encrypt"] != envelope["Encrypt"]  # the 16 random bytes vary it
