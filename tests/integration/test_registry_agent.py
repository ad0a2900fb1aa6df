"""The registry agent records staleness events from real Kafka, once each, into SQLite and
PostgreSQL; a bad event goes to dead-letters; offsets are committed after the rows."""

from __future__ import annotations

import asyncio
import base64

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.settings import Settings
from registry.agent import RegistryAgent
from registry.records import DependencyIn
from registry.store import Store, make_engine
from streams.producer import make_producer
from tests.integration.harness import read_topic
from tests.integration.registry_support import registry_dsn  # noqa: F401  (fixture)

EVENT = {
    "schema_version": 1, "model_id": "m1", "model_version": "v3", "state": "STALE",
    "score": 0.91, "basis": ["drift", "age"], "uncertainty": 0.35, "reason": "score drift",
    "event_time": 1_700_000_000_000, "emitted_at": 1_700_000_100_000,
    "metrics": {"psi": 0.27}, "impacted": [],
}  # fmt: skip


async def test_agent_records_each_event_once(settings: Settings, registry_dsn: str) -> None:  # noqa: F811
    settings = settings.model_copy(
        update={"registry_dsn": registry_dsn, "registry_group_id": f"{settings.app_id}-registry"}
    )
    store = Store(make_engine(registry_dsn, 3.0))
    store.create_schema()
    store.add_dependencies(
        [DependencyIn(upstream="m1", downstream="m2"), DependencyIn(upstream="m2", downstream="m3")]
    )
    topic = settings.topic("staleness")
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in (
            EVENT,
            EVENT,
            {**EVENT, "state": "ROTTEN"},
            {**EVENT, "emitted_at": 1_700_000_200_000, "state": "WARNING", "impacted": ["x"]},
        ):
            await producer.send_and_wait(topic, orjson.dumps(value), key=b"m1", partition=0)
    finally:
        await producer.stop()

    agent = RegistryAgent(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        committed = await _committed_offset(settings, TopicPartition(topic, 0), 4, 45.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert committed == 4
    assert (agent.recorded, agent.dead_lettered) == (2, 1)
    history = store.staleness_history("m1")
    assert [(h.state, h.emitted_at, h.impacted) for h in history] == [
        ("WARNING", 1_700_000_200_000, ["x"]),
        ("STALE", 1_700_000_100_000, ["m2", "m3"]),  # filled from the registry
    ]
    assert store.count_staleness("m1") == 2
    assert (history[1].basis, history[1].metrics, history[1].uncertainty) == (
        ["drift", "age"], {"psi": 0.27}, 0.35,
    )  # fmt: skip

    dead = orjson.loads((await read_topic(settings, settings.topic("dead-letters")))[0][1])
    assert (dead["source_topic"], dead["source_partition"], dead["source_offset"]) == (topic, 0, 2)
    assert dead["reason"].startswith("invalid staleness event: state")
    assert orjson.loads(base64.b64decode(dead["value_b64"]))["state"] == "ROTTEN"
    store.dispose()


async def _committed_offset(
    settings: Settings, tp: TopicPartition, want: int, deadline_s: float
) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    try:
        while True:
            offsets = await admin.list_consumer_group_offsets(settings.registry_group_id)
            got = offsets[tp].offset if tp in offsets else -1
            if got >= want or loop.time() > end:
                return got
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
