"""Reads a consumer group's lag from Kafka: committed offsets, log bounds, head timestamps.

Why read the record rather than ask `offsets_for_times`: that call maps a time to an offset,
the opposite direction; the age of the next unconsumed record needs that record's stored
timestamp, so a group-less reader consumer seeks each lagging partition to the group's position
and fetches one batch there (small fetch sizes: only the first record is looked at).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from autoscale.lag import GroupLag, PartitionKey, PartitionOffsets, RateWindow, group_lag
from config.connections import kafka_options
from config.settings import Settings

HEAD_FETCH_TIMEOUT_S = 3.0


class LagProbe:
    """One group over a set of topics; `sample()` as often as you like (rates need two)."""

    def __init__(
        self,
        kafka: dict[str, Any],
        group: str,
        topics: list[str],
        rate_window_s: float,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.topics = topics
        self.rates = RateWindow(rate_window_s)
        self._wall_ms = wall_ms
        self._monotonic = monotonic
        self._admin = AIOKafkaAdminClient(**kafka)
        self._meta = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
        self._reader = AIOKafkaConsumer(
            **kafka,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,  # a batch bigger than this still comes whole
            fetch_max_bytes=1024 * 1024,
        )

    @classmethod
    def for_join(cls, settings: Settings) -> LagProbe:
        """The join's consumer group over its two input topics."""
        topics = [settings.topic("predictions"), settings.topic("outcomes")]
        return cls(
            kafka_options(settings), settings.app_id, topics, settings.autoscale_rate_window_s
        )

    async def start(self) -> None:
        await self._admin.start()
        await self._meta.start()
        await self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()
        await self._meta.stop()
        await self._admin.close()

    async def __aenter__(self) -> LagProbe:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def partitions(self) -> list[TopicPartition]:
        found = []
        for described in await self._admin.describe_topics(self.topics):
            numbers = sorted(p["partition"] for p in described["partitions"])
            if described["error_code"] or not numbers:
                raise LookupError(f"topic {described['topic']} does not exist")
            found += [TopicPartition(described["topic"], p) for p in numbers]
        return found

    async def offsets(self) -> list[PartitionOffsets]:
        tps = await self.partitions()
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        starts = await self._meta.beginning_offsets(tps)
        ends = await self._meta.end_offsets(tps)
        result = []
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            result.append(PartitionOffsets(tp.topic, tp.partition, offset, starts[tp], ends[tp]))
        return result

    async def head_timestamps(self, offsets: list[PartitionOffsets]) -> dict[PartitionKey, int]:
        """Stored timestamp (ms) of the record at each lagging partition's position."""
        lagging = {
            TopicPartition(o.topic, o.partition): o.position for o in offsets if o.offset_lag
        }
        if not lagging:
            return {}
        self._reader.assign(list(lagging))
        for tp, position in lagging.items():
            self._reader.seek(tp, position)
        found: dict[PartitionKey, int] = {}
        deadline = time.monotonic() + HEAD_FETCH_TIMEOUT_S
        waiting = set(lagging)
        while waiting and time.monotonic() < deadline:
            batch = await self._reader.getmany(*waiting, timeout_ms=500)
            for tp, messages in batch.items():
                if messages and tp in waiting:
                    found[(tp.topic, tp.partition)] = messages[0].timestamp
                    waiting.discard(tp)
        return found

    async def sample(self) -> GroupLag:
        offsets = await self.offsets()
        heads = await self.head_timestamps(offsets)
        self.rates.add(self._monotonic(), offsets)
        return group_lag(self.group, offsets, heads, self._wall_ms(), self.rates)


async def sample_twice(probe: LagProbe, interval_s: float) -> GroupLag:
    """A one-shot reading with rates: two samples `interval_s` apart."""
    await probe.sample()
    await asyncio.sleep(interval_s)
    return await probe.sample()
