"""`runway registry-agent`: record every staleness event in the registry, exactly once in effect.

A plain aiokafka consumer in its own group (`RUNWAY_REGISTRY_GROUP_ID`) on the `staleness`
topic. Offsets are committed only after the batch's rows are in the database, so a crash replays
them, and the store's unique (model_id, event_time, emitted_at) turns the replay into no-ops.
While the database is down the agent retries with capped backoff and commits nothing. An event
that fails validation goes to `dead-letters` (the documented envelope), never blocks the
partition. An event whose `impacted` is empty gets the registry's own downstream model list.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from config.connections import kafka_options
from config.settings import Settings
from contracts.codec import Rejected, dead_letter
from registry.records import StalenessRecord
from registry.store import Store
from streams.producer import make_producer

log = logging.getLogger(__name__)


def decode_staleness(value: bytes | None) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """One record: an event object or a JSON array of them; each validated alone. Pure."""
    raw = value or b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [], [Rejected(f"not JSON: {exc}", None, raw)]
    items, batch = (body, True) if isinstance(body, list) else ([body], False)
    good: list[dict[str, Any]] = []
    bad: list[Rejected] = []
    for i, item in enumerate(items):
        try:
            good.append(StalenessRecord.model_validate(item).model_dump(exclude={"recorded_at"}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            bad.append(Rejected(f"invalid staleness event: {where}: {first['msg']}",
                                i if batch else None, orjson.dumps(item)))  # fmt: skip
    return good, bad


def record_events(store: Store, events: list[dict[str, Any]]) -> int:
    """Record events (filling an empty `impacted` from the registry); returns rows added."""
    added = 0
    for event in events:
        if not event.get("impacted"):
            event = {**event, "impacted": store.impacted(event["model_id"])}
        added += store.record_staleness(event)
    return added


class RegistryAgent:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.recorded = 0
        self.dead_lettered = 0

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        topic = s.topic("staleness")
        consumer = AIOKafkaConsumer(
            topic,
            **kafka_options(s),
            group_id=s.registry_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        producer = make_producer(s)
        await asyncio.to_thread(self.store.create_schema)
        await producer.start()
        await consumer.start()
        log.info("registry agent consuming %s as group %s", topic, s.registry_group_id)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    await self._handle(tp, records, producer)
                    await consumer.commit({tp: records[-1].offset + 1})
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord[Any, Any]],
        producer: AIOKafkaProducer,
    ) -> None:
        dlq = self.settings.topic("dead-letters")
        events: list[dict[str, Any]] = []
        for r in records:
            good, bad = decode_staleness(r.value)
            events += good
            for rej in bad:
                envelope = dead_letter(rej, tp.topic, tp.partition, r.offset, r.key)
                await producer.send_and_wait(dlq, envelope, key=r.key)
                self.dead_lettered += 1
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(SQLAlchemyError),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            before_sleep=lambda st: log.warning("registry database down; retrying: %s",
                                                st.outcome and st.outcome.exception()),
        ):  # fmt: skip
            with attempt:
                self.recorded += await asyncio.to_thread(record_events, self.store, events)
