"""The local stack against the real services: Kafka (1 and 3 brokers), Redis, S3, the CLI."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pyarrow import fs

from config.connections import s3_keys
from config.settings import Settings
from stack import api, processes
from stack.clock import Deadline, wait_until
from stack.errors import PrerequisiteMissing, TopicMismatch
from stack.kafka import broker_ids
from stack.plan import Layout
from stack.topics import ensure_topics

pytestmark = pytest.mark.integration

RUNWAY = str(Path(sys.executable).parent / "runway")


async def produce(bootstrap: str, topic: str, count: int) -> set[bytes]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=30000
    )
    await producer.start()
    try:
        sent = {f"value-{i}".encode() for i in range(count)}
        futures = [
            await producer.send(topic, value, key=f"model-{i % 7}".encode())
            for i, value in enumerate(sorted(sent))
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def consume(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> set[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    received: set[bytes] = set()
    deadline = Deadline(timeout_s)
    try:
        while len(received) < count and not deadline.expired:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received.update(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return received


async def test_kafka_round_trip(settings: Settings) -> None:
    topic = settings.topic("predictions")
    sent = await produce(settings.kafka_bootstrap, topic, 200)
    assert await consume(settings.kafka_bootstrap, topic, len(sent)) == sent


async def test_three_brokers_keep_acks_all_writes_with_one_broker_down(
    cluster_settings: Settings,
) -> None:
    bootstrap = cluster_settings.kafka_bootstrap
    topic = cluster_settings.topic("joined")
    assert await broker_ids(bootstrap) == {1, 2, 3}
    assert api.stop_broker(cluster_settings, 2) is not None
    try:

        async def two_left() -> bool:
            return await broker_ids(bootstrap) == {1, 3}

        assert await wait_until(two_left, Deadline(30))
        sent = await produce(bootstrap, topic, 300)
        assert await consume(bootstrap, topic, len(sent)) == sent
    finally:
        await api.start_broker(cluster_settings, 2)

    async def three_again() -> bool:
        return await broker_ids(bootstrap) == {1, 2, 3}

    assert await wait_until(three_again, Deadline(60))


async def test_redis_read_write(settings: Settings) -> None:
    client = aioredis.from_url(settings.redis_url)
    key = f"{settings.topic_prefix}probe"
    try:
        await client.hset(key, mapping={"count": 3, "model": "m-1"})
        assert await client.hgetall(key) == {b"count": b"3", b"model": b"m-1"}
    finally:
        await client.delete(key)
        await client.aclose()


async def test_parquet_round_trip_on_s3(settings: Settings) -> None:
    assert settings.s3_endpoint_url is not None
    access_key, secret_key = s3_keys(settings)  # the stack's, set by the fixture
    assert access_key is not None and secret_key is not None
    s3 = fs.S3FileSystem(
        access_key=access_key,
        secret_key=secret_key,
        region=settings.s3_region,
        endpoint_override=settings.s3_endpoint_url,
        allow_bucket_creation=False,
    )
    table = pa.table({"model_id": ["a", "b", "a"], "score": [0.1, 0.9, 0.4]})
    path = f"{settings.s3_bucket}/{settings.topic_prefix}batch/part-0.parquet"
    pq.write_table(table, path, filesystem=s3)
    assert pq.read_table(path, filesystem=s3).equals(table)


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNWAY, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_topics_create_twice_then_partition_mismatch(stack: object) -> None:
    del stack
    prefix = f"cli-{uuid.uuid4().hex[:8]}-"
    env = {"RUNWAY_TOPIC_PREFIX": prefix, "RUNWAY_PARTITIONS": "4"}
    first = await asyncio.to_thread(run_cli, "topics", "create", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{prefix}predictions: created" in first.stdout
    second = await asyncio.to_thread(run_cli, "topics", "create", env=env)
    assert second.returncode == 0, second.stderr
    assert f"{prefix}predictions: exists" in second.stdout

    mismatch = await asyncio.to_thread(
        run_cli, "topics", "create", env={**env, "RUNWAY_PARTITIONS": "6"}
    )
    assert mismatch.returncode == 1
    assert f"{prefix}predictions" in mismatch.stderr
    assert "4 partitions" in mismatch.stderr and "6 are configured" in mismatch.stderr
    assert "Traceback" not in mismatch.stderr


async def test_ensure_topics_raises_on_partition_mismatch(settings: Settings) -> None:
    name = f"{settings.topic_prefix}odd-"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{name}predictions", 2, 1)])
    finally:
        await admin.close()
    other = settings.model_copy(update={"topic_prefix": name})
    with pytest.raises(TopicMismatch) as raised:
        await ensure_topics(other)
    assert (raised.value.topic, raised.value.expected, raised.value.actual) == (
        f"{name}predictions",
        4,
        2,
    )


def free_port_block(count: int) -> int:
    """A base port with `count` free ports after it (in the 20000-30000 range)."""
    for base in range(21000, 30000, 50):
        if all(processes.port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port block")


def separate_stack(tmp_path: Path) -> Settings:
    base = free_port_block(12)
    return Settings(
        stack_dir=tmp_path / "stack",
        stack_kafka_port=base,
        stack_kafka_controller_port=base + 1,
        stack_cluster_port=base + 2,
        stack_redis_port=base + 8,
        stack_s3_port=base + 9,
        stack_postgres=False,
        s3_endpoint_url=f"http://127.0.0.1:{base + 9}",
    )


def stack_env(settings: Settings) -> dict[str, str]:
    return {
        "RUNWAY_STACK_DIR": str(settings.stack_dir),
        "RUNWAY_STACK_KAFKA_PORT": str(settings.stack_kafka_port),
        "RUNWAY_STACK_KAFKA_CONTROLLER_PORT": str(settings.stack_kafka_controller_port),
        "RUNWAY_STACK_CLUSTER_PORT": str(settings.stack_cluster_port),
        "RUNWAY_STACK_REDIS_PORT": str(settings.stack_redis_port),
        "RUNWAY_STACK_S3_PORT": str(settings.stack_s3_port),
        "RUNWAY_STACK_POSTGRES": "false",
        "RUNWAY_S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
    }


async def test_separate_stack_up_twice_down_and_status(tmp_path: Path) -> None:
    settings = separate_stack(tmp_path)
    env = stack_env(settings)
    try:
        rows = await api.up(settings)
        running = {row.name: row.pid for row in rows if row.running}
        assert set(running) == {"kafka", "redis", "s3"}
        assert all(row.answering for row in rows if row.running)
        again = await api.up(settings)  # idempotent: the same processes
        assert {row.name: row.pid for row in again if row.running} == running

        status = await asyncio.to_thread(run_cli, "stack", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "running" in status.stdout and str(running["kafka"]) in status.stdout
    finally:
        down = await asyncio.to_thread(run_cli, "stack", "down", env=env)
    assert down.returncode == 0, down.stderr
    for name, pid in running.items():
        assert f"stopped {name} (pid {pid})" in down.stdout
        assert processes.start_ticks(pid) is None, f"{name} (pid {pid}) still runs"
    assert not list(Layout.of(settings).run_dir.glob("*.pid"))
    after = await asyncio.to_thread(run_cli, "stack", "status", env=env)
    assert after.returncode == 0, after.stderr
    assert "running" not in after.stdout
    assert not any(row.running for row in await api.status(settings))


async def test_port_taken_by_a_stranger_is_one_clear_sentence(tmp_path: Path) -> None:
    settings = separate_stack(tmp_path)
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", settings.stack_redis_port))
        stranger.listen()
        with pytest.raises(PrerequisiteMissing, match=f"port {settings.stack_redis_port}"):
            await api.up(settings)
        result = await asyncio.to_thread(run_cli, "stack", "up", env=stack_env(settings))
    assert result.returncode == 1
    assert f"port {settings.stack_redis_port} (for redis) is taken" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(row.running for row in await api.status(settings))


async def test_missing_java_is_one_clear_sentence(tmp_path: Path) -> None:
    settings = separate_stack(tmp_path)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**stack_env(settings), "PATH": str(empty_bin)}
    result = await asyncio.to_thread(run_cli, "stack", "up", env=env)
    assert result.returncode == 1
    assert "'java' is not installed" in result.stderr
    assert "Traceback" not in result.stderr
