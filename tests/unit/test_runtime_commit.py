"""`Runtime.commit` sends nothing while the member is between generations.

A commit sent with the old generation after the member rejoined makes aiokafka wipe the new
generation mid-join (the group then rebalances forever), so the check must happen in the
consumer's thread at the moment of sending: these fakes stand for that thread and consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.runtime import Runtime, patch_faust


class FakeCoordinator:
    def __init__(self) -> None:
        self._rejoin_needed_fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class FakeSubscription:
    reassignment_in_progress = False


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self._coordinator: FakeCoordinator | None = FakeCoordinator()
        self._subscription = FakeSubscription()
        self.assigned = assigned
        self.sent: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self.error: Exception | None = None

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(offsets)


class FakeThread:
    """Faust's consumer thread: runs the coroutine function it is handed, in its own turn."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.before_call: Callable[[], None] = lambda: None

    def _ensure_consumer(self) -> FakeConsumer:
        return self.consumer

    async def call_thread(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        self.before_call()  # what happens in the consumer's thread before it gets to the call
        return await fn()


def runtime_over(consumer: FakeConsumer) -> tuple[Runtime, FakeThread]:
    thread = FakeThread(consumer)
    app = type("App", (), {"consumer": type("C", (), {"_thread": thread})()})()
    runtime = Runtime.__new__(Runtime)
    runtime._app = app
    return runtime, thread


TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)


async def test_commits_only_the_assigned_partitions_of_a_settled_member() -> None:
    consumer = FakeConsumer({TP0})
    runtime, _ = runtime_over(consumer)
    assert await runtime.commit({("in", 0): 42, ("in", 1): 7}) is True
    assert consumer.sent == [{TP0: OffsetAndMetadata(42, "")}]


async def test_nothing_is_sent_once_a_rejoin_began_in_the_consumer_thread() -> None:
    consumer = FakeConsumer({TP0})
    runtime, thread = runtime_over(consumer)
    # The rebalance starts after the caller asked, before the consumer thread sends.
    thread.before_call = lambda: setattr(consumer._subscription, "reassignment_in_progress", True)
    assert await runtime.commit({("in", 0): 42}) is False
    assert consumer.sent == []


async def test_nothing_is_sent_while_a_rejoin_is_requested() -> None:
    consumer = FakeConsumer({TP0})
    assert consumer._coordinator is not None
    consumer._coordinator._rejoin_needed_fut.set_result(None)
    runtime, _ = runtime_over(consumer)
    assert await runtime.commit({("in", 0): 42}) is False
    assert consumer.sent == []


async def test_no_coordinator_yet_sends_nothing() -> None:
    consumer = FakeConsumer({TP0})
    consumer._coordinator = None
    runtime, _ = runtime_over(consumer)
    assert await runtime.commit({("in", 0): 42}) is False


async def test_a_partition_no_longer_assigned_is_not_committed() -> None:
    consumer = FakeConsumer({TP1})
    runtime, _ = runtime_over(consumer)
    assert await runtime.commit({("in", 0): 42}) is False
    assert consumer.sent == []


async def test_a_commit_refused_for_a_rebalance_is_false_and_other_errors_reach_the_caller() -> (
    None
):
    consumer = FakeConsumer({TP0})
    runtime, _ = runtime_over(consumer)
    consumer.error = CommitFailedError("rebalanced")
    assert await runtime.commit({("in", 0): 1}) is False
    consumer.error = TimeoutError("broker away")
    with pytest.raises(TimeoutError):
        await runtime.commit({("in", 0): 1})


async def test_recovery_seeks_never_go_below_offset_zero() -> None:
    """Faust's standby recovery once handed aiokafka a negative offset (ValueError at start)."""
    from collections import Counter

    from faust.tables.recovery import Recovery
    from faust.types import TP

    sought: list[dict[Any, int]] = []

    class Seeker:
        async def seek_wait(self, offsets: dict[Any, int]) -> None:
            sought.append(dict(offsets))

    patch_faust()  # what constructing the Runtime does
    a, b, c, d = TP("cl", 0), TP("cl", 1), TP("cl", 2), TP("cl", 3)
    offsets: Counter[TP] = Counter({a: -2, b: -1, c: 41})
    offsets.setdefault(d, None)  # type: ignore[arg-type]  # as `Recovery._add` leaves it
    await Recovery._seek_offsets(object(), Seeker(), {a, b, c, d}, offsets, "standby")  # type: ignore[arg-type]
    assert sought == [{a: 0, b: 0, c: 41, d: 0}]
