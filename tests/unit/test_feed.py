"""The feed hands each fetch's records of a partition to its processor whole, in fetch order; it
holds back a partition with `max_records` waiting and refuses a fetch that a reset overtook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.feed import ALIGN_SLACK_MS, Feed, Fetch, Partition
from streams.runtime import FeedingConsumer, Runtime

A = Partition("in", 0)
B = Partition("in", 1)
C = Partition("other", 0)

T = TypeVar("T")


def records(tp: Partition, *offsets: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o, value=b"")
        for o in offsets
    ]


async def parked(awaitable: Awaitable[T]) -> asyncio.Task[T]:
    """A task running `awaitable`, returned once it is suspended in it (no sleep involved).

    The task sets `entered` and goes straight on into `awaitable` until that suspends; only then
    does this coroutine, woken by `entered`, run again.
    """
    entered = asyncio.Event()

    async def run() -> T:
        entered.set()
        return await awaitable

    task = asyncio.create_task(run())
    await entered.wait()
    return task


async def test_records_come_out_in_fetch_order_with_their_partition() -> None:
    feed = Feed(["in", "other"])
    a1, b1, c1, a2 = records(A, 0, 1), records(B, 7), records(C, 3, 4, 5), records(A, 2)
    started = feed.started()
    for tp, batch in ((A, a1), (B, b1), (C, c1), (A, a2)):
        assert feed.put(tp, batch, started) is True

    assert len(feed) == 7
    assert [await feed.get() for _ in range(4)] == [
        Fetch(A, a1),
        Fetch(B, b1),
        Fetch(C, c1),
        Fetch(A, a2),
    ]
    assert len(feed) == 0 and feed.waiting(A) == 0


async def test_a_partition_with_max_records_waiting_is_held_until_taken() -> None:
    feed = Feed(["in"], max_records=3)
    started = feed.started()
    feed.put(A, records(A, 0, 1), started)
    feed.put(B, records(B, 0), started)
    assert feed.held() == set()

    feed.put(A, records(A, 2), started)
    assert feed.held() == {A}  # B, with 1 waiting, may still be fetched
    assert feed.waiting(A) == 3

    assert (await feed.get()).tp == A  # 2 of A's 3 taken
    assert feed.held() == set()
    assert feed.waiting(A) == 1


async def test_a_fetch_bigger_than_max_records_is_taken_whole_and_holds_its_partition() -> None:
    feed = Feed(["in"], max_records=2)
    batch = records(A, *range(5))
    assert feed.put(A, batch, feed.started()) is True
    assert feed.held() == {A}
    assert await feed.get() == Fetch(A, batch)
    assert feed.held() == set()


async def test_a_fetch_begun_before_a_reset_of_its_partition_is_refused() -> None:
    feed = Feed(["in", "other"])
    before = feed.started()
    feed.reset([A])

    assert feed.put(A, records(A, 0, 1), before) is False
    assert len(feed) == 0 and feed.waiting(A) == 0 and feed.delivered == 0

    # the same fetch's records of partitions that were not reset are taken
    assert feed.put(B, records(B, 4), before) is True
    assert feed.put(C, records(C, 9), before) is True
    # and a fetch that began after the reset is taken for the reset partition too
    assert feed.put(A, records(A, 5), feed.started()) is True

    assert [(await feed.get()).tp for _ in range(3)] == [B, C, A]
    assert feed.delivered == 3


async def test_a_reset_of_another_partition_does_not_refuse_a_fetch() -> None:
    feed = Feed(["in"])
    before = feed.started()
    feed.reset([B])
    assert feed.put(A, records(A, 0), before) is True


async def test_reset_drops_the_queued_fetches_of_the_reset_partitions_only() -> None:
    feed = Feed(["in", "other"])
    started = feed.started()
    b = records(B, 3)
    for tp, batch in ((A, records(A, 0)), (B, b), (A, records(A, 1, 2)), (C, records(C, 0))):
        feed.put(tp, batch, started)

    feed.reset([A, C])

    assert len(feed) == 1
    assert feed.waiting(A) == 0 and feed.waiting(C) == 0 and feed.waiting(B) == 1
    assert await feed.get() == Fetch(B, b)
    assert len(feed) == 0


async def test_reset_releases_a_held_partition() -> None:
    feed = Feed(["in"], max_records=1)
    feed.put(A, records(A, 0), feed.started())
    assert feed.held() == {A}
    feed.reset([A])
    assert feed.held() == set()
    await asyncio.wait_for(feed.wait_room(60), 5)  # returns at once: room was made


async def test_delivered_counts_the_records_put() -> None:
    feed = Feed(["in"])
    started = feed.started()
    assert feed.put(A, records(A, 0, 1, 2), started)
    assert feed.put(B, [], started) is True  # an empty fetch is nothing to queue
    assert feed.put(B, records(B, 0), started)
    assert feed.delivered == 4

    await feed.get()
    assert feed.delivered == 4  # taking does not change it
    feed.reset([A, B])
    assert feed.delivered == 4  # records put, since start, whatever became of them
    assert feed.put(A, records(A, 0), started) is False
    assert feed.delivered == 4  # a refused fetch was not delivered


async def test_get_waits_for_a_put() -> None:
    feed = Feed(["in"])
    getting = await parked(feed.get())
    assert not getting.done()

    batch = records(A, 0)
    feed.put(A, batch, feed.started())
    assert await asyncio.wait_for(getting, 5) == Fetch(A, batch)


async def test_get_keeps_waiting_when_a_reset_dropped_what_was_put() -> None:
    feed = Feed(["in"])
    started = feed.started()
    getting = await parked(feed.get())
    feed.put(A, records(A, 0), started)
    feed.reset([A])  # before the getter ran: what woke it is gone
    batch = records(B, 1)

    # the getter runs, finds the queue empty and waits again, then takes the next put
    async def put_later() -> None:
        feed.put(B, batch, feed.started())

    await asyncio.wait_for(asyncio.gather(getting, put_later()), 5)
    assert getting.result() == Fetch(B, batch)


async def test_wait_room_returns_once_the_held_partition_is_drained() -> None:
    feed = Feed(["in"], max_records=2)
    feed.put(A, records(A, 0, 1), feed.started())
    assert feed.held() == {A}

    waiting = await parked(feed.wait_room(60))
    assert not waiting.done()

    await feed.get()
    await asyncio.wait_for(waiting, 5)  # long before its own 60 s timeout
    assert feed.held() == set()


async def test_wait_room_gives_up_after_its_timeout() -> None:
    feed = Feed(["in"], max_records=1)
    feed.put(A, records(A, 0), feed.started())
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(feed.wait_room(0.01), 5)  # returns, raises nothing
    assert loop.time() - began >= 0.005
    assert feed.held() == {A}  # still held: nothing was taken


async def test_wait_room_returns_at_once_when_nothing_is_held() -> None:
    feed = Feed(["in"], max_records=2)
    feed.put(A, records(A, 0), feed.started())
    await asyncio.wait_for(feed.wait_room(60), 5)


# -- how the runtime fills and rewinds a feed ------------------------------------------------------


class FakeApp:
    def __init__(self, consumer: Any) -> None:
        self.transport = SimpleNamespace()
        self.topics: set[Any] = set()
        self.consumer = consumer

    def topic(self, *topics: str, **kwargs: Any) -> tuple[str, ...]:
        return topics


class SeekingConsumer:
    """The group consumer's `seek_wait`; `during` runs while the seek is under way."""

    def __init__(self) -> None:
        self.seeks: list[dict[TP, int]] = []
        self.during: Any = None

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks.append(offsets)
        if self.during is not None:
            self.during()


@pytest.fixture
def restore_feeding_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FeedingConsumer, "feeds", {})  # the base class never feeds anything


@pytest.mark.usefixtures("restore_feeding_consumer")
async def test_a_seek_refuses_fetches_in_flight_across_it_and_drops_what_was_queued() -> None:
    consumer = SeekingConsumer()
    runtime = Runtime(FakeApp(consumer), "kafka:9092")  # type: ignore[arg-type]
    feed = runtime.feed(["in"], max_records=100)
    queued_before = feed.started()
    feed.put(A, records(A, 0, 1), queued_before)
    feed.put(B, records(B, 0), queued_before)
    in_flight = feed.started()  # a fetch begun before the seek, not yet back
    refused_during: list[bool] = []

    def during_the_seek() -> None:
        assert feed.waiting(A) == 0  # reset before the consumer seeks
        refused_during.append(feed.put(A, records(A, 2), in_flight))
        # a fetch that began after the first reset, before the seek took effect, is taken...
        feed.put(A, records(A, 3), feed.started())

    consumer.during = during_the_seek
    await runtime.seek({("in", 0): 0})

    assert consumer.seeks == [{TP("in", 0): 0}]
    assert refused_during == [False]
    assert feed.waiting(A) == 0  # ...and dropped by the reset after it
    assert feed.put(A, records(A, 4), in_flight) is False
    assert feed.waiting(B) == 1  # the partition not sought keeps its records
    assert feed.put(B, records(B, 1), in_flight) is True
    after = records(A, 0)
    assert feed.put(A, after, feed.started()) is True
    assert [f.tp for f in [await feed.get() for _ in range(3)]] == [B, B, A]


@pytest.mark.usefixtures("restore_feeding_consumer")
async def test_a_seek_of_nothing_does_not_reach_the_consumer() -> None:
    consumer = SeekingConsumer()
    runtime = Runtime(FakeApp(consumer), "kafka:9092")  # type: ignore[arg-type]
    await runtime.seek({})
    assert consumer.seeks == []


async def test_a_consumer_fetch_fills_the_feed_and_hands_on_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = Feed(["in"], max_records=2)
    feed.put(B, records(B, 0, 1), feed.started())  # B is held: it must not be fetched
    asked: list[set[TP]] = []
    a_records, changelog = records(A, 5, 6), ["changelog record"]

    async def fetched(self: Any, active: set[TP], timeout: float) -> dict[TP, Any]:
        asked.append(set(active))
        return {TP("in", 0): a_records, TP("changelog", 0): changelog}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", fetched)
    consumer = FeedingConsumer.__new__(FeedingConsumer)  # no Faust app: only `_getmany` runs
    consumer.feeds = {"in": feed}

    rest = await consumer._getmany({TP("in", 0), TP("in", 1), TP("changelog", 0)}, 1.0)

    assert asked == [{TP("in", 0), TP("changelog", 0)}]
    assert rest == {TP("changelog", 0): changelog}
    assert await feed.get() == Fetch(B, records(B, 0, 1))
    assert await feed.get() == Fetch(A, a_records)


async def test_a_consumer_fetch_overtaken_by_a_reset_is_not_fed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = Feed(["in"])

    async def fetched(self: Any, active: set[TP], timeout: float) -> dict[TP, Any]:
        feed.reset([A])  # a seek of A while this fetch was in flight
        return {TP("in", 0): records(A, 5), TP("in", 1): records(B, 9)}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", fetched)
    consumer = FeedingConsumer.__new__(FeedingConsumer)
    consumer.feeds = {"in": feed}

    assert await consumer._getmany({TP("in", 0), TP("in", 1)}, 1.0) == {}
    assert feed.waiting(A) == 0 and feed.waiting(B) == 1


async def test_with_every_partition_held_the_consumer_waits_for_room_instead_of_fetching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = Feed(["in"], max_records=1)
    feed.put(A, records(A, 0), feed.started())

    async def fetched(self: Any, active: set[TP], timeout: float) -> dict[TP, Any]:
        raise AssertionError("an empty set would fetch every partition")

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", fetched)
    consumer = FeedingConsumer.__new__(FeedingConsumer)
    consumer.feeds = {"in": feed}

    fetching = await parked(consumer._getmany({TP("in", 0)}, 60.0))
    assert not fetching.done()  # waiting for room
    await feed.get()
    assert await asyncio.wait_for(fetching, 5) == {}


def test_a_fetch_in_flight_across_a_reset_keeps_what_starts_where_reading_resumes() -> None:
    """The group's first fetch after a rebalance often began before it (a long poll on an
    empty partition) and returns the first records of the position the reset names: they
    are the ones to apply, and the consumer has moved past them, so refusing them loses them.
    Records from elsewhere (an abandoned position ahead) are refused; below it, trimmed."""
    feed = Feed(["in"], max_records=100)
    started = feed.started()
    feed.reset([A, B], {A: 0, B: 5})
    assert feed.put(A, records(A, 0, 1, 2), started)  # resumes exactly here: kept
    assert not feed.put(B, records(B, 9, 10), started)  # an abandoned position: refused
    assert feed.put(B, records(B, 3, 4, 5, 6), started)  # from 5 on: kept
    assert [r.offset for r in feed._queue[0][0].records] == [0, 1, 2]
    assert [r.offset for r in feed._queue[1][0].records] == [5, 6]
    revoked_started = feed.started()
    feed.reset([A])  # no position: revoked, nothing in flight is kept
    assert not feed.put(A, records(A, 3), revoked_started - 1)


async def test_wait_room_returns_when_one_of_several_held_partitions_is_drained() -> None:
    feed = Feed(["in"], max_records=2)
    feed.put(A, records(A, 0, 1), feed.started())
    feed.put(B, records(B, 0, 1), feed.started())
    assert feed.held() == {A, B}
    waiting = await parked(feed.wait_room(60))
    assert not waiting.done()
    await feed.get()  # A drained; B still held
    await asyncio.wait_for(waiting, 5)  # long before its own 60 s timeout
    assert feed.held() == {B}


async def test_a_partition_with_max_bytes_waiting_is_held_until_taken() -> None:
    feed = Feed(["in", "other"], max_records=1_000, max_bytes=250)
    tp, other = Partition("in", 0), Partition("other", 0)
    big = [SimpleNamespace(offset=offset, value=b"x" * 100) for offset in range(3)]  # 300 bytes
    assert feed.put(tp, big, feed.started())
    assert feed.put(other, [SimpleNamespace(offset=0, value=b"y" * 10)], feed.started())
    assert feed.held() == {tp}
    assert (await feed.get()).records == big
    assert feed.held() == set()
    assert feed.put(tp, big[:2], feed.started())  # 200 bytes: under it
    assert feed.held() == set()


def stamped(tp: Partition, *pairs: tuple[int, int]) -> list[SimpleNamespace]:
    """Records of `tp` as (offset, timestamp) pairs, one byte of value each."""
    return [
        SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o, timestamp=t, value=b"x")
        for o, t in pairs
    ]


P0, O0, P1 = Partition("predictions", 0), Partition("outcomes", 0), Partition("predictions", 1)
HOUR = 3_600_000


async def test_a_partitions_inputs_come_out_oldest_timestamp_first() -> None:
    """A backlog: all of a partition's outcomes fetched before its predictions, hours apart.
    They are taken in timestamp order across the two inputs, each input in offset order."""
    feed = Feed(["predictions", "outcomes"])
    outcomes = stamped(O0, *((o, (o + 1) * HOUR) for o in range(4)))  # hours 1..4
    predictions = stamped(P0, *((o, o * HOUR) for o in range(5)))  # hours 0..4
    started = feed.started()
    assert feed.put(O0, outcomes, started) and feed.put(P0, predictions, started)

    taken = []
    while len(feed):
        fetch = await feed.get()
        taken.append((fetch.tp.topic, [r.timestamp // HOUR for r in fetch.records]))
    assert taken == [
        ("predictions", [0, 1]),  # up to the outcomes' head (hour 1), ties to the older fetch
        ("outcomes", [1, 2]),
        ("predictions", [2, 3]),
        ("outcomes", [3, 4]),
        ("predictions", [4]),
    ]
    assert feed.waiting(P0) == feed.waiting(O0) == 0 and feed.held() == set()


async def test_alignment_counts_bytes_of_what_it_takes_and_keeps_the_rest_held() -> None:
    feed = Feed(["predictions", "outcomes"], max_records=3)
    started = feed.started()
    feed.put(P0, stamped(P0, (0, 10 * HOUR), (1, 11 * HOUR), (2, 12 * HOUR)), started)
    feed.put(O0, stamped(O0, (5, 0), (6, 20 * HOUR)), started)
    assert feed.held() == {P0}
    first = await feed.get()
    assert (first.tp, [r.offset for r in first.records]) == (O0, [5])
    second = await feed.get()
    assert (second.tp, [r.offset for r in second.records]) == (P0, [0, 1, 2])
    assert feed.held() == set() and feed.waiting(O0) == 1 and len(feed) == 1


async def test_other_partitions_and_close_timestamps_keep_fetch_order_and_whole_fetches() -> None:
    """Inputs interleaved within ALIGN_SLACK_MS keep their fetches whole; another partition
    number is not compared; records without a timestamp leave the order as fetched."""
    feed = Feed(["predictions", "outcomes"])
    started = feed.started()
    p1 = stamped(P1, (0, 5 * HOUR))
    # o0 comes first, up to p0's head plus the slack: both of its records; then p0 whole
    t, slack = HOUR, ALIGN_SLACK_MS
    p0 = stamped(P0, (0, t + 1), (1, t + slack // 2 + 1), (2, t + 2 * slack))
    o0 = stamped(O0, (0, t), (1, t + slack + 1))
    for tp, batch in ((P1, p1), (P0, p0), (O0, o0)):
        feed.put(tp, batch, started)
    assert [await feed.get() for _ in range(3)] == [Fetch(P1, p1), Fetch(O0, o0), Fetch(P0, p0)]
    a, c = records(A, 0), records(C, 0)
    feed.put(A, a, started)
    feed.put(C, c, started)
    assert [await feed.get() for _ in range(2)] == [Fetch(A, a), Fetch(C, c)]
