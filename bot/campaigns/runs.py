"""A campaign's runs (群发): scheduling, the run's life cycle, driving it through the fan-out, its figures.

Why in the core: the admin panel, the scheduler and the CLI all start, pause and inspect
campaigns, and all must agree on the states and on "exactly once per recipient per run".
Who a campaign reaches is bot/campaigns/targets.py, what each customer reads content.py,
the checks before sending checks.py, repeats cron.py.

Each run has a key (`campaign:{id}:{fire time}`) that is the
`Delivery.job_key` of its recipients; the campaign row remembers it (`run_key`), so a
scheduler that takes over after a crash continues the same run instead of starting anew.

States: draft -> scheduled -> running <-> paused -> done (one-shot) / back to scheduled
(cron); any but done -> cancelled. Every transition is a conditional UPDATE, so two
processes (or an operator and the scheduler) cannot both win. A run is done when every
recipient has an outcome (sent, failed, in doubt or skipped): handing the last one to the
outbox is not enough, nothing may still be queued or being sent.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from datetime import date, datetime
from typing import Any, Callable, Mapping

from bot.campaigns import fanout
from bot.campaigns.checks import content_problems, preview, problems
from bot.campaigns.content import as_mass, render
from bot.campaigns.targets import CampaignError, audience_size, targets
from bot.core import clock, settings
from bot.core.models import Agent, Campaign, Customer, Delivery, Message, Outbox
from bot.sending import outbox

log = logging.getLogger("kefu.campaigns")


MAX_OUTBOX_BACKLOG = 2000  # a run waits while this many of its channel's sends are queued

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
    failed, in_doubt, skipped, total (`bot.campaigns.fanout.progress`)."""
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
