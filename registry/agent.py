"""`runway registry-agent`: record every staleness event in the registry, exactly once in effect.

A plain aiokafka consumer in its own group (`RUNWAY_REGISTRY_GROUP_ID`) on the `staleness`
topic. Offsets are committed only after the batch's rows are in the database, so a crash replays
them, and the store's unique (model_id, event_time, emitted_at) turns the replay into no-ops.
An event that fails validation goes to `dead-letters` (the documented envelope), never blocks
the partition. An event whose `impacted` is empty gets the registry's own downstream model list.

Database errors are judged one event at a time by `registry.dberrors`: a transient one (no
connection, the server restarting, a lock) is retried with capped backoff and nothing is
committed meanwhile; a permanent one (a constraint, a value the database refuses) would fail the
same way forever, so the event is *parked*: kept whole in the `parked_events` table with the
error, counted in `runway_registry_agent_parked_total{reason}`, and the agent goes on with the
next event and commits past it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Counter, start_http_server
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from config.connections import kafka_options
from config.settings import Settings
from contracts.codec import Rejected, dead_letter
from registry.backup import backup_loop
from registry.dberrors import describe, is_database_error, is_transient, storable
from registry.records import ParkedEvent, StalenessRecord
from registry.store import Store
from streams.producer import make_producer

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Decoded:
    """A valid event and where it sat: `index` in a batch record, None when the record is this
    one event (the dead letter's convention); `raw` its bytes as a dead letter would carry them."""

    index: int | None
    event: dict[str, Any]
    raw: bytes


def decode_staleness(value: bytes | None) -> tuple[list[Decoded], list[Rejected]]:
    """One record: an event object or a JSON array of them; each validated alone. Pure."""
    raw = value or b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [], [Rejected(f"not JSON: {exc}", None, raw)]
    items, batch = (body, True) if isinstance(body, list) else ([body], False)
    good: list[Decoded] = []
    bad: list[Rejected] = []
    for i, item in enumerate(items):
        try:
            event = StalenessRecord.model_validate(item).model_dump(exclude={"recorded_at"})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            bad.append(Rejected(f"invalid staleness event: {where}: {first['msg']}",
                                i if batch else None, orjson.dumps(item)))  # fmt: skip
        else:
            good.append(
                Decoded(i, event, orjson.dumps(item)) if batch else Decoded(None, event, raw)
            )
    return good, bad


def record_event(store: Store, event: dict[str, Any]) -> bool:
    """Record one event (filling an empty `impacted` from the registry); False: already there."""
    if not event.get("impacted"):
        event = {**event, "impacted": store.impacted(event["model_id"])}
    return store.record_staleness(event)


@dataclass(frozen=True)
class Source:
    """Where a record came from: the parked row's key."""

    topic: str
    partition: int
    offset: int


def parked_row(source: Source, item: Decoded, exc: BaseException, at_ms: int) -> ParkedEvent:
    """The row that keeps a refused event: storable whatever the event held (its bytes in
    base64, NULs in text spelled out)."""
    error = describe(exc)
    model_id = item.event.get("model_id")
    return ParkedEvent(
        source_topic=source.topic, source_partition=source.partition,
        source_offset=source.offset, position=-1 if item.index is None else item.index,
        model_id=storable(model_id, 1024) if isinstance(model_id, str) else None,
        value_b64=base64.b64encode(item.raw).decode(), error_class=error.name,
        error_code=error.code, error=error.message, parked_at=at_ms,
    )  # fmt: skip


class RegistryAgent:
    def __init__(self, settings: Settings, store: Store, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.store = store
        self.sleep = sleep
        self.recorded = 0
        self.dead_lettered = 0
        self.parked = 0
        self.metrics = CollectorRegistry()
        self._recorded = Counter(
            "runway_registry_agent_recorded",
            "Staleness events recorded (a redelivered one is not counted again)",
            registry=self.metrics,
        )
        self._dead_letters = Counter(
            "runway_registry_agent_dead_letters",
            "Invalid staleness events sent to dead-letters",
            registry=self.metrics,
        )
        self._parked = Counter(
            "runway_registry_agent_parked",
            "Events the database refused for good, parked in parked_events, by the driver's "
            "error class",
            ["reason"],
            registry=self.metrics,
        )
        self._retries = Counter(
            "runway_registry_agent_db_retries",
            "Database writes retried after a transient error (connection lost, restart, lock)",
            registry=self.metrics,
        )

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
        # the process that writes all the time also snapshots a SQLite registry (RPO)
        backups = asyncio.create_task(backup_loop(s, stop))
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    await self._handle(tp, records, producer)
                    await consumer.commit({tp: records[-1].offset + 1})
        finally:
            backups.cancel()
            await asyncio.gather(backups, return_exceptions=True)
            await consumer.stop()
            await producer.stop()

    async def _handle(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord[Any, Any]],
        producer: AIOKafkaProducer,
    ) -> None:
        dlq = self.settings.topic("dead-letters")
        for r in records:
            good, bad = decode_staleness(r.value)
            for rej in bad:
                envelope = dead_letter(rej, tp.topic, tp.partition, r.offset, r.key)
                await producer.send_and_wait(dlq, envelope, key=r.key)
                self.dead_lettered += 1
                self._dead_letters.inc()
            for item in good:
                await self.write(Source(tp.topic, tp.partition, r.offset), item)

    async def write(self, source: Source, item: Decoded) -> bool:
        """Record one event, or park it if the database refuses it for good; True if recorded
        now. Returns only once the event's fate is in the database (transient errors retried)."""
        try:
            added = await self._retry_transient(lambda: record_event(self.store, item.event))
        except Exception as exc:
            if not is_database_error(exc):
                raise  # a bug of ours: stop loudly rather than park good events
            await self._park(source, item, exc)
            return False
        self.recorded += added
        self._recorded.inc(int(added))
        return added

    async def _park(self, source: Source, item: Decoded, exc: BaseException) -> None:
        row = parked_row(source, item, exc, self.store.clock())
        log.error(
            "registry agent: the database refused %s[%d]@%d position %d (%s): %s %s; parked",
            source.topic, source.partition, source.offset, row.position, row.model_id,
            row.error_class, row.error,
        )  # fmt: skip
        # The row is built to be storable, so any error writing it is the database being away.
        async for attempt in self._retrying(is_database_error):
            with attempt:
                await asyncio.to_thread(self.store.park_event, row)
        self.parked += 1
        self._parked.labels(describe(exc).reason).inc()

    async def _retry_transient(self, call: Callable[[], T]) -> T:
        def transient(exc: BaseException) -> bool:
            return is_database_error(exc) and is_transient(exc)

        async for attempt in self._retrying(transient):
            with attempt:
                return await asyncio.to_thread(call)
        raise AssertionError("unreachable: tenacity returns or raises")

    def _retrying(self, retry_on: Callable[[BaseException], bool]) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(retry_on),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            sleep=self.sleep,
            reraise=True,
            before_sleep=self._before_retry,
        )

    def _before_retry(self, state: RetryCallState) -> None:
        self._retries.inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning("registry database unavailable; retrying: %s", exc)


def serve_metrics(agent: RegistryAgent, host: str, port: int) -> WSGIServer | None:
    """/metrics on `port` in a thread (None when 0). A port in use costs the metrics, not the
    recording: logged, and the agent runs on."""
    if not port:
        return None
    try:
        server, _ = start_http_server(port, addr=host, registry=agent.metrics)
    except OSError as exc:
        log.error("registry agent: /metrics not served on %s:%d: %s", host, port, exc)
        return None
    log.info("registry agent metrics on http://%s:%d/metrics", host, port)
    return server
