"""A standby's changelog records written in one batch: the same table Faust's own apply makes.

Expected contents are written out by hand from the records, not computed by the code under
test; the DB is a real raw-mode rocksdict DB, as the worker's tables are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from tables.checkpoint import FAUST_OFFSET_KEY
from tables.standby import apply_changelog


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Rdict]:
    handle = Rdict(str(tmp_path / "standby.db"), Options(raw_mode=True))
    try:
        yield handle
    finally:
        handle.close()


def contents(db: Rdict) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in db.items()}


def test_puts_and_tombstones_land_with_the_last_offset(db: Rdict) -> None:
    records = [
        (10, b"a", b"1"),
        (11, b"b", b"2"),
        (12, b"a", b"3"),  # a later value of the same key wins
        (13, b"b", None),  # a tombstone deletes
        (14, b"c", b"4"),
    ]
    assert apply_changelog(db, records, after=None) == 14
    assert contents(db) == {b"a": b"3", b"c": b"4", FAUST_OFFSET_KEY: b"14"}


def test_offsets_already_applied_are_passed_over(db: Rdict) -> None:
    assert apply_changelog(db, [(5, b"k", b"old"), (6, b"j", b"x")], after=None) == 6
    # a fetch that starts before what the standby holds (a seek back): only the new offsets
    assert apply_changelog(db, [(5, b"k", b"stale"), (6, b"j", None), (7, b"k", b"new")], 6) == 7
    assert contents(db) == {b"k": b"new", b"j": b"x", FAUST_OFFSET_KEY: b"7"}


def test_nothing_newer_writes_nothing(db: Rdict) -> None:
    db[b"k"] = b"v"
    assert apply_changelog(db, [(3, b"k", b"older")], after=3) is None
    assert apply_changelog(db, [], after=None) is None
    assert contents(db) == {b"k": b"v"}  # not even the offset key


def test_a_record_without_a_key_is_not_a_state_change(db: Rdict) -> None:
    assert apply_changelog(db, [(1, None, b"v"), (2, b"k", b"v")], after=None) == 2
    assert contents(db) == {b"k": b"v", FAUST_OFFSET_KEY: b"2"}


def test_faust_reads_the_offset_back(db: Rdict, tmp_path: Path) -> None:
    """Faust's `Store.persisted_offset` is `int(db.get(offset_key))`: where a promoted standby
    starts reading the changelog (one past it)."""
    apply_changelog(db, [(41, b"k", b"v"), (42, b"k", b"w")], after=None)
    db.flush()
    reader = Rdict(
        str(tmp_path / "standby.db"), Options(raw_mode=True), access_type=AccessType.read_only()
    )
    try:
        assert int(reader.get(FAUST_OFFSET_KEY)) == 42
        assert reader.get(b"k") == b"w"
    finally:
        reader.close()
