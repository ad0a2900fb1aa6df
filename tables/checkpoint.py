"""Checkpoints: make a partition's coalesced state changes durable, then release its offsets.

Each checkpoint writes, for every partition with changes, ONE Kafka record batch to the table's
changelog partition holding every changed key and, last, the marker (input offsets applied and
stream time). Kafka appends a record batch atomically, so a worker killed at any instant leaves
the changelog at a checkpoint boundary: recovery (Faust's own, unchanged) restores state and
marker together, and input below the marker's offsets is skipped on replay. Only after the batch
is acknowledged is the local RocksDB written (one WriteBatch, with Faust's persisted changelog
offset) and are the group's offsets committed, from the marker.

Faust's per-key Table API costs ~90 us a write; this path costs one dict update per event and one
changelog record per changed key per checkpoint (docs/faust.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from rocksdict import WriteBatch

from tables import keys
from tables.transaction import PartitionTransaction

log = logging.getLogger(__name__)

T = TypeVar("T")

FAUST_OFFSET_KEY = b"__faust\0offset__"  # faust.stores.rocksdb.Store.offset_key


_INT64 = 2**63


def encode(value: Any) -> bytes:
    """A state value's JSON text, for a value copied where it goes and then dropped (into a
    WriteBatch and a changelog record batch, both of which copy it).

    Not to be kept: orjson (3.12 on) returns its working buffer as the bytes object, about
    4 KiB whatever the text's length (200,000 kept index entries of the text `1` took 800 MB),
    so each is freed right after use. Integers skip orjson: their text is their digits.
    """
    if value.__class__ is int and -_INT64 <= value < _INT64:
        return b"%d" % value
    return orjson.dumps(value)


# A checkpoint of a large partition (a batch-view flush: 40,000 keys) takes tens of ms per
# step; every few thousand keys the event loop serves the other processors and the sinks, so
# one processor's checkpoint does not stall another's records (the outcome-to-view latency).
# Safe: the caller holds its processor's lock, and each step's result is used only whole.
YIELD_AFTER_KEYS = 2_000


def _turn_due(index: int) -> bool:
    """Whether key `index` of a loop ends a stretch of YIELD_AFTER_KEYS keys (a plain check,
    not a coroutine: it runs for every changed key)."""
    return index % YIELD_AFTER_KEYS == YIELD_AFTER_KEYS - 1


class ChangelogTooLarge(RuntimeError):
    """A partition's changes do not fit one record batch: atomicity would be lost."""


@dataclass
class PartitionState:
    partition: int
    db: Any  # the partition's rocksdict DB, held: Faust drops (never closes) its handle on
    # revocation and stop, and reopening the path while one is open fails on RocksDB's lock
    txn: PartitionTransaction
    applied: dict[str, int]
    stream_time: int
    sides: dict[str, int] = field(default_factory=dict)  # input topic -> highest event time
    last_wall_ms: dict[str, int] = field(default_factory=dict)  # input topic -> last arrival
    events: int = 0  # events applied since the last checkpoint
    input_bytes: int = 0  # bytes of the input records applied since the last checkpoint
    moved: bool = False  # the marker moved since the last checkpoint

    def already_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

    def mark(self, topic: str, offset: int) -> None:
        self.applied[topic] = offset
        self.moved = True

    @property
    def dirty(self) -> bool:
        return self.moved or self.events > 0 or self.txn.change_count() > 0


Retry = Callable[[Callable[[], Awaitable[T]], str], Awaitable[T]]


async def _once(step: Callable[[], Awaitable[T]], what: str) -> T:
    return await step()


class CheckpointStore:
    """The partitions of one state table owned by this worker, and their checkpoints.

    `db_for(partition)` returns the table's rocksdict DB for a partition; `producer()` the
    started aiokafka producer; `commit({(topic, partition): offset})` commits the consumer
    group (False when the group rebalanced meanwhile); `retry(step, what)` runs a step again
    on retriable Kafka errors until its deadline (the runtime's policy), then raises.
    """

    def __init__(
        self,
        *,
        changelog_topic: str,
        db_for: Callable[[int], Any],
        producer: Callable[[], Any],
        commit: Callable[[dict[tuple[str, int], int]], Awaitable[Any]],
        retry: Retry[Any] = _once,
    ) -> None:
        self.changelog_topic = changelog_topic
        self._db_for = db_for
        self._producer = producer
        self._commit = commit
        self._retry = retry
        self.partitions: dict[int, PartitionState] = {}
        self._committing: asyncio.Future[Any] | None = None
        self._commit_error: BaseException | None = None

    def partition(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is None:
            state = self.partitions[partition] = self._load(partition, self._db_for)
        return state

    @staticmethod
    def _load(partition: int, db_for: Callable[[int], Any]) -> PartitionState:
        db = db_for(partition)
        raw = db.get(keys.MARKER)
        marker = orjson.loads(raw) if raw is not None else {}
        return PartitionState(
            partition,
            db,
            PartitionTransaction(db),
            dict(marker.get("applied", {})),
            marker.get("st", 0),
            dict(marker.get("sides", {})),
        )

    def rewind(self, partition: int) -> PartitionState:
        """Drop what was applied since the partition's last checkpoint; its state as on disk."""
        state = self.partitions.pop(partition, None)
        if state is not None:
            held = state.db
            self.partitions[partition] = self._load(partition, lambda _: held)
        return self.partition(partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop in-memory state of partitions this worker no longer owns (after a flush)."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def pending_changes(self) -> int:
        return max((p.txn.change_count() for p in self.partitions.values()), default=0)

    def pending_bytes(self) -> int:
        """The most input bytes one partition applied since its checkpoint (what its changes
        weigh, roughly: every stored event is in them; see `RUNWAY_CHECKPOINT_MAX_BYTES`)."""
        return max((p.input_bytes for p in self.partitions.values()), default=0)

    async def checkpoint(
        self,
        before_durable: Callable[[], Awaitable[None]] | None = None,
        only: set[int] | None = None,
    ) -> int:
        """Make every partition with applied records durable, in four steps; returns events.

        1. `before_durable`: side effects that are the only copy of something (the `joined`
           records, dead letters, Parquet files) are made durable first, and their buffers
           emptied only once acknowledged.
        2. Per partition, ONE record batch to the changelog: every changed key, then the marker
           (input offsets applied, stream time). Kafka appends a batch atomically.
        3. Once acknowledged: the local RocksDB in one WriteBatch, with Faust's persisted
           changelog offset, and the transaction reset.
        4. The group's offsets, from the markers (in order, in the background: see below).

        Each Kafka step is retried (`retry`) on retriable errors; a step that fails for good
        raises, the worker stops, and nothing of this checkpoint is taken as done: a crash
        after step 2 leaves a changelog that recovery restores, marker and state together;
        after step 3, offsets the next owner re-commits from the marker. The caller holds the
        lock that input processing holds: the transactions must not change meanwhile.
        """
        dirty = [
            p for p in self.partitions.values() if p.dirty and (only is None or p.partition in only)
        ]
        if not dirty:
            return 0
        if before_durable is not None:
            await before_durable()
        staged = []
        for part in dirty:
            marker = {"applied": part.applied, "st": part.stream_time, "sides": part.sides}
            part.txn.set(keys.MARKER, marker)
            staged.append(await self._stage(part))
        offsets_written = await asyncio.gather(*(self._send_retrying(s) for s in staged))
        acked = 0
        offsets: dict[tuple[str, int], int] = {}
        for staging, last_offset in zip(staged, offsets_written, strict=True):
            part = staging.part
            staging.local.put(FAUST_OFFSET_KEY, str(last_offset).encode())
            part.db.write(staging.local)
            part.txn.reset()
            acked += part.events
            part.events = 0
            part.input_bytes = 0
            part.moved = False
            for topic, offset in part.applied.items():
                offsets[(topic, part.partition)] = offset + 1
        # The marker is the truth of what the state holds, so the group's offsets are committed
        # from it directly (never through Faust's acks). Commits go in order, each after the
        # previous one, while the next records are applied. Nothing awaits them: a commit in
        # flight when a rebalance begins finishes only after the rebalance, which waits for
        # the revocation's checkpoint, so waiting here would deadlock. A commit that failed for
        # good fails the next checkpoint (the marker stays the truth either way).
        self._raise_commit_error()
        previous = self._committing

        async def commit_in_order() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # its error is recorded by its callback
                    await previous
            await self._retry(lambda: self._commit(offsets), "commit")

        self._committing = asyncio.ensure_future(commit_in_order())
        self._committing.add_done_callback(self._record_commit_error)
        return acked

    async def settle(self) -> None:
        """Wait for the commits in flight (tests, shutdown); raise the error of a failed one."""
        committing = self._committing
        if committing is not None:
            with contextlib.suppress(Exception):
                await committing
        self._raise_commit_error()

    def _record_commit_error(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._commit_error = task.exception()
            log.warning("committing offsets failed: %r", self._commit_error)

    def _raise_commit_error(self) -> None:
        error, self._commit_error = self._commit_error, None
        if error is not None:
            raise error

    async def _stage(self, part: PartitionState) -> _Staged:
        """Steps 2 and 3 prepared in one pass over the changed keys: each value encoded once,
        appended to the changelog batch and to the (not yet written) local WriteBatch.

        One pass, not one per step: at two to three changed keys per event, the per-key
        Python overhead of each extra loop was a measurable share of the worker's CPU. The
        encoded values are not kept (both batches copy them), so orjson's oversized buffers
        are freed one by one; a retry encodes the transaction's changes again."""
        batch = self._producer().create_batch()
        local = WriteBatch(raw_mode=True)
        append, put, delete = batch.append, local.put, local.delete
        pending = part.txn.changes()
        count = 0
        while True:
            before = count
            for key, value in itertools.islice(pending, YIELD_AFTER_KEYS):
                if value is None:
                    encoded = None
                    delete(key)
                else:
                    encoded = encode(value)
                    put(key, encoded)
                count += 1
                if append(key=key, value=encoded, timestamp=None) is None:
                    raise ChangelogTooLarge(
                        f"the changes of partition {part.partition} exceed one record batch; "
                        "lower RUNWAY_CHECKPOINT_MAX_BYTES or RUNWAY_CHECKPOINT_MAX_KEYS"
                    )
            if count - before < YIELD_AFTER_KEYS:
                return _Staged(part, count, local, batch)
            await asyncio.sleep(0)

    async def _send_retrying(self, staged: _Staged) -> int:
        return int(await self._retry(lambda: self._send(staged), "changelog"))

    async def _send(self, staged: _Staged) -> int:
        """Append one partition's changes as one record batch; the offset of its last record.

        The first attempt sends the batch staged with the changes; a retry builds it again
        from the transaction, unchanged until the checkpoint ends (a batch, once sent, is
        spent)."""
        producer = self._producer()
        batch, staged.batch = staged.batch, None
        if batch is None:
            batch = producer.create_batch()
            for index, (key, value) in enumerate(staged.part.txn.changes()):
                if _turn_due(index):
                    await asyncio.sleep(0)  # the batch goes out whole, once complete
                encoded = None if value is None else encode(value)
                if batch.append(key=key, value=encoded, timestamp=None) is None:
                    raise ChangelogTooLarge(
                        f"{staged.changes} changes of partition {staged.part.partition} "
                        "exceed one record batch; lower RUNWAY_CHECKPOINT_MAX_BYTES or "
                        "RUNWAY_CHECKPOINT_MAX_KEYS"
                    )
        future = await producer.send_batch(
            batch, self.changelog_topic, partition=staged.part.partition
        )
        metadata = await future
        return int(metadata.offset) + staged.changes - 1


@dataclass
class _Staged:
    """One partition's checkpoint, prepared: how many changes, its local write, its changelog
    batch (None once sent)."""

    part: PartitionState
    changes: int  # how many changed keys the batch holds
    local: Any  # rocksdict WriteBatch
    batch: Any | None
