"""A worker without its disk restores from a state snapshot on S3 plus the changelog's tail.

The first worker joins the first half of the crafted data set and stops; `runway
state-snapshot` uploads its partition DBs; it comes back with its disk and joins the second
half, so the changelog runs past the snapshot (the tail); it stops and its data directory and
the speed view are deleted. Its replacement (`RUNWAY_STATE_SNAPSHOT_RESTORE=true`) downloads
each partition's snapshot before Faust opens it, and Faust replays only the tail. The views
after phase 2 must equal the oracle, as after a whole-changelog restore
(test_recovery.py); the replacement must have read fewer changelog records than the
changelog holds, and more than none; its own schedule must have snapshotted again; and its
tables must equal, key for key, those a worker rebuilds from the whole changelog.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from rocksdict import AccessType, Options, Rdict

from config.settings import Settings, worker_environment
from stack.processes import free_port
from streams import state_snapshots as snaps
from tables.checkpoint import FAUST_OFFSET_KEY
from tests.integration import dataset
from tests.integration.harness import ROOT, RUNWAY, Worker, group_caught_up, send_records, wait_for
from tests.integration.test_join import check_everything, own_redis_prefix, worker_settings
from tests.integration.test_recovery import delete_speed_view, drained_then_stopped, last_start
from tools.bench_recovery import owned_partitions, parse_restore, read_ranges

# ~2 minutes (three worker starts): `make test-faults`; `make test` keeps the in-process case
# of test_state_snapshots.py (restore exact, incremental uploads, retention).
pytestmark = [pytest.mark.integration, pytest.mark.faults]

RESTORED = re.compile(r"state restore: (\w+)\[(\d+)\] restored from the snapshot")


def tables_content(datadir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every partition DB under a data directory (by name), its keys and values; Faust's
    changelog offset left out (it is where each copy stopped reading, not state)."""
    found = {}
    for path in sorted(datadir.glob("**/tables/*.db")):
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            found[path.name] = {
                bytes(k): bytes(v)  # type: ignore[arg-type]
                for k, v in db.items()
                if k != FAUST_OFFSET_KEY
            }
        finally:
            db.close()
    return {name: content for name, content in found.items() if content}


def snapshot_stopped_worker(config: Settings) -> list[dict[str, Any]]:
    """`runway state-snapshot` of a stopped worker's partition DBs: its JSON line per
    partition (table, partition, changelog_offset, bytes, ...)."""
    taken = subprocess.run(
        [RUNWAY, "state-snapshot"],
        env=worker_environment(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert taken.returncode == 0, taken.stderr
    return [json.loads(line) for line in taken.stdout.splitlines()]


async def changelog_span(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """Records each changelog partition holds (end - earliest)."""
    from aiokafka import AIOKafkaConsumer

    from config.connections import kafka_options

    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return {(tp.topic, tp.partition): ends[tp] - starts[tp] for tp in tps}
    finally:
        await consumer.stop()


async def test_a_worker_without_its_disk_restores_from_a_snapshot_and_the_tail(
    settings: Settings, tmp_path: Path
) -> None:
    settings = own_redis_prefix(settings)
    data = dataset.build(events=6_000, seed=29)
    half = len(data.phase1) // 2
    topics = [settings.topic("predictions"), settings.topic("outcomes"), settings.topic("joined")]
    config = worker_settings(settings, tmp_path, "snap")
    log = tmp_path / "worker.log"
    await drained_then_stopped(settings, config, log, data.phase1[:half], "the first half")
    snapshots = snapshot_stopped_worker(config)
    assert {s["table"] for s in snapshots} == {"join", "batch_view"}
    covered = {(s["table"], s["partition"]): s["changelog_offset"] for s in snapshots}

    worker = Worker(config, log).start()
    try:
        await wait_for(worker.healthy, 90, "the worker's /health, with its disk")
        await send_records(settings, data.phase1[half:])
        await wait_for(lambda: group_caught_up(settings, topics), 240, "the second half")
        assert worker.stop() == "exit 0"

        shutil.rmtree(config.datadir)
        assert await delete_speed_view(settings) > 0
        changelogs = [f"{config.app_id}-{t}-changelog" for t in ("join", "batch_view")]
        whole = await changelog_span(config, changelogs)

        replacement = config.model_copy(
            update={"state_snapshot_restore": True, "state_snapshot_interval_s": 1.0}
        )
        began = time.time()
        worker = Worker(replacement, log).start()
        await wait_for(worker.healthy, 90, "the replacement's /health")
        await send_records(settings, data.phase2)
        await wait_for(lambda: group_caught_up(settings, topics), 120, "phase 2 processed")
        await check_everything(settings, data, tmp_path)

        remote = snaps.remote_from_settings(config)

        def snapshotted_again() -> bool:
            return all(
                (m := remote.latest("join", p, int(time.time() * 1000), 10**9)) is not None
                and m.created_ms >= began * 1000
                for (t, p), offset in covered.items()
                if t == "join" and offset is not None  # a partition with no data: no snapshot
            )

        await wait_for(snapshotted_again, 60, "the replacement's scheduled snapshots")
        url = f"http://{replacement.web_host}:{replacement.web_port}/metrics"

        def metric(name: str) -> float:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
            assert found is not None, f"{name} not on /metrics"
            return float(found[1])

        # a round covers every owned partition of both tables: it ends after their snapshots
        await wait_for(
            lambda: metric("runway_state_snapshot_completed_timestamp_seconds") >= began,
            60,
            "a completed snapshot round on /metrics",
        )
        assert metric("runway_state_snapshot_uploaded_bytes_total") > 0
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()

    # Exactness: the tables restored from the snapshot plus the tail (then joined on) hold what
    # a restore of the whole changelog makes of the same changelogs, key for key.
    whole_config = config.model_copy(
        update={"datadir": tmp_path / "data-whole", "web_port": free_port()}
    )
    rebuilt = Worker(whole_config, tmp_path / "whole.log").start()
    try:
        await wait_for(
            lambda: owned_partitions(last_start(tmp_path / "whole.log")),
            180,
            "the whole-changelog restore",
        )
    finally:
        assert rebuilt.stop() == "exit 0"
    mine, theirs = tables_content(config.datadir), tables_content(whole_config.datadir)
    assert sorted(theirs) == sorted(mine)
    for name, content in mine.items():
        assert content == theirs[name], f"{name} differs from the whole-changelog restore"

    lines = last_start(log)
    restored = {(m[1], int(m[2])) for line in lines if (m := RESTORED.search(line))}
    assert restored == set(covered), "every snapshotted partition restored from its snapshot"
    restore = parse_restore(lines, began - 5)
    tail, _ = await read_ranges(config, restore.ranges)
    whole_records = sum(whole.values())
    print(f"restore read {tail} changelog records of {whole_records}")
    assert 0 < tail < whole_records
    for (topic, partition), (first, _) in restore.ranges.items():
        table = topic.removeprefix(f"{config.app_id}-").removesuffix("-changelog")
        if (table, partition) in covered:
            assert first > covered[(table, partition)], "the replay starts after the snapshot"
