"""The pure part of state snapshots (tables/snapshots.py): keys, what to upload, which snapshot
a restore takes, what retention deletes. Expected values written out by hand."""

from __future__ import annotations

import pytest

from tables import snapshots as plan
from tables.snapshots import Manifest, SnapshotFile

PART = "state-snapshots/app/join/3/"


def test_the_partition_prefix_and_keys() -> None:
    assert plan.partition_prefix("/state-snapshots/", "app", "join", 3) == PART
    assert plan.manifest_key(PART, 1_700_000_000_123, "ab12") == (
        "state-snapshots/app/join/3/manifests/1700000000123-ab12.json"
    )
    assert plan.file_key(PART, "ab12", "000042.sst", 1_700_000_000_123) == (
        "state-snapshots/app/join/3/files/ab12/000042.sst"
    )
    assert plan.file_key(PART, "ab12", "MANIFEST-000005", 1_700_000_000_123) == (
        "state-snapshots/app/join/3/files/ab12/1700000000123/MANIFEST-000005"
    )


def test_manifest_time_reads_only_manifest_keys() -> None:
    assert plan.manifest_time(PART + "manifests/1700000000123-ab12.json") == 1_700_000_000_123
    assert plan.manifest_time(PART + "files/ab12/000042.sst") is None
    assert plan.manifest_time(PART + "manifests/notes.json") is None
    assert plan.manifest_time(PART + "manifests/1700000000123-ab12.tmp") is None
    # a table named "manifests" does not make its files manifests
    assert plan.manifest_time("p/app/manifests/0/files/x/1700000000123-a.json") is None


def test_a_manifest_round_trips_through_json() -> None:
    manifest = Manifest(
        table="join",
        partition=3,
        created_ms=5,
        lineage="ab12",
        changelog_offset=41,
        files=(SnapshotFile("000042.sst", PART + "files/ab12/000042.sst", 100),),
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_bytes == 100
    empty = Manifest("join", 0, 1, "x", None, ())
    assert Manifest.from_json(empty.to_json()) == empty


def test_an_unknown_manifest_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        Manifest.from_json(b'{"format": 2}')


def test_the_first_snapshot_uploads_every_file() -> None:
    files, upload = plan.plan_upload(
        local={"000009.sst": 900, "CURRENT": 16, "MANIFEST-000005": 257},
        part_prefix=PART,
        lineage="L1",
        created_ms=7,
        restored={},
        stored={},
    )
    assert files == [
        SnapshotFile("000009.sst", PART + "files/L1/000009.sst", 900),
        SnapshotFile("CURRENT", PART + "files/L1/0000000000007/CURRENT", 16),
        SnapshotFile("MANIFEST-000005", PART + "files/L1/0000000000007/MANIFEST-000005", 257),
    ]
    assert upload == files


def test_a_later_snapshot_uploads_only_new_ssts_and_the_small_files() -> None:
    stored = {PART + "files/L1/000009.sst": 900, PART + "files/L1/0000000000007/CURRENT": 16}
    files, upload = plan.plan_upload(
        local={"000009.sst": 900, "000012.sst": 50, "CURRENT": 16},
        part_prefix=PART,
        lineage="L1",
        created_ms=8,
        restored={},
        stored=stored,
    )
    assert [f.key for f in files] == [
        PART + "files/L1/000009.sst",
        PART + "files/L1/000012.sst",
        PART + "files/L1/0000000000008/CURRENT",
    ]
    assert [f.name for f in upload] == ["000012.sst", "CURRENT"]


def test_a_stored_sst_of_another_size_is_uploaded_again() -> None:
    _, upload = plan.plan_upload(
        local={"000009.sst": 901},
        part_prefix=PART,
        lineage="L1",
        created_ms=8,
        restored={},
        stored={PART + "files/L1/000009.sst": 900},
    )
    assert [f.name for f in upload] == ["000009.sst"]


def test_restored_ssts_keep_their_keys_and_new_ones_take_the_new_lineage() -> None:
    old = SnapshotFile("000009.sst", PART + "files/L1/000009.sst", 900)
    files, upload = plan.plan_upload(
        local={"000009.sst": 900, "000017.sst": 30},
        part_prefix=PART,
        lineage="L2",
        created_ms=9,
        restored={"000009.sst": old},
        stored={old.key: 900},
    )
    assert files == [old, SnapshotFile("000017.sst", PART + "files/L2/000017.sst", 30)]
    assert [f.key for f in upload] == [PART + "files/L2/000017.sst"]


def test_a_restored_name_with_another_size_is_a_new_file() -> None:
    old = SnapshotFile("000009.sst", PART + "files/L1/000009.sst", 900)
    files, _ = plan.plan_upload(
        local={"000009.sst": 10},
        part_prefix=PART,
        lineage="L2",
        created_ms=9,
        restored={"000009.sst": old},
        stored={},
    )
    assert files == [SnapshotFile("000009.sst", PART + "files/L2/000009.sst", 10)]


def test_a_restore_takes_the_newest_snapshot_young_enough() -> None:
    keys = [
        PART + "manifests/0000000001000-a.json",
        PART + "manifests/0000000003000-b.json",
        PART + "manifests/0000000002000-c.json",
        PART + "files/a/000001.sst",
    ]
    assert plan.latest(keys, now_ms=3_500, max_age_ms=10_000) == keys[1]
    assert plan.latest(keys, now_ms=3_500, max_age_ms=500) == keys[1]
    assert plan.latest(keys, now_ms=3_501, max_age_ms=500) is None
    assert plan.latest([], now_ms=0, max_age_ms=1) is None


def test_retention_keeps_the_newest_manifests() -> None:
    keys = [PART + f"manifests/{t:013d}-x.json" for t in (3, 1, 4, 2)]
    kept, deleted = plan.manifests_to_delete([*keys, PART + "files/x/1.sst"], keep=2)
    assert kept == [keys[0], keys[2]]
    assert deleted == [keys[1], keys[3]]
    assert plan.manifests_to_delete(keys[:1], keep=3) == ([keys[0]], [])


def test_retention_deletes_unreferenced_files_past_the_grace() -> None:
    kept = [
        Manifest("join", 3, 1, "L", 5, (SnapshotFile("a.sst", PART + "files/L/a.sst", 1),)),
        Manifest("join", 3, 2, "L", 6, (SnapshotFile("b.sst", PART + "files/L/b.sst", 1),)),
    ]
    objects = {
        PART + "files/L/a.sst": 0,
        PART + "files/L/b.sst": 0,
        PART + "files/L/old.sst": 0,  # unreferenced, old: deleted
        PART + "files/L/new.sst": 9_500,  # unreferenced, within the grace: kept
        PART + "files/L/0000000000001/CURRENT": 100,  # unreferenced, old
        PART + "manifests/0000000000001-L.json": 0,  # manifests are not files
        "state-snapshots/app/join/30/files/L/x.sst": 0,  # another partition
    }
    assert plan.files_to_delete(PART, objects, kept, now_ms=10_000, grace_ms=1_000) == [
        PART + "files/L/0000000000001/CURRENT",
        PART + "files/L/old.sst",
    ]
