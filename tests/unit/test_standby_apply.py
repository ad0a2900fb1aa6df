"""A standby's (or a restore's) changelog records written in one batch: the same table Faust's
own apply makes, and the runtime's hook taking exactly those records from Faust's path.

Expected contents are written out by hand from the records, not computed by the code under
test; the DB is a real raw-mode rocksdict DB, as the worker's tables are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from rocksdict import AccessType, Options, Rdict

from streams.runtime import Runtime
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


# -- the runtime's hook: which fetched records it takes from Faust ----------------------------


class _Table:
    def __init__(self, db: Rdict) -> None:
        self.data = SimpleNamespace(_db_for_partition=lambda partition: db)


def _runtime(db: Rdict, *, standby: bool, restore: bool, in_recovery: bool) -> Any:
    """A Runtime over a stand-in of the Faust app: only what the hook reads."""
    table = _Table(db)
    recovery = SimpleNamespace(
        active_tps={ACTIVE},
        standby_tps={STANDBY},
        in_recovery=in_recovery,
        active_offsets={ACTIVE: 4},
        standby_offsets={STANDBY: None},
        tp_to_table={ACTIVE: table, STANDBY: table},
    )
    app = SimpleNamespace(transport=SimpleNamespace(), tables=SimpleNamespace(recovery=recovery))
    return Runtime(app, {}, bulk_standby=standby, bulk_restore=restore)  # type: ignore[arg-type]


ACTIVE = TopicPartition("app-join-changelog", 0)
STANDBY = TopicPartition("app-join-changelog", 1)
OTHER = TopicPartition("app-predictions", 0)


def _records(*rows: tuple[int, bytes, bytes | None]) -> list[Any]:
    return [SimpleNamespace(offset=o, key=k, value=v) for o, k, v in rows]


def test_a_standby_fetch_is_taken_and_faust_s_offset_moves(db: Rdict) -> None:
    runtime = _runtime(db, standby=True, restore=True, in_recovery=False)
    recovery = runtime._app.tables.recovery
    apply = runtime._consumer_class.changelog
    assert apply(STANDBY, _records((0, b"a", b"1"), (1, b"b", b"2"))) is True
    assert recovery.standby_offsets[STANDBY] == 1
    assert contents(db) == {b"a": b"1", b"b": b"2", FAUST_OFFSET_KEY: b"1"}
    # an active partition outside its restore, and an input, stay Faust's (and the feeds')
    assert apply(ACTIVE, _records((5, b"c", b"3"))) is False
    assert apply(OTHER, _records((0, b"k", b"v"))) is False
    assert recovery.active_offsets[ACTIVE] == 4


def test_an_active_restore_is_taken_only_while_faust_restores(db: Rdict) -> None:
    runtime = _runtime(db, standby=True, restore=True, in_recovery=True)
    recovery = runtime._app.tables.recovery
    apply = runtime._consumer_class.changelog
    assert apply(ACTIVE, _records((4, b"old", b"x"), (5, b"c", b"3"))) is True
    assert recovery.active_offsets[ACTIVE] == 5  # what Faust's recovery end compares
    assert contents(db) == {b"c": b"3", FAUST_OFFSET_KEY: b"5"}


@pytest.mark.parametrize(("standby", "restore"), [(False, True), (True, False), (False, False)])
def test_each_path_can_be_left_to_faust(db: Rdict, standby: bool, restore: bool) -> None:
    runtime = _runtime(db, standby=standby, restore=restore, in_recovery=True)
    apply = runtime._consumer_class.changelog
    if apply is None:
        assert not (standby or restore)
        return
    assert apply(STANDBY, _records((0, b"a", b"1"))) is standby
    assert apply(ACTIVE, _records((5, b"c", b"3"))) is restore
