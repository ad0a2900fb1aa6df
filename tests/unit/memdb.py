"""A tiny in-memory stand-in for a raw-mode rocksdict partition: bytes keys, sorted iteration."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

import orjson


class MemDB:
    """`get(key)` and `items(from_key=...)` in key order, like `rocksdict.Rdict` in raw mode."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})
        self.items_read = 0  # how many items `items()` has yielded, across all calls

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self, *, from_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        ordered = sorted(self.data)
        start = 0 if from_key is None else bisect.bisect_left(ordered, from_key)
        for key in ordered[start:]:
            self.items_read += 1
            yield key, self.data[key]

    def apply(self, changes: Iterable[tuple[bytes, Any | None]]) -> None:
        """Write a transaction's `changes()` the way a checkpoint would (None = delete)."""
        for key, value in list(changes):
            if value is None:
                self.delete(key)
            else:
                self.put(key, orjson.dumps(value))
