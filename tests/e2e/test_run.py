"""`kefu run` as a new user runs it: a subprocess on a fresh data directory."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from adapters.web_client import WebChatClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_kefu(tmp_path: Path, fresh_database_url: str):
    port, admin_port = free_port(), free_port()
    env = dict(os.environ, KEFU_DATA_DIR=str(tmp_path / "data"), KEFU_DATABASE_URL=fresh_database_url,
               KEFU_LOG_FORMAT="text")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--port", str(port), "--admin-port",
                             str(admin_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    # a fresh start converts the embedding model and seeds the demo shop with its history:
    # seconds alone, over 30 s beside other test runs on a shared 2-core machine
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"kefu run exited: {proc.stdout.read()}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("kefu run did not come up in 90 s")
    yield base, admin_port, proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_fresh_run_serves_demo_shop(running_kefu) -> None:
    base, admin_port, proc = running_kefu
    customer = WebChatClient(base)
    customer.start()
    answer = customer.send("发货要多久")["replies"][0]["text"]
    assert "发货" in answer and "48" in answer
    handoff = customer.send("转人工")["replies"][0]["text"]
    assert "人工客服" in handoff and ("小美" in handoff or "阿力" in handoff)
    page = urllib.request.urlopen(base + "/chat/web", timeout=5).read().decode()
    assert "在线客服" in page
    login = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/admin/login/", timeout=5).read().decode()
    assert "登录" in login
    health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read())
    assert health["event_loop"] == ("uvloop" if sys.platform != "win32" else "asyncio")  # the install brings uvloop
