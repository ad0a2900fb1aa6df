"""PartitionTransaction: an overlay of decoded objects over a sorted key-value reader."""

from __future__ import annotations

import random

import orjson

from tables.transaction import PartitionTransaction
from tests.unit.memdb import MemDB


def db_of(**values: object) -> MemDB:
    return MemDB({k.encode(): orjson.dumps(v) for k, v in values.items()})


def test_get_decodes_stored_values_and_misses_are_none() -> None:
    txn = PartitionTransaction(db_of(a={"n": 1}, b=[1, 2]))
    assert txn.get(b"a") == {"n": 1}
    assert txn.get(b"b") == [1, 2]
    assert txn.get(b"zz") is None


def test_reads_see_the_transactions_own_writes() -> None:
    db = db_of(a=1)
    txn = PartitionTransaction(db)
    txn.set(b"a", 2)
    txn.set(b"new", {"x": 1})
    assert txn.get(b"a") == 2
    assert txn.get(b"new") == {"x": 1}
    txn.delete(b"a")
    assert txn.get(b"a") is None
    # nothing reached the db: it still holds the old value only
    assert db.data == {b"a": b"1"}


def test_object_changed_in_place_then_set_is_what_later_reads_see() -> None:
    txn = PartitionTransaction(db_of(a={"n": 1}))
    value = txn.get(b"a")
    assert value is not None
    value["n"] += 41
    txn.set(b"a", value)
    assert txn.get(b"a") == {"n": 42}
    assert dict(txn.changes()) == {b"a": {"n": 42}}


def test_scan_merges_stored_and_pending_in_key_order() -> None:
    db = db_of(a=1, b=2, c=3, d=4, e=5, g=7)
    txn = PartitionTransaction(db)
    txn.set(b"b", 20)  # overwrite
    txn.delete(b"c")  # delete a stored key
    txn.set(b"bb", 22)  # new key between stored ones
    txn.set(b"d", 40)
    txn.delete(b"d")  # overwritten then deleted
    txn.set(b"f", 6)  # new key inside the range after the last stored key in range
    txn.set(b"h", 8)  # new key outside the range
    txn.set(b"tmp", 1)
    txn.delete(b"tmp")  # created then deleted: never visible
    assert list(txn.scan(b"a", b"g")) == [
        (b"a", 1),
        (b"b", 20),
        (b"bb", 22),
        (b"e", 5),
        (b"f", 6),
    ]


def test_scan_bounds_start_inclusive_stop_exclusive() -> None:
    txn = PartitionTransaction(db_of(x1=1, x2=2, x3=3, y1=4))
    txn.set(b"x0", 0)
    txn.set(b"x3b", 35)
    assert [k for k, _ in txn.scan(b"x1", b"x3")] == [b"x1", b"x2"]
    assert [k for k, _ in txn.scan(b"x", b"y")] == [b"x0", b"x1", b"x2", b"x3", b"x3b"]
    assert list(txn.scan(b"q", b"r")) == []


def test_scan_with_only_pending_writes_and_with_only_stored_items() -> None:
    pending = PartitionTransaction(MemDB())
    pending.set(b"k2", 2)
    pending.set(b"k1", 1)
    assert list(pending.scan(b"k", b"l")) == [(b"k1", 1), (b"k2", 2)]
    stored = PartitionTransaction(db_of(k1=1, k2=2))
    assert list(stored.scan(b"k", b"l")) == [(b"k1", 1), (b"k2", 2)]


def test_scanned_values_are_the_objects_later_gets_return() -> None:
    txn = PartitionTransaction(db_of(a={"n": 1}))
    ((_, value),) = list(txn.scan(b"a", b"b"))
    value["n"] = 9
    txn.set(b"a", value)
    assert txn.get(b"a") == {"n": 9}


def test_created_then_deleted_key_yields_no_change() -> None:
    txn = PartitionTransaction(db_of(old=1))
    txn.set(b"new", 1)
    txn.set(b"new", 2)
    txn.delete(b"new")
    assert list(txn.changes()) == []


def test_changes_give_last_value_per_key_and_none_for_deleted_stored_keys() -> None:
    txn = PartitionTransaction(db_of(keep=1, gone=2, back=3))
    txn.set(b"keep", 10)
    txn.set(b"keep", 11)
    txn.delete(b"gone")
    txn.delete(b"back")
    txn.set(b"back", 30)  # stored, deleted, recreated: the last value must be written
    txn.set(b"fresh", 1)
    txn.delete(b"fresh")
    txn.set(b"fresh", 5)  # created, deleted, created again
    changes = list(txn.changes())
    assert len(changes) == 4  # one per key
    assert dict(changes) == {b"keep": 11, b"gone": None, b"back": 30, b"fresh": 5}


def test_reset_forgets_pending_writes() -> None:
    db = db_of(a=1)
    txn = PartitionTransaction(db)
    txn.set(b"a", 2)
    db.apply(txn.changes())
    txn.reset()
    assert list(txn.changes()) == []
    assert txn.get(b"a") == 2  # read back from the db now
    db.put(b"a", b"3")  # after a reset the transaction reads the db afresh
    txn.reset()
    assert txn.get(b"a") == 3


def test_random_operations_match_a_plain_dict() -> None:
    rng = random.Random(20240601)
    keys = [bytes([ord("a") + i]) + bytes([ord("0") + j]) for i in range(4) for j in range(6)]
    for _ in range(200):
        stored = {k: rng.randrange(100) for k in keys if rng.random() < 0.5}
        db = MemDB({k: orjson.dumps(v) for k, v in stored.items()})
        txn = PartitionTransaction(db)
        reference = dict(stored)
        for _ in range(rng.randrange(1, 30)):
            key = rng.choice(keys)
            draw = rng.random()
            if draw < 0.35:
                txn.delete(key)
                reference.pop(key, None)
            elif draw < 0.5:
                value = rng.randrange(1000)
                assert txn.claim(key, value) == (key not in reference)
                reference.setdefault(key, value)
            else:
                value = rng.randrange(1000)
                txn.set(key, value)
                reference[key] = value
            if rng.random() < 0.2:
                probe = rng.choice(keys)
                assert txn.get(probe) == reference.get(probe)
        start, stop = sorted(rng.sample(keys, 2))
        expected_scan = sorted((k, v) for k, v in reference.items() if start <= k < stop)
        assert list(txn.scan(start, stop)) == expected_scan
        # applying the changes to the db must give exactly the reference, with no no-op deletes
        changes = list(txn.changes())
        for key, value in changes:
            assert value is not None or key in stored
        db.apply(changes)
        assert {k: orjson.loads(v) for k, v in db.data.items()} == reference


class CountingDB(MemDB):
    def __init__(self, data: dict[bytes, bytes]) -> None:
        super().__init__(data)
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


def test_put_absent_and_delete_stored_read_nothing_and_write_what_set_and_delete_would() -> None:
    db = CountingDB({b"stored": b"1"})
    txn = PartitionTransaction(db)
    txn.delete_stored(b"stored")  # stored: its tombstone is written
    txn.put_absent(b"fresh", 1)  # created ...
    txn.delete_stored(b"fresh")  # ... and gone in the same transaction: nothing to write
    txn.put_absent(b"kept", 2)
    assert db.reads == 0
    assert dict(txn.changes()) == {b"stored": None, b"kept": 2}
    assert txn.get(b"stored") is None and txn.get(b"kept") == 2 and db.reads == 0
