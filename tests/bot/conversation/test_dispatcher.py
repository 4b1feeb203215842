import threading

from bot.core import settings
from bot.conversation.dispatcher import Dispatcher, ReplySlot, recover_pending
from bot.core.events import Inbound
from bot.core.models import Conversation, Customer, Message, Outbox, UnansweredQuestion
from tests.factories import RETURNS, SHIPPING, make_agent, shop_faqs, text


def test_faq_answer_creates_customer_and_conversation(dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    result = dispatcher.handle(text("u1", "发货要多久"))
    assert [r.text for r in result.replies] == [SHIPPING]
    assert result.replies[0].meta["faq_id"] == faqs["shipping"].id
    assert result.replies[0].meta["score"] >= 0.55
    customer = Customer.get(Customer.external_id == "u1")
    assert customer.source == "web"
    conversation = Conversation.get(Conversation.customer == customer)
    assert conversation.status == "bot"
    stored = list(Message.select().order_by(Message.id))
    assert [(m.direction, m.author) for m in stored] == [("in", "customer"), ("out", "bot")]
    assert stored[1].faq_id == faqs["shipping"].id and stored[1].state == "inline"


def test_traditional_and_fullwidth_questions_match(dispatcher: Dispatcher) -> None:
    shop_faqs()
    assert dispatcher.handle(text("u1", "發貨要多久？？")).replies[0].text == SHIPPING


def test_repeated_message_id_is_handled_once(dispatcher: Dispatcher) -> None:
    shop_faqs()
    first = dispatcher.handle(text("u1", "发货要多久", msg_id="same"))
    again = dispatcher.handle(text("u1", "发货要多久", msg_id="same"))
    assert again.duplicate and not first.duplicate
    assert [r.text for r in again.replies] == [r.text for r in first.replies]
    assert Message.select().where(Message.direction == "in").count() == 1
    assert Message.select().where(Message.direction == "out").count() == 1


def test_a_retry_rolls_back_what_it_did_before_meeting_the_key(dispatcher: Dispatcher, fake_clock) -> None:
    """The inbound key is written after the customer and the conversation are touched; a
    retry meets it there and leaves no trace (a rating it would have recorded included)."""
    shop_faqs()
    dispatcher.handle(text("u1", "发货要多久", msg_id="m1"))
    first_contact = Customer.get(Customer.external_id == "u1").last_contact_at
    opened = Conversation.get()
    fake_clock.advance(seconds=30)
    again = dispatcher.handle(text("u1", "发货要多久", msg_id="m1"))
    assert again.duplicate
    assert Customer.get(Customer.external_id == "u1").last_contact_at == first_contact
    assert Conversation.get().last_message_at == opened.last_message_at
    assert (Customer.select().count(), Conversation.select().count(), Message.select().count()) == (1, 1, 2)


def test_concurrent_retries_store_one_message_and_one_reply(dispatcher: Dispatcher) -> None:
    shop_faqs()
    results = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        results.append(dispatcher.handle(text("u1", "怎么退货", msg_id="retry-me")))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not r.duplicate for r in results) == 1
    assert Message.select().where(Message.direction == "in").count() == 1
    assert Message.select().where(Message.direction == "out").count() == 1


def test_many_workers_at_once_each_message_stored_once_and_answered(dispatcher: Dispatcher) -> None:
    """Eight workers, 80 messages each delivered twice, as kefu serve's pool under load."""
    shop_faqs()
    asks = [("发货要多久", SHIPPING), ("怎么退货", RETURNS)]
    results: dict[str, list] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(10):
            question, _ = asks[(n + i) % 2]
            msg_id = f"w{n}-{i}"
            for _ in range(2):  # the platform's retry right behind the first delivery
                result = dispatcher.handle(text(f"u{n}-{i}", question, msg_id=msg_id))
                with lock:
                    results.setdefault(msg_id, []).append(result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 80
    for msg_id, (first, retry) in results.items():
        n, i = (int(x) for x in msg_id[1:].split("-"))
        expected = asks[(n + i) % 2][1]
        assert not first.duplicate and retry.duplicate
        assert [r.text for r in first.replies] == [r.text for r in retry.replies] == [expected]
    assert Message.select().where(Message.direction == "in").count() == 80
    assert Message.select().where(Message.direction == "out").count() == 80
    assert Customer.select().count() == 80


def test_unsure_question_is_recorded_and_suggests(dispatcher: Dispatcher) -> None:
    shop_faqs()
    result = dispatcher.handle(text("u1", "你们老板是谁呀"))
    assert result.replies[0].meta.get("abstained")
    assert UnansweredQuestion.select().count() == 1


def test_card_number_answers_the_suggested_question(dispatcher: Dispatcher) -> None:
    shop_faqs()
    first = dispatcher.handle(text("u1", "发货"))
    if first.replies[0].cards:
        titles = [c.title for c in first.replies[0].cards]
        second = dispatcher.handle(text("u1", "1"))
        assert second.replies[0].text != first.replies[0].text
        assert titles[0]
    else:  # confident straight away
        assert first.replies[0].text == SHIPPING


def test_handoff_assigns_an_agent_and_notifies_them(dispatcher: Dispatcher) -> None:
    shop_faqs()
    agent = make_agent("xiaomei")
    result = dispatcher.handle(text("u1", "转人工"))
    assert "xiaomei" in result.replies[0].text
    conversation = Conversation.get()
    assert conversation.status == "assigned" and conversation.agent_id == agent.id
    to_agent = Outbox.get(Outbox.recipient == agent.im_user_id)
    assert "转人工" in to_agent.content["text"] or "新的人工会话" in to_agent.content["text"]


def test_assigned_conversation_relays_and_bot_stays_silent(dispatcher: Dispatcher) -> None:
    shop_faqs()
    agent = make_agent("xiaomei")
    dispatcher.handle(text("u1", "转人工"))
    result = dispatcher.handle(text("u1", "发货要多久"))
    # no FAQ answer: only the one 已收到 while the agent has not answered yet (issue 25)
    assert [r.meta.get("notice") for r in result.replies] == ["ack"] and result.action == "relay"
    forwarded = Outbox.select().where(Outbox.recipient == agent.im_user_id).order_by(Outbox.id.desc()).first()
    assert forwarded.content["text"].endswith("发货要多久")
    # the agent answers; it reaches the customer through the outbox
    dispatcher.handle(text(agent.im_user_id, "亲，今天就发"))
    to_customer = Outbox.select().where(Outbox.recipient == "u1").order_by(Outbox.id.desc()).first()
    assert to_customer.content["text"] == "亲，今天就发"
    assert Conversation.get().first_response_at is not None


def test_handoff_with_nobody_free_queues_with_position(dispatcher: Dispatcher) -> None:
    shop_faqs()
    make_agent("away", status="offline")
    r1 = dispatcher.handle(text("u1", "转人工"))
    r2 = dispatcher.handle(text("u2", "人工"))
    assert "1 位" in r1.replies[0].text and "2 位" in r2.replies[0].text
    assert Conversation.select().where(Conversation.status == "queued").count() == 2


def test_agent_resolve_frees_capacity_for_the_queue(dispatcher: Dispatcher) -> None:
    shop_faqs()
    agent = make_agent("solo", max_open=1)
    dispatcher.handle(text("u1", "转人工"))
    dispatcher.handle(text("u2", "转人工"))
    assert Conversation.get(Conversation.status == "queued").customer.external_id == "u2"
    dispatcher.handle(text(agent.im_user_id, "/resolve"))
    assigned = Conversation.get(Conversation.status == "assigned")
    assert assigned.customer.external_id == "u2" and assigned.agent_id == agent.id
    rating = dispatcher.handle(text("u1", "5"))
    assert "感谢" in rating.replies[0].text
    assert Conversation.get(Conversation.satisfaction.is_null(False)).satisfaction == 5


def test_late_reply_goes_to_outbox_exactly_once(dispatcher: Dispatcher) -> None:
    shop_faqs()
    slot = ReplySlot()
    assert slot.abandon()
    result = dispatcher.handle(text("u1", "发货要多久", msg_id="late"), slot)
    assert result.replies == []
    assert Outbox.select().where(Outbox.recipient == "u1").count() == 1
    retry = dispatcher.handle(text("u1", "发货要多久", msg_id="late"))
    assert retry.duplicate and retry.replies == []  # already on its way: not doubled inline


def test_pending_replies_of_a_dead_process_are_recovered(dispatcher: Dispatcher, fake_clock) -> None:
    shop_faqs()
    inbound = Message.create(channel="web", external_id="x", direction="in", author="customer", state="done")
    Message.create(channel="web", external_id="re:x:0", direction="out", author="bot", peer_id="u9",
                   text="hi", payload={"kind": "text", "text": "hi"}, state="pending", in_reply_to=inbound)
    assert recover_pending(60) == 0
    fake_clock.advance(seconds=61)
    assert recover_pending(60) == 1
    assert recover_pending(60) == 0
    assert Outbox.get().recipient == "u9"


def test_mixed_mode_hands_unsure_questions_to_humans(dispatcher: Dispatcher) -> None:
    shop_faqs()
    make_agent("xiaomei")
    settings.put("reception_mode", "mixed")
    assert dispatcher.handle(text("u1", "发货要多久")).replies[0].text == SHIPPING
    dispatcher.handle(text("u2", "你们老板是谁呀"))
    assert Conversation.get(Conversation.customer == Customer.get(Customer.external_id == "u2")).status == "assigned"


def test_unknown_kind_is_stored_and_answered_politely(dispatcher: Dispatcher) -> None:
    result = dispatcher.handle(Inbound(channel="web", user_id="u1", msg_id="k1", kind="unknown"))
    assert "已收到" in result.replies[0].text
    assert Message.get(Message.external_id == "k1").kind == "unknown"
