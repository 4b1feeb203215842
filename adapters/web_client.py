"""A client for the web channel API: `kefu chat` and the end-to-end tests use it.

Why ship it: a person can talk to the bot from a terminal exactly as the web widget does
(same endpoints, same dedup by msg_id), with no browser.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

from adapters.terminal import typed_lines


class WebChatClient:
    def __init__(self, base_url: str, channel: str = "web", user_id: str | None = None, token: str | None = None,
                 timeout: float = 10.0) -> None:
        self.base = f"{base_url.rstrip('/')}/api/web/{channel}"
        self.user_id, self.token, self.timeout = user_id, token, timeout
        self.last_id = 0
        self.seen: set[int] = set()
        self.welcomed = False  # set once the welcome was fetched and shown

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(f"cannot reach kefu at {self.base}: {exc}") from None

    def start(self) -> None:
        if not (self.user_id and self.token):
            session = self._request("POST", "/session")
            self.user_id, self.token = session["user_id"], session["token"]

    def welcome(self) -> dict[str, Any]:
        """The welcome text and cards; messages sent after it say so (the bot does not repeat it)."""
        shown = self._request("GET", "/welcome")
        self.welcomed = True
        return shown

    def send(self, text: str, msg_id: str | None = None) -> dict[str, Any]:
        result = self._request("POST", "/messages", {"user_id": self.user_id, "token": self.token,
                                                      "msg_id": msg_id or uuid.uuid4().hex, "text": text,
                                                      "welcomed": self.welcomed})
        for reply in result.get("replies", []):
            if reply.get("id"):
                self.seen.add(reply["id"])
                self.last_id = max(self.last_id, reply["id"])
        return result

    def poll(self) -> list[dict[str, Any]]:
        result = self._request("GET", f"/messages?user_id={self.user_id}&token={self.token}&after={self.last_id}")
        fresh = [m for m in result.get("messages", []) if m["id"] not in self.seen]
        for m in fresh:
            self.seen.add(m["id"])
        self.last_id = max(self.last_id, result.get("last_id", 0))
        return fresh


def _print_message(who: str, text: str, cards: list[dict[str, Any]]) -> None:
    print(f"{who}: {text}")
    for i, card in enumerate(cards, 1):
        print(f"   {i}. {card['title']}")


def run_terminal_chat(client: WebChatClient) -> None:
    """Read lines from the terminal, print the bot's and the agents' answers."""
    client.start()
    welcome = client.welcome()
    _print_message("小蜜", welcome["text"], welcome.get("cards", []))
    print("(输入问题后回车；输入 /quit 退出)")
    # the identity, so the same visitor can come back (kefu chat --user-id ... --token ...)
    print(f"(访客 {client.user_id}，再次进入：--user-id {client.user_id} --token {client.token})")
    stop = threading.Event()

    def poller() -> None:
        names = {"agent": "客服", "bot": "小蜜", "system": "系统"}
        while not stop.wait(2.0):
            try:
                for m in client.poll():
                    _print_message(names.get(m["author"], m["author"]), m["text"], m.get("cards", []))
            except (ConnectionError, RuntimeError):
                continue

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    try:
        for line in typed_lines():
            result = client.send(line)
            for reply in result.get("replies", []):
                _print_message("小蜜", reply["text"], reply.get("cards", []))
    finally:
        stop.set()
