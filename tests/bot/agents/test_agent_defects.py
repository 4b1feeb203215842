"""Issue 22's defects on the agents' side, each as a transcript: the nobody-online message,
one announcement for every customer an agent's going offline moved, the new agent's brief,
and the CLI's offline counts, capacity and chat links on the server's own port."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from bot.core import db
from bot.cli import main
from bot.core.config import Config, ServerConfig
from bot.core.models import Agent, Conversation
from tests.bot.conversation.test_routing_cli import cli_env, invoke  # noqa: F401 (cli_env is a fixture)
from tests.bot.conversation.test_scenarios import Shop, conversation_of, joined
from tests.factories import make_agent, shop_faqs


@pytest.fixture
def shop(dispatcher, fake_clock) -> Shop:  # type: ignore[no-untyped-def]
    shop_faqs()
    return Shop(dispatcher)


def test_nobody_online_is_said_honestly_not_busy(shop: Shop) -> None:
    make_agent("小美", "mei", status="offline")
    reply = joined(shop.says("c1", "转人工"))
    assert "繁忙" not in reply
    assert "没有人工客服在线" in reply and "服务时间" in reply and "第 1 位" in reply


def test_someone_away_is_told_as_coming_back(shop: Shop) -> None:
    make_agent("小美", "mei", status="away")
    reply = joined(shop.says("c1", "转人工"))
    assert "没有人工客服在线" in reply and "暂时离开" in reply


def test_busy_is_still_busy_when_someone_is_online_and_full(shop: Shop) -> None:
    make_agent("小美", "mei", max_open=1)
    shop.says("c1", "转人工")
    assert "繁忙" in joined(shop.says("c2", "转人工"))


def test_an_agent_going_offline_moves_every_customer_alike(shop: Shop) -> None:
    """c2 waits for 小美's reply (moved when she goes offline); c1 had her reply and writes
    again later (moved then). Both reach 阿强 with the same reason, and his brief does not
    show the 已为您转接「小美」 line that named the previous agent."""
    mei = make_agent("小美", "mei")
    qiang = make_agent("阿强", "qiang", status="offline")
    shop.says("c1", "转人工")
    shop.says("c2", "转人工")
    assert conversation_of("c2").agent_id == mei.id
    shop.says("mei", "/switch " + str(conversation_of("c1").id))
    shop.says("mei", "您好，请问有什么可以帮您？")
    Agent.update(status="online").where(Agent.id == qiang.id).execute()
    shop.inbox("qiang")
    shop.says("mei", "下线")
    first = [m for m in shop.inbox("qiang") if "新的人工会话" in m]
    shop.says("c1", "我还想问一下")
    second = [m for m in shop.inbox("qiang") if "新的人工会话" in m]
    assert len(first) == 1 and len(second) == 1
    assert "（原客服已下线）" in first[0] and "（原客服已下线）" in second[0]
    for brief in first + second:
        assert "小美" not in brief, brief
    assert conversation_of("c1").agent_id == qiang.id


def test_customers_requeued_by_either_path_hear_the_same_words(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("c1", "转人工")
    shop.says("c2", "转人工")
    shop.says("mei", "/switch " + str(conversation_of("c1").id))
    shop.says("mei", "好的")
    shop.inbox("c2")
    shop.says("mei", "下线")
    by_offline = [m for m in shop.inbox("c2") if "重新排队" in m]
    by_message = [m for m in shop.says("c1", "在吗") if "重新排队" in m]
    assert by_offline and by_message
    strip = lambda text: text.split("您现在排在")[0]  # noqa: E731
    assert strip(by_offline[0]) == strip(by_message[0]) == "客服「小美」暂时离开，已为您重新排队，"


def test_cli_offline_says_how_many_went_back_to_the_queue(cli_env: dict[str, str], shop: Shop) -> None:
    make_agent("mei", "mei")
    shop.says("c1", "转人工")
    shop.says("c2", "转人工")
    shop.says("mei", "/switch " + str(conversation_of("c1").id))
    shop.says("mei", "好的")
    db.database.obj.close()
    result = invoke(cli_env, "agent", "status", "mei", "offline")
    assert result.exit_code == 0, result.output
    assert "1 conversations waiting for their reply went back to the queue" in result.output
    assert "1 kept" in result.output


def test_cli_sets_capacity_and_a_raise_serves_the_queue(cli_env: dict[str, str], shop: Shop) -> None:
    mei = make_agent("mei", "mei", max_open=1)
    shop.says("c1", "转人工")
    shop.says("c2", "转人工")
    assert conversation_of("c2").status == "queued"
    db.database.obj.close()
    result = invoke(cli_env, "agent", "capacity", "mei", "3")
    assert result.exit_code == 0, result.output
    assert "capacity 1 -> 3" in result.output and "1 queued conversations assigned" in result.output
    db.database.obj.connect(reuse_if_open=True)
    assert Agent.get_by_id(mei.id).max_open == 3
    assert Conversation.get_by_id(conversation_of("c2").id).agent_id == mei.id
    bad = CliRunner().invoke(main, ["agent", "capacity", "mei", "0"], env=cli_env)
    assert bad.exit_code != 0 and "0" in bad.output
    assert invoke(cli_env, "agent", "capacity", "nobody", "2").exit_code != 0


def test_agent_chat_links_use_the_port_the_server_runs_on(cli_env: dict[str, str], config: Config) -> None:
    """`kefu serve --port 9123` records where it listens; `kefu agent list` links there."""
    from bot.cli.server_url import record_server_url, served_url

    config = dataclasses.replace(config, data_dir=cli_env["KEFU_DATA_DIR"])
    started = dataclasses.replace(config, server=ServerConfig(host="0.0.0.0", port=9123))
    record_server_url(started)
    assert served_url(config) == "http://127.0.0.1:9123"
    invoke(cli_env, "agent", "add", "mei", "--channel", "web", "--user-id", "agent-mei")
    row = json.loads(invoke(cli_env, "agent", "list").output.splitlines()[0])
    assert row["chat_link"].startswith("http://127.0.0.1:9123/chat/web#user_id=agent-mei&token=")


def _resolved_by_agent(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("c1", "转人工")
    shop.says("mei", "/resolve")


def test_a_rating_after_a_question_in_between_is_still_the_rating(shop: Shop) -> None:
    _resolved_by_agent(shop)
    resolved = conversation_of("c1")
    shop.says("c1", "发货要多久")  # asked the bot first
    reply = joined(shop.says("c1", "5"))
    assert "感谢您的评价" in reply and "不太确定" not in reply
    assert Conversation.get_by_id(resolved.id).satisfaction == 5


def test_a_digit_long_after_the_question_is_not_a_rating(shop: Shop, fake_clock) -> None:  # type: ignore[no-untyped-def]
    _resolved_by_agent(shop)
    resolved = conversation_of("c1")
    shop.says("c1", "发货要多久")
    fake_clock.advance(hours=2)
    assert "感谢您的评价" not in joined(shop.says("c1", "5"))
    assert Conversation.get_by_id(resolved.id).satisfaction is None


def test_a_digit_that_picks_one_of_the_bots_cards_is_not_a_rating(shop: Shop) -> None:
    _resolved_by_agent(shop)
    resolved = conversation_of("c1")
    shop.says("c1", "你们的猫粮是哪个牌子的呀")  # not answered: the bot suggests questions as numbered cards
    cards = conversations_cards("c1")
    assert cards
    shop.says("c1", "1")
    assert Conversation.get_by_id(resolved.id).satisfaction is None


def conversations_cards(user: str) -> list[dict[str, str]]:
    from bot.crm import conversations

    return conversations.last_bot_cards(conversation_of(user))
