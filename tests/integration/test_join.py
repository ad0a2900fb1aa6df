"""The join end to end against real Kafka, Redis and Parquet: exact, and exact under SIGKILL.

Expected figures come from `oracle.py` (plain counting over what was sent); the worker runs as
`runway worker` subprocesses, killed with SIGKILL at random points in the crash test.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from config.connections import redis_options
from config.settings import Settings
from stack.processes import free_port
from tests.integration import dataset, oracle
from tests.integration.harness import (
    Worker,
    group_caught_up,
    read_parquet,
    read_topic,
    safety_nets_used,
    send_records,
    wait_for,
)

pytestmark = pytest.mark.integration

WINDOWS = ("1h", "24h", "7d")


def worker_settings(base: Settings, tmp: Path, name: str, **extra: Any) -> Settings:
    return base.model_copy(
        update={
            "datadir": tmp / f"data-{name}",
            "web_port": free_port(),
            "batch_view_uri": str(tmp / "batch-view"),
            "label_ttl_ms": dataset.TTL_MS,
            "early_outcome_ttl_ms": dataset.TTL_MS,
            "done_retention_ms": 10 * dataset.TTL_MS,
            "wall_clock_expiry_after_ms": 10 * 24 * 3600 * 1000,
            "checkpoint_interval_ms": 300,
            "speed_view_interval_ms": 200,
            "batch_view_max_age_s": 1.0,
            "session_timeout_s": 6.0,
            "heartbeat_interval_s": 1.0,
            **extra,
        }
    )


async def redis_snapshot(settings: Settings) -> dict[str, dict[str, str]]:
    redis = Redis.from_url(settings.redis_url, **redis_options(settings), decode_responses=True)
    try:
        names = sorted(await redis.keys(f"{settings.redis_key_prefix}:model:*"))
        # the staleness hash carries its wall-clock emission time: not part of the speed view
        names = [n for n in names if not n.endswith(":staleness")]
        return {name: await redis.hgetall(name) for name in names}
    finally:
        await redis.aclose()


def view_matches(
    snapshot: dict[str, dict[str, str]],
    expected: oracle.Expected,
    settings: Settings,
    tasks: dict[str, str],
) -> bool:
    try:
        check_views(snapshot, expected, settings, tasks)
    except (AssertionError, KeyError):
        return False
    return True


def check_views(
    snapshot: dict[str, dict[str, str]],
    expected: oracle.Expected,
    settings: Settings,
    tasks: dict[str, str],
) -> None:
    for model_id, figures in expected.models.items():
        for window in WINDOWS:
            view = snapshot[f"{settings.redis_key_prefix}:model:{model_id}:window:{window}"]
            oracle.assert_view_matches(view, figures, tasks[model_id])


async def run_until_done(settings: Settings, data: dataset.DataSet) -> None:
    topics = [settings.topic("predictions"), settings.topic("outcomes"), settings.topic("joined")]
    await wait_for(lambda: group_caught_up(settings, topics), 240, "phase 1 processed")
    await send_records(settings, data.phase2)
    await wait_for(lambda: group_caught_up(settings, topics), 120, "phase 2 processed")


async def check_everything(settings: Settings, data: dataset.DataSet, tmp: Path) -> dict[str, Any]:
    expected = oracle.expected(data.records, data.truth, data.orphans, data.late)
    tasks = {m.model_id: m.task for m in data.truth.models}

    async def views_settled() -> dict[str, dict[str, str]] | None:
        snapshot = await redis_snapshot(settings)
        return snapshot if view_matches(snapshot, expected, settings, tasks) else None

    try:
        snapshot = await wait_for(views_settled, 60, "the speed view to match the oracle")
    except AssertionError:
        check_views(await redis_snapshot(settings), expected, settings, tasks)  # says what
        raise
    rows = await wait_for(
        lambda: (r := read_parquet(tmp / "batch-view")) and len(r) >= len(expected.joined) and r,
        60,
        "the batch view",
    )
    ids = [row["prediction_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a pair was written twice to the batch view"
    assert set(ids) == set(expected.joined)
    for row in rows:
        want = expected.joined[row["prediction_id"]]
        got = {k: row[k] for k in want}
        assert got == want
    letters = await read_topic(settings, settings.topic("dead_letters"))
    unique = {
        (e["source_topic"], e["source_partition"], e["source_offset"], e["index"])
        for e in (orjson.loads(value) for _, value in letters)
    }
    assert len(unique) == expected.dead_letters
    return snapshot


def own_redis_prefix(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_key_prefix": settings.app_id})


async def test_join_is_exact(settings: Settings, tmp_path: Path) -> None:
    settings = own_redis_prefix(settings)
    data = dataset.build(events=20_000)
    await send_records(settings, data.phase1)
    worker = Worker(worker_settings(settings, tmp_path, "a"), tmp_path / "worker-a.log").start()
    try:
        await wait_for(worker.healthy, 90, "the worker's /health")
        await run_until_done(settings, data)
        await check_everything(settings, data, tmp_path)
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()


async def test_join_survives_sigkill_and_rebalance(
    settings: Settings, tmp_path: Path, stack: Any
) -> None:
    """Undisturbed run, then the same data with 5+ SIGKILLs and a worker joining and leaving."""
    settings = own_redis_prefix(settings)
    data = dataset.build(events=60_000, seed=11)
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    await send_records(settings, data.phase1)
    calm = Worker(worker_settings(settings, calm_dir, "calm"), calm_dir / "w.log").start()
    try:
        await wait_for(calm.healthy, 90, "the undisturbed worker")
        await run_until_done(settings, data)
        reference = await check_everything(settings, data, calm_dir)
    finally:
        calm.stop()

    storm = settings.model_copy(
        update={
            "topic_prefix": settings.topic_prefix.replace("test-", "storm-"),
            "app_id": settings.app_id + "-storm",
            "redis_key_prefix": settings.app_id + "-storm",
        }
    )
    from stack.topics import ensure_topics

    await ensure_topics(storm)
    storm_dir = tmp_path / "storm"
    storm_dir.mkdir()
    await send_records(storm, data.phase1)
    rng = random.Random(5)
    capped = {"max_events_per_s": 15_000.0}
    first = worker_settings(storm, storm_dir, "one", **capped)
    logs = storm_dir / "one.log"
    worker = Worker(first, logs).start()
    helper: Worker | None = None
    kills = 0
    try:
        for round_ in range(6):
            await wait_for(worker.healthy, 90, "a restarted worker")
            if round_ == 2:  # a second worker joins (rebalance) ...
                helper = Worker(
                    worker_settings(storm, storm_dir, "two", **capped), storm_dir / "two.log"
                ).start()
                await wait_for(helper.healthy, 90, "the second worker")
            if round_ == 4 and helper is not None:  # ... and leaves
                helper.stop()
            await wait_for(lambda: rng.random() < 0.3, 30, "a random instant", interval=0.5)
            worker.kill()
            kills += 1
            if round_ % 2:  # every other restart loses its disk: recovery from the changelog
                first = first.model_copy(update={"datadir": storm_dir / f"data-{round_}"})
            worker = Worker(first, logs).start()
        await wait_for(worker.healthy, 90, "the last worker")
        await run_until_done(storm, data)
        snapshot = await check_everything(storm, data, storm_dir)
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()
        if helper is not None:
            helper.stop()
    assert kills >= 5
    # The storm's logs (every worker of it): no hole to fill, no stalled partition to seek.
    holes, seeks = safety_nets_used(storm_dir.glob("*.log"))
    print(f"storm: {kills} kills, {len(holes)} holes filled, {len(seeks)} watchdog seeks")
    assert (holes, seeks) == ([], [])
    rename = {k.replace(settings.app_id, storm.app_id, 1): v for k, v in reference.items()}
    differences = {
        (name, field): (snapshot.get(name, {}).get(field), rename.get(name, {}).get(field))
        for name in set(snapshot) | set(rename)
        for field in set(snapshot.get(name, {})) | set(rename.get(name, {}))
        if snapshot.get(name, {}).get(field) != rename.get(name, {}).get(field)
    }
    assert differences == {}
    calm_rows = sorted(read_parquet(calm_dir / "batch-view"), key=lambda r: r["prediction_id"])
    storm_rows = sorted(read_parquet(storm_dir / "batch-view"), key=lambda r: r["prediction_id"])
    assert storm_rows == calm_rows
