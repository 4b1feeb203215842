from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.core import db
from bot.cli import main
from bot.crm.order_import import ImportFileError, import_file, import_rows
from bot.core.models import Customer, Order
from tests.bot.crm.helpers import customer

CSV = """shop_order_id,status,event_at,amount,channel,user_id,phone,items
H1,delivered,2026-01-05 10:00:00,120.00,web,u1,,"[{""sku"": ""T-1"", ""qty"": 1}]"
H2,paid,2026-02-05T10:00:00+08:00,80,,,13800138000,
H3,lost,2026-02-06 10:00:00,10,web,u1,,
H4,paid,,10,web,u1,,
,paid,2026-02-06 10:00:00,10,web,u1,,

H5,paid,2026-03-01 10:00:00,abc,web,u1,,
H6,paid,2026-03-01 10:00:00,5,,,,
H7,created,2026-03-02 10:00:00,5,web,u9,,not json
"""


def test_good_rows_are_imported_and_bad_rows_reported_by_line(database) -> None:
    c = customer("u1")
    report = import_rows(CSV)
    assert report.rows == 8 and report.imported == 2
    assert [(e.line, e.field) for e in report.errors] == [
        (4, "status"), (5, "event_at"), (6, "shop_order_id"), (8, "amount"), (9, "customer"), (10, "items"),
    ]
    assert "line 4 (H3): status: must be one of" in str(report.errors[0])
    assert sorted(o.shop_order_id for o in Order.select()) == ["H1", "H2"]
    assert Order.get(Order.shop_order_id == "H1").items == [{"qty": 1, "sku": "T-1"}]
    assert Customer.get_by_id(c.id).total_spend == Decimal("120.00")
    again = import_rows(CSV)  # importing the same file twice changes nothing
    assert again.outcomes == {"duplicate": 2}
    assert Order.select().count() == 2


def test_a_file_without_the_required_columns_imports_nothing(database, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order,status\nH1,paid\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="shop_order_id"):
        import_file(path)
    assert Order.select().count() == 0


def test_an_excel_gb18030_file_is_read(database, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes('shop_order_id,status,event_at,amount,phone,items\nG1,paid,2026-01-01 08:00,9.9,13900139000,'
                     '"[{""name"": ""纯棉T恤""}]"\n'.encode("gb18030"))
    assert import_file(path).imported == 1
    assert Order.get().items == [{"name": "纯棉T恤"}]


def test_the_cli_command_reports_and_fails_on_bad_rows(database, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8-sig")
    env = {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}
    result = CliRunner().invoke(main, ["orders", "import", str(path)], env=env, catch_exceptions=False)
    db.database.obj.close() if not db.database.obj.is_closed() else None
    assert result.exit_code == 1
    assert "8 rows, 2 imported" in result.output
    assert "line 9 (H6): customer:" in result.output


def test_a_row_whose_buyer_is_on_an_unconfigured_channel_is_reported(database) -> None:
    text = ("shop_order_id,status,event_at,amount,channel,user_id\n"
            "C1,paid,2026-11-24 10:00:00,10,web,u1\nC2,paid,2026-11-24 10:00:00,10,nochannel,u2\n")
    report = import_rows(text, channels={"web", "mp"})
    assert report.imported == 1 and [(e.line, e.field) for e in report.errors] == [(3, "customer.channel")]
