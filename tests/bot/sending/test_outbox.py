"""The outbox's bookkeeping: outcomes by meaning, back-off, progress of split sends,
claims that expire, released claims."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from bot.sending import outbox, send_window
from bot.core import clock
from bot.core.models import Agent, Customer, Message, Outbox
from bot.sending.results import SendResult


class Scripted:
    """A sender that answers from a script, recording what it was asked to send."""

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        self.sent.append((recipient, dict(content)))
        return self.results.pop(0) if self.results else SendResult.ok()


def _row(key: str = "k1") -> Outbox:
    assert outbox.enqueue(key, "mp", "o_user", {"kind": "text", "text": "您好"})
    return Outbox.get(Outbox.key == key)


def test_enqueue_twice_is_one_row(database) -> None:
    assert outbox.enqueue("same", "mp", "o1", {"kind": "text", "text": "a"})
    assert not outbox.enqueue("same", "mp", "o1", {"kind": "text", "text": "a"})
    assert Outbox.select().count() == 1


def test_transient_error_backs_off_then_sends(database, fake_clock) -> None:
    _row()
    sender = Scripted(SendResult("retry", "-1 system error"))
    assert outbox.deliver_due({"mp": sender}) == 1
    row = Outbox.get()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "-1 system error")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=outbox.backoff_seconds(1))
    assert outbox.deliver_due({"mp": sender}) == 0  # not due yet
    fake_clock.advance(seconds=outbox.backoff_seconds(1))
    assert outbox.deliver_due({"mp": sender}) == 1
    assert Outbox.get().status == "sent" and len(sender.sent) == 2


def test_retry_after_is_respected(database, fake_clock) -> None:
    _row()
    outbox.deliver_due({"mp": Scripted(SendResult("retry", "45009 quota", retry_after=60))})
    assert Outbox.get().next_attempt_at == clock.now() + timedelta(seconds=60)


def test_window_closed_and_limit_reached_are_kept_not_retried(database, fake_clock) -> None:
    _row("a")
    _row("b")
    sender = Scripted(SendResult("window_closed", "45015 out of time"), SendResult("limit_reached", "45047"))
    outbox.deliver_due({"mp": sender})
    assert {r.key: r.status for r in Outbox.select()} == {"a": "window_closed", "b": "limit_reached"}
    fake_clock.advance(hours=1)
    assert outbox.deliver_due({"mp": sender}) == 0


def test_permanent_failure_keeps_the_platforms_message(database) -> None:
    _row()
    outbox.deliver_due({"mp": Scripted(SendResult("failed", "40003 invalid openid"))})
    row = Outbox.get()
    assert (row.status, row.last_error) == ("failed", "40003 invalid openid")


def test_too_many_transient_errors_fail(database, fake_clock) -> None:
    _row()
    sender = Scripted(*[SendResult("retry", "-1 busy")] * 3)
    for _ in range(3):
        outbox.deliver_due({"mp": sender}, max_attempts=3)
        fake_clock.advance(hours=1)
    row = Outbox.get()
    assert row.status == "failed" and row.attempts == 3


def test_progress_of_a_split_send_is_kept_for_the_retry(database, fake_clock) -> None:
    _row()
    sender = Scripted(SendResult("retry", "-1 busy", parts_sent=2))
    outbox.deliver_due({"mp": sender})
    assert Outbox.get().content["parts_sent"] == 2
    fake_clock.advance(hours=1)
    outbox.deliver_due({"mp": sender})
    assert sender.sent[-1][1]["parts_sent"] == 2  # the sender resumes after part 2
    assert Outbox.get().status == "sent"


def test_a_dead_senders_claim_expires_and_a_release_is_immediate(database, fake_clock) -> None:
    _row("a")
    _row("b")
    claimed = outbox.claim(10, ("mp",))
    assert len(claimed) == 2 and outbox.claim(10, ("mp",)) == []
    assert outbox.release([claimed[0].id]) == 1
    assert [r.key for r in outbox.claim(10, ("mp",))] == ["a"]
    fake_clock.advance(seconds=outbox.LEASE_SECONDS + 1)
    assert [r.key for r in outbox.claim(10, ("mp",))] == ["a", "b"]


# --- the platforms' send limits, checked before sending (bot/sending/send_window.py) -------------------

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
TEXT = {"kind": "text", "text": "您好"}


def decide(channel_kind: str, content: Mapping[str, Any] = TEXT, *, ago: timedelta = timedelta(minutes=1),
           sent: int = 0, parts: int = 1) -> str:
    result = send_window.decide(channel_kind, content, parts, NOW - ago, sent, NOW)
    return "send" if result is None else result.outcome


def test_the_limits_are_the_platforms() -> None:
    assert send_window.CUSTOMER_SERVICE_WINDOW == timedelta(hours=48)
    assert send_window.KF_MESSAGES_PER_CUSTOMER_MESSAGE == 5


def test_window_boundary_is_48_hours_on_both_wechat_kinds() -> None:
    for kind in ("wechat_mp", "wechat_kf"):
        assert decide(kind, ago=timedelta(hours=47, minutes=59)) == "send"
        assert decide(kind, ago=timedelta(hours=48)) == "send"  # inclusive, like the campaign fan-out
        assert decide(kind, ago=timedelta(hours=48, minutes=1)) == "window_closed"
    refused = send_window.decide("wechat_mp", TEXT, 1, NOW - timedelta(hours=48, minutes=1), 0, NOW)
    assert refused is not None and "before sending" in refused.error and "48 h 01 min" in refused.error


def test_kf_allows_five_messages_per_customer_message() -> None:
    assert decide("wechat_kf", sent=4) == "send"  # the 5th
    assert decide("wechat_kf", sent=5) == "limit_reached"  # the 6th
    assert decide("wechat_mp", sent=50) == "send"  # the 公众号 has no per-message count


def test_parts_of_a_split_text_each_count() -> None:
    assert decide("wechat_kf", sent=3, parts=2) == "send"  # parts 4 and 5
    assert decide("wechat_kf", sent=3, parts=3) == "limit_reached"  # refused whole, not cut after part 5
    assert decide("wechat_kf", sent=0, parts=6) == "limit_reached"


def test_templates_mass_sends_and_the_kf_welcome_are_not_limited() -> None:
    long_ago = timedelta(days=30)
    assert decide("wechat_mp", {"kind": "template", "template_id": "T"}, ago=long_ago) == "send"
    assert decide("wechat_mp", {"kind": "mass", "msgtype": "text", "text": "促销"}, ago=long_ago) == "send"
    assert decide("wechat_kf", {**TEXT, "welcome_code": "WC"}, ago=long_ago, sent=9) == "send"
    for kind in ("image", "news", "text"):  # the custom-send kinds are
        assert decide("wechat_mp", {"kind": kind}, ago=long_ago) == "window_closed"


def test_other_channel_kinds_and_unknown_history_are_not_limited() -> None:
    for kind in ("web", "wecom", ""):
        assert decide(kind, ago=timedelta(days=30), sent=99) == "send"
    assert send_window.decide("wechat_kf", TEXT, 1, None, 99, NOW) is None  # the platform decides


def _customer_wrote(channel: str, user: str, when: datetime, kind: str = "text") -> Customer:
    customer = Customer.get_or_none((Customer.channel == channel) & (Customer.external_id == user))
    if customer is None:
        customer = Customer.create(channel=channel, external_id=user, last_inbound_at=when)
    else:
        Customer.update(last_inbound_at=when).where(Customer.id == customer.id).execute()
    Message.create(channel=channel, external_id=f"in:{user}:{when.isoformat()}:{kind}", customer=customer,
                   direction="in", author="customer", peer_id=user, kind=kind, created_at=when)
    return customer


def _sent(key: str, channel: str, user: str, when: datetime, **content: Any) -> None:
    assert outbox.enqueue(key, channel, user, {"kind": "text", "text": "好的", **content})
    Outbox.update(status="sent", sent_at=when).where(Outbox.key == key).execute()


def _parts(content: Mapping[str, Any]) -> int:
    return int(content.get("parts", 1)) - int(content.get("parts_sent") or 0)


def _check(channel: str, kind: str, user: str, content: Mapping[str, Any] = TEXT) -> str:
    result = send_window.check(channel, kind, user, content, _parts)
    return "send" if result is None else result.outcome


def test_kf_counts_parts_delivered_since_the_last_message_and_resets_when_the_customer_writes(database,
                                                                                               fake_clock) -> None:
    start = fake_clock.now()
    _customer_wrote("kf", "wm_1", start)
    _sent("before", "kf", "wm_1", start - timedelta(minutes=1))  # before the message: not counted
    _sent("welcome", "kf", "wm_1", start, welcome_code="WC")  # send_msg_on_event: not counted
    fake_clock.advance(minutes=1)
    _sent("a", "kf", "wm_1", fake_clock.now(), parts=3)  # a split text: 3 messages
    _sent("b", "kf", "wm_1", fake_clock.now(), parts=2, parts_sent=1)  # resumed: 1 in its last attempt
    assert outbox.enqueue("failed", "kf", "wm_1", {"kind": "text", "text": "x"})  # not delivered: not counted
    Outbox.update(status="failed").where(Outbox.key == "failed").execute()
    _sent("other", "kf", "wm_2", fake_clock.now())  # another customer
    assert _check("kf", "wechat_kf", "wm_1") == "send"  # 4 sent: the 5th passes
    assert _check("kf", "wechat_kf", "wm_1", {**TEXT, "parts": 2}) == "limit_reached"
    _sent("c", "kf", "wm_1", fake_clock.now())
    assert _check("kf", "wechat_kf", "wm_1") == "limit_reached"  # the 6th
    fake_clock.advance(minutes=1)
    _customer_wrote("kf", "wm_1", fake_clock.now(), kind="event")  # entering the session resets nothing
    assert _check("kf", "wechat_kf", "wm_1") == "limit_reached"
    fake_clock.advance(minutes=1)
    _customer_wrote("kf", "wm_1", fake_clock.now())  # the customer writes again: 5 more
    assert _check("kf", "wechat_kf", "wm_1") == "send"
    fake_clock.advance(hours=48, minutes=1)
    assert _check("kf", "wechat_kf", "wm_1") == "window_closed"


def test_kf_window_starts_at_the_last_message_not_at_entering_the_session(database, fake_clock) -> None:
    _customer_wrote("kf", "wm_1", fake_clock.now())
    fake_clock.advance(hours=47)
    _customer_wrote("kf", "wm_1", fake_clock.now(), kind="event")
    fake_clock.advance(hours=2)
    assert _check("kf", "wechat_kf", "wm_1") == "window_closed"
    _customer_wrote("kf", "wm_2", fake_clock.now(), kind="event")  # entered, never wrote: unknown
    assert _check("kf", "wechat_kf", "wm_2") == "send"


def test_mp_window_follows_the_customers_last_interaction(database, fake_clock) -> None:
    _customer_wrote("mp", "o_1", fake_clock.now() - timedelta(hours=48, minutes=1))
    _customer_wrote("mp", "o_2", fake_clock.now() - timedelta(hours=47, minutes=59), kind="event")  # a menu click
    assert _check("mp", "wechat_mp", "o_1") == "window_closed"
    assert _check("mp", "wechat_mp", "o_1", {"kind": "template", "template_id": "T"}) == "send"
    assert _check("mp", "wechat_mp", "o_2") == "send"
    assert _check("mp", "wechat_mp", "o_unknown") == "send"  # no customer row (e.g. an agent): the platform decides
    assert _check("web", "web", "o_1") == "send"


# --- every delivery path applies the same check: the synchronous one -------------------------


class Plan:
    """What a sender's `plan` returns (the check reads `messages`)."""

    def __init__(self, messages: int) -> None:
        self.messages = messages


class LimitedSender(Scripted):
    """A synchronous sender on a WeChat channel kind, with a plan like the WeChat senders':
    `parts` platform messages per content, less the `parts_sent` of an earlier attempt."""

    def __init__(self, channel_kind: str, *results: SendResult) -> None:
        super().__init__(*results)
        self.channel_kind = channel_kind
        self.planned: list[int] = []

    def plan(self, content: Mapping[str, Any]) -> Plan:
        return Plan(_parts(content))

    def send(self, recipient: str, content: Mapping[str, Any], planned: Plan | None = None) -> SendResult:
        assert planned is not None, "a sender with a plan gets it back"
        self.planned.append(planned.messages)
        return super().send(recipient, content)


def test_the_synchronous_path_refuses_outside_the_mp_window_without_calling(database, fake_clock) -> None:
    _customer_wrote("mp", "o_old", fake_clock.now() - timedelta(hours=48, minutes=1))
    _customer_wrote("mp", "o_new", fake_clock.now() - timedelta(hours=48))
    m = Message.create(channel="mp", external_id="re:1:0", direction="out", author="bot", peer_id="o_old",
                       text="您好", state="queued")
    assert outbox.enqueue("old", "mp", "o_old", TEXT, message=m)
    assert outbox.enqueue("template", "mp", "o_old", {"kind": "template", "template_id": "T"})
    assert outbox.enqueue("new", "mp", "o_new", TEXT)
    sender = LimitedSender("wechat_mp")
    assert outbox.deliver_due({"mp": sender}) == 3
    rows = {r.key: r for r in Outbox.select()}
    assert {k: r.status for k, r in rows.items()} == {"old": "window_closed", "template": "sent", "new": "sent"}
    assert "before sending" in rows["old"].last_error and "48 h 01 min" in rows["old"].last_error
    assert Message.get_by_id(m.id).state == "window_closed"
    assert [r for r, _ in sender.sent] == ["o_old", "o_new"]  # the template and the one inside: no call for "old"
    fake_clock.advance(hours=1)
    assert outbox.deliver_due({"mp": sender}) == 0  # not retried


def test_the_synchronous_path_counts_kf_parts_and_sends_what_it_counted(database, fake_clock) -> None:
    _customer_wrote("kf", "wm_1", fake_clock.now())
    fake_clock.advance(minutes=1)
    for key, content in [("a", {**TEXT, "parts": 3}), ("b", {**TEXT, "parts": 3, "parts_sent": 1}),
                         ("c", TEXT), ("w", {**TEXT, "welcome_code": "WC"})]:
        assert outbox.enqueue(key, "kf", "wm_1", content)
    sender = LimitedSender("wechat_kf")
    outbox.deliver_due({"kf": sender})
    assert {r.key: r.status for r in Outbox.select()} == {
        "a": "sent", "b": "sent",  # 3 + the 2 parts left of a resumed row = 5
        "c": "limit_reached",  # the 6th
        "w": "sent"}  # the welcome is not counted
    assert sender.planned == [3, 2, 1]  # each send got the plan its check counted
    assert "(5 already sent)" in Outbox.get(Outbox.key == "c").last_error


def test_a_check_that_cannot_read_the_history_is_retried_later(database, fake_clock, monkeypatch) -> None:
    def broken(*args: Any) -> send_window.History:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(send_window, "history", broken)
    assert outbox.enqueue("k", "mp", "o_1", TEXT)
    sender = LimitedSender("wechat_mp")
    outbox.deliver_due({"mp": sender})
    row = Outbox.get(Outbox.key == "k")
    assert (row.status, row.attempts) == ("pending", 1) and "send-limit check failed" in row.last_error
    assert sender.sent == []


def test_content_the_sender_cannot_plan_fails_with_the_reason(database) -> None:
    class Unplannable(LimitedSender):
        def plan(self, content: Mapping[str, Any]) -> Plan:
            raise ValueError(f"parts_sent must be a whole number of parts, got {content['parts_sent']!r}")

    assert outbox.enqueue("k", "mp", "o_1", {**TEXT, "parts_sent": "x"})
    sender = Unplannable("wechat_mp")
    outbox.deliver_due({"mp": sender})
    row = Outbox.get(Outbox.key == "k")
    assert row.status == "failed" and "content cannot be sent" in row.last_error and "'x'" in row.last_error
    assert sender.sent == []


def test_senders_without_a_kind_or_plan_are_called_as_before(database) -> None:
    assert outbox.enqueue("k", "mp", "o_unknown", TEXT)
    sender = Scripted()  # e.g. the web channel's sender
    assert outbox.deliver_due({"mp": sender}) == 1
    assert Outbox.get(Outbox.key == "k").status == "sent" and sender.sent == [("o_unknown", TEXT)]


# --- agents: the same window, from their own messages ----------------------------------------


def _agent_wrote(channel: str, user: str, when: datetime, kind: str = "text") -> Agent:
    agent = Agent.get_or_none((Agent.channel == channel) & (Agent.im_user_id == user))
    if agent is None:
        agent = Agent.create(name=f"agent-{user}", channel=channel, im_user_id=user)
    Message.create(channel=channel, external_id=f"in:{user}:{when.isoformat()}:{kind}", agent=agent,
                   direction="in", author="agent", peer_id=user, kind=kind, created_at=when)
    return agent


def test_an_agents_window_follows_their_own_last_message(database, fake_clock) -> None:
    _agent_wrote("mp", "o_mei", fake_clock.now() - timedelta(hours=48, minutes=1))
    assert _check("mp", "wechat_mp", "o_mei") == "window_closed"
    _agent_wrote("mp", "o_mei", fake_clock.now() - timedelta(hours=48), kind="event")  # a menu click counts on 公众号
    assert _check("mp", "wechat_mp", "o_mei") == "send"
    _agent_wrote("mp", "o_li", fake_clock.now() - timedelta(days=3))
    _customer_wrote("mp", "o_li", fake_clock.now() - timedelta(days=5))  # once a customer too: the later counts
    assert _check("mp", "wechat_mp", "o_li") == "window_closed"
    _customer_wrote("mp", "o_li", fake_clock.now() - timedelta(hours=1))
    assert _check("mp", "wechat_mp", "o_li") == "send"
    assert _check("mp", "wechat_mp", "o_nobody") == "send"  # unknown: the platform decides


def test_a_kf_agent_has_the_window_and_the_count_from_their_messages_not_events(database, fake_clock) -> None:
    _agent_wrote("kf", "wm_mei", fake_clock.now())
    fake_clock.advance(minutes=1)
    for n in range(5):
        _sent(f"s{n}", "kf", "wm_mei", fake_clock.now())
    assert _check("kf", "wechat_kf", "wm_mei") == "limit_reached"
    _agent_wrote("kf", "wm_mei", fake_clock.now(), kind="event")  # entering the session: no reset
    assert _check("kf", "wechat_kf", "wm_mei") == "limit_reached"
    fake_clock.advance(minutes=1)
    _agent_wrote("kf", "wm_mei", fake_clock.now())
    assert _check("kf", "wechat_kf", "wm_mei") == "send"
    fake_clock.advance(hours=48, minutes=1)
    assert _check("kf", "wechat_kf", "wm_mei") == "window_closed"


class _PolledSender:
    """A channel whose people read the message table (as the web chat does)."""

    polled = True
    calls = 0

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        self.calls += 1
        return SendResult.ok()

    @staticmethod
    def text_of(content: Mapping[str, Any]) -> str:
        return str(content.get("text", ""))


def test_a_polled_channel_gets_a_message_row_for_a_send_that_has_none(database) -> None:
    customer = Customer.create(channel="web", external_id="v_1")
    outbox.enqueue("delivery:1", "web", "v_1", {"kind": "text", "text": "双十一满减今晚开始"})
    sender = _PolledSender()
    assert outbox.deliver_due({"web": sender}) == 1
    row = Outbox.get(Outbox.key == "delivery:1")
    message = Message.get(Message.id == row.message_id)
    assert row.status == "sent" and sender.calls == 0
    assert (message.text, message.peer_id, message.direction, message.state) == ("双十一满减今晚开始", "v_1", "out", "sent")
    assert message.customer_id == customer.id and message.external_id == "outbox:delivery:1"


def test_a_polled_send_retried_after_a_crash_keeps_one_message(database) -> None:
    outbox.enqueue("delivery:2", "web", "v_2", {"kind": "text", "text": "优惠券明天到期"})
    row = Outbox.get(Outbox.key == "delivery:2")
    outbox.post_for_polling(row, "优惠券明天到期")  # the crash came after this, before the outcome
    Outbox.update(message=None).where(Outbox.id == row.id).execute()  # as if rolled back but the row kept
    assert outbox.deliver_due({"web": _PolledSender()}) == 1
    assert Message.select().where(Message.external_id == "outbox:delivery:2").count() == 1
    assert Outbox.get(Outbox.key == "delivery:2").status == "sent"


def test_a_polled_send_that_has_its_message_is_not_written_again(database) -> None:
    reply = Message.create(channel="web", external_id="re:1:0", direction="out", author="bot", peer_id="v_3",
                           text="您好", state="queued")
    outbox.enqueue("msg:1", "web", "v_3", {"kind": "text", "text": "您好"}, message=reply)
    assert outbox.deliver_due({"web": _PolledSender()}) == 1
    assert Message.select().where(Message.peer_id == "v_3").count() == 1
    assert Message.get(Message.id == reply.id).state == "sent"


def test_polled_sends_claimed_together_are_delivered_in_one_transaction(database, monkeypatch) -> None:
    """The web chat's lines of one claim: every message row and outcome in one commit, each
    reader's waiting poll told after it; a line whose delivery fails sends the others alone."""
    from bot.core import changes

    for n in range(4):
        outbox.enqueue(f"web:{n}", "web", f"v_{n}", {"kind": "text", "text": f"第{n}条"})
    commits: list[int] = []
    real_transaction = outbox.transaction

    def counted():  # type: ignore[no-untyped-def]
        commits.append(1)
        return real_transaction()

    monkeypatch.setattr(outbox, "transaction", counted)
    told: list[str] = []
    unsubscribe = changes.subscribe_delivered(lambda channel, recipient: told.append(recipient))
    try:
        assert outbox.deliver_due({"web": _PolledSender()}) == 4
        assert len(commits) == 2  # the claim's, then the four deliveries'
        assert sorted(told) == ["v_0", "v_1", "v_2", "v_3"]
        assert [r.status for r in Outbox.select().order_by(Outbox.id)] == ["sent"] * 4
        assert Message.select().where(Message.direction == "out", Message.state == "sent").count() == 4

        class Broken(_PolledSender):
            @staticmethod
            def text_of(content: Mapping[str, Any]) -> str:
                if content["text"] == "坏的":
                    raise ValueError("unreadable content")
                return str(content["text"])

        for n, text in enumerate(["好的", "坏的", "也好"]):
            outbox.enqueue(f"web:b{n}", "web", f"w_{n}", {"kind": "text", "text": text})
        told.clear()
        assert outbox.deliver_due({"web": Broken()}) == 3
        statuses = {r.key: r.status for r in Outbox.select().where(Outbox.key.startswith("web:b"))}
        assert statuses == {"web:b0": "sent", "web:b1": "sending", "web:b2": "sent"}  # b1's claim lapses, retried
        assert sorted(told) == ["w_0", "w_2"]
        assert Message.select().where(Message.peer_id == "w_1").count() == 0  # nothing of it was kept
    finally:
        unsubscribe()

def test_a_send_is_logged_under_the_request_id_of_the_message_that_caused_it(database, caplog) -> None:
    from bot.core.logs import request_scope

    with request_scope("req-late-0001"):  # the dispatcher handling a webhook request enqueues
        assert outbox.enqueue("late", "mp", "o_user", {"kind": "text", "text": "您好"})
    assert outbox.enqueue("job", "mp", "o_user", {"kind": "text", "text": "提醒"})  # a scheduled job: no request
    assert Outbox.get(Outbox.key == "late").request_id == "req-late-0001"
    assert Outbox.get(Outbox.key == "job").request_id is None

    seen: list[str] = []

    class Noting(Scripted):
        def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
            from bot.core.logs import REQUEST_ID

            seen.append(REQUEST_ID.get())  # anything logged during the call carries it too
            return super().send(recipient, content)

    caplog.set_level("INFO", logger="kefu.outbox")
    assert outbox.deliver_due({"mp": Noting()}) == 2
    sends = {r.args["key"]: r.args for r in caplog.records if isinstance(r.args, dict) and r.args.get("event") == "send"}
    assert sends["late"]["request_id"] == "req-late-0001" and sends["late"]["status"] == "sent"
    assert sends["job"]["request_id"] == ""
    assert seen == ["req-late-0001", ""]
