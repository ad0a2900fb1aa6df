"""The batch view's seen-ids: each pair kept once, forgotten after its retention of event time."""

from __future__ import annotations

from typing import Any

from tables import keys
from tables.dedup import first_sighting, forget_expired
from tables.transaction import PartitionTransaction
from tests.unit.memdb import MemDB

DAY = 86_400_000
RETENTION = 7 * DAY
T0 = 1_699_999_200_000


def test_first_sighting_then_duplicates() -> None:
    txn = PartitionTransaction(MemDB())
    assert first_sighting(txn, "m", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "m", "p1", T0 + 5, RETENTION) is False
    assert first_sighting(txn, "m", "p1", T0, RETENTION) is False
    assert first_sighting(txn, "m", "p2", T0, RETENTION) is True


def test_seen_ids_survive_a_checkpoint() -> None:
    db = MemDB()
    txn = PartitionTransaction(db)
    assert first_sighting(txn, "m", "p1", T0, RETENTION)
    db.apply(txn.changes())
    again = PartitionTransaction(db)  # a restart reads the same db
    assert first_sighting(again, "m", "p1", T0 + 1, RETENTION) is False


def test_ids_are_forgotten_exactly_at_their_retention() -> None:
    txn = PartitionTransaction(MemDB())
    first_sighting(txn, "m", "early", T0, RETENTION)
    first_sighting(txn, "m", "later", T0 + DAY, RETENTION)
    assert forget_expired(txn, T0 + RETENTION - 1) == 0
    assert first_sighting(txn, "m", "early", T0 + 2, RETENTION) is False
    assert forget_expired(txn, T0 + RETENTION) == 1
    assert first_sighting(txn, "m", "later", T0 + 2, RETENTION) is False  # not due yet
    assert first_sighting(txn, "m", "early", T0 + RETENTION, RETENTION) is True  # a new sighting
    assert forget_expired(txn, T0 + RETENTION + DAY) == 1  # "later"; "early" is due a week on
    assert first_sighting(txn, "m", "later", T0 + RETENTION + DAY, RETENTION) is True


def test_forgetting_reads_only_due_entries() -> None:
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
    db.apply(txn.changes())
    remaining = {k for k in db.data if k.startswith(b"s")}
    assert len(remaining) == 2_000
    assert keys.seen("m", "a") not in remaining and keys.seen("m", "b") not in remaining
    index: list[Any] = [k for k in db.data if k.startswith(keys.EXPIRY)]
    assert len(index) == 2_000


def test_the_same_prediction_id_of_two_models_is_two_pairs() -> None:
    txn = PartitionTransaction(MemDB())
    assert first_sighting(txn, "a", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "b", "p1", T0, RETENTION) is True
    assert first_sighting(txn, "a", "p1", T0, RETENTION) is False
