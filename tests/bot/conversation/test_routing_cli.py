"""`kefu agent status` and `kefu agent kpi`: the operator's side of routing from a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.agents import assignment
from bot.crm import conversations
from bot.core import db
from bot.cli import main
from bot.core.models import Agent, Conversation, Outbox
from tests.factories import make_agent


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str, database) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}


def invoke(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    if not db.database.obj.is_closed():
        db.database.obj.close()
    return result


def handoff(user: str) -> Conversation:
    customer = conversations.upsert_customer("web", user)
    conversation, _ = conversations.open_conversation(customer)
    assignment.assign_next_agent(conversation)
    return Conversation.get_by_id(conversation.id)


def test_agent_status_offline_requeues_and_online_serves(cli_env: dict[str, str]) -> None:
    mei = make_agent("mei")
    conversation = handoff("u1")
    result = invoke(cli_env, "agent", "status", "mei", "offline")
    assert result.exit_code == 0, result.output
    db.database.obj.connect(reuse_if_open=True)
    assert Agent.get_by_id(mei.id).status == "offline"
    assert Conversation.get_by_id(conversation.id).status == "queued"
    assert "下线" in Outbox.select().where(Outbox.recipient == mei.im_user_id).order_by(Outbox.id.desc()).get().content["text"]
    result = invoke(cli_env, "agent", "status", "mei", "online")
    assert result.exit_code == 0 and "1 queued conversations assigned" in result.output
    db.database.obj.connect(reuse_if_open=True)
    assert Conversation.get_by_id(conversation.id).agent_id == mei.id
    assert invoke(cli_env, "agent", "status", "nobody", "online").exit_code != 0


def test_agent_kpi_prints_a_line_per_agent(cli_env: dict[str, str]) -> None:
    make_agent("mei")
    make_agent("ali")
    handoff("u1")
    result = invoke(cli_env, "agent", "kpi", "--days", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["agent"], r["assigned"], r["open_now"]) for r in rows] == [("mei", 1, 1), ("ali", 0, 0)]
