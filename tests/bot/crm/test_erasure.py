import json
from datetime import date

from bot.crm import pools
from bot.crm.erasure import ERASED_TEXT, erase, export
from bot.core.models import Conversation, Customer, CustomerTag, Message, Order, Outbox, Tag, UnansweredQuestion
from tests.bot.crm.helpers import customer, send
from tests.factories import make_agent, shop_faqs, text


def _chat(dispatcher) -> Customer:
    shop_faqs()
    dispatcher.handle(text("wx_zhang", "发货要多久"))
    dispatcher.handle(text("wx_zhang", "我的手机是13800138000，地址是北京市朝阳区"))
    c = Customer.get(Customer.external_id == "wx_zhang")
    Customer.update(name="张三", phone="13800138000", birthday=date(1990, 5, 1), address="北京市朝阳区",
                    notes="喜欢蓝色").where(Customer.id == c.id).execute()
    CustomerTag.create(customer=c, tag=Tag.create(name="VIP"))
    send(order_id="T1", user="wx_zhang", amount="99.00")
    return Customer.get_by_id(c.id)


def test_export_holds_profile_orders_and_messages(dispatcher) -> None:
    c = _chat(dispatcher)
    data = export(c)
    json.dumps(data, ensure_ascii=False)  # JSON-ready
    assert data["customer"]["name"] == "张三"
    assert data["customer"]["phone"] == "13800138000"
    assert data["tags"] == ["VIP"]
    assert [o["shop_order_id"] for o in data["orders"]] == ["T1"]
    texts = [m["text"] for m in data["messages"]]
    assert "发货要多久" in texts and any("北京市朝阳区" in t for t in texts)


def test_erase_blanks_the_person_and_keeps_the_counts(dispatcher) -> None:
    c = _chat(dispatcher)
    pools.claim(make_agent("xiaomei"), c)
    Outbox.create(key="later:1", channel="web", recipient="wx_zhang", content={"kind": "text", "text": "hi"})
    UnansweredQuestion.create(text="我的地址是北京市朝阳区", customer=c)
    before = {
        "messages": Message.select().where(Message.customer == c.id).count(),
        "in": Message.select().where(Message.direction == "in").count(),
        "faq_answers": Message.select().where(Message.faq.is_null(False)).count(),
        "conversations": Conversation.select().count(),
    }
    erase(c)
    row = Customer.get_by_id(c.id)
    assert (row.name, row.phone, row.birthday, row.address, row.notes, row.nickname) == ("", "", None, "", "", "")
    assert row.erased_at is not None and row.owner_agent_id is None and not row.subscribed
    assert row.external_id != "wx_zhang" and row.external_id.startswith("x_")
    assert CustomerTag.select().count() == 0
    # the numbers still add up
    assert Message.select().where(Message.customer == c.id).count() == before["messages"]
    assert Message.select().where(Message.direction == "in").count() == before["in"]
    assert Message.select().where(Message.faq.is_null(False)).count() == before["faq_answers"]
    assert Conversation.select().count() == before["conversations"]
    assert Order.get().amount == 99 and Order.get().customer_id == c.id
    # but nothing personal is left
    everything = [m.text for m in Message.select()] + [m.peer_id for m in Message.select()]
    assert all("北京" not in t and "13800138000" not in t and "wx_zhang" not in t for t in everything)
    assert all(m.text in (ERASED_TEXT, "") for m in Message.select().where(Message.customer == c.id))
    assert {m.peer_id for m in Message.select().where(Message.customer == c.id)} == {row.external_id}
    assert UnansweredQuestion.get().text == ERASED_TEXT
    assert Order.get().phone == "" and Order.get().platform_user_id == row.external_id
    queued = Outbox.get(Outbox.key == "later:1")
    assert queued.status == "failed" and queued.recipient != "wx_zhang"
    erase(c)  # twice: fine
    assert Customer.get_by_id(c.id).external_id == row.external_id


def test_the_same_person_writing_again_is_a_new_customer(dispatcher) -> None:
    c = _chat(dispatcher)
    erase(c)
    dispatcher.handle(text("wx_zhang", "你好"))
    fresh = Customer.get(Customer.external_id == "wx_zhang")
    assert fresh.id != c.id and fresh.order_count == 0  # the erased person's orders stay anonymous


def test_the_cli_exports_and_erases(database, database_url, tmp_path) -> None:
    from click.testing import CliRunner

    from bot.core import db
    from bot.cli import main

    c = customer("wx_li", name="李四", phone="13700137000")
    env = {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}

    def run(*args: str):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        db.database.obj.close() if not db.database.obj.is_closed() else None
        return result

    out = tmp_path / "li.json"
    assert run("customer", "export", str(c.id), str(out)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8"))["customer"]["name"] == "李四"
    assert run("customer", "erase", str(c.id)).exit_code == 1  # asks first; no answer aborts
    assert Customer.get_by_id(c.id).name == "李四"
    erased = run("customer", "erase", str(c.id), "--yes")
    assert erased.exit_code == 0, erased.output
    assert Customer.get_by_id(c.id).name == "" and Customer.get_by_id(c.id).erased_at is not None
    assert run("customer", "erase", "999", "--yes").exit_code == 1
