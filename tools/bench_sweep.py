"""`runway bench`'s sweep phase: state stays bounded when models stop sending.

With shortened settings (windows of 1 h and 7 h, 60 s label TTL and retentions), `idle` models
send a little traffic at T, then one `live` model per partition sends at T + 8 h. A worker
drains the first part and stops; the join state's keys are counted (every partition DB,
marker and Faust's offset key left out), and so are the phase's Redis keys. The worker
drains the second part: by then the idle models' clocks stood still for more than their
longest window plus their TTL of stream time, so the sweep forgets them, and the keys are
counted again. The JSON gets
`state_keys_before_sweep`, `state_keys_after_sweep`, `redis_keys_before_sweep` and
`redis_keys_after_sweep`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis
from rocksdict import AccessType, Options, Rdict

from config.connections import kafka_options, redis_options
from config.settings import Settings
from stack.processes import WorkerProcess
from stack.topics import ensure_topics
from streams.producer import make_producer
from tables import keys
from tables.checkpoint import FAUST_OFFSET_KEY

POLL_S = 0.2

HOUR_MS = 3_600_000
IGNORED = (keys.MARKER, FAUST_OFFSET_KEY)


def sweep_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "windows": "1h,7h",  # the longest must exceed 6 h (the reference's 1 h buckets)
            "staleness_windows": "1h",
            "staleness_reference_window_ms": HOUR_MS,
            "staleness_reference_settle_ms": 0,
            "label_ttl_ms": 60_000,
            "early_outcome_ttl_ms": 60_000,
            "done_retention_ms": 60_000,
        }
    )


def _events(model_id: str, start_ms: int, count: int) -> tuple[list[Any], list[Any]]:
    predictions = [
        {
            "prediction_id": f"{model_id}-{i}",
            "model_id": model_id,
            "model_version": "v1",
            "timestamp": start_ms + i,
            "task": "binary",
            "score": (i % 10) / 10,
        }
        for i in range(count)
    ]
    outcomes = [
        {
            "prediction_id": f"{model_id}-{i}",
            "model_id": model_id,
            "timestamp": start_ms + i + 1_000,
            "label": i % 2,
        }
        for i in range(0, count, 2)  # half labelled: the rest wait, then expire
    ]
    return predictions, outcomes


async def _send(settings: Settings, batches: list[tuple[str, str, list[Any], int | None]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for topic, key, events, partition in batches:
            await producer.send(
                settings.topic(topic), orjson.dumps(events), key=key.encode(), partition=partition
            )
        await producer.flush()
    finally:
        await producer.stop()


async def input_ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of every non-empty input partition (predictions and outcomes)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.topic(topic), p)
            for topic in ("predictions", "outcomes")
            for p in range(settings.partitions)
        ]
        return {tp: int(end) for tp, end in (await consumer.end_offsets(tps)).items() if end}
    finally:
        await consumer.stop()


async def committed_up_to(
    admin: AIOKafkaAdminClient, settings: Settings, ends: dict[TopicPartition, int]
) -> bool:
    """The worker group committed every input partition up to `ends`."""
    committed = await admin.list_consumer_group_offsets(settings.app_id)
    return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())


async def drain(
    settings: Settings,
    log_path: Path,
    timeout_s: float = 600.0,
    also: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """One `runway worker` until the group committed every input record sent (and `also`
    holds), then stopped."""
    worker = WorkerProcess(settings, log_path).start()
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        ends = await input_ends(settings)
        deadline = time.monotonic() + timeout_s
        while True:
            await asyncio.sleep(POLL_S)
            if not worker.alive():
                raise worker.died()
            drained = await committed_up_to(admin, settings, ends)
            if drained and (also is None or await also()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep worker did not drain in {timeout_s:.0f}s")
    finally:
        await admin.close()
        worker.stop()


def count_state_keys(datadir: Path) -> int:
    """Keys of every join-state partition DB under a stopped worker's data directory."""
    total = 0
    for path in sorted(datadir.glob("**/tables/join-*.db")):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            total += sum(1 for key in db.keys() if key not in IGNORED)  # noqa: SIM118
        finally:
            db.close()
    return total


def _models_in_view(settings: Settings, count: int) -> Callable[[], Awaitable[bool]]:
    """A condition: the speed view's set of models holds exactly `count` models."""

    async def holds() -> bool:
        redis = Redis.from_url(settings.redis_url, **redis_options(settings))
        try:
            return int(await redis.scard(f"{settings.redis_key_prefix}:models")) == count
        finally:
            await redis.aclose()

    return holds


async def count_redis_keys(settings: Settings) -> int:
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        return len([key async for key in redis.scan_iter(f"{settings.redis_key_prefix}:*")])
    finally:
        await redis.aclose()


async def sweep_phase(
    settings: Settings, workdir: Path, idle_models: int = 200, events_per_model: int = 20
) -> dict[str, int]:
    settings = sweep_settings(settings)
    await ensure_topics(settings)
    start = int(time.time() * 1000) - 9 * HOUR_MS  # the later part stays in the past too
    batches: list[tuple[str, str, list[Any], int | None]] = []
    for index in range(idle_models):
        model = f"idle-{index:04d}"
        predictions, outcomes = _events(model, start, events_per_model)
        batches += [("predictions", model, predictions, None), ("outcomes", model, outcomes, None)]
    await _send(settings, batches)
    await drain(  # every idle model's view written (the speed view writes after checkpoints)
        settings, workdir / "worker-sweep-before.log", also=_models_in_view(settings, idle_models)
    )
    before = count_state_keys(Path(settings.datadir))
    redis_before = await count_redis_keys(settings)
    # Eight hours later, one live model per partition moves every partition's stream time
    # (both inputs) past the idle models' horizon: the 7 h window + 60 s TTL.
    batches = []
    live = settings.partitions
    for partition in range(live):
        model = f"live-{partition:02d}"
        predictions, outcomes = _events(model, start + 8 * HOUR_MS, 2)
        batches += [
            ("predictions", model, predictions, partition),
            ("outcomes", model, outcomes, partition),
        ]
    await _send(settings, batches)
    # the live models' views written, the idle ones' deleted (at the speed view's next flush)
    await drain(settings, workdir / "worker-sweep-after.log", also=_models_in_view(settings, live))
    return {
        "state_keys_before_sweep": before,
        "state_keys_after_sweep": count_state_keys(Path(settings.datadir)),
        "redis_keys_before_sweep": redis_before,
        "redis_keys_after_sweep": await count_redis_keys(settings),
        "sweep_idle_models": idle_models,
    }
