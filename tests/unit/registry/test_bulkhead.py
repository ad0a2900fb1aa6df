"""Bulkhead semantics with the wait injected: no real time passes in these tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from registry.bulkhead import Bulkhead, BulkheadFull


class ExpiredWait:
    """A `wait_for` whose deadline has always passed: records the wait asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, aw: Awaitable[Any], timeout: float) -> Any:
        self.asked.append(timeout)
        if asyncio.iscoroutine(aw):
            aw.close()
        raise TimeoutError


async def test_free_slots_are_taken_at_once_even_with_zero_wait() -> None:
    head = Bulkhead("internal", 2, 0.0, wait_for=ExpiredWait())
    async with head.slot(), head.slot():
        assert head.in_flight == 2
    assert head.in_flight == 0 and head.rejected == 0


async def test_full_bulkhead_refuses_after_the_class_wait_with_retry_after() -> None:
    wait = ExpiredWait()
    head = Bulkhead("dashboard", 1, 5.0, wait_for=wait)
    async with head.slot():
        with pytest.raises(BulkheadFull) as raised:
            async with head.slot():
                raise AssertionError("must not get a slot")
    assert wait.asked == [5.0]
    assert (raised.value.name, raised.value.retry_after_s) == ("dashboard", 5)
    assert (head.rejected, head.waiting, head.in_flight) == (1, 0, 0)


async def test_a_waiter_gets_the_slot_a_finished_request_frees() -> None:
    head = Bulkhead("api", 1, 10.0)
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with head.slot():
            order.append("first")
            first_in.set()
            await release.wait()

    async def second() -> None:
        await first_in.wait()
        async with head.slot():
            order.append("second")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_in.wait()
    while head.waiting == 0:
        await asyncio.sleep(0)  # let the second request start waiting (no time passes)
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "second"] and head.rejected == 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert Bulkhead("x", 1, 0.2).retry_after_s == 1
    assert Bulkhead("x", 1, 2.5).retry_after_s == 3
    with pytest.raises(ValueError):
        Bulkhead("x", 0, 1.0)
