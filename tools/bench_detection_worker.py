"""`runway bench-detection --path worker`: the scenarios through a real `runway worker`.

Every scenario of one traffic level is a model on the same private topics (`bench-detection-
<level>-<run>.` prefix, its own consumer group, Redis prefix and datadir, all deleted at the
end). The scenarios' predictions and labels (the same generator as the in-process path, with
prediction ids and label timestamps) are sent hour of event time by hour of event time,
predictions in records of at most 100 events, each label at the time it is observed, each hour
once the worker has committed the one before (paced like live traffic, only faster than real
time: a backlog of everything at once lets a model's outcomes be consumed days ahead of its
predictions, whose clock then never crosses the hours in between); the registry's facts
(maximum age; `past_max_age`'s trained time) go to the worker's Redis cache as the registry
agent writes them. Its hour verdicts (`event_time` a whole hour: the join judges each model when its
clock crosses an hour) on the `staleness` topic are the timeline `summarize` reads, as the
in-process path's hourly verdicts.

"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.connections import kafka_options, redis_options
from config.settings import Settings, worker_environment
from config.windows import HOUR_MS
from contracts.ids import escape_id
from stack.topics import ensure_topics
from staleness.config import from_settings
from streams.producer import make_producer
from tools.bench import RUNWAY, cleanup, stop_process
from tools.bench_detection import (
    DAY_MS,
    RECORD_EVENTS,
    T0,
    Hourly,
    Outcome,
    Scenario,
    facts_document,
    hourly_events,
    hourly_of,
    model_id,
    scenario_days,
    summarize,
)

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _send_paced(
    settings: Settings,
    scenarios: Sequence[Scenario],
    level: int,
    emit: Callable[[str], None],
    chunk_deadline_s: float = 300.0,
) -> int:
    """Every scenario's events, one hour of event time at a time across the models, each hour
    sent once the worker has committed the previous one: the worker sees what a live one would
    (no model's outcomes consumed hours ahead of its predictions), only faster than real time.
    Returns the events sent."""
    producer = make_producer(settings)
    await producer.start()
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    sent = 0
    ends: dict[TopicPartition, int] = {}
    streams = {s.name: hourly_events(s, level) for s in scenarios}
    heads = {name: next(it, None) for name, it in streams.items()}
    started = time.monotonic()
    try:
        while any(h is not None for h in heads.values()):
            hour = min(h[0] for h in heads.values() if h is not None)
            futures = []
            for name, head in list(heads.items()):
                if head is None or head[0] != hour:
                    continue
                _, preds, labels = head
                for topic, events in (("predictions", preds), ("outcomes", labels)):
                    for i in range(0, len(events), RECORD_EVENTS):
                        chunk = events[i : i + RECORD_EVENTS]
                        key = chunk[0]["model_id"].encode()
                        value = orjson.dumps(chunk)
                        futures.append(await producer.send(settings.topic(topic), value, key=key))
                        sent += len(chunk)
                heads[name] = next(streams[name], None)
            for meta in await asyncio.gather(*futures):
                tp = TopicPartition(meta.topic, meta.partition)
                ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
            await _committed(admin, settings.app_id, ends, chunk_deadline_s)
            if (hour - T0) % DAY_MS == 0:
                emit(f"  worker: day {(hour - T0) // DAY_MS} applied, {sent:,} events, "
                     f"{time.monotonic() - started:.0f} s")  # fmt: skip
    finally:
        await producer.stop()
        await admin.close()
    return sent


async def _committed(
    admin: AIOKafkaAdminClient, group: str, ends: dict[TopicPartition, int], deadline_s: float
) -> None:
    """Wait until the group's committed offsets reach `ends`."""
    started = time.monotonic()
    while True:
        offsets = await admin.list_consumer_group_offsets(group)
        if all(tp in offsets and offsets[tp].offset >= end for tp, end in ends.items()):
            return
        if time.monotonic() - started > deadline_s:
            raise TimeoutError(f"the worker did not commit its input within {deadline_s:.0f} s")
        await asyncio.sleep(0.1)


async def _put_facts(settings: Settings, scenarios: Sequence[Scenario]) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        for s in scenarios:
            key = f"{settings.redis_key_prefix}:registry:model:{escape_id(model_id(s))}"
            await redis.set(key, orjson.dumps(facts_document(s)))
    finally:
        await redis.aclose()


async def _hour_verdicts(
    settings: Settings,
    expected: dict[str, int],
    deadline_s: float,
    emit: Callable[[str], None],
) -> dict[str, dict[int, dict[str, Any]]]:
    """Read `staleness` until every model has a verdict at every whole hour up to its
    expected last one (or the deadline): model -> event_time -> event."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    got: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    try:
        topic = settings.topic("staleness")
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started = time.monotonic()
        last_note = 0.0
        seen = 0
        while time.monotonic() - started < deadline_s:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                seen += len(records)
                for record in records:
                    event = orjson.loads(record.value)
                    if event["event_time"] % HOUR_MS == 0:
                        got[event["model_id"]][event["event_time"]] = event
            missing = {
                m: n - sum(1 for t in got[m] if t <= T0 + n * HOUR_MS) for m, n in expected.items()
            }
            if all(v <= 0 for v in missing.values()):
                break
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                total = sum(max(v, 0) for v in missing.values())
                emit(f"  worker: {seen} staleness events read, hour verdicts missing {total}")
    finally:
        await consumer.stop()
    return got


def timeline_of(events: dict[int, dict[str, Any]], until_ms: int) -> list[Hourly]:
    return [hourly_of(events[at]) for at in sorted(events) if at <= until_ms]


async def run_worker_level(
    base: Settings,
    level: int,
    scenarios: Sequence[Scenario],
    emit: Callable[[str], None] = print,
    deadline_s: float = 3_600.0,
) -> list[Outcome]:
    chosen = [scenario_days(s) for s in scenarios]
    run = f"bench-detection-{level}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="runway-bench-detection-") as tmp:
        settings = base.model_copy(
            update={
                "topic_prefix": f"{run}.",
                "app_id": run,
                "redis_key_prefix": run,
                "datadir": Path(tmp) / "worker",
                "batch_view_uri": str(Path(tmp) / "batch-view"),
                "web_port": _free_port(),
            }
        )
        cfg = from_settings(settings)
        started = time.monotonic()
        process = None
        try:
            await ensure_topics(settings)
            await _put_facts(settings, chosen)
            log_path = ROOT / "var" / "bench-detection" / f"{run}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = log_path.open("ab")
            process = subprocess.Popen(
                [RUNWAY, "worker", "-l", "warn"],
                env=worker_environment(settings),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            sent = await _send_paced(settings, chosen, level, emit)
            emit(f"worker path at {level:,}/day: {sent:,} events applied in "
                 f"{time.monotonic() - started:.0f} s")  # fmt: skip
            # the last whole hour is crossed only by a later event: a label, for labelled models
            expected = {model_id(s): s.days * 24 - (s.label_delay_ms is None) for s in chosen}
            got = await _hour_verdicts(settings, expected, deadline_s, emit)
            elapsed = time.monotonic() - started
        finally:
            if process is not None:
                stop_process(process)
            await cleanup(settings)
    outcomes = []
    for s in chosen:
        timeline = timeline_of(got.get(model_id(s), {}), T0 + s.days * DAY_MS)
        out = summarize(s, level, timeline, cfg, "worker")
        out.seconds = round(elapsed, 1)
        outcomes.append(out)
    return outcomes
