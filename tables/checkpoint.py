"""Checkpoints: make a partition's coalesced state changes durable, then release its offsets.

Each checkpoint writes, for every partition with changes, ONE Kafka record batch to the table's
changelog partition holding every changed key and, last, the marker (input offsets applied and
stream time). Kafka appends a record batch atomically, so a worker killed at any instant leaves
the changelog at a checkpoint boundary: recovery (Faust's own, unchanged) restores state and
marker together, and input below the marker's offsets is skipped on replay. Only after the batch
is acknowledged is the local RocksDB written (one WriteBatch, with Faust's persisted changelog
offset) and are the input events acked, so Faust commits offsets behind durable state.

Faust's per-key Table API costs ~90 us a write; this path costs one dict update per event and one
changelog record per changed key per checkpoint (see FAUST-PITFALLS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from rocksdict import WriteBatch

from tables import keys
from tables.transaction import PartitionTransaction

log = logging.getLogger(__name__)

FAUST_OFFSET_KEY = b"__faust\0offset__"  # faust.stores.rocksdb.Store.offset_key


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
    unacked: list[Any] = field(default_factory=list)  # faust events to ack once durable
    last_wall_ms: dict[str, int] = field(default_factory=dict)  # input topic -> last arrival
    events: int = 0

    def already_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

    def mark(self, topic: str, offset: int) -> None:
        self.applied[topic] = offset


class CheckpointStore:
    """The partitions of one state table owned by this worker, and their checkpoints.

    `db_for(partition)` returns the table's rocksdict DB for a partition; `producer()` the
    started aiokafka producer; `ack(event)` acks a Faust event (bound by the agent to its
    manual-ack stream); `commit({(topic, partition): offset})` commits the consumer group.
    """

    def __init__(
        self,
        changelog_topic: str,
        db_for: Callable[[int], Any],
        producer: Callable[[], Any],
        ack: Callable[[Any], Awaitable[Any]],
        commit: Callable[[dict[tuple[str, int], int]], Awaitable[Any]],
    ) -> None:
        self.changelog_topic = changelog_topic
        self._db_for = db_for
        self._producer = producer
        self.ack = ack
        self._commit = commit
        self.partitions: dict[int, PartitionState] = {}

    def partition(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is None:
            db = self._db_for(partition)
            raw = db.get(keys.MARKER)
            marker = orjson.loads(raw) if raw is not None else {}
            state = PartitionState(
                partition,
                db,
                PartitionTransaction(db),
                dict(marker.get("applied", {})),
                marker.get("st", 0),
                dict(marker.get("sides", {})),
            )
            self.partitions[partition] = state
        return state

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop in-memory state of partitions this worker no longer owns (after a flush)."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def pending_changes(self) -> int:
        return max((p.txn.change_count() for p in self.partitions.values()), default=0)

    async def checkpoint(
        self,
        before_durable: Callable[[], Awaitable[None]] | None = None,
        only: set[int] | None = None,
    ) -> int:
        """Flush every partition with changes or unacked events. Returns events acked.

        The caller holds the lock that input processing holds: the transactions must not change
        while their changes are in flight.

        `only` limits it to some partitions. `before_durable` runs first: side effects that
        are the only copy of something (output topics, Parquet files) must be durable before
        the state says they happened.
        """
        dirty = [
            p
            for p in self.partitions.values()
            if (p.unacked or p.txn.change_count()) and (only is None or p.partition in only)
        ]
        if not dirty:
            return 0
        if before_durable is not None:
            await before_durable()
        producer = self._producer()
        sends = []
        for part in dirty:
            marker = {"applied": part.applied, "st": part.stream_time, "sides": part.sides}
            part.txn.set(keys.MARKER, marker)
            changes = [
                (key, None if value is None else orjson.dumps(value))
                for key, value in part.txn.changes()
            ]
            batch = producer.create_batch()
            for key, encoded in changes:
                if batch.append(key=key, value=encoded, timestamp=None) is None:
                    raise ChangelogTooLarge(
                        f"{len(changes)} changes of partition {part.partition} exceed one "
                        "record batch; lower RUNWAY_CHECKPOINT_MAX_EVENTS"
                    )
            future = await producer.send_batch(
                batch, self.changelog_topic, partition=part.partition
            )
            sends.append((part, changes, future))
        acked = 0
        offsets: dict[tuple[str, int], int] = {}
        for part, changes, future in sends:
            metadata = await future
            write = WriteBatch(raw_mode=True)
            for key, value in changes:
                if value is None:
                    write.delete(key)
                else:
                    write.put(key, value)
            write.put(FAUST_OFFSET_KEY, str(metadata.offset + len(changes) - 1).encode())
            part.db.write(write)
            part.txn.reset()
            events, part.unacked = part.unacked, []
            for event in events:
                await self.ack(event)
            acked += part.events
            part.events = 0
            for topic, offset in part.applied.items():
                offsets[(topic, part.partition)] = offset + 1
        # The marker is the truth of what the state holds, so the group's offsets are committed
        # from it directly: Faust's own commits (from acks) stall for good if one offset is
        # never acked, which we saw after SIGKILL storms; acks still release Faust's buffers.
        await self._commit(offsets)
        return acked
