"""State snapshots on the stack's S3 (moto): incremental uploads, retention, restore.

In-process, on real RocksDB DBs written as the checkpoint writes them (state and Faust's
changelog offset in one WriteBatch). The restored DB must hold exactly what the source held
when its snapshot was taken; the expected content is the dict the test wrote, not a read of
the source.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError
from rocksdict import Options, Rdict, WriteBatch

from config.settings import Settings
from stack.processes import free_port
from streams import state_snapshots as snaps
from streams.state_snapshot_cli import restore_dir, snapshot_dir
from tables.checkpoint import FAUST_OFFSET_KEY

pytestmark = pytest.mark.integration


def open_db(path: Path) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(str(path), options=options)


def write(db: Rdict, changes: Mapping[bytes, bytes | None], offset: int) -> None:
    batch = WriteBatch(raw_mode=True)
    for key, value in changes.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(FAUST_OFFSET_KEY, str(offset).encode())
    db.write(batch)


def content(db: Rdict) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in db.items()}  # type: ignore[arg-type]


def apply(model: dict[bytes, bytes], changes: Mapping[bytes, bytes | None]) -> None:
    for key, value in changes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def remote_for(settings: Settings) -> snaps.Remote:
    return snaps.remote_from_settings(settings)


async def test_snapshots_upload_only_new_files_and_restore_exactly(
    settings: Settings, tmp_path: Path
) -> None:
    remote = remote_for(settings)
    db_dir = tmp_path / "tables" / "join-3.db"
    db_dir.parent.mkdir()
    db = open_db(db_dir)
    clock = iter(range(1_000_000, 2_000_000, 1_000))
    model: dict[bytes, bytes] = {}

    first = {b"k%06d" % i: os.urandom(40) for i in range(20_000)}
    write(db, first, offset=99)
    apply(model, first)
    one = snaps.take_snapshot(
        db, db_dir, table="join", partition=3, remote=remote, keep=2, now_ms=lambda: next(clock)
    )
    assert one.manifest.changelog_offset == 99
    ssts = {f.name for f in one.manifest.files if f.name.endswith(".sst")}
    assert len(ssts) == 1 and one.uploaded_files == len(one.manifest.files)

    second: dict[bytes, bytes | None] = {b"k%06d" % i: None for i in range(0, 20_000, 2)}
    second |= {b"n%06d" % i: os.urandom(40) for i in range(5_000)}  # and deletions above
    write(db, second, offset=250)
    apply(model, second)
    two = snaps.take_snapshot(
        db, db_dir, table="join", partition=3, remote=remote, keep=2, now_ms=lambda: next(clock)
    )
    new_ssts = {f.name for f in two.manifest.files if f.name.endswith(".sst")} - ssts
    assert len(new_ssts) == 1
    uploaded = {f.name for f in two.manifest.files} - {
        f.name for f in one.manifest.files if f.name.endswith(".sst")
    }
    assert two.uploaded_files == len(uploaded)  # the first SST was not uploaded again
    assert two.uploaded_bytes < two.manifest.total_bytes
    expected = dict(model)  # the content of the snapshot a restore takes

    third = {b"late": b"after the snapshot"}
    write(db, third, offset=260)
    # the restore takes the newest snapshot: `two` (a third is not taken)
    target = tmp_path / "other" / "tables" / "join-3.db"
    target.parent.mkdir(parents=True)
    restored = snaps.restore_partition(
        remote, "join", 3, target, max_age_ms=10**12, now_ms=3_000_000
    )
    assert restored is not None and restored.manifest == two.manifest
    copy = open_db(target)
    try:
        assert snaps.persisted_offset(copy) == 250
        got = content(copy)
        got.pop(FAUST_OFFSET_KEY)
        assert got == expected
    finally:
        copy.close()

    with pytest.raises(FileExistsError):
        snaps.restore_partition(remote, "join", 3, target, max_age_ms=10**12)
    elsewhere = tmp_path / "third" / "join-3.db"
    elsewhere.parent.mkdir()
    # too old for the tombstone bound: no restore
    assert snaps.restore_partition(remote, "join", 3, elsewhere, max_age_ms=1_000) is None
    assert not elsewhere.exists()
    assert snaps.restore_partition(remote, "join", 4, elsewhere, max_age_ms=10**12) is None
    db.close()


async def test_a_restored_db_shares_its_files_and_retention_deletes_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    remote = remote_for(settings)
    source_dir = tmp_path / "a" / "batch_view-0.db"
    source_dir.parent.mkdir()
    db = open_db(source_dir)
    write(db, {b"a%05d" % i: os.urandom(30) for i in range(5_000)}, offset=10)
    one = snaps.take_snapshot(
        db, source_dir, table="batch_view", partition=0, remote=remote, keep=1,
        grace_ms=0,
    )  # fmt: skip
    db.close()

    target = tmp_path / "b" / "batch_view-0.db"
    target.parent.mkdir()
    assert snaps.restore_partition(remote, "batch_view", 0, target, max_age_ms=60_000)
    copy = open_db(target)
    write(copy, {b"b%05d" % i: os.urandom(30) for i in range(5_000)}, offset=20)
    two = snaps.take_snapshot(
        copy, target, table="batch_view", partition=0, remote=remote, keep=1,
        grace_ms=0,
    )  # fmt: skip
    copy.close()
    one_ssts = {f.key for f in one.manifest.files if f.name.endswith(".sst")}
    two_ssts = {f.key for f in two.manifest.files if f.name.endswith(".sst")}
    assert one_ssts < two_ssts, "the restored SST keeps its key in the next snapshot"
    assert two.manifest.lineage != one.manifest.lineage
    uploaded_ssts = two_ssts - one_ssts
    assert two.uploaded_bytes < two.manifest.total_bytes
    assert all(two.manifest.lineage in key for key in uploaded_ssts)

    # keep=1, no grace: the first manifest and its private files are gone, shared SSTs stay
    left = remote.objects(remote.part_prefix("batch_view", 0))
    referenced = {f.key for f in two.manifest.files}
    manifests = [k for k in left if "/manifests/" in k]
    assert len(manifests) == 1
    assert set(left) - set(manifests) == referenced


async def test_the_operator_commands_snapshot_a_data_directory_and_fill_another(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runway state-snapshot` and `state-restore`'s functions, on a table directory as Faust
    lays it out (`{table}-{partition}.db`)."""
    source = tmp_path / "a" / "tables"
    source.mkdir(parents=True)
    written = {}
    for table, partition in (("join", 0), ("join", 2), ("batch_view", 2)):
        db = open_db(source / f"{table}-{partition}.db")
        name = f"{table}-{partition}-".encode()
        rows: dict[bytes, bytes | None] = {name + b"%d" % i: b"v" for i in range(100)}
        write(db, rows, offset=partition + 10)
        db.close()
        written[(table, partition)] = rows

    snapshot_dir(settings, source, (), ())
    taken = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((d["table"], d["partition"], d["changelog_offset"]) for d in taken) == [
        ("batch_view", 2, 12),
        ("join", 0, 10),
        ("join", 2, 12),
    ]

    target = tmp_path / "b" / "tables"
    (target).mkdir(parents=True)
    (target / "join-0.db").mkdir()  # present: left alone
    restore_dir(settings, target, ("join",), ())
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = {(d["table"], d["partition"]): d for d in printed}
    assert done[("join", 0)]["restored"] is False and done[("join", 0)]["reason"] == "exists"
    assert done[("join", 2)]["restored"] is True and done[("join", 2)]["changelog_offset"] == 12
    assert ("batch_view", 2) not in done  # not asked for
    db = open_db(target / "join-2.db")
    try:
        got = content(db)
        got.pop(FAUST_OFFSET_KEY)
        assert got == written[("join", 2)]
    finally:
        db.close()


async def test_an_unreachable_s3_fails_a_restore_fast_and_leaves_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """The hook then restores from the changelog (tests/unit/test_state_snapshot_hook.py)."""
    away = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    target = tmp_path / "tables" / "join-0.db"
    target.parent.mkdir()
    began = time.monotonic()
    with pytest.raises(BotoCoreError):
        snaps.restore_partition(snaps.remote_from_settings(away), "join", 0, target, max_age_ms=1)
    assert time.monotonic() - began < 30
    assert list(target.parent.iterdir()) == []
