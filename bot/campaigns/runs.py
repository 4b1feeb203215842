"""Group campaigns (群发): who gets them, what each customer reads, and the run's life cycle.

Why in the core: the admin panel, the scheduler and the CLI all start, pause and inspect
campaigns, and all must agree on the states and on "exactly once per recipient per run".

A campaign targets a group (快闪群, 直播群, 普通群, 会员群, 兴趣群), a tag, a member level, a saved
filter (Segment) or everyone. Each run has a key (`campaign:{id}:{fire time}`) that is the
`Delivery.job_key` of its recipients; the campaign row remembers it (`run_key`), so a
scheduler that takes over after a crash continues the same run instead of starting anew.

States: draft -> scheduled -> running <-> paused -> done (one-shot) / back to scheduled
(cron); any but done -> cancelled. Every transition is a conditional UPDATE, so two
processes (or an operator and the scheduler) cannot both win. A run is done when every
recipient has an outcome (sent, failed, in doubt or skipped): handing the last one to the
outbox is not enough, nothing may still be queued or being sent.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from types import SimpleNamespace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

import peewee

from bot import fanout
from bot.sending import outbox
from bot.core import clock, settings
from bot.crm import segments
from bot.core.models import Agent, Campaign, Coupon, Customer, CustomerGroup, CustomerTag, Delivery, GroupMember, IssuedCoupon, Message, Outbox, Segment, Tag

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("kefu.campaigns")

TARGET_KINDS = ("group", "tag", "level", "segment", "all")
CONTENT_KINDS = ("text", "image", "news", "template")
GROUP_KINDS = ("快闪群", "直播群", "普通群", "会员群", "兴趣群")
LEVEL_NAMES = {0: "普通会员", 1: "VIP1", 2: "VIP2", 3: "VIP3", 4: "VIP4"}
MAX_OUTBOX_BACKLOG = 2000  # a run waits while this many of its channel's sends are queued


class CampaignError(Exception):
    """A campaign cannot do what was asked (wrong state, unknown target)."""


# --- targets ---------------------------------------------------------------------------------


def _group(value: str) -> CustomerGroup:
    group = CustomerGroup.get_or_none(CustomerGroup.id == int(value)) if value.isdigit() else None
    group = group or CustomerGroup.get_or_none(CustomerGroup.name == value)
    if group is None:
        raise CampaignError(f"没有这个客户群：{value}")
    return group


def _tag(value: str) -> Tag:
    tag = Tag.get_or_none(Tag.id == int(value)) if value.isdigit() else None
    tag = tag or Tag.get_or_none(Tag.name == value)
    if tag is None:
        raise CampaignError(f"没有这个标签：{value}")
    return tag


def _level(value: str) -> int:
    text = value.strip().upper().removeprefix("VIP")
    if not text.isdigit() or int(text) not in LEVEL_NAMES:
        raise CampaignError(f"会员等级应为 0-4 或 VIP1-VIP4：{value}")
    return int(text)


def targets(campaign: Campaign) -> peewee.Select:
    """A query whose rows start with the target customers' ids (not yet ordered or limited)."""
    kind, value = campaign.target_kind, (campaign.target_value or "").strip()
    base = Customer.select(Customer.id)
    if kind == "group":
        return base.join(GroupMember).where(GroupMember.group == _group(value).id)
    if kind == "tag":
        return base.join(CustomerTag).where(CustomerTag.tag == _tag(value).id)
    if kind == "level":
        return base.where(Customer.level == _level(value))
    if kind == "segment":
        segment = Segment.get_or_none(Segment.id == int(value)) if value.isdigit() else None
        segment = segment or Segment.get_or_none(Segment.name == value)
        if segment is None:
            raise CampaignError(f"没有这个客户筛选：{value}")
        try:
            return base.where(segments.condition(segment))  # the same filter the admin counts
        except segments.SegmentError as exc:
            raise CampaignError(f"客户筛选「{segment.name}」有误：{exc}") from None
    if kind == "all":
        return base.where(Customer.id > 0)
    raise CampaignError(f"未知的发送对象类型：{kind}")


def audience_size(campaign: Campaign) -> int:
    return targets(campaign).count()


# --- content -------------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace {name} placeholders; unknown ones (and other braces) stay as written."""
    if "{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def fill_all(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [fill_all(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_all(v, values) for k, v in value.items()}
    return value


def coupon_code(delivery_key: str) -> str:
    """A deterministic coupon code per delivery: a retried hand-over issues the same one."""
    return "K" + hashlib.sha1(delivery_key.encode()).hexdigest()[:11].upper()


def issue_coupon(coupon_id: int, customer_id: int, key: str) -> IssuedCoupon | None:
    """Issue a coupon once per `key` (idempotent); None when the coupon is gone or inactive."""
    coupon = Coupon.get_or_none((Coupon.id == coupon_id) & (Coupon.active == True))  # noqa: E712
    if coupon is None:
        return None
    code, now = coupon_code(key), clock.now()
    IssuedCoupon.insert(coupon=coupon.id, customer=customer_id, code=code, issued_at=now,
                        expires_at=now + timedelta(days=coupon.valid_days)).on_conflict_ignore().execute()
    return IssuedCoupon.get(IssuedCoupon.code == code)


def placeholder_values(customer: fanout.Person, coupon: str = "") -> dict[str, str]:
    return {"nickname": customer.nickname or customer.name or "顾客", "level": LEVEL_NAMES.get(customer.level, ""),
            "coupon": coupon}


def as_message(kind: str, content: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outbox form of a campaign's content for one kind."""
    if kind == "text":
        return {"kind": "text", "text": content["text"]} if content.get("text") else None
    if kind == "image":
        image = {k: content[k] for k in ("media_id", "url") if content.get(k)}
        return {"kind": "image", **image} if image else None
    if kind == "news":
        return {"kind": "news", "articles": list(content["articles"])} if content.get("articles") else None
    if kind == "template":
        template = content.get("template") if "template" in content else content
        if not template or not template.get("template_id"):
            return None
        return {"kind": "template", **{k: template[k] for k in ("template_id", "url", "data") if k in template}}
    return None


def render(campaign: Campaign, customer: fanout.Person, delivery_key: str) -> fanout.Rendered:
    """What one customer gets: the content within the window and the template fallback.
    A `coupon_id` in the content issues the customer a coupon for {coupon}."""
    content: Mapping[str, Any] = campaign.content or {}
    code = ""
    if content.get("coupon_id"):
        issued = issue_coupon(int(content["coupon_id"]), customer.id, delivery_key)
        code = issued.code if issued else ""
    values = placeholder_values(customer, code)
    main = as_message(campaign.content_kind, content)
    template = as_message("template", content) if campaign.content_kind != "template" and content.get("template") else None
    if campaign.content_kind == "template":
        main, template = None, main
    return fanout.Rendered(
        content=fill_all(main, values) if main else None,
        template=fill_all(template, values) if template else None,
        reason="" if (main or template) else "the campaign has no content",
        mass=as_mass(campaign),
    )


PERSONAL = ("{nickname}", "{level}", "{coupon}")


def as_mass(campaign: Campaign) -> dict[str, Any] | None:
    """The campaign as one 公众号 mass message for every follower, or None when it cannot be
    one: a text with per-customer placeholders or a coupon each, news with links (mass
    sends take uploaded articles only), templates."""
    content: Mapping[str, Any] = campaign.content or {}
    if campaign.content_kind == "text" and content.get("text") and not content.get("coupon_id"):
        text = str(content["text"])
        return None if any(p in text for p in PERSONAL) else {"kind": "mass", "msgtype": "text", "text": text}
    if campaign.content_kind == "image" and content.get("media_id"):
        return {"kind": "mass", "msgtype": "image", "image": {"media_id": content["media_id"]}}
    return None


# --- life cycle ----------------------------------------------------------------------------


def run_key(campaign_id: int, fire_time: datetime) -> str:
    """`campaign:{id}:{fire time}` in the shop's time zone with its offset (…T10:00+0800), as
    the panel shows every other time; the offset keeps keys unique across a zone change."""
    return f"campaign:{campaign_id}:{fire_time.astimezone(settings.shop_zone()).strftime('%Y-%m-%dT%H:%M%z')}"


def _transition(campaign_id: int, allowed: tuple[str, ...], to: str, **extra: Any) -> bool:
    return Campaign.update(status=to, **extra).where(
        (Campaign.id == campaign_id) & Campaign.status.in_(allowed)
    ).execute() == 1


def schedule(campaign: Campaign, confirmed_count: int | None = None) -> int:
    """draft or done -> scheduled (the scheduler picks it up within its sync interval); returns
    the recipient count. Refused when `problems` finds anything or nobody would receive it.
    With `confirmed_count` (the count the operator confirmed), refused when the audience has
    changed since. No send time means now. A paused run is resumed, not scheduled again:
    that would start a second run to the same recipients."""
    found = problems(campaign)
    if found:
        raise CampaignError("；".join(found))
    count = audience_size(campaign)
    if count == 0:
        raise CampaignError("发送对象里没有顾客（0 人），不能发送")
    if confirmed_count is not None and confirmed_count != count:
        raise CampaignError(f"发送对象现在是 {count} 人（确认时是 {confirmed_count} 人），请重新确认")
    if not _transition(campaign.id, ("draft", "done"), "scheduled"):
        raise CampaignError(f"活动当前状态为 {_status(campaign.id)}，不能安排发送")
    return count


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's 0..6 (and 7 = sun)


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field with APScheduler's meaning: crontab counts 0 (and 7) as
    Sunday, APScheduler's CronTrigger 0 as Monday, so `from_crontab("0 20 * * 5")` fired on
    Saturday. Numbers, ranges and steps become an explicit list of day names, which both
    read alike; names and `*` pass through."""
    if not re.search(r"\d", field):
        return field
    days: list[int] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            low, high = base.split("-", 1)
            first, last = _weekday_number(low), _weekday_number(high)
        else:
            first = _weekday_number(base)
            last = 6 if step_text else first
        if step < 1 or first > last:
            raise ValueError(f"day of week: {part!r}")
        days.extend(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAY_NAMES[day] for day in sorted(set(days)))


def _weekday_number(text: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text[:3])
    raise ValueError(f"day of week: {text!r}")


def crontab_trigger(cron: str, tz: Any) -> "CronTrigger":
    """APScheduler's trigger for a five-field crontab line, read as crontab reads it (the
    weekday numbers included: see `_crontab_weekdays`)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_crontab_weekdays(weekday), timezone=tz)


def _check_cron(cron: str) -> None:
    if len(cron.split()) != 5:
        raise CampaignError(f"定时表达式应为 5 段（分 时 日 月 周）：{cron}")
    try:
        crontab_trigger(cron, settings.shop_zone())
    except ValueError as exc:
        raise CampaignError(f"定时表达式有误：{cron}（{exc}）") from None


# --- checks before saving and sending ------------------------------------------------------


def placeholders(campaign: Campaign) -> list[str]:
    """The {name} placeholders the campaign's content uses, in order, each once."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.extend(n for n in _PLACEHOLDER.findall(value) if n not in found)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "coupon_id":
                    walk(item)

    walk(campaign.content or {})
    return found


def problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """Everything that would make the campaign misfire, each as a sentence for the operator:
    an unknown target, no content, a placeholder nothing fills (`{coupon}` without a coupon,
    a misspelt name), a coupon gone, a one-shot time already past, a wrong cron. The panel
    refuses to save such a campaign and `schedule` (panel and CLI) to send it."""
    return target_problems(campaign) + content_problems(campaign) + timing_problems(campaign, now)


def target_problems(campaign: Campaign) -> list[str]:
    """An unknown group, tag, level or segment."""
    try:
        targets(campaign)
    except CampaignError as exc:
        return [str(exc)]
    return []


def timing_problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """A wrong cron line, or a one-shot time already past (said in the shop's time zone)."""
    if campaign.cron:
        try:
            _check_cron(campaign.cron)
        except CampaignError as exc:
            return [str(exc)]
    elif campaign.run_at is not None and campaign.run_at <= (now or clock.now()):
        shown = campaign.run_at.astimezone(settings.shop_zone()).strftime("%Y-%m-%d %H:%M")
        return [f"发送时间 {shown} 已经过去：请改为将来的时间，或留空表示立即发送"]
    return []


PLACEHOLDER_NAMES = ("nickname", "level", "coupon")


def content_problems(campaign: Campaign) -> list[str]:
    """What in the content cannot be sent as written: nothing to send, a placeholder nothing
    fills (`{coupon}` without a coupon, a misspelt name), a coupon gone. A test send is
    refused for these too: filling in a stand-in would hide them."""
    found: list[str] = []
    content: Mapping[str, Any] = campaign.content or {}
    if as_message(campaign.content_kind, content) is None and not content.get("template"):
        found.append("活动没有可发送的内容")
    names = placeholders(campaign)
    unknown = [n for n in names if n not in PLACEHOLDER_NAMES]
    if unknown:
        found.append("无法填写的占位符：" + "、".join("{" + n + "}" for n in unknown)
                     + "（可用：" + "、".join("{" + n + "}" for n in PLACEHOLDER_NAMES) + "）")
    coupon_id = content.get("coupon_id")
    if "coupon" in names and not coupon_id:
        found.append("内容里有 {coupon}，但没有选择要发的券：请选择一张券，或删去 {coupon}")
    if coupon_id and Coupon.get_or_none((Coupon.id == int(coupon_id)) & (Coupon.active == True)) is None:  # noqa: E712
        found.append("所选的券已停用或不存在")
    return found
PREVIEW_NOTE = {"coupon": "每人一张，券码各不相同"}


def preview(campaign: Campaign, customer: Any = None) -> dict[str, Any]:
    """What one customer would read, without issuing anything: the first of the audience (or
    `customer`), each placeholder's value for them, and the filled text. A coupon shows a
    sample code of the real form (each recipient gets their own)."""
    if customer is None:
        try:
            first = targets(campaign).order_by(Customer.id).first()
        except CampaignError:
            first = None
        customer = Customer.get_by_id(first.id) if first is not None else None
    content: Mapping[str, Any] = campaign.content or {}
    sample = coupon_code(f"preview:{campaign.id}") if content.get("coupon_id") else ""
    person: Any = customer or SimpleNamespace(nickname="", name="", level=0)
    values = placeholder_values(person, sample)
    message = as_message(campaign.content_kind, content) or as_message("template", content.get("template") or {})
    return {"customer": customer,
            "values": {n: values.get(n, "{" + n + "}") for n in placeholders(campaign)},
            "message": fill_all(message, values) if message else None}


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = dict(zip(WEEKDAYS, "一二三四五六日"))
REPEATS = ("", "daily", "weekly", "monthly")


def repeat_cron(every: str, at: str, weekday: str = "mon", day: int = 1) -> str:
    """A repeat in words as a crontab line: every day / week (on weekday) / month (on day) at
    HH:MM. Weekdays are written as names: APScheduler reads a number 0 as Monday, crontab as
    Sunday, and a name means the same to both."""
    if not every:
        return ""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", (at or "").strip())
    if match is None:
        raise CampaignError(f"重复发送的时间应为 时:分（如 10:00）：{at}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if every == "daily":
        return f"{minute} {hour} * * *"
    if every == "weekly":
        if weekday not in WEEKDAYS:
            raise CampaignError(f"星期应为 mon-sun：{weekday}")
        return f"{minute} {hour} * * {weekday}"
    if every == "monthly":
        if not 1 <= int(day) <= 28:
            raise CampaignError(f"每月的日期应为 1-28（每个月都有的日子）：{day}")
        return f"{minute} {hour} {int(day)} * *"
    raise CampaignError(f"未知的重复方式：{every}")


def parse_repeat(cron: str) -> dict[str, Any] | None:
    """The repeat in words that `repeat_cron` wrote as `cron`, or None for any other line
    (an advanced cron): {"every", "at", "weekday", "day"}."""
    parts = (cron or "").split()
    if len(parts) != 5 or not parts[0].isdigit() or not parts[1].isdigit() or parts[3] != "*":
        return None
    at = f"{int(parts[1]):02d}:{int(parts[0]):02d}"
    if parts[2] == "*" and parts[4] == "*":
        return {"every": "daily", "at": at, "weekday": "mon", "day": 1}
    if parts[2] == "*" and parts[4] in WEEKDAYS:
        return {"every": "weekly", "at": at, "weekday": parts[4], "day": 1}
    if parts[2].isdigit() and parts[4] == "*":
        return {"every": "monthly", "at": at, "weekday": "mon", "day": int(parts[2])}
    return None


def describe_cron(cron: str) -> str:
    """A repeat as a shop operator says it: 每周一 10:00, 每天 09:30, 每月 1 日 20:00; any
    other line is shown as it is written, marked as cron."""
    if not cron:
        return ""
    repeat = parse_repeat(cron)
    if repeat is None:
        return f"cron：{cron}"
    if repeat["every"] == "daily":
        return f"每天 {repeat['at']}"
    if repeat["every"] == "weekly":
        return f"每周{WEEKDAY_NAMES[repeat['weekday']]} {repeat['at']}"
    return f"每月 {repeat['day']} 日 {repeat['at']}"


def start_run(campaign_id: int, fire_time: datetime | None = None) -> str | None:
    """Begin a run (scheduled -> running). The run key comes from the fire time, so the same
    fire started twice (a second scheduler, a misfire) is still one run. Returns the key,
    or None when the campaign is not scheduled or this run already happened."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None:
        return None
    key = run_key(campaign_id, fire_time or campaign.run_at or clock.now())
    started = Campaign.update(status="running", run_key=key, run_planned=False).where(
        (Campaign.id == campaign_id) & (Campaign.status == "scheduled") & (Campaign.run_key != key)
    ).execute()
    if started:
        log.info("campaign %s: run %s started", campaign_id, key)
    return key if started else None


def pause(campaign_id: int) -> None:
    if not _transition(campaign_id, ("running",), "paused"):
        raise CampaignError(f"只有发送中的活动可以暂停（当前：{_status(campaign_id)}）")


def resume(campaign_id: int) -> None:
    if not _transition(campaign_id, ("paused",), "running"):
        raise CampaignError(f"只有已暂停的活动可以继续（当前：{_status(campaign_id)}）")


def cancel(campaign_id: int) -> int:
    """Stop for good: recipients not yet reached are skipped as cancelled; returns how many."""
    if not _transition(campaign_id, ("draft", "scheduled", "running", "paused"), "cancelled"):
        raise CampaignError(f"活动当前状态为 {_status(campaign_id)}，不能取消")
    key = Campaign.get_by_id(campaign_id).run_key
    return fanout.withdraw(key, "cancelled") if key else 0


def _status(campaign_id: int) -> str:
    row = Campaign.get_or_none(Campaign.id == campaign_id)
    return row.status if row else "missing"


def _finish(campaign: Campaign) -> bool:
    """running -> done (or back to scheduled for a cron campaign) once every recipient of the
    run has an outcome; False while some are still queued or being sent."""
    fanout.sync_outcomes([campaign.run_key])
    if fanout.unsettled(campaign.run_key):
        return False
    to = "scheduled" if campaign.cron else "done"
    if _transition(campaign.id, ("running",), to):
        log.info("campaign %s: run %s done, every recipient has an outcome", campaign.id, campaign.run_key)
    return True


def drive(campaign_id: int, channel_kinds: Mapping[str, str], stop: Callable[[], bool] = lambda: False,
          batch: int = fanout.HAND_OVER_BATCH, max_batches: int | None = None,
          max_backlog: int = MAX_OUTBOX_BACKLOG, backlog_wait: float = 10.0) -> str:
    """Carry a running campaign's current run forward: plan its recipients a batch ahead and
    hand them to the outbox batch by batch, re-reading the state between batches (pause and
    cancel take effect within one batch); once all are handed over, finish the run when the
    last outcome is in. Returns why it stopped: done | sending (all handed over, outcomes
    awaited) | paused | cancelled | stopped | backlog | not running."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None or campaign.status != "running" or not campaign.run_key:
        return "not running"
    audience = targets(campaign)
    planned_all = bool(campaign.run_planned)
    batches, waited_since = 0, None
    while True:
        status = _status(campaign_id)
        if status != "running":
            return status
        if stop() or (max_batches is not None and batches >= max_batches):
            return "stopped"
        if max_backlog and _backlog() >= max_backlog:  # the senders are behind: wait for them
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since >= backlog_wait:
                return "backlog"
            time.sleep(0.05)
            continue
        waited_since = None
        if not planned_all:  # plan a little ahead of the hand-over: the first sends go out at once
            planned_all = fanout.plan(campaign.run_key, audience, campaign.id, max_batches=1)[1]
            if planned_all:  # the audience is fixed now: a later drive (a resend) plans nobody new
                Campaign.update(run_planned=True).where(Campaign.id == campaign_id).execute()
        counts = fanout.hand_over(campaign.run_key, lambda c, d: render(campaign, c, fanout.outbox_key(d)),
                                  channel_kinds, limit=batch)
        batches += 1
        if counts.queued + counts.skipped == 0 and planned_all:
            fanout.release_mass(campaign.run_key)  # the mass rows still filling go out now
            return "done" if _finish(campaign) else "sending"


def _backlog() -> int:
    """Sends due and not yet taken by a sender (retries waiting for later do not count)."""
    return Outbox.select().where((Outbox.status == "pending") & (Outbox.next_attempt_at <= clock.now())).count()


def progress(campaign: Campaign) -> dict[str, int]:
    """The current (or last) run's recipients by where they stand: queued, sending, sent,
    failed, in_doubt, skipped, total (`bot.fanout.progress`)."""
    if not campaign.run_key:
        return {}
    counts = fanout.progress(campaign.run_key)
    mass = mass_figures(campaign.run_key)
    if mass["mass_jobs"]:
        counts.update(mass)
    return counts


# MASSSENDJOBFINISH fields (stored as the report message's payload) -> our figure
MASS_REPORT_FIELDS = {"TotalCount": "mass_total", "FilterCount": "mass_filtered", "SentCount": "mass_sent",
                      "ErrorCount": "mass_errors"}
MONTHLY_MASS_PER_FOLLOWER = 4  # a 服务号 follower receives at most 4 mass sends a calendar month


def mass_figures(run_key: str) -> dict[str, int]:
    """A run's 公众号 mass jobs: how many, how many the platform accepted and reported on,
    and the report's figures summed (MASSSENDJOBFINISH: total, after the platform's filter,
    sent, errors). The report arrives as a callback (stored as a system message whose id is
    the job's MsgID) minutes after the job was accepted."""
    figures = dict.fromkeys(("mass_jobs", "mass_accepted", "mass_reported", *MASS_REPORT_FIELDS.values()), 0)
    for row in Outbox.select(Outbox.channel, Outbox.content, Outbox.status).where(
            Outbox.key.startswith(fanout.mass_prefix(run_key))):
        figures["mass_jobs"] += 1
        msg_id = str((row.content or {}).get("msg_id") or "")
        if row.status != "sent" or not msg_id:
            continue
        figures["mass_accepted"] += 1
        report = Message.get_or_none((Message.channel == row.channel) & (Message.external_id == msg_id)
                                     & (Message.author == "system"))
        if report is None:
            continue
        figures["mass_reported"] += 1
        for field_name, key in MASS_REPORT_FIELDS.items():
            try:
                figures[key] += int((report.payload or {}).get(field_name) or 0)
            except (TypeError, ValueError):
                pass
    return figures


def paths(campaign: Campaign, channel_kinds: Mapping[str, str]) -> dict[str, int]:
    """Before sending: how many of the audience each path reaches now. customer_service
    (inside the 48-hour window, or a channel without one), template (outside it, the
    campaign has a template), mass (outside it on a 公众号, as an openid-list mass send),
    unreachable (outside it, neither), refused (blocked, unsubscribed, erased); plus the
    mass jobs this month and the platform's monthly allowance per follower. Counted in SQL
    (a few COUNTs, whatever the audience's size)."""
    audience = Customer.id.in_(targets(campaign))
    refused = Customer.erased_at.is_null(False) | (Customer.blocked == True) | (Customer.subscribed == False)  # noqa: E712
    windowed = [name for name, kind in channel_kinds.items() if kind in fanout.WINDOWED_KINDS]
    mp = [name for name, kind in channel_kinds.items() if kind == fanout.MP]
    cutoff = clock.now() - fanout.CUSTOMER_SERVICE_WINDOW
    outside = (audience & ~refused & Customer.channel.in_(windowed)
               & (Customer.last_inbound_at.is_null() | (Customer.last_inbound_at < cutoff)))
    total = Customer.select().where(audience).count()
    n_refused = Customer.select().where(audience & refused).count()
    n_outside = Customer.select().where(outside).count() if windowed else 0
    n_outside_mp = Customer.select().where(outside & Customer.channel.in_(mp)).count() if mp else 0
    has_template = campaign.content_kind == "template" or bool((campaign.content or {}).get("template"))
    mass_ok = not has_template and as_mass(campaign) is not None
    month = clock.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "audience": total,
        "customer_service": 0 if campaign.content_kind == "template" else total - n_refused - n_outside,
        "template": (total - n_refused) if campaign.content_kind == "template" else (n_outside if has_template else 0),
        "mass": n_outside_mp if mass_ok else 0,
        "unreachable": 0 if has_template else n_outside - (n_outside_mp if mass_ok else 0),
        "refused": n_refused,
        "mass_jobs_this_month": Outbox.select().where(
            Outbox.key.startswith("mass:") & (Outbox.status == "sent") & (Outbox.sent_at >= month)).count(),
        "mass_per_follower_per_month": MONTHLY_MASS_PER_FOLLOWER,
    }


def resend_in_doubt(campaign_id: int) -> int:
    """Send again the current run's sends in doubt (the operator accepts that some of these
    customers may get the message twice). A finished one-shot run goes back to running so
    that it is done only when these have their outcome too; returns how many were resent."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None or not campaign.run_key:
        raise CampaignError("活动还没有发送过")
    resent = fanout.resend_in_doubt(campaign.run_key)
    if resent and campaign.status == "done":
        _transition(campaign_id, ("done",), "running")
    return resent


def send_test(campaign: Campaign, agents: list[Agent] | None = None, customer: Customer | None = None) -> int:
    """A test send to one chosen customer (as they would read it, their own nickname and
    level) or to agents (all active ones by default); returns how many were queued. Refused
    when the content has a problem. A coupon shows a sample code: nothing is issued. Each
    test send is its own outbox row (keyed by the time), so it can be repeated on purpose."""
    found = content_problems(campaign)
    if found:
        raise CampaignError("；".join(found))
    stamp = clock.now().strftime("%Y%m%dT%H%M%S.%f")
    if customer is not None:
        people: list[tuple[str, str, str, Any]] = [(f"c{customer.id}", customer.channel, customer.external_id, customer)]
    else:
        chosen = agents if agents is not None else list(Agent.select().where(Agent.active == True))  # noqa: E712
        people = [(str(a.id), a.channel, a.im_user_id,
                   SimpleNamespace(nickname=a.display_name or a.name, name=a.name, level=1)) for a in chosen]
    queued = 0
    for key, channel, user_id, person in people:
        body = preview(campaign, person)["message"]
        if body.get("kind") == "text":
            body["text"] = "【测试】" + body["text"]
        queued += outbox.enqueue(f"campaign-test:{campaign.id}:{key}:{stamp}", channel, user_id, body)
    return queued


def recipients(campaign: Campaign, status: str | None = None, after_id: int = 0, limit: int = 100) -> list[Delivery]:
    """A page of the current run's per-recipient outcomes (for the admin)."""
    query = Delivery.select(Delivery, Customer).join(Customer).where(
        (Delivery.job_key == campaign.run_key) & (Delivery.id > after_id)
    )
    if status:
        query = query.where(Delivery.status == status)
    return list(query.order_by(Delivery.id).limit(limit))


def today_in(tz_name: str) -> date:
    from zoneinfo import ZoneInfo

    return clock.now().astimezone(ZoneInfo(tz_name)).date()
