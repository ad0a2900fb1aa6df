"""The hand-over of fetched input records from the consumer to one processor, a fetch at a time.

Why not Faust's streams: Faust hands records one by one through a channel queue and drops, with
no trace, every record the consumer had already moved past when a fetch is cut short (flow
stopped for a rebalance, a generation change, a partition paused while its records were in
hand, a delivery cancelled by a suspended flow). The records are gone for the worker: the
partition shows up later as a hole, or, when nothing after it arrives, as a stall with records
waiting. docs/faust.md tells the whole story.

A feed takes each fetch's records of its partitions whole (`put`), never drops one except those
of a partition that was reset (rewound) while the fetch was in flight, and bounds what it holds
per partition: a partition with `max_records` or `max_bytes` waiting is `held`, and the consumer
leaves it out of the next fetches until the processor has taken its records. The byte bound is
what bounds memory: a record of a thousand events weighs a hundred of one event. Pure asyncio,
no Kafka client: the runtime adapter (`streams.runtime`) is what feeds it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

# How far past another input's head a fetch is taken whole: the grain at which a partition's
# two inputs interleave. A pair whose prediction and outcome are applied between the same two
# checkpoints is joined in memory and its state written once; split across two, it is written
# twice and read back from RocksDB. A backlog produced fast (preloaded, mirrored, re-produced)
# carries seconds of timestamps for hours of events: the benchmark's million events span about
# four seconds, so a one-second slack let one input run ~30,000 events ahead of the other in a
# partition, past the ~2,000 a checkpoint holds, and two pairs in three were written twice
# (docs/bench.md). Ten milliseconds keeps them within a few hundred events, still a record or
# more per piece: live traffic, whose inputs interleave every few milliseconds, keeps its
# fetches nearly whole.
ALIGN_SLACK_MS = 10


class Partition(NamedTuple):
    topic: str
    partition: int


class Fetch(NamedTuple):
    """Records of one partition from one fetch, in offset order."""

    tp: Partition
    records: Sequence[Any]  # aiokafka ConsumerRecords (topic, partition, offset, key, value)


class Feed:
    def __init__(
        self, topics: Iterable[str], max_records: int = 20_000, max_bytes: int | None = None
    ) -> None:
        self.topics = frozenset(topics)
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._queue: deque[tuple[Fetch, int]] = deque()  # (fetch, its value bytes)
        self._waiting: dict[Partition, int] = {}  # records queued per partition
        self._bytes: dict[Partition, int] = {}  # value bytes queued per partition
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
        size = sum(len(record.value or b"") for record in records)
        self._queue.append((Fetch(tp, records), size))
        self._waiting[tp] = self._waiting.get(tp, 0) + len(records)
        self._bytes[tp] = self._bytes.get(tp, 0) + size
        self.delivered += len(records)
        if self._full(tp):
            self._room.clear()
        self._ready.set()
        return True

    async def get(self) -> Fetch:
        """The next records to apply (waits for some): the oldest fetch not yet taken, aligned
        in time with the partition's other inputs (`_aligned`)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        fetch, size = self._aligned()
        was_full = self._full(fetch.tp)
        left = self._waiting[fetch.tp] - len(fetch.records)
        if left:
            self._waiting[fetch.tp] = left
            self._bytes[fetch.tp] -= size
        else:
            del self._waiting[fetch.tp]
            self._bytes.pop(fetch.tp, None)
        if was_full and not self._full(fetch.tp):  # this partition may be fetched again
            self._room.set()
        return fetch

    def _aligned(self) -> tuple[Fetch, int]:
        """Take the next records, the inputs of one partition number in timestamp order.

        The consumer fetches each topic at its own pace, so on a backlog one input of a
        partition can run hours ahead of the other (a model's outcomes ahead of its
        predictions moved its clock past hours whose predictions were not in yet). As Kafka
        Streams does, the records queued of a partition's inputs are taken oldest timestamp
        first: from the head fetch of whichever input has the oldest head record, up to the
        other inputs' head timestamps; the rest stays queued in place. Inputs with nothing
        queued are not waited for. Each partition's records still come out in offset order
        (only the first queued fetch of a partition is ever taken from).
        """
        head, head_size = self._queue[0]
        heads: dict[Partition, tuple[int, int]] = {}  # input -> (head stamp, index) of its
        for index, (fetch, _) in enumerate(self._queue):  # first queued fetch
            if fetch.tp.partition == head.tp.partition and fetch.tp not in heads:
                stamp = _stamp(fetch.records[0])
                if stamp is None:
                    break
                heads[fetch.tp] = (stamp, index)
        else:
            if len(heads) > 1:
                return self._take_until_others(heads)
        self._queue.popleft()
        return head, head_size

    def _take_until_others(self, heads: dict[Partition, tuple[int, int]]) -> tuple[Fetch, int]:
        """From the input whose head is oldest, the records up to the others' heads (and
        ALIGN_SLACK_MS beyond, so that finely interleaved inputs keep their fetches whole)."""
        _, chosen = min(heads.values())
        fetch, size = self._queue[chosen]
        limit = min(other for other, index in heads.values() if index != chosen) + ALIGN_SLACK_MS
        take = 1
        while take < len(fetch.records) and (_stamp(fetch.records[take]) or limit) <= limit:
            take += 1
        if take == len(fetch.records):
            del self._queue[chosen]
            return fetch, size
        taken, rest = fetch.records[:take], fetch.records[take:]
        taken_size = sum(len(record.value or b"") for record in taken)
        self._queue[chosen] = (Fetch(fetch.tp, rest), size - taken_size)
        return Fetch(fetch.tp, taken), taken_size

    def _full(self, tp: Partition) -> bool:
        return self._waiting.get(tp, 0) >= self._max_records or (
            self._max_bytes is not None and self._bytes.get(tp, 0) >= self._max_bytes
        )

    def held(self) -> set[Partition]:
        """Partitions the consumer must not fetch for now: their records wait here."""
        return {tp for tp in self._waiting if self._full(tp)}

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
            self._bytes.pop(tp, None)
            if positions is not None and tp in positions:
                self._expected[tp] = positions[tp]
            else:
                self._expected.pop(tp, None)
        self._queue = deque(item for item in self._queue if item[0].tp not in drop)
        self._room.set()

    def waiting(self, tp: Partition) -> int:
        return self._waiting.get(tp, 0)

    def __len__(self) -> int:
        return sum(self._waiting.values())


def _stamp(record: Any) -> int | None:
    """A record's Kafka timestamp (None for records that carry none: no alignment)."""
    stamp = getattr(record, "timestamp", None)
    return stamp if isinstance(stamp, int) else None
