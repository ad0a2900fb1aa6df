"""The batch-view agent's body: read `joined`, drop replayed pairs, write Parquet, checkpoint.

Offsets of `joined` are committed only after the files holding their rows are written and the
seen-ids state saying so is durable, so a crash replays into the same file names. A flush first
records its offset range (the writer's intent); a worker that finds an intent beyond what its
state covers replays to exactly that cut, so the interrupted flush is rewritten file for file
and no file of it survives beside a differently cut replacement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.continuity import Continuity
from agents.ownership import Ownership
from agents.processor import Processor
from contracts import codec
from contracts.telemetry import Telemetry
from sinks.batch_view import JoinedRow, ParquetWriter, decode_rows, row_problem
from tables import dedup
from tables.checkpoint import CheckpointStore, PartitionState

log = logging.getLogger(__name__)


@dataclass
class _Buffer:
    first_offset: int
    started_ms: int
    last_offset: int = -1
    rows: list[JoinedRow] = field(default_factory=list)


class BatchViewProcessor(Processor):
    def __init__(
        self,
        *,
        store: CheckpointStore,
        writer: ParquetWriter,
        topic: str,
        max_rows: int,
        max_age_ms: int,
        retention_ms: int,
        telemetry: Telemetry,
        ownership: Ownership,
        continuity: Continuity,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        producer: Callable[[], Any] | None = None,
        dead_letter_topic: str | None = None,
        dead_letter_bytes: int | None = None,
    ) -> None:
        super().__init__(
            store=store,
            ownership=ownership,
            continuity=continuity,
            on_refused=telemetry.records_refused.labels("not_owned").inc,
        )
        self.inputs = (topic,)
        self._writer = writer
        self._topic = topic
        self._max_rows = max_rows
        self._max_age_ms = max_age_ms
        self._retention_ms = retention_ms
        self._telemetry = telemetry
        self._now = wall_clock_ms
        self._buffers: dict[int, _Buffer] = {}
        self._cut_at: dict[int, int] = {}  # partition -> offset an interrupted flush ended at
        self._legacy: set[int] = set()  # partitions holding seen-ids of the old layout
        self.failing = False  # the last Parquet write failed (for /health: degraded)
        self._producer = producer
        self._dead_letter_topic = dead_letter_topic
        self._dead_letter_bytes = dead_letter_bytes
        self._dead: dict[int, list[tuple[bytes, bytes]]] = {}  # partition -> (key, envelope)
        self._largest_only = False  # the next flush: the row bound's, of the largest buffer

    def _apply(self, part: PartitionState, message: Any) -> bool:
        """Buffer one record's new rows; True when a flush is due right after it."""
        part.mark(message.topic, message.offset)
        part.events += 1  # a joined record: what the checkpoint reports as made durable
        buffer = self._buffers.get(message.partition)
        if buffer is None:
            buffer = self._buffers[message.partition] = _Buffer(message.offset, self._now())
        buffer.last_offset = message.offset
        rows = self._rows(message)
        part.stream_time = max([part.stream_time, *(row.outcome_timestamp for row in rows)])
        firsts = dedup.first_sightings(
            part.txn,
            [(row.model_id, row.prediction_id, row.timestamp) for row in rows],
            self._retention_ms,
            message.partition in self._legacy,
        )
        buffer.rows.extend(row for row, first in zip(rows, firsts, strict=True) if first)
        if duplicates := firsts.count(False):
            self._telemetry.batch_view_duplicates.inc(duplicates)
        cut = self._cut_at.get(message.partition)
        if cut is not None:
            return message.offset >= cut
        # The row bound is over all partitions' buffers: it is what bounds memory. Reaching it
        # flushes the largest buffer alone: the same files, but one partition's flush at a time
        # in the event loop rather than all of them at once (a 100,000-row flush held the
        # join's records for seconds: the outcome-to-view latency's tail).
        if sum(len(b.rows) for b in self._buffers.values()) >= self._max_rows:
            self._largest_only = True
            return True
        return False

    async def tick(self) -> None:
        now = self._now()
        if any(
            now - b.started_ms >= self._max_age_ms
            for p, b in self._buffers.items()
            if p not in self._cut_at
        ):
            await self.flush()

    async def _flush(self) -> None:
        ready = {
            p
            for p, b in self._buffers.items()
            if p not in self._cut_at or b.last_offset >= self._cut_at[p]
        }
        if self._largest_only:
            self._largest_only = False
            plain = [p for p in ready if p not in self._cut_at]
            if plain:
                largest = max(plain, key=lambda p: len(self._buffers[p].rows))
                ready = {p for p in ready if p in self._cut_at} | {largest}
        for partition in ready:
            part = self.store.partitions[partition]
            dedup.forget_expired(part.txn, part.stream_time)
        try:
            events = await self.store.checkpoint(lambda: self._write_files(ready), only=ready)
        except OSError as exc:
            if not self.failing:
                log.warning("batch view: writing Parquet failed (%s); will retry", exc)
            self.failing = True
            return
        self.failing = False
        self.checkpointed(events)

    def _forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._buffers.pop(partition, None)
            self._cut_at.pop(partition, None)
            self._dead.pop(partition, None)
            self._legacy.discard(partition)

    def _discard(self, partition: int) -> None:
        self._buffers.pop(partition, None)  # the rows are read again; a cut still stands
        self._dead.pop(partition, None)

    def _partition(self, partition: int) -> PartitionState:
        known = partition in self.store.partitions
        part = self.store.partition(partition)
        if not known:
            if dedup.holds_legacy(part.txn):
                self._legacy.add(partition)
            intent = self._writer.read_intent(partition)
            if intent is not None and intent[0] > part.applied.get(self._topic, -1):
                self._cut_at[partition] = intent[1]
                log.info(
                    "batch view: replaying partition %s to its cut at %s", partition, intent[1]
                )
        return part

    def _rows(self, message: Any) -> list[JoinedRow]:
        """The rows of one `joined` record; a record that cannot be written raises, and the
        processor base dead-letters it whole (`_reject`)."""
        value = message.value or b""
        rows = decode_rows(value)
        if rows is not None:
            return rows
        # Not plainly writable: decoded again as dicts, where the full checks word the error
        # (or accept what the fast path declined).
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"joined record is not JSON: {exc}") from exc
        events = body if isinstance(body, list) else [body]
        for event in events:
            problem = row_problem(event)
            if problem is not None:
                raise ValueError(problem)
        return [JoinedRow.of(event) for event in events]

    def _reject(self, part: PartitionState, record: Any, reason: str) -> None:
        super()._reject(part, record, reason)
        envelope = codec.dead_letter(
            codec.Rejected(reason, None, record.value or b"", "apply_failed"),
            record.topic,
            part.partition,
            record.offset,
            record.key,
            self._dead_letter_bytes,
        )
        self._dead.setdefault(part.partition, []).append((record.key or b"", envelope))
        self._telemetry.dead_letters.labels("apply_failed").inc()
        # Its offset is flushed like any other (a file range with no rows from it), so the
        # dead letter goes out with the next flush and the offset is committed after it.
        buffer = self._buffers.get(part.partition)
        if buffer is None:
            buffer = self._buffers[part.partition] = _Buffer(record.offset, self._now())
        buffer.last_offset = record.offset

    async def _send_dead_letters(self, partitions: set[int]) -> None:
        """Before the files: a rejected record's only trace must be durable before its offset
        is committed. Sent again after a failure (they leave the buffer once acknowledged)."""
        pending = [(p, item) for p in sorted(partitions) for item in self._dead.get(p, [])]
        if not pending:
            return
        if self._producer is None or self._dead_letter_topic is None:
            for partition in partitions:  # no dead-letter topic wired (tests): logged only
                self._dead.pop(partition, None)
            return
        producer = self._producer()
        futures = [
            await producer.send(self._dead_letter_topic, envelope, key=key)
            for _, (key, envelope) in pending
        ]
        await asyncio.gather(*futures)
        for partition in partitions:
            self._dead.pop(partition, None)

    async def _write_files(self, partitions: set[int]) -> None:
        # Buffers are dropped only once every file is written: a failed write (S3 down) leaves
        # them, and the unsaved seen-ids, for the next flush to retry.
        await self._send_dead_letters(partitions)
        loop = asyncio.get_running_loop()
        for partition in sorted(partitions):
            buffer = self._buffers[partition]
            await loop.run_in_executor(
                None,
                self._writer.write,
                partition,
                buffer.first_offset,
                buffer.last_offset,
                buffer.rows,
            )
        for partition in partitions:
            buffer = self._buffers.pop(partition)
            log.info(
                "batch view: partition %s offsets %s..%s: %d rows written",
                partition,
                buffer.first_offset,
                buffer.last_offset,
                len(buffer.rows),
            )
            self._cut_at.pop(partition, None)
            self._telemetry.batch_view_rows.inc(len(buffer.rows))
