"""The batch-view agent's body: read `joined`, drop replayed pairs, write Parquet, checkpoint.

Offsets of `joined` are acked only after the files holding their rows are written and the
seen-ids state saying so is durable, so a crash replays into the same file names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sinks.batch_view import ParquetWriter
from streams.telemetry import Telemetry
from tables import dedup
from tables.checkpoint import CheckpointStore

log = logging.getLogger(__name__)


@dataclass
class _Buffer:
    first_offset: int
    started_ms: int
    rows: list[dict[str, Any]] = field(default_factory=list)


class BatchViewProcessor:
    def __init__(
        self,
        store: CheckpointStore,
        writer: ParquetWriter,
        max_rows: int,
        max_age_ms: int,
        retention_ms: int,
        telemetry: Telemetry,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.store = store
        self._writer = writer
        self._max_rows = max_rows
        self._max_age_ms = max_age_ms
        self._retention_ms = retention_ms
        self._telemetry = telemetry
        self._now = wall_clock_ms
        self._lock = asyncio.Lock()
        self._buffers: dict[int, _Buffer] = {}

    async def process(self, event: Any) -> None:
        message = event.message
        async with self._lock:
            part = self.store.partition(message.partition)
            part.unacked.append(event)
            if part.already_applied(message.topic, message.offset):
                return
            part.mark(message.topic, message.offset)
            try:
                body = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                log.error(
                    "joined record at %s:%s is not JSON; skipped", message.partition, message.offset
                )
                return
            for row in body if isinstance(body, list) else [body]:
                part.stream_time = max(part.stream_time, row["outcome_timestamp"])
                if not dedup.first_sighting(
                    part.txn, row["prediction_id"], row["outcome_timestamp"], self._retention_ms
                ):
                    self._telemetry.batch_view_duplicates.inc()
                    continue
                buffer = self._buffers.get(message.partition)
                if buffer is None:
                    buffer = self._buffers[message.partition] = _Buffer(message.offset, self._now())
                buffer.rows.append(row)
            full = any(len(b.rows) >= self._max_rows for b in self._buffers.values())
        if full:
            await self.flush()

    async def tick(self) -> None:
        now = self._now()
        if any(now - b.started_ms >= self._max_age_ms for b in self._buffers.values()) or any(
            p.unacked and not self._buffers for p in self.store.partitions.values()
        ):
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            for part in self.store.partitions.values():
                dedup.forget_expired(part.txn, part.stream_time)
            try:
                await self.store.checkpoint(self._write_files)
            except OSError as exc:
                log.warning("batch view: writing Parquet failed (%s); will retry", exc)

    async def on_revoked(self, partitions: set[int]) -> None:
        await self.flush()
        async with self._lock:
            self.store.forget(partitions)

    async def _write_files(self) -> None:
        # Buffers are dropped only once every file is written: a failed write (S3 down) leaves
        # them, and the unsaved seen-ids, for the next flush to retry.
        loop = asyncio.get_running_loop()
        for partition, buffer in sorted(self._buffers.items()):
            await loop.run_in_executor(
                None, self._writer.write, partition, buffer.first_offset, buffer.rows
            )
        for buffer in self._buffers.values():
            self._telemetry.batch_view_rows.inc(len(buffer.rows))
        self._buffers = {}
