"""`runway bench-recovery`'s snapshot phase: a partition restored from an S3 state snapshot
plus the changelog's tail, against the whole-changelog restore of the cold phase.

1. A backlog is preloaded and joined by one worker (no standby), which stops; every partition
   DB of its data directory is snapshotted to S3 (`runway state-snapshot`'s path):
   `snapshot_bytes`, `snapshot_upload_s` and `snapshot_upload_mb_per_s`.
2. It comes back with its disk and joins a small second backlog (a few records a model): the
   changelog's tail after the snapshot. It stops; its data directory is deleted.
3. A replacement with `RUNWAY_STATE_SNAPSHOT_RESTORE=true` starts while a third small backlog
   waits. From its log: each partition's download (`snapshot_restore_s` sums them: they run
   one after another in the rebalance; `snapshot_restore_mb_per_s`), and Faust's replay of
   the tail (`snapshot_tail_records`, `snapshot_tail_restore_s`, read again from the
   changelog offsets Faust logs, as the cold phase does); `snapshot_first_record_after_s` runs
   from its start until every input partition has committed the third backlog.
4. A probe of the bytes-bound part at a size where per-request costs do not dominate: one
   partition DB of `--snapshot-probe-mb` of incompressible values, uploaded and restored
   through the same functions (`snapshot_probe_*`; the moto S3 of the local stack, so a floor
   for real S3, which serves ~85-90 MB/s per connection and scales with connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Options, Rdict, WriteBatch

from config.connections import kafka_options
from config.settings import Settings
from stack.plan import local_s3_credentials
from stack.processes import WorkerProcess
from streams import state_snapshots as snaps
from streams.state_snapshot_cli import partition_dbs
from tables.checkpoint import FAUST_OFFSET_KEY
from tools.bench import backlog_spec, bench_settings, cleanup, preload
from tools.bench_recovery import (
    DRAIN_TIMEOUT_S,
    SETTLE_TIMEOUT_S,
    CpuSamples,
    Emit,
    log_time,
    restore_figures,
    send_after,
    since_last_start,
    wait_batch_view,
    wait_committed,
)

RESTORED = re.compile(
    r"state restore: (?P<table>\w+)\[(?P<partition>\d+)\] restored from the snapshot of \S+ "
    r"\((?P<files>\d+) files, (?P<bytes>\d+) bytes, changelog offset (?P<offset>-?\d+|None)\) "
    r"in (?P<seconds>[\d.]+) s"
)
PROBE_VALUE_BYTES = 100


@dataclass(frozen=True)
class Downloads:
    """The snapshot restores a worker logged: partitions, bytes, the sum of their seconds."""

    partitions: int
    bytes: int
    seconds: float
    first_at: float | None
    last_at: float | None


def parse_downloads(lines: list[str], since: float) -> Downloads:
    """The `state restore: ... restored from the snapshot` lines stamped at or after `since`."""
    partitions = nbytes = 0
    seconds = 0.0
    first = last = None
    for line in lines:
        at = log_time(line)
        found = RESTORED.search(line)
        if found is None or at is None or at < since:
            continue
        partitions += 1
        nbytes += int(found["bytes"])
        seconds += float(found["seconds"])
        first = at if first is None else first
        last = at
    return Downloads(partitions, nbytes, seconds, first, last)


def _snapshot_all(settings: Settings) -> tuple[int, int, float, float]:
    """Every partition DB of a stopped worker's data directory to S3: (files, bytes,
    seconds, process CPU seconds)."""
    remote = snaps.remote_from_settings(settings)
    files = nbytes = 0
    began, cpu = time.monotonic(), time.process_time()
    for path in sorted(Path(settings.datadir).glob("**/tables")):
        for table, partition, db_dir in partition_dbs(path):
            db = Rdict(str(db_dir), options=Options(raw_mode=True))
            try:
                result = snaps.take_snapshot(
                    db, db_dir, table=table, partition=partition, remote=remote, keep=1
                )
            finally:
                db.close()
            files += result.uploaded_files
            nbytes += result.uploaded_bytes
    return files, nbytes, time.monotonic() - began, time.process_time() - cpu


def _probe(settings: Settings, workdir: Path, megabytes: int) -> dict[str, Any]:
    """One partition DB of `megabytes` of incompressible values, snapshotted and restored."""
    remote = snaps.remote_from_settings(settings)
    source = workdir / "probe" / "probe-0.db"
    source.parent.mkdir(parents=True)
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(source), options=options)
    noise = os.urandom(1 << 20)
    keys_total = megabytes * (1 << 20) // PROBE_VALUE_BYTES
    batch = WriteBatch(raw_mode=True)
    for index in range(keys_total):
        at = (index * 7919) % (len(noise) - PROBE_VALUE_BYTES)
        batch.put(b"probe%012d" % index, noise[at : at + PROBE_VALUE_BYTES])
        if len(batch) >= 50_000:
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
    batch.put(FAUST_OFFSET_KEY, b"0")
    db.write(batch)
    db.flush()
    db.compact_range(None, None)
    try:
        cpu = time.process_time()
        taken = snaps.take_snapshot(db, source, table="probe", partition=0, remote=remote, keep=1)
        upload_cpu = time.process_time() - cpu
    finally:
        db.close()
    target = workdir / "probe-restored" / "probe-0.db"
    target.parent.mkdir(parents=True)
    cpu = time.process_time()
    restored = snaps.restore_partition(remote, "probe", 0, target, max_age_ms=3_600_000)
    restore_cpu = time.process_time() - cpu
    assert restored is not None
    gigabytes = taken.manifest.total_bytes / 1e9
    shutil.rmtree(source.parent, ignore_errors=True)
    shutil.rmtree(target.parent, ignore_errors=True)
    return {
        "snapshot_probe_bytes": taken.manifest.total_bytes,
        "snapshot_probe_files": len(taken.manifest.files),
        "snapshot_probe_upload_s": round(taken.upload_s, 3),
        "snapshot_probe_upload_mb_per_s": round(
            taken.uploaded_bytes / 1e6 / max(taken.upload_s, 1e-9), 1
        ),
        "snapshot_probe_upload_cpu_s_per_gb": round(upload_cpu / gigabytes, 2),
        "snapshot_probe_restore_s": round(restored.seconds, 3),
        "snapshot_probe_restore_mb_per_s": round(restored.mb_per_s, 1),
        "snapshot_probe_restore_cpu_s_per_gb": round(restore_cpu / gigabytes, 2),
    }


async def changelog_records(settings: Settings) -> int:
    """Records the state tables' changelogs hold (end - earliest, every partition)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(f"{settings.app_id}-{table}-changelog", p)
            for table in ("join", "batch_view")
            for p in range(settings.partitions)
        ]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def _delete_snapshots(settings: Settings) -> None:
    remote = snaps.remote_from_settings(settings)
    remote.delete(sorted(remote.objects(f"{settings.state_snapshot_prefix}/{settings.app_id}/")))


async def snapshot_phase(
    settings: Settings,
    workdir: Path,
    events: int,
    batch_size: int,
    models: int,
    probe_mb: int,
    say: Emit,
) -> dict[str, Any]:
    phase = bench_settings(settings, "snapshot", workdir, settings.web_port + 4).model_copy(
        update={"table_standby_replicas": 0}
    )
    if phase.aws_access_key_id is None and phase.s3_endpoint_url:
        phase = phase.model_copy(update=local_s3_credentials())  # the stack's S3 stand-in
    log = workdir / "snapshot" / "worker.log"
    result: dict[str, Any] = {}
    try:
        say(f"snapshot: preloading {events:,} events in records of {batch_size} ...")
        backlog = await preload(phase, backlog_spec(models, events, batch_size, phase.app_id))
        worker = WorkerProcess(phase, log).start()
        try:
            await wait_committed(phase, backlog.ends, DRAIN_TIMEOUT_S, [worker], "snapshot drain")
            await wait_batch_view(phase, [worker], "snapshot batch view")
        finally:
            worker.stop()
        files, nbytes, seconds, cpu_s = await asyncio.to_thread(_snapshot_all, phase)
        result.update(
            snapshot_events=backlog.events,
            snapshot_files=files,
            snapshot_bytes=nbytes,
            snapshot_upload_s=round(seconds, 3),
            snapshot_upload_mb_per_s=round(nbytes / 1e6 / max(seconds, 1e-9), 2),
            snapshot_upload_cpu_s=round(cpu_s, 2),
        )
        say(f"  snapshot: {files} files, {nbytes / 1e6:,.2f} MB uploaded in {seconds:.1f}s")

        worker = WorkerProcess(phase, log).start()
        try:
            ends = await send_after(phase, models, "tail")
            await wait_committed(phase, ends, SETTLE_TIMEOUT_S, [worker], "snapshot tail")
            await wait_batch_view(phase, [worker], "snapshot tail batch view")
        finally:
            worker.stop()
        result["snapshot_changelog_records"] = await changelog_records(phase)
        shutil.rmtree(phase.datadir)
        ends = await send_after(phase, models, "after")
        replacement = phase.model_copy(update={"state_snapshot_restore": True})
        began = time.time()
        worker = WorkerProcess(replacement, log).start()
        cpu = CpuSamples(worker)
        try:
            seen = await wait_committed(
                phase, ends, DRAIN_TIMEOUT_S, [worker], "snapshot restore", cpu
            )
            await wait_batch_view(phase, [worker], "snapshot restored batch view")
        finally:
            worker.stop()
        downloads = parse_downloads(since_last_start(log), began)
        tail = await restore_figures(phase, log, began, "snapshot_tail_", cpu)
        result.update(tail)
        result.update(
            snapshot_restore_partitions=downloads.partitions,
            snapshot_restore_bytes=downloads.bytes,
            snapshot_restore_s=round(downloads.seconds, 3),
            snapshot_restore_mb_per_s=(
                round(downloads.bytes / 1e6 / downloads.seconds, 2) if downloads.seconds else None
            ),
            snapshot_tail_records=tail["snapshot_tail_restore_keys"],
            snapshot_first_record_after_s=round(seen - began, 2),
        )
        say(
            f"  restored {downloads.partitions} partitions ({downloads.bytes / 1e6:,.2f} MB) in "
            f"{downloads.seconds:.2f}s, then {result['snapshot_tail_records']:,} changelog "
            f"records of {result['snapshot_changelog_records']:,}; first record after "
            f"{result['snapshot_first_record_after_s']}s"
        )
        if probe_mb > 0:
            say(f"  probe: one partition DB of {probe_mb} MB through S3 and back ...")
            result.update(await asyncio.to_thread(_probe, phase, workdir / "snapshot", probe_mb))
            say(
                f"  probe: up {result['snapshot_probe_upload_mb_per_s']} MB/s, down "
                f"{result['snapshot_probe_restore_mb_per_s']} MB/s"
            )
        return result
    finally:
        with contextlib.suppress(Exception):
            await cleanup(phase)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_delete_snapshots, phase)
