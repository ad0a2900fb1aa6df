"""A per-partition transaction over one RocksDB partition of a table.

Faust's Table API pays ~90 us per key write (one changelog send each). Like Quix Streams'
`PartitionTransaction`, reads here see the transaction's own writes, writes stay in memory as
decoded objects, and `changes()` hands the checkpoint one value per *changed key* (the last one);
a key created and deleted between two checkpoints costs nothing at all.

Values are JSON-able objects encoded with orjson; keys are bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import orjson

_MISSING = object()


class KeyValueReader(Protocol):
    """The read side of a RocksDB partition (a rocksdict `Rdict` in raw mode)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, *, from_key: bytes | None = ...) -> Iterator[tuple[bytes, bytes]]: ...


class PartitionTransaction:
    def __init__(self, db: KeyValueReader) -> None:
        self._db = db
        self._values: dict[bytes, Any] = {}  # decoded values read or written (None = deleted)
        self._dirty: set[bytes] = set()
        self._new: set[bytes] = set()  # dirty keys absent from the db: a delete needs no write

    def get(self, key: bytes) -> Any | None:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            raw = self._db.get(key)
            value = None if raw is None else orjson.loads(raw)
            self._values[key] = value
        return value

    def set(self, key: bytes, value: Any) -> None:
        """Store `value` (which may be an object obtained from `get` and changed in place)."""
        if key not in self._dirty:
            previous = self._values.get(key, _MISSING)
            if previous is _MISSING:
                previous = self.get(key)
            if previous is None:
                self._new.add(key)
            self._dirty.add(key)
        self._values[key] = value

    def claim(self, key: bytes, value: Any) -> bool:
        """`set` `key` to `value` unless it holds a value (stored or pending); True when it
        did not. One pass over the transaction's dicts where `get` then `set` made two: the
        batch view claims every pair it writes (`tables.dedup`)."""
        current = self._values.get(key, _MISSING)
        if current is _MISSING:
            raw = self._db.get(key)
            if raw is not None:
                self._values[key] = orjson.loads(raw)
                return False
        elif current is not None:
            return False
        if key not in self._dirty:  # absent from the store: created here
            self._new.add(key)
            self._dirty.add(key)
        self._values[key] = value
        return True

    def put_absent(self, key: bytes, value: Any) -> None:
        """`set` a key the caller knows the store does not hold, without reading it first.

        For keys made of an absent record's own parts (an expiry-index entry of a new
        deadline): the read would always miss, and a miss still costs a RocksDB lookup. If
        the store held the key after all, a delete later in the same checkpoint would be
        skipped and the stored value stay; callers use it only where that is harmless.
        """
        if key not in self._dirty:
            if self._values.get(key) is None:
                self._new.add(key)
            self._dirty.add(key)
        self._values[key] = value

    def delete_stored(self, key: bytes) -> None:
        """`delete` a key the caller knows exists (stored, or set in this transaction),
        without reading it first: an expiry-index entry of a record that holds its deadline.
        Were it absent after all, the checkpoint would write a needless tombstone, no more."""
        self._dirty.add(key)
        self._values[key] = None

    def delete(self, key: bytes) -> None:
        self.set(key, None)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, Any]]:
        """Live items with start <= key < stop, in key order, merging db and pending writes."""
        pending = sorted(k for k in self._dirty if start <= k < stop)
        stored = self._stored_range(start, stop)
        next_stored = next(stored, None)
        for key in pending:
            while next_stored is not None and next_stored[0] < key:
                if next_stored[0] not in self._dirty:
                    yield next_stored[0], self._remember(next_stored)
                next_stored = next(stored, None)
            if next_stored is not None and next_stored[0] == key:
                next_stored = next(stored, None)
            value = self._values[key]
            if value is not None:
                yield key, value
        while next_stored is not None:
            if next_stored[0] not in self._dirty:
                yield next_stored[0], self._remember(next_stored)
            next_stored = next(stored, None)

    def changes(self) -> Iterator[tuple[bytes, Any | None]]:
        """(key, value or None for a delete) for every key that must reach the changelog."""
        for key in self._dirty:
            value = self._values[key]
            if value is None and key in self._new:
                continue
            yield key, value

    def estimated_keys(self) -> int:
        """RocksDB's estimate of the keys stored (for /metrics), 0 when it cannot tell."""
        estimate = getattr(self._db, "property_int_value", None)
        value = estimate("rocksdb.estimate-num-keys") if estimate else None
        return int(value or 0)

    def change_count(self) -> int:
        return len(self._dirty)

    def reset(self) -> None:
        """Forget everything after a checkpoint made the changes durable."""
        self._values.clear()
        self._dirty.clear()
        self._new.clear()

    def _stored_range(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, raw in self._db.items(from_key=start):
            if key >= stop:
                return
            yield key, raw

    def _remember(self, item: tuple[bytes, bytes]) -> Any:
        key, raw = item
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = orjson.loads(raw)
            self._values[key] = value
        return value
