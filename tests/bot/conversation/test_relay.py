"""The agent's side: command parsing, every command as a transcript, undeliverable relays."""

from __future__ import annotations

import pytest

from bot.sending import outbox
from bot.core.models import Agent, AssignmentLog, Conversation, Customer, Faq, Outbox
from bot.sending.results import SendResult
from bot.conversation.relay import Command, parse_command
from tests.bot.conversation.test_scenarios import Shop, conversation_of, joined
from tests.factories import SHIPPING, make_agent, shop_faqs


@pytest.fixture
def shop(dispatcher, fake_clock) -> Shop:  # type: ignore[no-untyped-def]
    shop_faqs()
    return Shop(dispatcher)


@pytest.mark.parametrize("text, expected", [
    ("/list", Command("list")),
    ("列表", Command("list")),
    ("/switch #3", Command("switch", "3")),
    ("切换3", Command("switch", "3")),
    ("转接 小美", Command("transfer", "小美")),
    ("/transfer ali", Command("transfer", "ali")),
    ("备注 喜欢红色，M码", Command("note", "喜欢红色，M码")),
    ("备注：老客户", Command("note", "老客户")),
    ("#12", Command("faq", "12")),
    ("发送FAQ 4", Command("faq", "4")),
    ("/faq 4", Command("faq", "4")),
    ("公海", Command("pool")),
    ("公海 2", Command("pool", "2")),
    ("认领 7", Command("claim", "7")),
    ("/claim 7", Command("claim", "7")),
    ("私海", Command("mine")),
    ("释放 7", Command("release", "7")),
    ("下线", Command("offline")),
    ("/away", Command("away")),
    ("接入", Command("next")),
    ("/help", Command("help")),
])
def test_commands_parse(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["done", "ok 3", "next time", "列表 是什么意思", "结束了吗", "#十二", "好的 转接"])
def test_ordinary_text_is_not_a_command(text: str) -> None:
    assert parse_command(text) is None


def test_help_lists_every_command(shop: Shop) -> None:
    make_agent("小美", "mei")
    help_text = joined(shop.says("mei", "帮助"))
    for word in ("列表", "切换", "结束", "接入", "转接", "公海", "认领", "私海", "备注", "FAQ", "上线", "离开", "下线"):
        assert word in help_text


def test_list_and_switch_choose_where_text_goes(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    shop.says("u2", "转人工")
    c1, c2 = conversation_of("u1"), conversation_of("u2")
    listing = joined(shop.says("mei", "/list"))
    assert f"▶ #{c1.id}" in listing and f"#{c2.id}" in listing and "待回复" in listing
    assert "#%d" % c2.id in joined(shop.says("mei", "切换 %d" % c2.id))
    shop.says("mei", "u2 您好")
    assert shop.inbox("u2")[-1] == "u2 您好"
    assert "u2 您好" not in joined(shop.inbox("u1"))
    assert "不在您的列表中" in joined(shop.says("mei", "/switch 999"))


def test_resolve_sends_the_satisfaction_card(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    assert "已结束" in joined(shop.says("mei", "结束"))
    assert "1-5" in shop.inbox("u1")[-1]
    assert conversation_of("u1").status == "resolved"
    assert "没有选中的会话" in joined(shop.says("mei", "结束"))


def test_next_takes_the_longest_waiting_within_capacity(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei", max_open=2, status="away")
    shop.says("u1", "转人工")
    fake_clock.advance(seconds=1)
    shop.says("u2", "转人工")
    fake_clock.advance(seconds=1)
    shop.says("u3", "转人工")
    reply = joined(shop.says("mei", "接入"))
    assert "新的人工会话" in reply and conversation_of("u1").agent_id == mei.id
    assert shop.inbox("u2")[-1] == "排队进度更新：您现在排在第 1 位，请耐心等待。"
    shop.says("mei", "/next")
    assert "上限" in joined(shop.says("mei", "/next"))
    assert conversation_of("u3").status == "queued"
    shop.says("mei", "/resolve")  # frees a slot, but 小美 is away: the queue waits
    assert conversation_of("u3").status == "queued"


def test_next_with_an_empty_queue(shop: Shop) -> None:
    make_agent("小美", "mei")
    assert "没有排队" in joined(shop.says("mei", "/next"))


def test_transfer_to_a_colleague(shop: Shop) -> None:
    mei = make_agent("小美", "mei")
    ali = make_agent("阿力", "ali")
    shop.says("u1", "转人工")
    assert conversation_of("u1").agent_id == mei.id
    assert "已转接给「阿力」" in joined(shop.says("mei", "转接 阿力"))
    conversation = conversation_of("u1")
    assert conversation.agent_id == ali.id
    assert "由「小美」转接" in joined(shop.inbox("ali"))
    assert "阿力" in shop.inbox("u1")[-1]
    assert Agent.get_by_id(ali.id).current_conversation_id == conversation.id
    assert Agent.get_by_id(mei.id).current_conversation_id is None
    assert [r.end_reason for r in AssignmentLog.select().order_by(AssignmentLog.id)] == ["transfer", ""]
    shop.says("u1", "谢谢")
    assert shop.inbox("ali")[-1].endswith("谢谢")


def test_transfer_refusals(shop: Shop) -> None:
    make_agent("小美", "mei")
    make_agent("阿力", "ali", max_open=1)
    make_agent("阿强", "qiang", status="offline")
    shop.says("u1", "转人工")  # 小美
    shop.says("u2", "转人工")  # 阿力, now full
    assert "没有找到" in joined(shop.says("mei", "转接 不存在"))
    assert "不在线" in joined(shop.says("mei", "转接 阿强"))
    assert "已满" in joined(shop.says("mei", "转接 阿力"))
    assert "已经在您这里" in joined(shop.says("mei", "转接 小美"))
    assert conversation_of("u1").agent_id == Agent.get(Agent.name == "小美").id


def test_public_pool_claim_mine_and_release(shop: Shop) -> None:
    mei = make_agent("小美", "mei")
    Agent.update(max_private=1).where(Agent.id == mei.id).execute()
    shop.says("u1", "发货要多久")
    shop.says("u2", "发货要多久")
    Customer.update(is_spam=True).where(Customer.external_id == "u2").execute()
    c1 = Customer.get(Customer.external_id == "u1")
    pool = joined(shop.says("mei", "公海"))
    assert f"{c1.id}. " in pool and "web:u2" not in pool
    assert "私海" in joined(shop.says("mei", f"认领 {c1.id}"))
    assert Customer.get_by_id(c1.id).owner_agent_id == mei.id
    assert "web:u1" in joined(shop.says("mei", "私海"))
    shop.says("u3", "你好")
    c3 = Customer.get(Customer.external_id == "u3")
    assert "私海已满" in joined(shop.says("mei", f"认领 {c3.id}"))
    assert "放回公海" in joined(shop.says("mei", f"释放 {c1.id}"))
    assert Customer.get_by_id(c1.id).owner_agent_id is None


def test_note_is_kept_on_the_customer_and_shown_at_the_next_handoff(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    assert "已为" in joined(shop.says("mei", "备注 喜欢红色，M码"))
    assert "喜欢红色，M码" in Customer.get(Customer.external_id == "u1").notes
    assert shop.inbox("u1") == []  # a note is not relayed to the customer
    shop.says("mei", "/resolve")
    shop.says("u1", "5")
    shop.says("u1", "转人工")
    brief = shop.inbox("mei")[-1]
    assert "新的人工会话" in brief and "备注：" in brief and "喜欢红色，M码" in brief


def test_send_faq_answer_by_number(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    shipping = Faq.get(Faq.answer == SHIPPING)
    assert "已发送" in joined(shop.says("mei", f"#{shipping.id}"))
    assert shop.inbox("u1")[-1] == SHIPPING
    assert conversation_of("u1").first_response_at is not None
    assert "没有编号" in joined(shop.says("mei", "发送FAQ 999"))


def test_away_keeps_conversations_but_takes_no_new_ones(shop: Shop) -> None:
    mei = make_agent("小美", "mei")
    shop.says("u1", "转人工")
    assert "离开" in joined(shop.says("mei", "离开"))
    shop.says("u2", "转人工")
    assert conversation_of("u2").status == "queued"
    assert conversation_of("u1").agent_id == mei.id
    shop.says("u1", "在吗")
    assert shop.inbox("mei")[-1].endswith("在吗")


def test_an_undeliverable_relay_is_reported_back_to_the_agent(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    shop.says("mei", "亲，您的快递明天到")
    row = Outbox.select().where(Outbox.recipient == "u1").order_by(Outbox.id.desc()).get()
    claimed = [r for r in outbox.claim(100) if r.id == row.id][0]
    assert outbox.record(claimed, SendResult("window_closed", "45015 response out of time limit"), 8) == "window_closed"
    report = shop.inbox("mei")[-1]
    assert "未送达" in report and "48小时" in report and "亲，您的快递明天到" in report
    # a second report for the same row is not sent twice
    from bot.conversation.relay_delivery import report_undeliverable

    report_undeliverable(Outbox.get_by_id(row.id), "window_closed")
    assert shop.inbox("mei") == []


def test_bot_messages_that_fail_are_not_reported_to_agents(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "你好")
    outbox.enqueue("x:1", "web", "u1", {"kind": "text", "text": "hi"})
    row = outbox.claim(10)[0]
    outbox.record(row, SendResult("window_closed"), 8)
    assert shop.inbox("mei") == []
    assert Conversation.select().count() == 1


def _refused_to(user: str, key: str, text: str, status: str = "window_closed") -> None:
    assert outbox.enqueue(key, "web", user, {"kind": "text", "text": text})
    Outbox.update(status=status, last_error="not sent (checked before sending)").where(Outbox.key == key).execute()


def test_what_never_reached_the_agent_is_listed_when_they_next_write(shop: Shop, fake_clock) -> None:
    make_agent("小美", "mei")
    shop.says("mei", "/online")
    fake_clock.advance(hours=49)
    for n in range(12):
        _refused_to("mei", f"r{n}", f"[#1 顾客{n}] 第{n}条")
    _refused_to("mei", "long", "很长的一条\n" + "说明" * 100, status="limit_reached")
    _refused_to("u9", "other", "给别人的")  # another recipient: not hers
    fake_clock.advance(minutes=1)
    notice, listing = shop.says("mei", "/list")
    lines = notice.split("\n")
    assert "有 13 条消息未能送达您" in lines[0] and "48小时" in lines[0] and "条数" in lines[0]
    assert lines[1] == "（更早的 3 条未列出）"
    assert lines[2] == "· [#1 顾客3] 第3条" and lines[10] == "· [#1 顾客11] 第11条"  # the latest 10, oldest first
    assert lines[11].startswith("· 很长的一条 / 说明") and lines[11].endswith("…") and len(lines[11]) == 2 + 80 + 1
    assert "给别人的" not in notice and "您没有进行中的会话" in listing
    assert shop.says("mei", "/list") == [listing]  # told once


def test_nothing_missed_means_no_notice(shop: Shop, fake_clock) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    fake_clock.advance(minutes=1)
    listing = shop.says("mei", "/list")
    assert len(listing) == 1 and "未能送达" not in listing[0]


def test_a_moved_conversations_brief_quotes_the_customer_and_the_shop_only(shop: Shop) -> None:
    """The brief the next agent gets lists what the customer said and was told, not what went
    to the previous agent (their brief, the relayed copies), which it quoted as the agent's words."""
    make_agent("小美", "mei")
    make_agent("阿力", "ali")
    shop.says("u1", "转人工")
    shop.says("u1", "我想退货")
    shop.says("mei", "好的，请提供订单号")
    shop.says("mei", "转接 阿力")
    brief = next(text for text in shop.inbox("ali") if "新的人工会话" in text)
    assert brief.count("新的人工会话") == 1 and "【#" not in brief.split("\n", 1)[1]
    assert "顾客：我想退货" in brief and "客服：好的，请提供订单号" in brief


def test_an_agents_account_subscribing_gets_the_agents_welcome(shop: Shop) -> None:
    from bot.core.events import Inbound

    make_agent("小美", "mei")
    out = shop.dispatcher.handle(Inbound(channel="web", user_id="mei", msg_id="sub-mei", kind="event",
                                         event="subscribe")).replies
    assert len(out) == 1 and "已绑定为客服" in out[0].text and "没有选中的会话" not in out[0].text
    unsub = shop.dispatcher.handle(Inbound(channel="web", user_id="mei", msg_id="unsub-mei", kind="event",
                                           event="unsubscribe")).replies
    assert unsub == []
