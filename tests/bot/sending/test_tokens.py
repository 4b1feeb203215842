"""The shared access_token: one fetch for everyone, refresh once after an error, one
refresher at a time across processes (threads with their own connections here, and a
second OS process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core import clock
from bot.core.models import AccessToken, Lease
from bot.sending.tokens import REFRESH_EARLY_SECONDS, TokenStore


class Issuer:
    """A fake platform: each fetch issues a new token (and would invalidate the last)."""

    def __init__(self, delay: float = 0.0, expires_in: float = 7200) -> None:
        self.delay, self.expires_in = delay, expires_in
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, float]:
        with self._lock:
            self.count += 1
            n = self.count
        time.sleep(self.delay)
        return f"token-{n}", self.expires_in


def test_first_get_fetches_and_every_process_reuses_it(database) -> None:
    issuer = Issuer()
    first = TokenStore("mp:app", issuer, holder="p1").get()
    second = TokenStore("mp:app", issuer, holder="p2").get()
    assert first.value == second.value == "token-1"
    assert issuer.count == 1
    assert AccessToken.get(AccessToken.app_key == "mp:app").token == "token-1"


def test_a_token_near_expiry_is_renewed_early(database, fake_clock) -> None:
    issuer = Issuer(expires_in=7200)
    store = TokenStore("mp:app", issuer)
    assert store.get().value == "token-1"
    fake_clock.advance(seconds=7200 - REFRESH_EARLY_SECONDS + 1)
    assert store.get().value == "token-2"
    assert issuer.count == 2


def test_refresh_after_error_fetches_once_unless_someone_already_did(database) -> None:
    issuer = Issuer()
    a, b = TokenStore("mp:app", issuer, holder="a"), TokenStore("mp:app", issuer, holder="b")
    bad = a.get().value
    assert a.refresh_after_error(bad).value == "token-2"
    # b saw the same error with the same old token: a already replaced it, no new fetch
    assert b.refresh_after_error(bad).value == "token-2"
    assert issuer.count == 2


def test_threads_with_their_own_connections_refresh_once(database) -> None:
    issuer = Issuer(delay=0.3)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            results.append(TokenStore("mp:app", issuer, holder=f"t{n}").get().value)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            database.close()  # this thread's connection

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == ["token-1"] * 4
    assert issuer.count == 1


def test_a_dead_refreshers_lease_is_taken_over_after_it_expires(database, fake_clock) -> None:
    Lease.create(name="token:mp:app", holder="dead-process", expires_at=clock.now() + timedelta(seconds=30))
    issuer = Issuer()
    store = TokenStore("mp:app", issuer, holder="alive")
    fake_clock.advance(seconds=31)
    assert store.get().value == "token-1"
    assert Lease.select().count() == 0  # released after the refresh


def test_a_failed_fetch_releases_the_lease(database) -> None:
    def failing() -> tuple[str, float]:
        raise RuntimeError("platform down")

    with pytest.raises(RuntimeError):
        TokenStore("mp:app", failing).get()
    assert Lease.select().count() == 0
    assert TokenStore("mp:app", Issuer()).get().value == "token-1"


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bot.core import db
    from bot.sending.tokens import TokenStore

    url, counter, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    db.connect(url)

    def fetch():
        with counter.open("a") as fh:
            fh.write(name + "\\n")
        time.sleep(0.5)
        return "token-from-" + name, 7200

    print(TokenStore("mp:proc", fetch, holder=name).get().value)
""")


def test_two_processes_refreshing_at_once_fetch_once(database, database_url: str, tmp_path: Path) -> None:
    counter = tmp_path / "fetches.txt"
    counter.touch()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, database_url, str(counter), f"p{n}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    tokens = {out.strip() for out, _ in outputs}
    assert len(counter.read_text().split()) == 1
    assert len(tokens) == 1 and tokens.pop().startswith("token-from-p")
