import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.core import db
from bot.cli import main


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str, database) -> dict[str, str]:
    """Run commands against the test database (already migrated by `database`)."""
    return {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}


def invoke(env: dict[str, str], *args: str):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    db.database.obj.close() if not db.database.obj.is_closed() else None
    return result


def test_help_on_every_command() -> None:
    runner = CliRunner()
    for args in ([], ["init"], ["run"], ["serve"], ["admin"], ["scheduler"], ["chat"], ["faq", "import"],
                 ["faq", "export"], ["agent", "add"]):
        result = runner.invoke(main, args + ["--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_init_twice_and_demo_seed_is_idempotent(cli_env: dict[str, str]) -> None:
    first = invoke(cli_env, "init", "--demo")
    assert first.exit_code == 0, first.output
    assert "schema at version" in first.output
    second = invoke(cli_env, "init", "--demo")
    assert second.exit_code == 0, second.output
    assert "0 FAQs, 0 agents" in second.output
    from bot.core.models import Agent, Faq

    assert Faq.select().count() >= 40
    assert Agent.select().count() == 2


def test_bad_config_is_one_line_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 'eighty'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["init", "--config", str(path)])
    assert result.exit_code != 0
    assert "server.port" in result.output and str(path) in result.output
    assert "Traceback" not in result.output


def test_faq_import_export_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "faq.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "f1", "questions": ["发货要多久", "几天发货"], "answer": "48小时内", "category": "物流问题"},
        {"id": "f2", "questions": ["怎么退货"], "answer": "7天无理由"},
    ]) + "\n", encoding="utf-8")
    result = invoke(cli_env, "faq", "import", str(src))
    assert result.exit_code == 0 and "2 created" in result.output
    again = invoke(cli_env, "faq", "import", str(src))
    assert "0 created, 0 updated, 2 unchanged" in again.output
    out = tmp_path / "out.jsonl"
    assert invoke(cli_env, "faq", "export", str(out)).exit_code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"id": "f1", "questions": ["发货要多久", "几天发货"], "answer": "48小时内", "category": "物流问题"},
        {"id": "f2", "questions": ["怎么退货"], "answer": "7天无理由", "category": "更多问题"},
    ]


def test_faq_import_with_a_bad_line_imports_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "ok", "questions": ["a"], "answer": "b"}\n{"id": "bad", "questions": [], "answer": "x"}\n',
                   encoding="utf-8")
    result = invoke(cli_env, "faq", "import", str(src))
    assert result.exit_code != 0
    assert "line 2" in result.output and "nothing was imported" in result.output
    from bot.core.models import Faq

    assert Faq.select().count() == 0


def test_agent_add_and_its_errors(cli_env: dict[str, str]) -> None:
    ok = invoke(cli_env, "agent", "add", "小美", "--channel", "web", "--user-id", "agent-xm", "--max-open", "3")
    assert ok.exit_code == 0, ok.output
    assert "/chat/web#user_id=agent-xm&token=" in ok.output
    dup = invoke(cli_env, "agent", "add", "小红", "--channel", "web", "--user-id", "agent-xm")
    assert dup.exit_code != 0 and "already linked" in dup.output
    bad = invoke(cli_env, "agent", "add", "小绿", "--channel", "nope", "--user-id", "x")
    assert bad.exit_code != 0 and "no channel named" in bad.output
    listed = invoke(cli_env, "agent", "list")
    row = json.loads(listed.output.splitlines()[0])
    assert row["max_open"] == 3
    link = next(line for line in ok.output.splitlines() if "/chat/web#" in line).split(": ", 1)[1]
    assert row["chat_link"] == link  # the same signed link, for agents added before (e.g. the demo's)


def test_the_banner_names_each_wechat_channels_callback_url() -> None:
    import dataclasses

    from bot.cli.serve import callback_lines
    from bot.core.config import ChannelConfig, load_config

    config = load_config(None, env={})
    assert callback_lines(config) == []  # the demo: web only
    config = dataclasses.replace(config, channels=config.channels + (
        ChannelConfig(name="mp", kind="wechat_mp"), ChannelConfig(name="corp", kind="wecom"),
        ChannelConfig(name="kf", kind="wechat_kf", open_kfid="wk1")))
    urls = [line.split()[2] for line in callback_lines(config)]
    assert urls == [f"{config.public_url}/wechat/mp", f"{config.public_url}/wecom/corp", f"{config.public_url}/wecom/kf"]
