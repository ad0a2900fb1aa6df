"""The hand-over of fetched input records from the consumer to one processor, a fetch at a time.

Why not Faust's streams: Faust hands records one by one through a channel queue and drops, with
no trace, every record the consumer had already moved past when a fetch is cut short (flow
stopped for a rebalance, a generation change, a partition paused while its records were in
hand, a delivery cancelled by a suspended flow). The records are gone for the worker: the
partition shows up later as a hole, or, when nothing after it arrives, as a stall with records
waiting. docs/faust.md tells the whole story.

A feed takes each fetch's records of its partitions whole (`put`), never drops one except those
of a partition that was reset (rewound) while the fetch was in flight, and bounds what it holds
per partition: a partition with `max_records` waiting is `held`, and the consumer leaves it out
of the next fetches until the processor has taken its records. Pure asyncio, no Kafka client:
the runtime adapter (`streams.runtime`) is what feeds it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple


class Partition(NamedTuple):
    topic: str
    partition: int


class Fetch(NamedTuple):
    """Records of one partition from one fetch, in offset order."""

    tp: Partition
    records: Sequence[Any]  # aiokafka ConsumerRecords (topic, partition, offset, key, value)


class Feed:
    def __init__(self, topics: Iterable[str], max_records: int = 20_000) -> None:
        self.topics = frozenset(topics)
        self._max_records = max_records
        self._queue: deque[Fetch] = deque()
        self._waiting: dict[Partition, int] = {}  # records queued per partition
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._clock = 0  # bumped by every reset: tells a fetch that began before it
        self._reset_at: dict[Partition, int] = {}
        self._expected: dict[Partition, int] = {}  # where a reset said reading resumes
        self.delivered = 0  # records put since start (for the watchdog and /health)

    def started(self) -> int:
        """Call when a fetch begins; hand the result to `put`."""
        return self._clock

    def put(self, tp: Partition, records: Sequence[Any], started: int) -> bool:
        """Queue one fetch's records of `tp`; False when they belong to an abandoned position.

        A fetch in flight across a reset of `tp` read from the position the reset abandoned,
        unless its records reach the position the reset named (`reset(..., positions)`): those
        are kept from that position on (the ones below are already in the state). The others
        are refused: the seek that goes with the reset reads them again, in order.
        """
        if not records:
            return True
        if self._reset_at.get(tp, -1) > started:
            expected = self._expected.get(tp)
            if expected is None or records[0].offset > expected:
                return False
            records = [record for record in records if record.offset >= expected]
            if not records:
                return True
        self._queue.append(Fetch(tp, records))
        waiting = self._waiting[tp] = self._waiting.get(tp, 0) + len(records)
        self.delivered += len(records)
        if waiting >= self._max_records:
            self._room.clear()
        self._ready.set()
        return True

    async def get(self) -> Fetch:
        """The oldest fetch not yet taken (waits for one)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        fetch = self._queue.popleft()
        before = self._waiting[fetch.tp]
        left = before - len(fetch.records)
        if left:
            self._waiting[fetch.tp] = left
        else:
            del self._waiting[fetch.tp]
        if before >= self._max_records > left:  # this partition may be fetched again
            self._room.set()
        return fetch

    def held(self) -> set[Partition]:
        """Partitions the consumer must not fetch for now: their records wait here."""
        return {tp for tp, n in self._waiting.items() if n >= self._max_records}

    async def wait_room(self, timeout: float) -> None:
        """Wait until some held partition was drained, at most `timeout` seconds."""
        if len(self.held()) < len(self._waiting) or not self._waiting:
            return  # some partition is not held (or none is): nothing to wait for
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)

    def reset(
        self, tps: Iterable[Partition], positions: Mapping[Partition, int] | None = None
    ) -> None:
        """Forget what is queued of `tps`: they are about to be read again from `positions`.

        Call it right before seeking them (or before Faust seeks them to the offsets just
        committed), and again once the seek took effect. A fetch in flight across either keeps
        only records from the named position on (`put`); without a position, none.
        """
        self._clock += 1
        drop = set(tps)
        for tp in drop:
            self._reset_at[tp] = self._clock
            self._waiting.pop(tp, None)
            if positions is not None and tp in positions:
                self._expected[tp] = positions[tp]
            else:
                self._expected.pop(tp, None)
        self._queue = deque(f for f in self._queue if f.tp not in drop)
        self._room.set()

    def waiting(self, tp: Partition) -> int:
        return self._waiting.get(tp, 0)

    def __len__(self) -> int:
        return sum(self._waiting.values())
