"""`runway validate-failover` against the real stack: healthy, then a stale view and a lagging
join (degraded), then Redis or the registry away (failing).

The checks run in process: the command itself (`registry/recovery_cli.py`) only prints them and
exits with `overall`, and starting `runway` costs 15-30 s on this shared machine, half the
budget these tests have in `make test`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis import Redis

from config.connections import kafka_options
from config.settings import Settings
from registry.failover import validate
from registry.records import DependencyIn, ModelIn
from registry.validate import Check, Status, overall, report
from registry.wiring import build_registry
from stack.processes import free_port

MODELS = ("va", "vb", "vc")


def by_name(checks: list[Check]) -> dict[str, Status]:
    return {c.name: c.status for c in checks}


async def commit_to_end(settings: Settings) -> None:
    """The join group has consumed everything on its inputs (as a caught-up worker would)."""
    consumer = AIOKafkaConsumer(
        **kafka_options(settings), group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.topic(t), p)
            for t in ("predictions", "outcomes")
            for p in range(settings.partitions)
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()


async def produce(settings: Settings, timestamp_ms: int, count: int) -> None:
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    try:
        for i in range(count):
            body = json.dumps({"prediction_id": f"p{timestamp_ms}-{i}", "model_id": "va"})
            await producer.send_and_wait(
                settings.topic("predictions"), body.encode(), key=b"va", partition=0,
                timestamp_ms=timestamp_ms,
            )  # fmt: skip
    finally:
        await producer.stop()


async def test_validate_failover_on_the_stack(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(
        update={
            "registry_dsn": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "redis_key_prefix": settings.app_id,
            "batch_view_uri": f"s3://runway/{settings.app_id}/batch",
            "failover_max_lag_s": 60.0,
            "failover_max_view_age_s": 300.0,
        }
    )
    registry = build_registry(s)
    registry.store.create_schema()
    for m in MODELS:
        registry.register_model(ModelIn(model_id=m))
    registry.add_dependency(DependencyIn(upstream="va", downstream="vb"))
    registry.add_dependency(DependencyIn(upstream="vb", downstream="vc"))
    redis = Redis.from_url(s.redis_url)
    now_ms = int(time.time() * 1000)
    redis.sadd(f"{s.redis_key_prefix}:models", *MODELS)
    for m in MODELS:
        redis.hset(f"{s.redis_key_prefix}:model:{m}", mapping={"model_id": m, "clock": now_ms})
    await produce(s, now_ms, 5)
    await commit_to_end(s)
    try:
        healthy = await validate(s)
        assert by_name(healthy) == {
            "registry": Status.OK, "graph": Status.OK, "lag": Status.OK, "redis": Status.OK,
            "s3": Status.OK, "views": Status.OK, "brokers": Status.OK,
        }, [c.detail for c in healthy]  # fmt: skip

        doc = report(healthy, at_ms=now_ms)  # what `--json` prints; the exit code is its own
        assert (doc["status"], doc["exit_code"]) == ("ok", 0)

        # a model's view 10 minutes old, and 3 predictions 2 minutes old the join has not read
        redis.hset(f"{s.redis_key_prefix}:model:vc", "clock", now_ms - 600_000)
        await produce(s, int(time.time() * 1000) - 120_000, 3)
        degraded = await validate(s)
        found = by_name(degraded)
        assert overall(degraded) == Status.DEGRADED
        assert (found["views"], found["lag"]) == (Status.DEGRADED, Status.DEGRADED)
        views = next(c for c in degraded if c.name == "views")
        assert views.figures["stale"] == ["vc"]
        lag = next(c for c in degraded if c.name == "lag")
        assert lag.figures["offset_lag"] == 3 and 119.0 <= float(str(lag.figures["lag_s"])) < 300

        # Redis away: no view, no cache; the registry file gone: no registry
        away = s.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
        failing = await validate(away)
        found = by_name(failing)
        assert overall(failing) == Status.FAILING
        assert (found["redis"], found["views"], found["graph"]) == (
            Status.FAILING, Status.FAILING, Status.DEGRADED,
        )  # fmt: skip
        gone = s.model_copy(update={"registry_dsn": f"sqlite:///{tmp_path / 'gone.sqlite3'}"})
        found = by_name(await validate(gone))
        assert found["registry"] == Status.FAILING and not (tmp_path / "gone.sqlite3").exists()
    finally:
        names = list(redis.scan_iter(f"{s.redis_key_prefix}:*"))
        if names:
            redis.delete(*names)
        redis.close()
        registry.store.dispose()
