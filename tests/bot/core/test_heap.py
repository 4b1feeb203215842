"""The start-up heap is left out of garbage collection once the FAQ index is ready."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Iterator

import pytest

from bot.core import heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


async def test_the_heap_is_frozen_only_after_the_index_is_ready() -> None:
    ready = threading.Event()
    waited_in: list[str] = []

    def wait_ready() -> None:
        waited_in.append(threading.current_thread().name)
        assert gc.get_freeze_count() == 0  # nothing frozen before the index is in
        ready.wait(5)

    freezing = heap.freeze_when_ready(wait_ready)
    ready.set()
    await freezing
    assert gc.get_freeze_count() > 1000  # the modules, the test session: all of it
    assert waited_in and waited_in[0] != threading.main_thread().name  # blocking wait off the loop


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    class Box:
        pass

    box = Box()
    alive = [False]

    class Watch:
        def __del__(self) -> None:
            alive[0] = True

    box.watch = Watch()  # type: ignore[attr-defined]
    heap.freeze()
    del box
    assert alive[0]  # no cycle: freed at once, frozen or not


def test_stopping_before_the_index_is_ready_does_not_wait_for_it() -> None:
    never = threading.Event()

    async def serve_briefly() -> None:
        freezing = asyncio.ensure_future(heap.freeze_when_ready(lambda: never.wait(30)))
        await asyncio.sleep(0.05)
        freezing.cancel()

    started = time.monotonic()
    asyncio.run(serve_briefly())  # joins the loop's executor threads on the way out
    assert time.monotonic() - started < 10  # not the 30 s of the pending wait
    assert gc.get_freeze_count() == 0
    never.set()


def test_an_faq_index_replaced_after_an_edit_is_freed_while_the_heap_is_frozen(database) -> None:  # type: ignore[no-untyped-def]
    import weakref

    from bot.core import clock
    from bot.faq.store import FaqStore
    from tests.bot.faq.conftest import FakeEmbedder
    from tests.factories import shop_faqs

    faqs = shop_faqs()
    store = FaqStore(check_seconds=0, embedder=FakeEmbedder())
    store.refresh(True)
    old = weakref.ref(store._index)
    heap.freeze()  # the index is in the permanent generation now
    faq = faqs["shipping"]
    faq.answer, faq.updated_at = faq.answer + "（已更新）", clock.now()
    faq.save()
    assert store.refresh()
    gc.collect()
    assert old() is None  # no reference cycle keeps the old index alive: nothing leaks per edit
