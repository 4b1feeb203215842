"""bot.core.changes: a nudge reaches every listener, a failing listener is not the writer's
problem, and an unsubscribed one hears nothing more."""

from __future__ import annotations

from bot.core import changes


def test_nudges_reach_listeners_until_they_unsubscribe() -> None:
    heard: list[object] = []

    def broken(outbound: bool) -> None:
        raise RuntimeError("a watcher's bug")

    stop_broken = changes.subscribe(broken)
    stop = changes.subscribe(heard.append)
    stop_delivered = changes.subscribe_delivered(lambda channel, recipient: heard.append((channel, recipient)))
    try:
        changes.changed()
        changes.changed(outbound=True)
        changes.delivered("web", "v_1")
    finally:
        stop(), stop_broken(), stop_delivered()
    changes.changed()
    changes.delivered("web", "v_2")
    assert heard == [False, True, ("web", "v_1")]
