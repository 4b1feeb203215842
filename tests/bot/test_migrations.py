from bot import migrations
from bot.models import ALL_MODELS


def test_init_twice_is_safe(database) -> None:
    assert migrations.current_version() == migrations.LATEST
    assert migrations.upgrade() == []
    assert migrations.current_version() == migrations.LATEST
    tables = set(database.get_tables())
    assert {m._meta.table_name for m in ALL_MODELS} <= tables


def test_upgrade_keeps_data(database) -> None:
    from bot.models import Faq

    Faq.create(answer="保留")
    migrations.upgrade()
    assert Faq.select().where(Faq.answer == "保留").count() == 1
