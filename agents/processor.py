"""The base of the join and the batch view: the bookkeeping every stateful processor needs.

A processor is handed a fetch of one input partition (`process`) and applies its records in
offset order under one lock: records of partitions it does not own right now are refused, records
the state already holds (at or below the marker) are skipped, and a record that is not next in
line has the ones before it read first (`agents.continuity`). Revocation flushes, then forgets,
in one hold of the lock. A subclass says how to apply one record (`_apply`) and how to make what
it applied durable (`_flush`), nothing else.

`run` is the processor's loop over its feed. An exception escaping it (a checkpoint that could
not complete within its retry deadline, a non-retriable Kafka error) stops the worker through
`fatal`: the state on disk and in the changelog is at a checkpoint boundary, so the replacement
recovers it and replays from the marker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agents.continuity import Continuity
from agents.ownership import Ownership
from tables.checkpoint import CheckpointStore, PartitionState

log = logging.getLogger(__name__)

# Time between two turns of the event loop while a fetch is applied (a fetch can hold 1,000s
# of records): timers, sinks and the consumer run in between. By time, not by records: a turn
# costs tens of microseconds, as much as a whole single-event record.
YIELD_AFTER_S = 0.005


class Fetch(Protocol):
    @property
    def tp(self) -> tuple[str, int]: ...

    @property
    def records(self) -> Sequence[Any]: ...


class Source(Protocol):
    async def get(self) -> Fetch: ...


class Processor:
    def __init__(
        self,
        *,
        store: CheckpointStore,
        ownership: Ownership,
        continuity: Continuity,
        on_refused: Callable[[int], object] = lambda n: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inputs: tuple[str, ...] = ()  # the input topics (set by the subclass)
        self.store = store
        self.ownership = ownership
        self._continuity = continuity
        self._on_refused = on_refused
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self.busy = False  # a fetch is in hand (taken from the feed, not yet applied)
        self.received = 0  # records handed to this processor (watchdog, /health)
        self.applied = 0  # records applied (not skipped, not refused)
        self.progressed_at = monotonic()  # last record applied or checkpoint completed
        self.dirty_since: float | None = None  # oldest record applied and not yet durable
        self._failed: dict[tuple[str, int, int], str] = {}  # records to reject, by position
        self._rewound: set[int] = set()  # partitions reading their rewound range again

    async def run(
        self,
        feed: Source,
        fatal: Callable[[str], object],
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Apply every fetch of `feed`, for as long as the worker runs.

        Once the worker is stopping nothing more is applied: Faust stops the consumer, the
        tables and then the producer without telling the processors, so a checkpoint begun
        then fails on a producer that is gone. That is no error (the last checkpoint stands
        and the next owner reads on from it), so it must not turn a clean stop into exit 70.
        """
        while True:
            fetch = await feed.get()
            if stopping():
                return
            topic, partition = fetch.tp
            self.busy = True
            try:
                await self.process(topic, partition, fetch.records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stopping():
                    log.info(
                        "%s stopped during a fetch (%r); the last checkpoint stands",
                        type(self).__name__,
                        exc,
                    )
                    return
                log.exception("%s failed on %s[%s]", type(self).__name__, topic, partition)
                fatal(f"{type(self).__name__}: {type(exc).__name__}: {exc}")
                raise
            finally:
                self.busy = False

    async def process(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """Apply records of one partition (a fetch of it), in offset order."""
        self.received += len(records)
        async with self._lock:
            if not self.ownership.admits(partition):
                self._on_refused(len(records))
                return
            part = self._partition(partition)
            turn = self._monotonic() + YIELD_AFTER_S
            for record in records:
                if self._monotonic() >= turn:
                    await asyncio.sleep(0)  # timers and the consumer run between records
                    turn = self._monotonic() + YIELD_AFTER_S
                if part.already_applied(topic, record.offset):
                    continue
                if self._continuity.is_next(part, record):
                    try:
                        await self._apply_one(part, record)
                        continue
                    except _Rewound:
                        pass
                await self._apply_in_order(part.partition, record)
                part = self._partition(partition)
            await self._after_records()
        await self._after_fetch()

    async def _apply_in_order(self, partition: int, record: Any) -> None:
        """Apply `record` after whatever is missing before it (a hole, or a rewound range)."""
        rewound = partition in self._rewound
        while True:
            part = self._partition(partition)
            if part.already_applied(record.topic, record.offset):
                return
            try:
                async for filled in self._continuity.in_order(part, record, rewound=rewound):
                    await self._apply_one(part, filled)
                self._rewound.discard(partition)
                return
            except _Rewound:
                rewound = True

    async def _apply_one(self, part: PartitionState, record: Any) -> None:
        """Apply one record whole, or not at all.

        A record whose content makes `_apply` raise leaves no partial effect: its partition
        goes back to its last checkpoint (the transaction and the subclass's buffers of it are
        dropped), the records since are read again and applied, and the failed one is handed
        to `_reject` (a dead letter naming the exception) instead. Nothing is paid for this on
        the way of a record that applies.
        """
        where = (record.topic, part.partition, record.offset)
        failure = self._failed.pop(where, None) if self._failed else None
        if failure is not None:
            self._reject(part, record, failure)
            part.mark(record.topic, record.offset)
            part.events += 1
            flush_now = False
        else:
            try:
                flush_now = self._apply(part, record)
            except Exception as exc:  # noqa: BLE001 - any content error: rewind, then reject
                reason = f"failed to apply: {type(exc).__name__}: {exc}"
                log.error(
                    "%s[%s] offset %s %s; its partition goes back to its last checkpoint",
                    *where,
                    reason,
                )
                self._failed[where] = reason
                self._rewound.add(part.partition)
                self.store.rewind(part.partition)
                self._discard(part.partition)
                raise _Rewound(reason) from exc
        self.applied += 1
        self.progressed_at = self._monotonic()
        if self.dirty_since is None:
            self.dirty_since = self.progressed_at
        if flush_now:
            await self._flush()

    async def flush(self) -> None:
        async with self._lock:
            await self._flush()

    def checkpointed(self, events: int) -> None:
        """Subclasses call it after a flush; `events` it made durable (0: nothing was due).

        An empty checkpoint is not progress: a partition whose records never arrive must not
        look alive because a timer keeps checkpointing nothing.
        """
        now = self._monotonic()
        if events:
            self.progressed_at = now
        if not any(p.dirty for p in self.store.partitions.values()):
            self.dirty_since = None

    async def on_assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            self.ownership.assigned(partitions)
            await self._assigned(partitions)

    async def on_revoked(self, partitions: set[int]) -> None:
        """Flush what revoked partitions hold, then forget them: their new owner recovers.

        One hold of the lock: no record can be applied between the flush and the forgetting.
        """
        async with self._lock:
            self.ownership.revoked(partitions)
            await self._flush()
            self.store.forget(partitions)
            self._forget(partitions)

    def resume_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to apply of each owned input partition, by the state's marker."""
        offsets = {}
        for partition in self.ownership.owned:
            applied = self._partition(partition).applied
            for topic in self.inputs:
                offsets[(topic, partition)] = applied.get(topic, -1) + 1
        return offsets

    # -- what a subclass provides ----------------------------------------------------------
    def _partition(self, partition: int) -> PartitionState:
        return self.store.partition(partition)

    def _apply(self, part: PartitionState, record: Any) -> bool:
        """Apply one record; True when a flush is due right after it."""
        raise NotImplementedError

    async def _flush(self) -> None:
        """Make what was applied durable (the lock is held)."""
        raise NotImplementedError

    async def _after_records(self) -> None:
        """After a fetch was applied, with the lock held (start sending what it produced)."""

    async def _after_fetch(self) -> None:
        """After a fetch was applied, outside the lock (a due checkpoint, a rate limit)."""

    async def _assigned(self, partitions: set[int]) -> None:
        """After recovery, with the lock held."""

    def _forget(self, partitions: set[int]) -> None:
        """Revoked partitions were flushed: drop what the subclass holds of them."""

    def _discard(self, partition: int) -> None:
        """The partition went back to its last checkpoint: drop what was buffered since."""

    def _reject(self, part: PartitionState, record: Any, reason: str) -> None:
        """A record that failed to apply, in place of its effects (a dead letter)."""
        log.error(
            "%s[%s] offset %s skipped: %s", record.topic, part.partition, record.offset, reason
        )


class _Rewound(Exception):
    """A record failed to apply and its partition went back to its last checkpoint."""
