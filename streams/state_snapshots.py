"""Incremental snapshots of the state tables to S3, and a partition's restore from them.

Why: a partition restored from its changelog costs Faust's per-record path (~5,500 records a
CPU-second), hundreds of hours at the seed's loads; a copy of its RocksDB files costs its bytes
at download speed, then Faust replays only the changelog after the offset the copy holds
(docs/capacity.md, "The design that meets RTO < 1 h"). What a snapshot holds and where it goes
is `tables/snapshots.py`; this module does the I/O:

- `take_snapshot`: RocksDB's checkpoint of a live partition DB (hard links to its SST files,
  after a memtable flush: one consistent point in time, which includes Faust's persisted
  changelog offset, written in the same WriteBatch as the state by tables/checkpoint.py), the
  files not stored yet uploaded, the manifest last, then old manifests and unreferenced files
  deleted.
- `restore_partition`: the newest snapshot young enough (`RUNWAY_STATE_SNAPSHOT_MAX_AGE_S`)
  downloaded next to the DB's path and renamed into place whole.
- `Snapshotter`: the worker's schedule (`RUNWAY_STATE_SNAPSHOT_INTERVAL_S`), in a thread off the
  event loop, over the partitions the worker's checkpoint stores own.
- `restore_before_open`: the hook into Faust's store that restores a newly assigned active
  partition whose DB directory does not exist before Faust opens it and reads its offset. Like
  streams/runtime.py it reaches into Faust (`Store.assign_partitions`); nothing else does here.

The checkpoint's flush holds the GIL (rocksdict does not release it): the event loop waits for
one memtable's flush per partition snapshotted (`RUNWAY_ROCKSDB_WRITE_BUFFER_BYTES`, 8 MiB by
default: tens of milliseconds). Uploads and downloads release it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import orjson
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from prometheus_client import CollectorRegistry, Counter, Gauge
from rocksdict import AccessType, Checkpoint, Options, Rdict

from config.connections import s3_keys
from config.settings import Settings
from tables import snapshots as plan
from tables.checkpoint import FAUST_OFFSET_KEY
from tables.snapshots import Manifest, SnapshotFile

log = logging.getLogger(__name__)

LINEAGE_FILE = "RUNWAY-SNAPSHOT.json"  # in the DB directory: its lineage, the files it restored
TRANSFER_THREADS = 8  # files moved at once
# Ranged parts of 16 MiB, 4 at once per file: AWS advises 8-16 MB ranges and one connection per
# 85-90 MB/s wanted; 8 files x 4 parts saturate a 10-25 Gb/s NIC (docs/capacity.md).
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4
)


class SnapshotAborted(RuntimeError):
    """The worker began to stop during a snapshot: no manifest was written."""


@dataclass(frozen=True)
class Remote:
    """Where a worker's snapshots go: a bucket, a key prefix, the app id (its consumer group)."""

    client: Any  # boto3 S3 client
    bucket: str
    prefix: str
    app_id: str

    def part_prefix(self, table: str, partition: int) -> str:
        return plan.partition_prefix(self.prefix, self.app_id, table, partition)

    def objects(self, prefix: str) -> dict[str, tuple[int, int]]:
        """key -> (size, last modified epoch ms) of every object under `prefix`."""
        found: dict[str, tuple[int, int]] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                modified = int(obj["LastModified"].timestamp() * 1000)
                found[obj["Key"]] = (int(obj["Size"]), modified)
        return found

    def manifest_keys(self, table: str, partition: int) -> list[str]:
        return sorted(self.objects(self.part_prefix(table, partition) + plan.MANIFESTS))

    def read_manifest(self, key: str) -> Manifest:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return Manifest.from_json(body)

    def latest(self, table: str, partition: int, now_ms: int, max_age_ms: int) -> Manifest | None:
        key = plan.latest(self.manifest_keys(table, partition), now_ms, max_age_ms)
        return None if key is None else self.read_manifest(key)

    def tables(self) -> dict[str, list[int]]:
        """Table -> partitions holding at least one manifest (for `runway state-restore`)."""
        found: dict[str, set[int]] = {}
        root = f"{self.prefix.strip('/')}/{self.app_id}/"
        for key in self.objects(root):
            parts = key[len(root) :].split("/")
            if len(parts) >= 3 and parts[2] == plan.MANIFESTS.rstrip("/") and parts[1].isdigit():
                found.setdefault(parts[0], set()).add(int(parts[1]))
        return {table: sorted(parts) for table, parts in sorted(found.items())}

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})


def s3_client(settings: Settings) -> Any:
    """boto3's client for snapshot transfers: retried (standard mode), patient reads."""
    access_key, secret_key = s3_keys(settings)
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            connect_timeout=5,
            read_timeout=20,  # per socket read: a hung S3 costs a minute (3 tries), not more
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=TRANSFER_THREADS * 4,
        ),
    )


def remote_from_settings(settings: Settings, client: Any | None = None) -> Remote:
    return Remote(
        client=client if client is not None else s3_client(settings),
        bucket=settings.s3_bucket,
        prefix=settings.state_snapshot_prefix,
        app_id=settings.app_id,
    )


# -- snapshots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotResult:
    manifest: Manifest
    uploaded_files: int
    uploaded_bytes: int
    checkpoint_s: float  # RocksDB's checkpoint (memtable flush, hard links): the GIL is held
    upload_s: float


def _lineage(db_dir: Path) -> tuple[str, dict[str, SnapshotFile]]:
    """The DB's lineage and the files it restored from a snapshot (name -> stored file); a DB
    without one (built from the changelog) gets a new lineage, written into its directory."""
    path = db_dir / LINEAGE_FILE
    try:
        doc = orjson.loads(path.read_bytes())
        restored = {
            str(f["name"]): SnapshotFile(str(f["name"]), str(f["key"]), int(f["size"]))
            for f in doc.get("restored", [])
        }
        return str(doc["lineage"]), restored
    except FileNotFoundError:
        lineage = uuid.uuid4().hex[:16]
        _write_lineage(db_dir, lineage, [])
        return lineage, {}


def _write_lineage(db_dir: Path, lineage: str, restored: Iterable[SnapshotFile]) -> None:
    doc = {
        "lineage": lineage,
        "restored": [{"name": f.name, "key": f.key, "size": f.size} for f in restored],
    }
    tmp = db_dir / f".{LINEAGE_FILE}.tmp"
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, db_dir / LINEAGE_FILE)


def persisted_offset(db: Any) -> int | None:
    raw = db.get(FAUST_OFFSET_KEY)
    return None if raw is None else int(raw)


def _checkpoint_offset(path: Path) -> int | None:
    copy = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        return persisted_offset(copy)
    finally:
        copy.close()


def _transfer(jobs: list[Callable[[], None]], stopping: Callable[[], bool]) -> None:
    def run(job: Callable[[], None]) -> None:
        if stopping():
            raise SnapshotAborted("the worker is stopping")
        job()

    with ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="state-snapshot") as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()


def take_snapshot(
    db: Any,
    db_dir: Path,
    *,
    table: str,
    partition: int,
    remote: Remote,
    keep: int,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    stopping: Callable[[], bool] = lambda: False,
    grace_ms: int = plan.DELETE_GRACE_MS,
) -> SnapshotResult:
    """Snapshot one open partition DB (`db`, whose directory is `db_dir`) to `remote`."""
    lineage, restored = _lineage(db_dir)
    created = now_ms()
    work = db_dir.with_name(f".{db_dir.name}.checkpoint-{created}")
    shutil.rmtree(work, ignore_errors=True)
    began = time.monotonic()
    Checkpoint(db).create_checkpoint(str(work))
    checkpointed = time.monotonic()
    try:
        offset = _checkpoint_offset(work)
        local = {p.name: p.stat().st_size for p in work.iterdir() if p.is_file()}
        part_prefix = remote.part_prefix(table, partition)
        keys = remote.manifest_keys(table, partition)
        stored: dict[str, int] = {}
        if keys:
            stored = {f.key: f.size for f in remote.read_manifest(keys[-1]).files}
        files, upload = plan.plan_upload(
            local=local,
            part_prefix=part_prefix,
            lineage=lineage,
            created_ms=created,
            restored=restored,
            stored=stored,
        )
        _transfer(
            [
                partial(
                    remote.client.upload_file,
                    str(work / f.name),
                    remote.bucket,
                    f.key,
                    Config=TRANSFER,
                )
                for f in upload
            ],
            stopping,
        )
        manifest = Manifest(table, partition, created, lineage, offset, tuple(files))
        remote.client.put_object(
            Bucket=remote.bucket,
            Key=plan.manifest_key(part_prefix, created, lineage),
            Body=manifest.to_json(),
            ContentType="application/json",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    uploaded = time.monotonic()
    _prune(remote, part_prefix, keep, now_ms(), grace_ms)
    return SnapshotResult(
        manifest=manifest,
        uploaded_files=len(upload),
        uploaded_bytes=sum(f.size for f in upload),
        checkpoint_s=checkpointed - began,
        upload_s=uploaded - checkpointed,
    )


def _prune(remote: Remote, part_prefix: str, keep: int, now_ms: int, grace_ms: int) -> None:
    """Old manifests beyond `keep`, then the files no kept manifest references."""
    objects = remote.objects(part_prefix)
    kept, dropped = plan.manifests_to_delete(
        [k for k in objects if k.startswith(part_prefix + plan.MANIFESTS)], keep
    )
    remote.delete(dropped)
    manifests = [remote.read_manifest(k) for k in kept]
    files = plan.files_to_delete(
        part_prefix,
        {k: modified for k, (_, modified) in objects.items()},
        manifests,
        now_ms,
        grace_ms,
    )
    remote.delete(files)


# -- restore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.manifest.total_bytes / 1e6 / max(self.seconds, 1e-9)


def restore_partition(
    remote: Remote,
    table: str,
    partition: int,
    db_dir: Path,
    *,
    max_age_ms: int,
    now_ms: int | None = None,
) -> RestoreResult | None:
    """The newest snapshot of a table partition into `db_dir` (which must not exist); None when
    there is no snapshot young enough. The directory appears whole or not at all."""
    if db_dir.exists():
        raise FileExistsError(f"{db_dir} exists: a restore only fills a missing partition")
    began = time.monotonic()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    manifest = remote.latest(table, partition, now, max_age_ms)
    if manifest is None:
        return None
    tmp = db_dir.with_name(f".{db_dir.name}.restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _transfer(
            [
                partial(
                    remote.client.download_file,
                    remote.bucket,
                    f.key,
                    str(tmp / f.name),
                    Config=TRANSFER,
                )
                for f in manifest.files
            ],
            lambda: False,
        )
        for f in manifest.files:
            size = (tmp / f.name).stat().st_size
            if size != f.size:
                raise OSError(f"{f.key}: {size} bytes downloaded, the manifest says {f.size}")
        # A new lineage: another worker may restore the same snapshot and number its own new
        # files as this one will (tables/snapshots.py); the restored SSTs keep their keys.
        _write_lineage(
            tmp, uuid.uuid4().hex[:16], [f for f in manifest.files if plan.is_shared(f.name)]
        )
        os.rename(tmp, db_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RestoreResult(manifest, time.monotonic() - began)


def describe(result: RestoreResult) -> str:
    m = result.manifest
    return (
        f"{m.table}[{m.partition}] restored from the snapshot of "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(m.created_ms / 1000))} "
        f"({len(m.files)} files, {m.total_bytes} bytes, changelog offset {m.changelog_offset}) "
        f"in {result.seconds:.2f} s ({result.mb_per_s:.1f} MB/s)"
    )


# -- the worker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotSource:
    """A state table the worker snapshots: its name, the open DBs of the partitions it owns
    (partition -> DB, read each time), and a partition's DB directory."""

    table: str
    owned: Callable[[], dict[int, Any]]
    path_for: Callable[[int], Path]


class Snapshotter:
    """Snapshots every owned partition that changed since its last snapshot, one at a time,
    in a thread (the event loop goes on; see the module's note on the checkpoint's flush)."""

    def __init__(
        self,
        remote: Remote,
        sources: list[SnapshotSource],
        *,
        keep: int,
        stopping: Callable[[], bool],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._remote = remote
        self._sources = sources
        self._keep = keep
        self._stopping = stopping
        self._done: dict[tuple[str, int], int | None] = {}  # offset of the last snapshot
        # For an alert: a restore falls back to the whole changelog once the newest snapshot is
        # older than RUNWAY_STATE_SNAPSHOT_MAX_AGE_S, so rounds that keep failing must be seen.
        self.completed = Gauge(
            "runway_state_snapshot_completed_timestamp_seconds",
            "When the worker's last snapshot round of every owned partition succeeded",
            registry=registry,
        )
        self.uploaded = Counter(
            "runway_state_snapshot_uploaded_bytes",
            "Bytes of state files uploaded by snapshots",
            registry=registry,
        )

    async def run_once(self) -> list[SnapshotResult]:
        results: list[SnapshotResult] = []
        for source in self._sources:
            for partition, db in sorted(source.owned().items()):
                if self._stopping():
                    return results
                offset = persisted_offset(db)
                if offset is None or self._done.get((source.table, partition)) == offset:
                    continue  # nothing written, or nothing since the last snapshot
                try:
                    result = await asyncio.to_thread(
                        take_snapshot,
                        db,
                        source.path_for(partition),
                        table=source.table,
                        partition=partition,
                        remote=self._remote,
                        keep=self._keep,
                        stopping=self._stopping,
                    )
                except SnapshotAborted:
                    return results
                self._done[(source.table, partition)] = result.manifest.changelog_offset
                self.uploaded.inc(result.uploaded_bytes)
                log.info(
                    "state snapshot: %s[%d] at changelog offset %s: %d of %d files uploaded "
                    "(%d of %d bytes) in %.2f s; checkpoint %.3f s",
                    source.table,
                    partition,
                    result.manifest.changelog_offset,
                    result.uploaded_files,
                    len(result.manifest.files),
                    result.uploaded_bytes,
                    result.manifest.total_bytes,
                    result.upload_s,
                    result.checkpoint_s,
                )
                results.append(result)
        self.completed.set_to_current_time()
        return results


def restore_before_open(
    store: Any,
    restore: Callable[[str, int, Path], RestoreResult | None],
    table: str,
    kept_in_group: Callable[[], AbstractAsyncContextManager[None]],
) -> None:
    """Restore a newly assigned active partition from its snapshot before Faust opens its DB.

    Faust's `Store.on_rebalance` opens the DBs of the active partitions it is given
    (`assign_partitions`), then its recovery reads each DB's persisted changelog offset and
    replays the changelog from there. A directory restored before that point makes the replay
    the changelog written after the snapshot. Standby partitions are left to Faust (their
    restore is not on the path of a partition's availability). Any error of a restore is
    logged and the partition restored from the changelog, as without snapshots; the others of
    the same assignment then too (S3 away would cost each its retries, in the rebalance).
    The downloads run in the rebalance's assignment callback, where aiokafka sends no
    heartbeat: `kept_in_group` sends them, or a download longer than the session timeout
    would get the member expelled.
    """
    assign = store.assign_partitions

    async def assign_partitions(tbl: Any, tps: set[Any], generation_id: int = 0) -> None:
        standbys = store.app.assignor.assigned_standbys()
        topics = tbl.changelog_topic.topics
        missing = [
            (tp.partition, path)
            for tp in sorted(tps)
            if tp.topic in topics and tp not in standbys and tp.partition not in store._dbs
            if not (path := Path(store.partition_path(tp.partition))).exists()
        ]
        if missing:
            # One span of heartbeats over every download: each may be shorter than a heartbeat
            # interval while together they outlast the session timeout.
            async with kept_in_group():
                await restore_all(missing)
        await assign(tbl, tps, generation_id)

    async def restore_all(missing: list[tuple[int, Path]]) -> None:
        failed = False
        for partition, path in missing:
            if failed:
                log.info("state restore: %s[%d] from the changelog", table, partition)
                continue
            try:
                result = await asyncio.to_thread(restore, table, partition, path)
            except Exception:  # noqa: BLE001 - the changelog is the fallback, as without
                log.exception(
                    "state restore: %s[%d] not restored from a snapshot; it and the rest of "
                    "this assignment restore from the changelog",
                    table,
                    partition,
                )
                failed = True
                continue
            if result is None:
                log.info("state restore: %s[%d] has no snapshot young enough", table, partition)
            else:
                log.info("state restore: %s", describe(result))

    store.assign_partitions = assign_partitions


def _owned(store: Any) -> dict[int, Any]:
    return {partition: state.db for partition, state in store.partitions.items()}


def _path(data: Any, partition: int) -> Path:
    return Path(data.partition_path(partition))


def install_snapshots(
    settings: Settings,
    tables: list[tuple[Any, Any]],
    stopping: Callable[[], bool],
    kept_in_group: Callable[[], AbstractAsyncContextManager[None]],
    registry: CollectorRegistry | None = None,
) -> tuple[float, Callable[[], Any]] | None:
    """The worker's snapshots, as its settings ask: the restore hook on each state table
    (`RUNWAY_STATE_SNAPSHOT_RESTORE`), and (interval, body) of the snapshot timer when
    `RUNWAY_STATE_SNAPSHOT_INTERVAL_S` is set. `tables`: (Faust table, its CheckpointStore)."""
    if not settings.state_snapshot_restore and settings.state_snapshot_interval_s <= 0:
        return None
    remote = remote_from_settings(settings)
    max_age_ms = int(settings.state_snapshot_max_age_s * 1000)

    def restore(table: str, partition: int, path: Path) -> RestoreResult | None:
        return restore_partition(remote, table, partition, path, max_age_ms=max_age_ms)

    sources = []
    for table, store in tables:
        data = table.data
        if settings.state_snapshot_restore:
            restore_before_open(data, restore, table.name, kept_in_group)
        sources.append(SnapshotSource(table.name, partial(_owned, store), partial(_path, data)))
    if settings.state_snapshot_interval_s <= 0:
        return None
    snapshotter = Snapshotter(
        remote, sources, keep=settings.state_snapshot_keep, stopping=stopping, registry=registry
    )
    return settings.state_snapshot_interval_s, snapshotter.run_once
