"""Backups of the embedded (SQLite) registry: snapshots on a schedule, restore from the newest.

Why SQLite's online backup API and not a file copy: the registry runs in WAL mode with the agent
and the API writing from two processes, so a copied file can miss what still sits in the WAL or
catch a page mid-write. `sqlite3.Connection.backup` copies the pages under SQLite's own read
lock, in one step here, so a snapshot is the database as of one committed transaction (writers
go on meanwhile: WAL readers do not block them).

The data lost in a failure (RPO) is at most one interval plus one snapshot's time
(`RUNWAY_REGISTRY_BACKUP_INTERVAL_S`, default 60 s against the seed's 5 minutes). A PostgreSQL
registry is not snapshotted here: it has a streaming standby (`registry.standby`).

Snapshots are named by their UTC time (`registry-20261130T080102123Z.sqlite3`), so the names
sort by age, to a directory or an `s3://bucket/prefix`; the newest `RUNWAY_REGISTRY_BACKUP_KEEP`
are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import sqlalchemy as sa

from config.settings import Settings
from registry.store import database_url, default_dsn, wall_ms

log = logging.getLogger(__name__)

PREFIX = "registry-"
SUFFIX = ".sqlite3"
_NAME = re.compile(r"^registry-(\d{8}T\d{9}Z)\.sqlite3$")
_STAMP = "%Y%m%dT%H%M%S"


class BackupError(Exception):
    """Something an operator must act on; the message says what (one sentence)."""


# -- names: pure ---------------------------------------------------------------------------------


def snapshot_name(at_ms: int) -> str:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return f"{PREFIX}{moment.strftime(_STAMP)}{at_ms % 1000:03d}Z{SUFFIX}"


def snapshot_time(name: str) -> int | None:
    """The epoch ms a snapshot's name holds; None for any other file."""
    found = _NAME.match(name)
    if found is None:
        return None
    stamp = found.group(1)
    moment = datetime.strptime(stamp[:15], _STAMP).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + int(stamp[15:18])


def snapshots(names: Iterable[str]) -> list[str]:
    """The snapshot names among `names`, oldest first (other files are ignored)."""
    return sorted(n for n in names if snapshot_time(n) is not None)


def to_prune(names: Iterable[str], keep: int) -> list[str]:
    """The snapshots beyond the newest `keep`."""
    found = snapshots(names)
    return found[: max(len(found) - keep, 0)]


def sqlite_file(dsn: str) -> Path | None:
    """The database file of a SQLite registry DSN; None for any other database (or memory)."""
    url = sa.make_url(database_url(dsn))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def registry_file(settings: Settings) -> Path:
    found = sqlite_file(settings.registry_dsn or default_dsn(settings))
    if found is None:
        raise BackupError(
            "the registry is not SQLite (RUNWAY_REGISTRY_DSN): a PostgreSQL registry has a "
            "streaming standby instead (runway registry-standby, runway registry-promote)."
        )
    return found


# -- SQLite copies -------------------------------------------------------------------------------


def copy_database(source: Path, dest: Path) -> None:
    """A consistent copy of the SQLite database `source` at `dest` (replaced atomically)."""
    if not source.is_file():
        # sqlite3.connect would create an empty database here, and back that up
        raise BackupError(f"no registry database at {source}.")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: every page in one step, under one read lock
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)


def check_database(path: Path) -> None:
    """Raise BackupError unless `path` is a sound SQLite database with the registry's tables."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable SQLite database: {exc}.") from exc
    if verdict != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {verdict}.")
    if "models" not in tables:
        raise BackupError(f"{path} holds no registry (no models table).")


# -- where snapshots go --------------------------------------------------------------------------


class Target(Protocol):
    """A place for snapshots: a directory or an S3 prefix."""

    def describe(self, name: str) -> str: ...
    def put(self, local: Path, name: str) -> None: ...
    def get(self, name: str, local: Path) -> None: ...
    def names(self) -> list[str]: ...
    def delete(self, names: list[str]) -> None: ...


@dataclass(frozen=True)
class Directory:
    root: Path

    def describe(self, name: str) -> str:
        return str(self.root / name)

    def put(self, local: Path, name: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if local.parent.resolve() == self.root.resolve():
            os.replace(local, self.root / name)
        else:
            partial = self.root / (name + ".partial")
            shutil.copyfile(local, partial)
            os.replace(partial, self.root / name)

    def get(self, name: str, local: Path) -> None:
        shutil.copyfile(self.root / name, local)

    def names(self) -> list[str]:
        return [p.name for p in self.root.iterdir()] if self.root.is_dir() else []

    def delete(self, names: list[str]) -> None:
        for name in names:
            (self.root / name).unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Prefix:
    client: Any  # boto3's S3 client
    bucket: str
    prefix: str  # "" or ending in "/"

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def put(self, local: Path, name: str) -> None:
        self.client.upload_file(str(local), self.bucket, self.prefix + name)

    def get(self, name: str, local: Path) -> None:
        self.client.download_file(self.bucket, self.prefix + name, str(local))

    def names(self) -> list[str]:
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
            found += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        return [n for n in found if "/" not in n]

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = [{"Key": self.prefix + n} for n in names[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})


def target_of(settings: Settings, uri: str | None = None) -> Target:
    """`uri`, else RUNWAY_REGISTRY_BACKUP_URI, else a directory beside the registry's file (so
    two registries never share, nor prune, each other's snapshots)."""
    where = uri or settings.registry_backup_uri
    if where is None:
        return Directory(registry_file(settings).parent / "registry-backup")
    parsed = urlparse(where)
    if parsed.scheme == "s3":
        from stack.s3 import s3_client  # boto3 only when snapshots go to S3

        prefix = parsed.path.strip("/")
        return S3Prefix(s3_client(settings), parsed.netloc, prefix + "/" if prefix else "")
    return Directory(Path(where))


# -- backup and restore --------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    name: str
    location: str
    taken_at_ms: int  # when the copy began: the snapshot holds every write committed before
    bytes: int
    seconds: float  # copy + upload

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "location": self.location,
            "taken_at_ms": self.taken_at_ms,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


def take_snapshot(
    source: Path, target: Target, keep: int, clock: Callable[[], int] = wall_ms
) -> Snapshot:
    """Copy the registry, hand the copy to `target`, delete snapshots beyond the newest `keep`."""
    started = time.monotonic()
    at_ms = clock()
    name = snapshot_name(at_ms)
    staging = target.root if isinstance(target, Directory) else None
    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging, prefix=".registry-backup-") as work:
        local = Path(work) / name
        copy_database(source, local)
        size = local.stat().st_size
        target.put(local, name)
    target.delete(to_prune(target.names(), keep))
    return Snapshot(name, target.describe(name), at_ms, size, time.monotonic() - started)


def backup(settings: Settings, uri: str | None = None) -> Snapshot:
    """`runway registry-backup`: one snapshot now."""
    target = target_of(settings, uri)
    return take_snapshot(registry_file(settings), target, settings.registry_backup_keep)


def restore_snapshot(target: Target, dest: Path, name: str | None, force: bool) -> Snapshot:
    """Put snapshot `name` (default: the newest) in place of the database file `dest`.

    Every process using the registry must be stopped first: one that holds the old file open
    would go on writing to it. The old file's `-wal`/`-shm` go too, since SQLite would otherwise
    replay a WAL written for another database over the restored one.
    """
    started = time.monotonic()
    found = snapshots(target.names())
    if name is None:
        if not found:
            raise BackupError("no registry snapshot to restore from.")
        name = found[-1]
    elif name not in found:
        raise BackupError(f"no registry snapshot named {name!r}.")
    if dest.exists() and not force:
        raise BackupError(
            f"{dest} exists: stop the registry's processes and pass --force to replace it."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".restoring")
    try:
        target.get(name, partial)
        check_database(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    for suffix in ("-wal", "-shm", "-journal"):
        dest.with_name(dest.name + suffix).unlink(missing_ok=True)
    size = partial.stat().st_size
    os.replace(partial, dest)
    taken = snapshot_time(name)
    assert taken is not None  # `found` holds snapshot names only
    return Snapshot(name, str(dest), taken, size, time.monotonic() - started)


def restore(
    settings: Settings, name: str | None = None, force: bool = False, uri: str | None = None
) -> Snapshot:
    """`runway registry-restore`."""
    return restore_snapshot(target_of(settings, uri), registry_file(settings), name, force)


# -- the schedule --------------------------------------------------------------------------------


async def backup_loop(settings: Settings, stop: asyncio.Event) -> None:
    """Snapshot a SQLite registry every `RUNWAY_REGISTRY_BACKUP_INTERVAL_S` until `stop`.

    A failed snapshot is logged and tried again at the next tick: the registry's writers must
    not stop because the backup place is away. Nothing runs for PostgreSQL or an interval of 0.
    """
    interval = settings.registry_backup_interval_s
    if interval <= 0 or sqlite_file(settings.registry_dsn or default_dsn(settings)) is None:
        return
    target = target_of(settings)
    source = registry_file(settings)
    log.info("registry backups of %s every %.0f s to %s", source, interval, target.describe(""))
    while not stop.is_set():
        try:
            taken = await asyncio.to_thread(
                take_snapshot, source, target, settings.registry_backup_keep
            )
            log.debug("registry snapshot %s (%d bytes)", taken.location, taken.bytes)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.error("registry backup failed (the next one is in %.0f s): %s", interval, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
