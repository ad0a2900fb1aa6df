"""One read API over the join's state, shared by the speed view, the staleness scorer and the
drift reference: what a model is, and the merged aggregate of a window or a span of hours.

`read` is any `key -> decoded value or None` (a transaction's `get`, a reader of committed
state); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from config.windows import HOUR_MS, Window
from tables import aggregates, keys
from tables.records import Bucket, ModelRecord

Reader = Callable[[bytes], Any]


def model(read: Reader, model_id: str) -> ModelRecord | None:
    return cast(ModelRecord | None, read(keys.model(model_id)))


def merged(read: Reader, model_id: str, version: str, gran: str, starts: Iterable[int]) -> Bucket:
    """The sum of the buckets of one granularity that exist among `starts`."""
    buckets = (read(keys.bucket(model_id, version, gran, start)) for start in starts)
    return aggregates.merge(b for b in buckets if b)


def window(read: Reader, model_id: str, version: str, spec: Window, clock_ms: int) -> Bucket:
    """A sliding window ending at `clock_ms` (the model's clock), as the speed view shows it."""
    return merged(read, model_id, version, spec.gran, spec.bucket_starts(clock_ms))


def hours(read: Reader, model_id: str, version: str, start_ms: int, end_ms: int) -> Bucket:
    """The 1-hour buckets whose start is in [start_ms, end_ms)."""
    return merged(read, model_id, version, "h", range(start_ms, end_ms, HOUR_MS))


def hour(read: Reader, model_id: str, version: str, start_ms: int) -> Bucket | None:
    return cast(Bucket | None, read(keys.bucket(model_id, version, "h", start_ms)))
