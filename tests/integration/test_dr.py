"""The second region: MirrorMaker 2 copies the input exactly, and `runway dr-drill` fails over.

- In `make test` (short): MirrorMaker 2 from the dev broker to the three-broker cluster copies a
  test's `predictions` and `outcomes` record for record (same names, partitions, offsets, keys
  and values), and nothing of its other topics.
- In `make test-faults` (marker `faults`): the whole drill, the primary region killed under
  traffic; the standby's views equal the oracle over every mirrored event, the registry standby
  is promoted with every model, `validate-failover` passes, and RPO and RTO are measured.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.connections import kafka_options
from config.settings import Settings
from stack import api
from stack.mirror import MirrorFlow, MirrorService
from stack.plan import single_broker, three_brokers
from stack.topics import ensure_topics
from streams.producer import make_producer
from tests.conftest import StackHandle
from tools.dr_drill import DrillOptions, run_drill

pytestmark = pytest.mark.integration

RECORDS_PER_PARTITION = 50
Copy = dict[TopicPartition, list[tuple[int, bytes | None, bytes | None]]]


async def read_all(settings: Settings, topics: list[str]) -> Copy:
    """(offset, key, value) of every record of `topics`, per partition, up to the end now."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: Copy = defaultdict(list)
        remaining = {tp for tp in tps if ends[tp]}
        while remaining:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for m in messages:
                    if m.offset < ends[tp]:
                        found[tp].append((m.offset, m.key, m.value))
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return dict(found)
    finally:
        await consumer.stop()


async def test_mirror_copies_the_inputs_record_for_record(
    settings: Settings, cluster: StackHandle, tmp_path: Path
) -> None:
    started = time.monotonic()
    target = settings.model_copy(
        update={"kafka_bootstrap": cluster.kafka.bootstrap, "profile": "production"}
    )
    await ensure_topics(target)
    inputs = [settings.topic("predictions"), settings.topic("outcomes")]
    # Unique aliases: MirrorMaker's bookkeeping topics are named after them on the cluster.
    tag = uuid.uuid4().hex[:8]
    stack = settings.model_copy(update={"stack_dir": tmp_path / "stack"})
    flow = MirrorFlow(
        f"src{tag}", single_broker(cluster.settings), f"dst{tag}", three_brokers(cluster.settings),
        tuple(inputs),
    )  # fmt: skip
    mirror = MirrorService(stack, flow, partitions=len(inputs) * settings.partitions)
    sent: Copy = defaultdict(list)
    try:
        # Records sent while MirrorMaker starts (its start is most of the test's time).
        await asyncio.gather(api.start_services(stack, [mirror]), send_records(settings, sent))
        expected = {tp: records for tp, records in sent.items() if tp.topic in inputs}

        deadline = time.monotonic() + 120
        while not await copied(target, expected):
            assert time.monotonic() < deadline, "MirrorMaker did not copy the input in 120 s"
            await asyncio.sleep(0.5)
        assert await read_all(target, inputs) == expected
        ends = await read_ends(target, [settings.topic("joined")])
        assert set(ends.values()) == {0}  # not one of the topics mirrored
    finally:
        api.stop_service(stack, mirror.name)
        await delete_topics(target, tag)
    print(f"mirror smoke: {time.monotonic() - started:.1f} s")


async def send_records(settings: Settings, sent: Copy) -> None:
    """RECORDS_PER_PARTITION records to every partition of the inputs and of `joined`."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for topic in ["predictions", "outcomes", "joined"]:
            for partition in range(settings.partitions):
                for i in range(RECORDS_PER_PARTITION):
                    key, value = f"m{partition}".encode(), f"{topic}/{partition}/{i}".encode()
                    future = await producer.send(
                        settings.topic(topic), value, key=key, partition=partition
                    )
                    futures.append((future, key, value))
        for future, key, value in futures:
            meta = await future
            sent[TopicPartition(meta.topic, meta.partition)].append((meta.offset, key, value))
    finally:
        await producer.stop()


async def copied(target: Settings, expected: Copy) -> bool:
    ends = await read_ends(target, sorted({tp.topic for tp in expected}))
    return all(ends[tp] >= len(records) for tp, records in expected.items())


async def read_ends(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        return {tp: int(end) for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def delete_topics(settings: Settings, tag: str) -> None:
    """The test's topics and MirrorMaker's bookkeeping topics of its aliases."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if tag in t or settings.topic_prefix in t]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.mark.faults
async def test_drill_fails_over_to_the_standby_region(stack: StackHandle) -> None:
    """The drill as `runway dr-drill` runs it: its own brokers, the shared Redis and PostgreSQL."""
    options = DrillOptions(rate=1000.0, kill_after_s=60.0, timeout_s=900.0)
    result = await run_drill(stack.settings, options)
    print("dr-drill:", json.dumps(result.as_json()))
    assert result.view_problems == []
    assert result.views_exact
    assert result.mirrored_events > 0.5 * result.produced_events
    assert result.registry_models_lost == 0
    assert result.validate_failover is not None
    assert result.validate_failover["exit_code"] == 0, result.validate_failover
    assert result.passed
    assert result.rpo_s < 300  # the seed's RPO target, 5 minutes
    assert result.rto_s is not None and result.rto_s < 3600  # the seed's RTO target, 1 hour
