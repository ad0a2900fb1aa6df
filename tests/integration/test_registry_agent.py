"""The registry agent records staleness events from real Kafka, once each, into SQLite and
PostgreSQL; a bad event goes to dead-letters; offsets are committed after the rows. An event the
database refuses is parked and the ones after it recorded; a restarting database is waited for."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import generate_latest

from config.settings import Settings
from registry.agent import RegistryAgent
from registry.records import DependencyIn
from registry.store import Store, make_engine
from streams.producer import make_producer
from tests.integration.harness import read_topic, wait_for
from tests.integration.registry_support import (  # noqa: F401  (fixtures)
    OwnService,
    own_postgres,
    own_stack_dir,
    registry_dsn,
)

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
    agent, committed = await _record_all(
        settings,
        store,
        [
            EVENT,
            EVENT,
            {**EVENT, "state": "ROTTEN"},
            {**EVENT, "emitted_at": 1_700_000_200_000, "state": "WARNING", "impacted": ["x"]},
        ],
    )
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
    assert (dead["source_topic"], dead["source_partition"], dead["source_offset"]) == (
        settings.topic("staleness"),
        0,
        2,
    )
    assert dead["reason"].startswith("invalid staleness event: state")
    assert orjson.loads(base64.b64decode(dead["value_b64"]))["state"] == "ROTTEN"
    store.dispose()


async def _record_all(
    settings: Settings, store: Store, records: list[Any]
) -> tuple[RegistryAgent, int]:
    """Send `records` to partition 0 of `staleness`, run an agent until it committed them all
    (or 45 s passed), stop it; the agent and the offset it committed."""
    topic = settings.topic("staleness")
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in records:
            await producer.send_and_wait(topic, orjson.dumps(value), key=b"m1", partition=0)
    finally:
        await producer.stop()
    agent = RegistryAgent(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        committed = await _committed_offset(settings, TopicPartition(topic, 0), len(records), 45.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return agent, committed


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


def refuse_model(store: Store, model_id: str) -> None:
    """A rule of the database itself that refuses one model's staleness rows: a constraint
    violation as the drivers raise it (SQLite: a trigger's ABORT; PostgreSQL: a CHECK)."""
    if store.write.dialect.name == "sqlite":
        rule = (f"CREATE TRIGGER refuse BEFORE INSERT ON staleness WHEN NEW.model_id = "
                f"'{model_id}' BEGIN SELECT RAISE(ABORT, 'refused by policy'); END")  # fmt: skip
    else:
        rule = f"ALTER TABLE staleness ADD CONSTRAINT refuse CHECK (model_id <> '{model_id}')"
    with store.write.begin() as conn:
        conn.execute(sa.text(rule))


def metric(agent: RegistryAgent, line: str) -> float:
    text = generate_latest(agent.metrics).decode()
    found = [row for row in text.splitlines() if row.startswith(line + " ")]
    return float(found[0].split()[-1]) if found else 0.0


async def test_refused_events_are_parked_and_the_next_ones_recorded(
    settings: Settings,
    registry_dsn: str,  # noqa: F811
) -> None:
    settings = settings.model_copy(
        update={"registry_dsn": registry_dsn, "registry_group_id": f"{settings.app_id}-registry"}
    )
    store = Store(make_engine(registry_dsn, 3.0))
    store.create_schema()
    refuse_model(store, "refused")
    postgres = store.write.dialect.name == "postgresql"
    at = [1_700_000_100_000 + i * 1000 for i in range(5)]
    nul = {**EVENT, "emitted_at": at[2], "reason": "drift\x00"}  # PostgreSQL text refuses NUL
    records: list[Any] = [
        {**EVENT, "emitted_at": at[0]},
        {**EVENT, "model_id": "refused"},  # the constraint refuses it on both databases
        [{**EVENT, "emitted_at": at[1]}, nul, {**EVENT, "emitted_at": at[3]}],
        {**EVENT, "emitted_at": at[4]},
    ]
    agent, committed = await _record_all(settings, store, records)
    assert committed == 4  # past every record: nothing blocks the partition

    recorded = sorted(h.emitted_at for h in store.staleness_history("m1"))
    parked = [
        (p.source_offset, p.position, p.model_id, p.error_class, p.error_code)
        for p in store.parked_events()
    ]
    if postgres:
        assert recorded == [at[0], at[1], at[3], at[4]]
        assert parked == [
            (1, -1, "refused", "psycopg.errors.CheckViolation", "23514"),
            (2, 1, "m1", "psycopg.DataError", None),
        ]
        assert store.parked_events()[1].error == (
            "PostgreSQL text fields cannot contain NUL (0x00) bytes"
        )
        assert base64.b64decode(store.parked_events()[1].value_b64) == orjson.dumps(nul)
        assert metric(agent, 'runway_registry_agent_parked_total{reason="CheckViolation"}') == 1
        assert metric(agent, 'runway_registry_agent_parked_total{reason="DataError"}') == 1
    else:  # SQLite stores the NUL; only the constraint refuses
        assert recorded == [at[0], at[1], at[2], at[3], at[4]]
        assert parked == [
            (1, -1, "refused", "sqlite3.IntegrityError", "SQLITE_CONSTRAINT_TRIGGER"),
        ]
        assert metric(agent, 'runway_registry_agent_parked_total{reason="IntegrityError"}') == 1
    assert store.parked_events()[0].error.startswith(
        'new row for relation "staleness" violates check constraint "refuse"'
        if postgres
        else "refused by policy"
    )
    assert base64.b64decode(store.parked_events()[0].value_b64) == orjson.dumps(records[1])
    assert (agent.recorded, agent.parked) == (len(recorded), len(parked))
    assert metric(agent, "runway_registry_agent_db_retries_total") == 0  # none taken as transient
    store.dispose()


async def test_a_restarting_database_is_waited_for_and_nothing_parked(
    settings: Settings,
    own_postgres: OwnService,  # noqa: F811
) -> None:
    dsn = f"postgresql://runway@127.0.0.1:{own_postgres.settings.stack_postgres_port}/runway"
    settings = settings.model_copy(
        update={"registry_dsn": dsn, "registry_group_id": f"{settings.app_id}-registry"}
    )
    store = Store(make_engine(dsn, 1.0))
    store.create_schema()
    topic = settings.topic("staleness")
    tp = TopicPartition(topic, 0)
    producer = make_producer(settings)
    await producer.start()
    agent = RegistryAgent(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await producer.send_and_wait(topic, orjson.dumps(EVENT), key=b"m1", partition=0)
        assert await _committed_offset(settings, tp, 1, 45.0) == 1

        own_postgres.stop()  # a real outage: the server goes away with its connections
        for i in (1, 2):
            event = {**EVENT, "emitted_at": EVENT["emitted_at"] + i}  # type: ignore[operator]
            await producer.send_and_wait(topic, orjson.dumps(event), key=b"m1", partition=0)
        await wait_for(
            lambda: metric(agent, "runway_registry_agent_db_retries_total") >= 2,
            45,
            "the agent to retry against the stopped database",
        )
        assert await _committed_offset(settings, tp, 1, 0.0) == 1  # nothing committed meanwhile
        assert agent.parked == 0

        await own_postgres.start()  # the database is back
        assert await _committed_offset(settings, tp, 3, 60.0) == 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await producer.stop()
    assert store.count_staleness("m1") == 3 and store.parked_events() == []
    assert agent.parked == 0 and metric(agent, "runway_registry_agent_parked_total") == 0
    store.dispose()
