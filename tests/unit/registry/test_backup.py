"""Registry snapshots: names, pruning, and real SQLite copies and restores in a temp dir."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry.backup import (
    BackupError,
    Directory,
    restore_snapshot,
    snapshot_name,
    snapshot_time,
    snapshots,
    sqlite_file,
    take_snapshot,
    to_prune,
)

AT = datetime(2026, 11, 30, 7, 59, 26, 680_000, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)


def test_names_carry_utc_milliseconds_and_sort_by_age() -> None:
    assert snapshot_name(AT_MS) == "registry-20261130T075926680Z.sqlite3"
    assert snapshot_time("registry-20261130T075926680Z.sqlite3") == AT_MS
    assert snapshot_time("registry-20261130T075926680Z.sqlite3.partial") is None
    assert snapshot_time("notes.txt") is None
    # 9 s later but 10 ms less: the order is the time's, whatever the digits after it
    later = snapshot_name(AT_MS + 8_990)
    assert later == "registry-20261130T075935670Z.sqlite3"
    assert snapshots([later, "x", snapshot_name(AT_MS)]) == [snapshot_name(AT_MS), later]


def test_prune_keeps_the_newest_and_ignores_other_files() -> None:
    names = [snapshot_name(AT_MS + i * 60_000) for i in range(5)]
    assert to_prune([*reversed(names), "README", "registry-x.sqlite3"], keep=2) == names[:3]
    assert to_prune(names, keep=10) == []


def test_sqlite_file_of_a_dsn() -> None:
    assert sqlite_file("sqlite:////data/r.sqlite3") == Path("/data/r.sqlite3")
    assert sqlite_file("sqlite:///var/r.sqlite3") == Path("var/r.sqlite3")
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("postgresql://runway@127.0.0.1:5433/runway") is None


def _registry(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE models (model_id TEXT PRIMARY KEY)")
    return conn


def _ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT model_id FROM models ORDER BY model_id")]
    finally:
        conn.close()


def test_a_snapshot_holds_what_is_still_in_the_wal_and_restores_it(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    writer = _registry(db)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # every write stays in the -wal file
    writer.executemany("INSERT INTO models VALUES (?)", [("a",), ("b",)])
    target = Directory(tmp_path / "backups")
    first = take_snapshot(db, target, keep=2, clock=lambda: AT_MS)
    writer.execute("INSERT INTO models VALUES ('c')")
    take_snapshot(db, target, keep=2, clock=lambda: AT_MS + 1000)
    take_snapshot(db, target, keep=2, clock=lambda: AT_MS + 2000)
    writer.close()

    assert first.name == snapshot_name(AT_MS) and first.bytes > 0
    assert sorted(target.names()) == [snapshot_name(AT_MS + 1000), snapshot_name(AT_MS + 2000)]
    assert _ids(target.root / snapshot_name(AT_MS + 1000)) == ["a", "b", "c"]

    # the primary is lost, and a stale -wal of it is left behind
    db.unlink()
    (tmp_path / "registry.sqlite3-wal").write_bytes(b"stale")
    restored = restore_snapshot(target, db, None, force=False)
    assert (restored.name, restored.taken_at_ms) == (snapshot_name(AT_MS + 2000), AT_MS + 2000)
    assert not (tmp_path / "registry.sqlite3-wal").exists()
    assert _ids(db) == ["a", "b", "c"]


def test_restore_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    _registry(db).execute("INSERT INTO models VALUES ('a')")
    target = Directory(tmp_path / "backups")
    take_snapshot(db, target, keep=5, clock=lambda: AT_MS)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO models VALUES ('later')")
    conn.close()
    with pytest.raises(BackupError, match="--force"):
        restore_snapshot(target, db, None, force=False)
    assert _ids(db) == ["a", "later"]
    restore_snapshot(target, db, snapshot_name(AT_MS), force=True)
    assert _ids(db) == ["a"]
    with pytest.raises(BackupError, match="no registry snapshot named"):
        restore_snapshot(target, db, snapshot_name(AT_MS + 1), force=True)


def test_a_missing_database_is_an_error_not_an_empty_snapshot(tmp_path: Path) -> None:
    target = Directory(tmp_path / "backups")
    with pytest.raises(BackupError, match="no registry database"):
        take_snapshot(tmp_path / "gone.sqlite3", target, keep=5)
    assert not (tmp_path / "gone.sqlite3").exists() and target.names() == []
    with pytest.raises(BackupError, match="no registry snapshot to restore"):
        restore_snapshot(target, tmp_path / "gone.sqlite3", None, force=False)


def test_a_snapshot_that_is_not_a_registry_is_refused(tmp_path: Path) -> None:
    target = Directory(tmp_path / "backups")
    target.root.mkdir()
    (target.root / snapshot_name(AT_MS)).write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a usable SQLite database"):
        restore_snapshot(target, tmp_path / "registry.sqlite3", None, force=False)
    assert not (tmp_path / "registry.sqlite3").exists()
