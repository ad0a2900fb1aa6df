"""Read a range of one partition with a consumer of our own, outside the group.

The processors use it to fill a hole the group's consumer left (see `agents.continuity`):
Faust's consumer cannot be trusted to re-deliver records below its read position.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.continuity import RawRecord

READ_TIMEOUT_S = 60.0


class HoleUnreadable(RuntimeError):
    """The missing records could not be read in time; the record that revealed them waits."""


async def read_range(
    kafka: Mapping[str, Any], topic: str, partition: int, start: int, end: int
) -> AsyncIterator[RawRecord]:
    """Records of `topic[partition]` with start <= offset < end, in order; `kafka` is
    `config.connections.kafka_options` (servers and security)."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # below the log start (retention): from the start
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise HoleUnreadable(f"{topic}[{partition}] {start}..{end - 1} unreadable")
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1000)
            for record in batch.get(tp, []):
                if record.offset >= end:
                    return
                yield RawRecord(topic, partition, record.offset, record.key, record.value)
    finally:
        await consumer.stop()
