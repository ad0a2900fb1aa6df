"""Standby replicas applied in bulk (`RUNWAY_STANDBY_BULK_APPLY`, tables/standby.py): the
standby's tables equal the active's, and a promoted standby joins on exactly.

Two workers with one standby replica each, on two partitions with models on both, join phase 1
of the crafted data set; each is the standby of the other's partition. Once the group is idle,
every table partition (the join's and the batch view's) read from the standby's data directory
equals the active's, key for key, Faust's persisted changelog offset included. Then one worker
stops: the other takes its partition over from the standby copy (nothing to restore but what
the copy lacked), joins phase 2, and the views equal the oracle.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from config.settings import Settings
from stack.topics import ensure_topics
from tests.integration import dataset
from tests.integration.harness import Worker, group_caught_up, send_records, wait_for
from tests.integration.test_join import check_everything, own_redis_prefix, worker_settings
from tests.integration.test_static_membership import join_owned, partition_of
from tools.bench_recovery import parse_restore, read_ranges, since_last_start

pytestmark = pytest.mark.integration

BULK = "applied in bulk"  # streams.runtime's line, once per standby partition


def table_contents(path: Path) -> dict[bytes, bytes]:
    """A table partition's keys and values, read beside the worker that has it open."""
    db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        return {bytes(k): bytes(v) for k, v in db.items()}
    finally:
        db.close()


def table_paths(datadir: Path) -> dict[str, Path]:
    return {path.name: path for path in datadir.glob("**/tables/*.db")}


async def test_a_standby_applied_in_bulk_equals_its_active(
    settings: Settings, tmp_path: Path
) -> None:
    settings = own_redis_prefix(
        settings.model_copy(
            update={
                "partitions": 2,
                "topic_prefix": settings.topic_prefix.replace("test-", "standby-"),
                "app_id": settings.app_id + "-standby",
            }
        )
    )
    await ensure_topics(settings)
    data = dataset.build(events=6_000, seed=31, models=8)
    assert {partition_of(m.model_id, 2) for m in data.truth.models} == {0, 1}
    topics = [settings.topic(name) for name in ("predictions", "outcomes", "joined")]
    configs = {
        name: worker_settings(settings, tmp_path, name, table_standby_replicas=1)
        for name in ("a", "b")
    }
    assert all(config.standby_bulk_apply for config in configs.values())  # the default
    logs = {name: tmp_path / f"worker-{name}.log" for name in ("a", "b")}
    await send_records(settings, data.phase1)
    workers = {name: Worker(configs[name], logs[name]).start() for name in ("a", "b")}
    try:
        for name, worker in workers.items():
            await wait_for(worker.healthy, 120, f"worker {name}'s /health")
        await wait_for(
            lambda: sorted((join_owned(logs["a"]) or []) + (join_owned(logs["b"]) or [])) == [0, 1],
            120,
            "each worker to own one partition",
        )
        await wait_for(lambda: group_caught_up(settings, topics), 180, "phase 1 processed")
        owner = {p: name for name in ("a", "b") for p in join_owned(logs[name]) or []}

        def copies_equal() -> list[str] | None:
            """Every table partition the same on its owner and on the other worker."""
            compared = []
            for partition, active in owner.items():
                standby = "b" if active == "a" else "a"
                mine = table_paths(configs[active].datadir)
                theirs = table_paths(configs[standby].datadir)
                for name in (f"join-{partition}.db", f"batch_view-{partition}.db"):
                    if name not in mine or name not in theirs:
                        return None
                    want = table_contents(mine[name])
                    if not want or table_contents(theirs[name]) != want:
                        return None
                    compared.append(f"{name} ({len(want)} keys)")
            return compared

        compared = await wait_for(copies_equal, 120, "standby copies equal to the actives")
        assert len(compared) == 4
        for name in ("a", "b"):
            assert BULK in logs[name].read_text(), f"worker {name} did not apply in bulk"

        # the standby promoted: the other worker stops, the survivor joins phase 2 on its copy
        leaving = owner[0]
        survivor = "b" if leaving == "a" else "a"
        stopped_at = time.time()
        assert workers[leaving].stop() == "exit 0"
        await wait_for(lambda: join_owned(logs[survivor]) == [0, 1], 120, "the takeover")
        await send_records(settings, data.phase2)
        await wait_for(lambda: group_caught_up(settings, topics), 120, "phase 2 processed")
        await check_everything(settings, data, tmp_path)
        restore = parse_restore(since_last_start(logs[survivor]), stopped_at)
        restored, _ = await read_ranges(settings, restore.ranges)
        print(f"standby copies equal: {compared}; the takeover restored {restored} records")
        assert restored == 0  # its copy was current: nothing left to read
    except BaseException:
        for worker in workers.values():
            print(worker.log_tail(60))
        raise
    finally:
        for worker in workers.values():
            worker.stop()
