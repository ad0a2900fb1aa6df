"""What `runway demo` watches while traffic flows: its own sending rate, the speed view and
staleness hashes in Redis, and the join's consumer group in Kafka (backlog, dead letters)."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from config.connections import kafka_options
from config.settings import Settings
from contracts.ids import escape_id
from tools.demo_table import Hashes

WINDOW = "1h"


# -- the generator ---------------------------------------------------------------------------------


@dataclass
class SendCounter:
    """What the generator has sent so far, and a recent rate."""

    events: int = 0
    records: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    def add(self, records: int, events: int) -> None:
        self.records += records
        self.events += events

    def sample(self, now: float) -> float:
        """Events/s over the last few seconds of samples."""
        self.samples.append((now, self.events))
        (t0, e0), (t1, e1) = self.samples[0], self.samples[-1]
        return (e1 - e0) / (t1 - t0) if t1 > t0 else 0.0


# -- reading what the workers made -----------------------------------------------------------------


async def read_views(redis: Redis, prefix: str, model_ids: Sequence[str]) -> dict[str, Hashes]:
    """Each model's hash, its window hash and its last staleness verdict (models seen only)."""
    pipe = redis.pipeline(transaction=False)
    for model_id in model_ids:
        base = f"{prefix}:model:{escape_id(model_id)}"
        pipe.hgetall(base)
        pipe.hgetall(f"{base}:window:{WINDOW}")
        pipe.hgetall(f"{base}:staleness")
    replies = await pipe.execute()
    views: dict[str, Hashes] = {}
    for i, model_id in enumerate(model_ids):
        info, window, staleness = replies[3 * i : 3 * i + 3]
        if info:
            views[model_id] = (_decode(info), _decode(window), _decode(staleness))
    return views


def _decode(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    def text(v: bytes | str) -> str:
        return v.decode() if isinstance(v, bytes) else v

    return {text(k): text(v) for k, v in fields.items()}


class GroupWatch:
    """The consumer group and the topics around it, seen from Kafka.

    `dead_letters`: records on the dead-letters topic since `start`; `backlog`: records of the
    input topics the group has not committed yet; `members`: the group's state and size.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = settings.app_id
        self.dead = [
            TopicPartition(settings.topic("dead-letters"), p) for p in range(settings.partitions)
        ]
        self.inputs = [
            TopicPartition(settings.topic(name), p)
            for name in ("predictions", "outcomes")
            for p in range(settings.partitions)
        ]
        self.consumer = AIOKafkaConsumer(**kafka_options(settings))
        self.admin = AIOKafkaAdminClient(**kafka_options(settings))
        self.baseline = 0
        self.dead_letters = 0
        self.backlog: int | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.admin.start()
        self.baseline = await self._dead_total()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _dead_total(self) -> int:
        ends = await self.consumer.end_offsets(self.dead)
        return int(sum(ends.values()))

    async def members(self) -> tuple[str, int]:
        """(state, member count) of the join's consumer group."""
        response = await self.admin.describe_consumer_groups([self.group])
        group = response[0].to_object()["groups"][0]
        return str(group["state"]), len(group["members"])

    async def refresh(self) -> None:
        with contextlib.suppress(Exception):
            self.dead_letters = await self._dead_total() - self.baseline
            ends = await self.consumer.end_offsets(self.inputs)
            committed = await self.admin.list_consumer_group_offsets(self.group)
            self.backlog = sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )
