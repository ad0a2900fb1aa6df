"""`runway state-snapshot` and `runway state-restore`: a worker's state snapshots by hand.

`state-snapshot` snapshots the partition DBs of a data directory whose worker is stopped (a
running worker holds RocksDB's lock on them, and snapshots them itself on its schedule,
`RUNWAY_STATE_SNAPSHOT_INTERVAL_S`): before a planned move of a worker's partitions, or to seed
snapshots for a group that never took one. `state-restore` fills a data directory with the
newest snapshot of each partition it lacks, before a worker starts on it (a worker started with
`RUNWAY_STATE_SNAPSHOT_RESTORE=true` does it itself on assignment). Each prints one JSON
document per partition on stdout; an error an operator can act on is one sentence on stderr and
exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import faust
from faust.cli import option
from rocksdict import Options, Rdict

from config.settings import Settings
from streams import state_snapshots as snaps

_DB = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _print(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def partition_dbs(tabledir: Path) -> list[tuple[str, int, Path]]:
    """(table, partition, directory) of every partition DB in a table directory."""
    found = []
    for path in sorted(tabledir.iterdir()) if tabledir.is_dir() else []:
        named = _DB.match(path.name)
        if named and path.is_dir():
            found.append((named["table"], int(named["partition"]), path))
    return sorted(found)


def _wanted(table: str, partition: int, tables: tuple[str, ...], parts: tuple[int, ...]) -> bool:
    return (not tables or table in tables) and (not parts or partition in parts)


def snapshot_dir(
    settings: Settings, tabledir: Path, tables: tuple[str, ...], parts: tuple[int, ...]
) -> None:
    remote = snaps.remote_from_settings(settings)
    dbs = [d for d in partition_dbs(tabledir) if _wanted(d[0], d[1], tables, parts)]
    if not dbs:
        _fail(f"no partition DB to snapshot in {tabledir}")
    for table, partition, path in dbs:
        try:
            db = Rdict(str(path), options=Options(raw_mode=True))
        except Exception as exc:  # noqa: BLE001 - rocksdict raises plain exceptions
            if "lock" in str(exc).lower():
                _fail(
                    f"{path} is open in a running worker: stop it first (a running worker "
                    "snapshots its partitions itself, RUNWAY_STATE_SNAPSHOT_INTERVAL_S)"
                )
            raise
        try:
            result = snaps.take_snapshot(
                db,
                path,
                table=table,
                partition=partition,
                remote=remote,
                keep=settings.state_snapshot_keep,
            )
        finally:
            db.close()
        m = result.manifest
        _print(
            {
                "table": table,
                "partition": partition,
                "changelog_offset": m.changelog_offset,
                "files": len(m.files),
                "bytes": m.total_bytes,
                "uploaded_files": result.uploaded_files,
                "uploaded_bytes": result.uploaded_bytes,
                "seconds": round(result.checkpoint_s + result.upload_s, 3),
                "created_ms": m.created_ms,
            }
        )


def restore_dir(
    settings: Settings, tabledir: Path, tables: tuple[str, ...], parts: tuple[int, ...]
) -> None:
    remote = snaps.remote_from_settings(settings)
    stored = remote.tables()
    wanted = [
        (table, partition)
        for table, partitions in stored.items()
        for partition in partitions
        if _wanted(table, partition, tables, parts)
    ]
    if not wanted:
        _fail(
            f"no snapshot of {settings.app_id} under s3://{settings.s3_bucket}/"
            f"{settings.state_snapshot_prefix} matches"
        )
    tabledir.mkdir(parents=True, exist_ok=True)
    max_age_ms = int(settings.state_snapshot_max_age_s * 1000)
    for table, partition in wanted:
        path = tabledir / f"{table}-{partition}.db"
        doc: dict[str, Any] = {"table": table, "partition": partition, "path": str(path)}
        if path.exists():
            _print({**doc, "restored": False, "reason": "exists"})
            continue
        result = snaps.restore_partition(remote, table, partition, path, max_age_ms=max_age_ms)
        if result is None:
            _print({**doc, "restored": False, "reason": "no snapshot young enough"})
            continue
        _print(
            {
                **doc,
                "restored": True,
                "changelog_offset": result.manifest.changelog_offset,
                "bytes": result.manifest.total_bytes,
                "seconds": round(result.seconds, 3),
                "mb_per_s": round(result.mb_per_s, 2),
                "created_ms": result.manifest.created_ms,
            }
        )


def register(app: faust.App, settings: Settings) -> None:
    def tabledir() -> Path:
        return Path(app.conf.tabledir)

    @app.command(
        option("--table", "tables", multiple=True, help="Table(s) (default: every one)."),
        option("--partition", "partitions", type=int, multiple=True,
               help="Partition(s) (default: every one)."),
    )  # fmt: skip
    async def state_snapshot(
        self: object, tables: tuple[str, ...], partitions: tuple[int, ...]
    ) -> None:
        """Snapshot a stopped worker's state partitions (RUNWAY_DATADIR) to S3."""
        await asyncio.to_thread(snapshot_dir, settings, tabledir(), tables, partitions)

    @app.command(
        option("--table", "tables", multiple=True, help="Table(s) (default: every one)."),
        option("--partition", "partitions", type=int, multiple=True,
               help="Partition(s) (default: every one with a snapshot)."),
    )  # fmt: skip
    async def state_restore(
        self: object, tables: tuple[str, ...], partitions: tuple[int, ...]
    ) -> None:
        """Fetch the newest snapshot of each partition missing from RUNWAY_DATADIR."""
        await asyncio.to_thread(restore_dir, settings, tabledir(), tables, partitions)
