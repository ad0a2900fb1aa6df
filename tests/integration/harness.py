"""Running real workers and reading what they produced, for the integration tests.

Workers are `runway worker` subprocesses configured through RUNWAY_ environment variables,
exactly as a user runs them. Waiting is always on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pyarrow.dataset as ds
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from config.connections import kafka_options
from config.settings import Settings
from stack.processes import WorkerProcess, tail
from streams.producer import make_producer
from tools.traffic import Record

ROOT = Path(__file__).resolve().parents[2]
RUNWAY = str(Path(sys.executable).parent / "runway")
T = TypeVar("T")


class Worker(WorkerProcess):
    """`runway worker` loading exactly `settings`, run from the repository root.

    The product's own `stack.processes.WorkerProcess` (the demo's and the autoscaler's): its own
    session, SIGTERM from the kernel if the test run dies, a start line in the log. The tests
    give a clean stop a minute and read the log across restarts (a killed worker's replacement
    appends to the same file).
    """

    stop_timeout_s = 60.0  # SIGTERM, then this long for the worker to leave its group cleanly

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings, log_path, cwd=ROOT)

    def kill(self, why: str = "SIGKILL by the test") -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        super().kill(why)
        if self.process is not None:
            self.process.wait(timeout=30)

    def healthy(self) -> bool:
        """The worker's /health answers 200."""
        return self.health() is not None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


async def wait_for(
    condition: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.25,
) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def send_records(
    settings: Settings, records: Iterable[Record], *, event_time_stamps: bool = False
) -> int:
    """`event_time_stamps`: each record's Kafka timestamp is its first event's time, as a
    backlog produced live has (its records stamped as they happened), not the time of sending."""
    producer = make_producer(settings)
    await producer.start()
    sent = 0
    try:
        futures = []
        for record in records:
            topic = settings.topic(record.topic)
            stamp = _first_event_time(record.value) if event_time_stamps else None
            futures.append(
                await producer.send(topic, record.value, key=record.key, timestamp_ms=stamp)
            )
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def _first_event_time(value: bytes) -> int:
    events = orjson.loads(value)
    return int((events[0] if isinstance(events, list) else events)["timestamp"])


async def group_caught_up(settings: Settings, topics: list[str]) -> bool:
    """True when the app's consumer group has committed every record of `topics`."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await admin.start()
    await consumer.start()
    try:
        try:
            committed = await admin.list_consumer_group_offsets(settings.app_id)
        except KafkaError:  # e.g. no group coordinator yet on a brand-new broker
            return False
        partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            end = ends[tp]
            meta = committed.get(tp)
            if end > 0 and (meta is None or meta.offset < end):
                return False
        return True
    finally:
        await consumer.stop()
        await admin.close()


async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of a topic, from the beginning to the current end."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes]] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    records.append((message.key, message.value))
                    if message.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


def read_parquet(root: Path) -> list[dict[str, Any]]:
    if not root.exists() or not any(root.rglob("*.parquet")):
        return []
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    return dataset.to_table().to_pylist()


def safety_nets_used(logs: Iterable[Path]) -> tuple[list[str], list[str]]:
    """The WARNING lines of the two safety nets in worker logs: holes filled, watchdog seeks.

    Both must stay empty: each one is a record the consumer failed to hand over.
    """
    lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
    holes = [line for line in lines if "were skipped by the consumer" in line]
    seeks = [line for line in lines if "progress watchdog:" in line and "stalled at" in line]
    return holes, seeks
