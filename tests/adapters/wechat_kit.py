"""Shared pieces for the WeChat-family tests: channel configs, the stand-in, kefu's app.

Import the fixtures into a test module with `from tests.adapters.wechat_kit import ...`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.sandbox.app import Sandbox
from adapters.sandbox.client import WeChatServer
from adapters.server import create_app
from bot.core.config import ChannelConfig, Config

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # the 43-character key from WeChat's docs
MP_TOKEN = "kefu_token"
APP_ID = "wx5823bf96d3bd56c7"
CORP_ID = "ww1d5fa8ac2b3c4d5e"


@dataclass
class Stand:
    """The stand-in and its base URL."""

    sandbox: Sandbox
    server: TestServer

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def stand(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Stand:
    sandbox = Sandbox()
    return Stand(sandbox, await aiohttp_server(sandbox.app()))


def mp_channel(api_base: str, name: str = "mp", aes: bool = True, deadline: float = 4.0, **extra: Any) -> ChannelConfig:
    return ChannelConfig(name=name, kind="wechat_mp", token=MP_TOKEN, app_id=APP_ID, app_secret="mp-secret",
                         encoding_aes_key=AES_KEY if aes else "", api_base=api_base, deadline_seconds=deadline,
                         **extra)


def wecom_channel(api_base: str, name: str = "corp", kind: str = "wecom", deadline: float = 4.0,
                  **extra: Any) -> ChannelConfig:
    return ChannelConfig(name=name, kind=kind, token=MP_TOKEN, corp_id=CORP_ID, agent_id="1000002",
                         app_secret="corp-secret", encoding_aes_key=AES_KEY, api_base=api_base,
                         deadline_seconds=deadline, **extra)


def wechat(mode: str = "safe") -> WeChatServer:
    return WeChatServer(MP_TOKEN, APP_ID, AES_KEY, mode=mode)


def wecom_server() -> WeChatServer:
    return WeChatServer(MP_TOKEN, CORP_ID, AES_KEY, enterprise=True, agent_id="1000002", account=CORP_ID)


async def kefu_client(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config,
                      *channels: ChannelConfig, run_sender: bool = False, dispatcher: Any = None) -> TestClient:
    config = dataclasses.replace(config, channels=(*config.channels, *channels))
    return await aiohttp_client(create_app(config, dispatcher=dispatcher, run_sender=run_sender))


async def post(client: TestClient, server: WeChatServer, path: str, xml: str) -> tuple[int, str]:
    params, body = server.sign(xml)
    resp = await client.post(path, params=params, data=body)
    return resp.status, await resp.text()


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()
