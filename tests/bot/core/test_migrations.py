from bot.core import migrations
from bot.core.models import ALL_MODELS


def test_init_twice_is_safe(database) -> None:
    assert migrations.current_version() == migrations.LATEST
    assert migrations.upgrade() == []
    assert migrations.current_version() == migrations.LATEST
    tables = set(database.get_tables())
    assert {m._meta.table_name for m in ALL_MODELS} <= tables


def test_upgrade_keeps_data(database) -> None:
    from bot.core.models import Faq

    Faq.create(answer="保留")
    migrations.upgrade()
    assert Faq.select().where(Faq.answer == "保留").count() == 1


def test_a_step_numbered_below_the_applied_maximum_still_runs(database) -> None:
    """Steps from parallel branches land with numbers below ones already applied."""
    from bot.core.migrations import SchemaVersion

    SchemaVersion.delete().where(SchemaVersion.version == 4).execute()
    assert [v for v, _ in migrations.pending_steps()] == [4]
    assert migrations.upgrade() == ["4: routing: assignment log per agent stint"]
    assert migrations.pending_steps() == []


def test_outdated_schema_is_refused_with_a_clear_message(database, config) -> None:
    import pytest

    from bot.core.migrations import SchemaVersion
    from bot.core.runtime import SchemaOutdated, open_database

    SchemaVersion.delete().where(SchemaVersion.version == migrations.LATEST).execute()
    with pytest.raises(SchemaOutdated, match="kefu init"):
        open_database(config)
