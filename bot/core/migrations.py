"""Schema versions: `kefu init` creates or upgrades the schema, and is safe to run twice.

Why hand-rolled on top of `playhouse.migrate`: the list of steps is short, ordered and
reviewed like code; each step runs in a transaction and bumps `schema_version`, and on
PostgreSQL an advisory lock keeps two processes starting at once from racing.

Rule for new steps: step 1 creates the tables as the models define them *today*, so a
later step that adds a column must check first (`add_column_if_missing`): a fresh database
already has it from step 1.
"""

from __future__ import annotations

from typing import Callable

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator, migrate

from bot.core.db import advisory_xact_lock, database, transaction
from bot.core.models import ALL_MODELS


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField()
    name = peewee.CharField(max_length=128)

    class Meta:
        database = database
        table_name = "schema_version"


Step = Callable[[peewee.Database, SchemaMigrator], None]


def _initial(db: peewee.Database, migrator: SchemaMigrator) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _login_throttle(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import LoginThrottle

    db.create_tables([LoginThrottle], safe=True)


def _crm_orders(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import SeenRequest

    db.create_tables([SeenRequest], safe=True)
    # unlinked orders are looked up by the buyer's IM identity on every customer contact
    db.execute_sql("CREATE INDEX IF NOT EXISTS shop_order_buyer ON shop_order (channel, platform_user_id)")


def _assignment_log(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import AssignmentLog

    db.create_tables([AssignmentLog], safe=True)


def _jobs(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Campaign, IssuedCoupon

    add_column_if_missing(db, migrator, "campaign", "run_key", Campaign.run_key)
    add_column_if_missing(db, migrator, "issued_coupon", "reminded_at", IssuedCoupon.reminded_at)
    # the fan-out claims a run's pending deliveries in id order
    db.execute_sql("CREATE INDEX IF NOT EXISTS delivery_job_status ON delivery (job_key, status, id)")


def _faq_engine(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import AnswerRating, FaqEmbedding

    db.create_tables([FaqEmbedding, AnswerRating], safe=True)


def _send_limits(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # the pre-send check counts a recipient's sends since the customer's last message
    # (bot/sending/send_window.py); without it every 微信客服 send read the channel's whole outbox
    db.execute_sql("CREATE INDEX IF NOT EXISTS outbox_recipient_sent ON outbox (channel, recipient, sent_at)")


def _send_attempts(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Campaign, Outbox

    # a claim's owner and the attempt under way (bot/sending/outbox.py): after a crash a send whose
    # outcome is unknown is told apart from one that was only claimed
    add_column_if_missing(db, migrator, "outbox", "claim_token", Outbox.claim_token)
    add_column_if_missing(db, migrator, "outbox", "attempted_at", Outbox.attempted_at)
    add_column_if_missing(db, migrator, "campaign", "run_planned", Campaign.run_planned)
    # expired claims are looked for at every claim
    db.execute_sql("CREATE INDEX IF NOT EXISTS outbox_status_claim ON outbox (status, claimed_until)")


def _admin_sessions(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import AdminUser

    # a panel session names the version it was opened under; a bump ends it (admin/auth.py)
    add_column_if_missing(db, migrator, AdminUser._meta.table_name, "session_version", AdminUser.session_version)


def _unanswered_resolved_at(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import UnansweredQuestion

    # the dashboard charts groups and questions resolved per day by when they were handled
    # (bot/faq/learning.py stamps it); rows resolved earlier keep None: their time is unknown
    add_column_if_missing(db, migrator, UnansweredQuestion._meta.table_name, "resolved_at",
                          UnansweredQuestion.resolved_at)


def _outbox_request_id(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Outbox

    # the request id of the message that caused a send, logged by the sender (bot/sending/outbox.py);
    # nullable, so adding it rewrites no row: sends written before it simply have none
    add_column_if_missing(db, migrator, "outbox", "request_id", Outbox.request_id)


def _channel_codes(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import ChannelCode, ChannelCodeScan

    # 渠道活码 and who scanned each (UNIQUE(code, customer): a code applies once per customer)
    db.create_tables([ChannelCode, ChannelCodeScan], safe=True)


def _admin_user_agent(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import AdminUser

    # a panel user with the role "agent" works as this Agent in the workbench (issue 22);
    # nullable, so existing admins and operators keep working unchanged
    add_column_if_missing(db, migrator, AdminUser._meta.table_name, "agent_id", AdminUser.agent_id)


def _agent_last_seen_and_message_index(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Agent

    # presence from real activity (issue 25: agents showed 在线 with nobody connected);
    # None until an agent is next seen (bot/agents/last_seen.py)
    add_column_if_missing(db, migrator, Agent._meta.table_name, "last_seen_at", Agent.last_seen_at)
    # the dashboard's shop figures for a range (bot/agents/kpi_shop.py: 咨询人数, the hour chart) read
    # only customers' messages by time: a partial index holding just those columns answers them
    # without a table lookup per message (2.5x on 40,000 messages), for half the rows' upkeep
    db.execute_sql("CREATE INDEX IF NOT EXISTS message_customer_in ON message (created_at, customer_id, kind) "
                   "WHERE direction = 'in' AND author = 'customer'")


def _quick_phrases(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import QuickPhrase

    # the workbench's 快捷短语, the shop's and each agent's own (issue 22)
    db.create_tables([QuickPhrase], safe=True)


FAQ_CATEGORIES = ("聊天互动", "商品问题", "活动优惠", "购买操作", "物流问题", "售后问题", "更多问题")


def _faq_categories(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Faq, FaqCategory

    # categories managed in the panel (issue 25): the seven that were fixed in code, then every
    # category an FAQ already uses (an imported file's own), so no FAQ loses its category
    db.create_tables([FaqCategory], safe=True)
    used = [c for (c,) in Faq.select(Faq.category).distinct().order_by(Faq.category).tuples() if c]
    names = list(dict.fromkeys([*FAQ_CATEGORIES, *used]))
    have = {c.name for c in FaqCategory.select(FaqCategory.name)}
    rows = [{"name": n, "position": i} for i, n in enumerate(names) if n not in have]
    if rows:
        FaqCategory.insert_many(rows).execute()


def _wecom_contacts(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import Customer, WecomContact

    # WeCom customer contact (issue 18): the unionid that joins a 公众号 customer and a WeCom
    # external contact, and the external contacts with their follow-users
    add_column_if_missing(db, migrator, "customer", "unionid", Customer.unionid)
    if "customer_unionid" not in {i.name for i in db.get_indexes("customer")}:
        migrate(migrator.add_index("customer", ("unionid",), False))
    db.create_tables([WecomContact], safe=True)


def _wecom_groups(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import WecomGroupChat

    # WeCom customer groups (issue 18): each chat_id linked to the kefu group that mirrors it
    db.create_tables([WecomGroupChat], safe=True)


def _wecom_group_messages(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from bot.core.models import WecomGroupSend, WecomGroupWelcome

    # WeCom group campaigns and group welcome templates (issue 18)
    db.create_tables([WecomGroupSend, WecomGroupWelcome], safe=True)


def _message_reader_index(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # a web visitor's poll (and the IM relay's, the send window's) reads the messages of one
    # peer after an id: without this index each poll scanned the channel's every message
    # (issue 22: 200 waiting polls against a growing table); the name is the model's own
    db.execute_sql("CREATE INDEX IF NOT EXISTS message_channel_peer_id_id ON message (channel, peer_id, id)")


def _queue_index(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # the queue in its order, queued conversations only: a waiting customer's place (the
    # conversations ahead, counted in the index alone) and the head of the queue read it
    # instead of a table lookup per queued conversation through the status index (a handoff
    # while 2,000 waited cost twice one without a queue); status leads so that SQLite's
    # planner, without statistics, takes it over conversation_status
    db.execute_sql("CREATE INDEX IF NOT EXISTS conversation_queue ON conversation (status, queued_at, id) "
                   "WHERE status = 'queued'")


# what a cached value depends on: a write to any of these moves `cache_version.version`
# (bot/core/cache_version.py); an agent's presence and counters are not cached, so not here
_CACHED = (("setting", ""), ("agent", "channel, im_user_id, active"))


def _cache_version(db: peewee.Database, migrator: SchemaMigrator) -> None:
    """The version row of the per-process caches, and the triggers that move it."""
    db.execute_sql('CREATE TABLE IF NOT EXISTS "cache_version" ("id" INTEGER NOT NULL PRIMARY KEY, '
                   '"version" BIGINT NOT NULL)')
    db.execute_sql('INSERT INTO "cache_version" ("id", "version") VALUES (1, 0) ON CONFLICT DO NOTHING')
    bump = 'UPDATE "cache_version" SET "version" = "version" + 1 WHERE "id" = 1'
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f"CREATE OR REPLACE FUNCTION kefu_cache_bump() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$$ BEGIN {bump}; RETURN NULL; END $$")
        for table, columns in _CACHED:
            update = f"UPDATE OF {columns}" if columns else "UPDATE"
            db.execute_sql(f'DROP TRIGGER IF EXISTS {table}_cache_bump ON "{table}"')
            db.execute_sql(f'CREATE TRIGGER {table}_cache_bump AFTER INSERT OR DELETE OR TRUNCATE OR {update} '
                           f'ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION kefu_cache_bump()')
        return
    for table, columns in _CACHED:  # SQLite: row triggers only, one per event
        for event in ("INSERT", "DELETE", f"UPDATE OF {columns}" if columns else "UPDATE"):
            name = f"{table}_cache_bump_{event.split()[0].lower()}"
            db.execute_sql(f'CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON "{table}" BEGIN {bump}; END')


STEPS: list[tuple[int, str, Step]] = [
    (1, "initial schema", _initial),
    (3, "FAQ engine: embedding cache, answer ratings", _faq_engine),
    (4, "routing: assignment log per agent stint", _assignment_log),
    (5, "jobs: campaign run key, coupon reminded_at, delivery claim index", _jobs),
    (6, "admin login throttle per client address", _login_throttle),
    (7, "CRM: seen order requests, order buyer index", _crm_orders),
    (8, "outbox: sends per recipient, for the platforms' send limits", _send_limits),
    (9, "admin: session version per panel user, to end sessions", _admin_sessions),
    (10, "outbox: claim owner and attempt under way; campaign run planned", _send_attempts),
    (12, "learning loop: when each unanswered question was resolved", _unanswered_resolved_at),
    (13, "outbox: the request id of the message that caused a send", _outbox_request_id),
    (15, "community: channel codes (渠道活码) and their scans", _channel_codes),
    (16, "WeCom customer contact: customer unionid, external contacts", _wecom_contacts),
    (17, "panel users: the agent a user with the role agent works as", _admin_user_agent),
    (18, "FAQ categories managed in the panel", _faq_categories),
    (19, "workbench: quick phrases (快捷短语), the shop's and per agent", _quick_phrases),
    (20, "WeCom customer groups: chat_id linked to a kefu group", _wecom_groups),
    (21, "agents: last seen, for presence from real activity; customers' messages by time",
     _agent_last_seen_and_message_index),
    (23, "messages: index by channel, peer and id for polls", _message_reader_index),
    (24, "WeCom group campaigns' sends per group; group welcome templates", _wecom_group_messages),
    (25, "per-process caches: a version row moved by triggers on settings and agents", _cache_version),
    (26, "conversations: the queue's order as an index of its own", _queue_index),
]

LATEST = STEPS[-1][0]


def add_column_if_missing(db: peewee.Database, migrator: SchemaMigrator, table: str, name: str, field: peewee.Field) -> None:
    if name not in {c.name for c in db.get_columns(table)}:
        migrate(migrator.add_column(table, name, field))


def current_version() -> int:
    db = database.obj
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()
    return int(row or 0)


def applied_versions() -> set[int]:
    if not database.obj.table_exists(SchemaVersion._meta.table_name):
        return set()
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def pending_steps() -> list[tuple[int, str]]:
    """Steps not applied yet. A step is missing by its own number, not by the maximum: steps
    written on parallel branches land with numbers lower than ones already applied."""
    have = applied_versions()
    return [(version, name) for version, name, _ in STEPS if version not in have]


def upgrade() -> list[str]:
    """Apply every missing step; return the names of the steps applied."""
    db = database.obj
    migrator = PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
    applied: list[str] = []
    with transaction():
        advisory_xact_lock("kefu:migrate")
        db.create_tables([SchemaVersion], safe=True)
        have = applied_versions()
        for version, name, step in STEPS:
            if version in have:
                continue
            step(db, migrator)
            SchemaVersion.create(version=version, name=name)
            applied.append(f"{version}: {name}")
    return applied
