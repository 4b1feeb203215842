"""Agents' presence in the panel (issue 25): the agent list and the dashboard show last seen
and load x/capacity; a workbench request counts as activity; 在线 but quiet is flagged."""

from __future__ import annotations

from typing import Any

from flask import Flask

from bot.agents import assignment
from bot.core.models import Agent
from bot.crm import conversations
from tests.admin.conftest import Panel
from tests.admin.test_workbench import desk_for
from tests.factories import make_agent


def test_list_and_dashboard_show_presence_and_load(app: Flask, admin_panel: Panel, fake_clock: Any) -> None:
    quiet = make_agent("ali", "agent-ali")
    desk_for(app, "mei")  # signs in and opens the workbench: seen now
    mei = Agent.get(Agent.name == "mei")
    assert mei.last_seen_at == fake_clock.now()
    customer = conversations.upsert_customer("web", "c1")
    conversation, _ = conversations.open_conversation(customer)
    assignment.assign_next_agent(conversation, prefer_id=mei.id)
    fake_clock.advance(minutes=3)
    listing = admin_panel.get("/admin/agent/").get_data(as_text=True)
    assert "3 分钟前" in listing and "1/5" in listing
    assert "⚠ 在线但无活动 · 从未活动" in listing  # ali: 在线, never seen
    assert Agent.get_by_id(quiet.id).status == "online"
    board = admin_panel.get("/admin/").get_data(as_text=True)
    assert "<td data-last-seen>3 分钟前</td>" in board and "<td data-load>1/5</td>" in board
    english = admin_panel.get("/admin/agent/?lang=en").get_data(as_text=True)
    assert "3 min ago" in english and "online but quiet" in english
