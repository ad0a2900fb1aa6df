"""State snapshots: which files a snapshot of a partition DB holds, where they live, which to keep.

Why snapshots: a partition restored from its changelog is bound by records (Faust applies about
5,500 a CPU-second), hundreds of hours at the seed's loads (docs/capacity.md). A copy of the
partition's RocksDB files is bound by bytes instead, and Faust then replays only the changelog
written after the offset the copy holds (the checkpoint writes that offset in the same
WriteBatch as the state, tables/checkpoint.py, so a point-in-time copy of the DB is consistent).

The layout in the bucket, per table partition (`partition_prefix`):

    {prefix}/{app_id}/{table}/{partition}/manifests/{created_ms:013d}-{lineage}.json
    {prefix}/{app_id}/{table}/{partition}/files/{lineage}/{name}                 (SST files)
    {prefix}/{app_id}/{table}/{partition}/files/{lineage}/{created_ms:013d}/{name} (the rest)

SST files are immutable and RocksDB never reuses a file number within one DB, so an SST is
uploaded once and shared by every later snapshot that still holds it. A *lineage* names one DB's
history: a DB rebuilt from the changelog numbers its files from 1 again, so its files must not be
taken for the old DB's of the same name; a DB restored from a snapshot starts a new lineage too
(another worker may have restored the same snapshot and numbered its own files the same way) and
remembers the keys of the files it restored, which its snapshots share. The other files (MANIFEST,
CURRENT, OPTIONS, an empty WAL) are small and change with every snapshot: each gets its own copy.

The manifest is written last: a reader lists manifests, so it never sees a snapshot whose files
are still on their way. Nothing here does I/O (tables/snapshot_io.py does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

FORMAT = 1
MANIFESTS = "manifests/"
FILES = "files/"
# Files uploaded but not referenced by a kept manifest are deleted only once this old: another
# worker (a partition's new owner) may be uploading files whose manifest is not written yet.
DELETE_GRACE_MS = 3_600_000


@dataclass(frozen=True)
class SnapshotFile:
    name: str  # the file's name in the DB directory
    key: str  # its object key
    size: int


@dataclass(frozen=True)
class Manifest:
    """One consistent snapshot of a table partition's DB."""

    table: str
    partition: int
    created_ms: int
    lineage: str
    changelog_offset: int | None  # Faust's persisted changelog offset in the copy (None: none)
    files: tuple[SnapshotFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "table": self.table,
                "partition": self.partition,
                "created_ms": self.created_ms,
                "lineage": self.lineage,
                "changelog_offset": self.changelog_offset,
                "bytes": self.total_bytes,
                "files": [{"name": f.name, "key": f.key, "size": f.size} for f in self.files],
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        doc = orjson.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown snapshot manifest format {doc.get('format')!r}")
        return cls(
            table=str(doc["table"]),
            partition=int(doc["partition"]),
            created_ms=int(doc["created_ms"]),
            lineage=str(doc["lineage"]),
            changelog_offset=(
                None if doc["changelog_offset"] is None else int(doc["changelog_offset"])
            ),
            files=tuple(
                SnapshotFile(str(f["name"]), str(f["key"]), int(f["size"])) for f in doc["files"]
            ),
        )


def partition_prefix(prefix: str, app_id: str, table: str, partition: int) -> str:
    return f"{prefix.strip('/')}/{app_id}/{table}/{partition}/"


def manifest_key(part_prefix: str, created_ms: int, lineage: str) -> str:
    return f"{part_prefix}{MANIFESTS}{created_ms:013d}-{lineage}.json"


def manifest_time(key: str) -> int | None:
    """The creation time a manifest's key holds; None for any other key."""
    parts = key.rsplit("/", 2)
    name = parts[-1]
    if len(parts) < 2 or f"{parts[-2]}/" != MANIFESTS or not name.endswith(".json"):
        return None
    stamp = name.split("-", 1)[0]
    return int(stamp) if len(stamp) == 13 and stamp.isdigit() else None


def is_shared(name: str) -> bool:
    """SST files are immutable: uploaded once, shared by later snapshots."""
    return name.endswith(".sst")


def file_key(part_prefix: str, lineage: str, name: str, created_ms: int) -> str:
    if is_shared(name):
        return f"{part_prefix}{FILES}{lineage}/{name}"
    return f"{part_prefix}{FILES}{lineage}/{created_ms:013d}/{name}"


def plan_upload(
    *,
    local: Mapping[str, int],
    part_prefix: str,
    lineage: str,
    created_ms: int,
    restored: Mapping[str, SnapshotFile],
    stored: Mapping[str, int],
) -> tuple[list[SnapshotFile], list[SnapshotFile]]:
    """(every file of the snapshot, those to upload) for a checkpoint's files `local` (name to
    size).

    An SST restored from a snapshot keeps its object key (`restored`, when the size agrees);
    an SST already stored (`stored`: key to size, e.g. the latest manifest's files) is not
    uploaded again; every other file is.
    """
    files: list[SnapshotFile] = []
    upload: list[SnapshotFile] = []
    for name in sorted(local):
        size = local[name]
        came = restored.get(name)
        if is_shared(name) and came is not None and came.size == size:
            entry = came
        else:
            entry = SnapshotFile(name, file_key(part_prefix, lineage, name, created_ms), size)
        files.append(entry)
        if not (is_shared(name) and stored.get(entry.key) == size):
            upload.append(entry)
    return files, upload


def latest(manifest_keys: Iterable[str], now_ms: int, max_age_ms: int) -> str | None:
    """The newest manifest no older than `max_age_ms`; None when there is none.

    Why an age limit: compaction drops a changelog's tombstones `delete.retention.ms` after they
    were written (24 h by default). A snapshot older than that may hold a key whose deletion the
    changelog no longer carries: restored, the key would come back to life.
    """
    dated = [(t, k) for k in manifest_keys if (t := manifest_time(k)) is not None]
    fresh = [(t, k) for t, k in dated if now_ms - t <= max_age_ms]
    return max(fresh)[1] if fresh else None


def manifests_to_delete(manifest_keys: Iterable[str], keep: int) -> tuple[list[str], list[str]]:
    """(kept, deleted): the newest `keep` manifests are kept."""
    dated = sorted((t, k) for k in manifest_keys if (t := manifest_time(k)) is not None)
    cut = max(len(dated) - keep, 0)
    return [k for _, k in dated[cut:]], [k for _, k in dated[:cut]]


def files_to_delete(
    part_prefix: str,
    objects: Mapping[str, int],
    kept: Iterable[Manifest],
    now_ms: int,
    grace_ms: int = DELETE_GRACE_MS,
) -> list[str]:
    """File objects (key to last-modified ms) no kept manifest references, older than the grace.

    Only keys under the partition's `files/` are candidates (manifests go by `keep`)."""
    referenced = {f.key for manifest in kept for f in manifest.files}
    return sorted(
        key
        for key, modified in objects.items()
        if key.startswith(part_prefix + FILES)
        and key not in referenced
        and now_ms - modified >= grace_ms
    )
