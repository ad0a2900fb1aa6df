"""The batch view's seen-ids: each pair kept once, forgotten after its retention of event time.

A pair is (model, prediction_id) at its prediction's timestamp: every copy of a joined pair
carries the same one (the join's first prediction wins), and the retention runs from it.
"""

from __future__ import annotations

from tables import keys
from tables.dedup import LEGACY_INDEX, first_sighting, forget_expired, holds_legacy
from tables.transaction import PartitionTransaction
from tests.unit.memdb import MemDB

DAY = 86_400_000
RETENTION = 7 * DAY
T0 = 1_699_999_200_000


def test_first_sighting_then_duplicates() -> None:
    txn = PartitionTransaction(MemDB())
    assert first_sighting(txn, "m", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "m", "p1", T0, RETENTION) is False
    assert first_sighting(txn, "m", "p2", T0, RETENTION) is True
    assert first_sighting(txn, "m", "p2", T0, RETENTION) is False


def test_one_changelog_record_per_pair() -> None:
    txn = PartitionTransaction(MemDB())
    for i in range(10):
        first_sighting(txn, "m", f"p{i}", T0 + i, RETENTION)
        first_sighting(txn, "m", f"p{i}", T0 + i, RETENTION)  # a replayed copy
    changes = dict(txn.changes())
    assert sorted(changes) == sorted(
        keys.expiry(T0 + i + RETENTION, keys.seen("m", f"p{i}")) for i in range(10)
    )


def test_seen_ids_survive_a_checkpoint() -> None:
    db = MemDB()
    txn = PartitionTransaction(db)
    assert first_sighting(txn, "m", "p1", T0, RETENTION)
    db.apply(txn.changes())
    again = PartitionTransaction(db)  # a restart reads the same db
    assert first_sighting(again, "m", "p1", T0, RETENTION) is False


def test_ids_are_forgotten_exactly_at_their_retention() -> None:
    txn = PartitionTransaction(MemDB())
    first_sighting(txn, "m", "early", T0, RETENTION)
    first_sighting(txn, "m", "later", T0 + DAY, RETENTION)
    assert forget_expired(txn, T0 + RETENTION - 1) == 0
    assert first_sighting(txn, "m", "early", T0, RETENTION) is False
    assert forget_expired(txn, T0 + RETENTION) == 1
    assert first_sighting(txn, "m", "later", T0 + DAY, RETENTION) is False  # not due yet
    assert first_sighting(txn, "m", "early", T0, RETENTION) is True  # a new sighting
    assert forget_expired(txn, T0 + RETENTION + DAY) == 2  # "later", and "early" once more
    assert first_sighting(txn, "m", "later", T0 + DAY, RETENTION) is True


def test_forgetting_reads_only_due_entries_and_writes_no_tombstone_for_unsaved_ones() -> None:
    db = MemDB()
    txn = PartitionTransaction(db)
    for i in range(2_000):
        first_sighting(txn, "m", f"p{i}", T0 + DAY + i, RETENTION)
    first_sighting(txn, "m", "a", T0, RETENTION)
    first_sighting(txn, "m", "b", T0 + 1, RETENTION)
    db.apply(txn.changes())
    txn.reset()
    db.items_read = 0
    assert forget_expired(txn, T0 + RETENTION + 1) == 2
    assert db.items_read <= 2 + 1
    assert dict(txn.changes()) == {
        keys.expiry(T0 + RETENTION, keys.seen("m", "a")): None,
        keys.expiry(T0 + 1 + RETENTION, keys.seen("m", "b")): None,
    }
    db.apply(txn.changes())
    assert len(db.data) == 2_000
    txn.reset()
    first_sighting(txn, "m", "c", T0, RETENTION)  # seen and forgotten before any checkpoint
    assert forget_expired(txn, T0 + RETENTION) == 1
    assert dict(txn.changes()) == {}


def test_the_same_prediction_id_of_two_models_is_two_pairs() -> None:
    txn = PartitionTransaction(MemDB())
    assert first_sighting(txn, "a", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "b", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "a", "p1", T0, RETENTION) is False


def _legacy_db() -> MemDB:
    """What the old layout wrote for pair (m, old) seen at T0: its seen key holding its
    deadline, and an index entry of value 1."""
    db = MemDB()
    seen = keys.seen("m", "old")
    db.apply([(seen, T0 + RETENTION), (keys.expiry(T0 + RETENTION, seen), LEGACY_INDEX)])
    return db


def test_a_partition_of_the_old_layout_is_still_deduplicated_and_forgotten() -> None:
    db = _legacy_db()
    txn = PartitionTransaction(db)
    assert holds_legacy(txn) and not holds_legacy(PartitionTransaction(MemDB()))
    # the old layout's identity was (model, id): any timestamp of it is a duplicate
    assert first_sighting(txn, "m", "old", T0 - 5, RETENTION, legacy=True) is False
    assert first_sighting(txn, "m", "new", T0, RETENTION, legacy=True) is True
    db.apply(txn.changes())
    txn.reset()
    assert forget_expired(txn, T0 + RETENTION) == 2  # the old entry and the new sighting
    db.apply(txn.changes())
    assert db.data == {}
    assert not holds_legacy(PartitionTransaction(db))
