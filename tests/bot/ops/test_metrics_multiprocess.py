"""Several `kefu serve` on one host: with PROMETHEUS_MULTIPROC_DIR set, any process's /metrics
answers with the sum of all of them (prometheus-client's multi-process mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT = "from bot.ops import metrics; metrics.observe_message('web', 'text', False, 'exact', 0.01)"
RENDER = "from bot.ops import metrics; print(metrics.render(with_database=False)[0].decode())"


def test_values_of_several_processes_are_summed(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT], env=env, check=True, cwd=Path(__file__).parents[3])
    text = subprocess.run([sys.executable, "-c", RENDER], env=env, check=True, capture_output=True, text=True,
                          cwd=Path(__file__).parents[3]).stdout
    assert 'kefu_inbound_messages_total{channel="web",kind="text"} 2.0' in text
    assert 'kefu_replies_total{channel="web",stage="exact"} 2.0' in text


def test_the_grafana_dashboard_charts_only_metrics_kefu_exports() -> None:
    import json
    import re

    from bot.ops import metrics

    text = metrics.render(with_database=False)[0].decode()
    exported = set(re.findall(r"^# TYPE (kefu_\w+)", text, re.M)) | {
        "kefu_outbox_backlog", "kefu_outbox_oldest_age_seconds", "kefu_queue_length", "kefu_queue_longest_wait_seconds",
        "kefu_agents_online", "kefu_open_conversations", "kefu_campaign_deliveries"}
    dashboard = json.loads((Path(__file__).parents[3] / "docs" / "grafana-kefu.json").read_text(encoding="utf-8"))
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bkefu_\w+", target["expr"])}
    stripped = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert stripped <= {re.sub(r"_total$", "", n) for n in exported}, stripped - exported
