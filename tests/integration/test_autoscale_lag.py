"""`runway lag --json` against real Kafka: records with known timestamps, known commits.

Partition 0 of predictions: 10 records stamped 1 h, 50 min, ... ago, the group committed 3 (so
the head record is the 4th, stamped `T0 + 3 min`); partition 1: 5 records, never committed
(counts from the first); partition 2: 4 records, all committed (lag 0); the rest empty.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from config.settings import Settings, worker_environment
from streams.producer import make_producer
from tests.integration.harness import ROOT, RUNWAY

pytestmark = pytest.mark.integration

MIN_MS = 60_000


async def test_runway_lag_json_reports_exact_offsets_and_head_ages(settings: Settings) -> None:
    topic = settings.topic("predictions")
    t0 = int(time.time() * 1000) - 60 * MIN_MS  # an hour ago
    producer = make_producer(settings)
    await producer.start()
    try:
        plan = {0: [t0 + i * MIN_MS for i in range(10)], 1: [t0 + 20 * MIN_MS] * 5, 2: [t0] * 4}
        for partition, stamps in plan.items():
            for ts in stamps:
                await producer.send_and_wait(
                    topic, b"[]", key=b"m", partition=partition, timestamp_ms=ts
                )
    finally:
        await producer.stop()
    committer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await committer.start()
    try:
        p0, p2 = TopicPartition(topic, 0), TopicPartition(topic, 2)
        committer.assign([p0, p2])
        await committer.commit({p0: OffsetAndMetadata(3, ""), p2: OffsetAndMetadata(4, "")})
    finally:
        await committer.stop()

    before = int(time.time() * 1000)
    proc = await asyncio.create_subprocess_exec(
        RUNWAY,
        "lag",
        "--json",
        "--interval=0.5",
        env=worker_environment(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    doc = json.loads(out.decode().strip().splitlines()[-1])
    rows = {(p["topic"], p["partition"]): p for p in doc["partitions"]}
    assert len(rows) == 2 * settings.partitions  # both input topics, every partition
    now = doc["at_ms"]
    assert now >= before

    def age(ts: int) -> float:
        return (now - ts) / 1000

    r0, r1, r2, r3 = (rows[(topic, p)] for p in range(4))
    assert (r0["committed"], r0["end"], r0["offset_lag"]) == (3, 10, 7)
    assert r0["lag_seconds"] == pytest.approx(age(t0 + 3 * MIN_MS), abs=0.002)
    assert (r1["committed"], r1["end"], r1["offset_lag"]) == (None, 5, 5)
    assert r1["lag_seconds"] == pytest.approx(age(t0 + 20 * MIN_MS), abs=0.002)
    assert (r2["committed"], r2["end"], r2["offset_lag"], r2["lag_seconds"]) == (4, 4, 0, 0.0)
    assert (r3["end"], r3["offset_lag"], r3["lag_seconds"]) == (0, 0, 0.0)
    assert doc["offset_lag"] == 12
    assert doc["lag_seconds"] == r0["lag_seconds"]  # the max: partition 0's head is oldest
    assert doc["consumption_rate"] == 0.0 and doc["drain_seconds"] is None  # nothing moves
    assert doc["group"] == settings.app_id
