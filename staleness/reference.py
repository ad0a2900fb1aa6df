"""The reference window: what "normal" looked like for a model version. Pure apart from `read`.

Definition: the first `reference_window_ms` (default 24 h) of the version's predictions by event
time, in whole hours: it starts at the 1-hour bucket holding the earliest prediction of the
version still in state when it is first looked for, and ends 24 h later. It is *complete* once
the model's clock (event time) reaches its end; from then on it serves as the drift reference
(score histogram `sh` of every prediction) and, if the registry declares no baseline, as the
performance baseline (its labeled pairs). Labels of reference predictions keep landing in its
buckets (by prediction time), so it is re-merged until the clock passes end + `settle`
(default 24 h), then *frozen*: it never changes again.

The join keeps 1-hour buckets only as long as its longest window (7 d by default), so the frozen
reference must be stored. Key (in the join's state table, next to the buckets):

    r<model_id>\\0<version>   ->  {"v": 1, "start": ms, "end": ms, "agg": merged bucket
                                   aggregate of [start, end), "frozen": bool}

`refresh_reference` returns the value to write (or None when nothing changed); the worker writes
it in the same transaction as the buckets it was read from. Until the worker stores references,
`load_reference` recomputes it live from the buckets (identical while they are retained).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.windows import HOUR_MS
from staleness.config import StalenessConfig
from tables import keys
from tables import read as state

Reader = Callable[[bytes], Any]
VERSION = 1
DEFAULT_LOOKBACK_MS = 7 * 24 * HOUR_MS  # the join's hour-bucket retention with RUNWAY_WINDOWS=7d


def reference_key(model_id: str, version: str) -> bytes:
    return keys.reference(model_id, version)


def first_seen(
    read: Reader, model_id: str, version: str, clock_ms: int, lookback_ms: int
) -> int | None:
    """Start of the earliest 1-hour bucket of the version with predictions, within lookback."""
    last = clock_ms // HOUR_MS * HOUR_MS
    earliest = None
    start = last
    while start >= 0 and start > last - lookback_ms:
        agg = state.hour(read, model_id, version, start)
        if agg and agg.get("n", 0) > 0:
            earliest = start
        start -= HOUR_MS
    return earliest


def compute_reference(
    read: Reader, model_id: str, version: str, start_ms: int, clock_ms: int, cfg: StalenessConfig
) -> dict[str, Any]:
    end = start_ms + -(-cfg.reference_window_ms // HOUR_MS) * HOUR_MS
    return {
        "v": VERSION,
        "start": start_ms,
        "end": end,
        "agg": state.hours(read, model_id, version, start_ms, end),
        "frozen": clock_ms >= end + cfg.reference_settle_ms,
    }


def refresh_reference(
    read: Reader,
    model_id: str,
    version: str,
    clock_ms: int,
    cfg: StalenessConfig,
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
) -> dict[str, Any] | None:
    """The reference record to store for the version now, or None when it would not change."""
    existing = read(reference_key(model_id, version))
    if existing is not None and existing["frozen"]:
        return None
    start = (
        existing["start"]
        if existing is not None
        else first_seen(read, model_id, version, clock_ms, lookback_ms)
    )
    if start is None:
        return None
    fresh = compute_reference(read, model_id, version, start, clock_ms, cfg)
    return None if fresh == existing else fresh


def load_reference(
    read: Reader,
    model_id: str,
    version: str,
    clock_ms: int,
    cfg: StalenessConfig,
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
) -> dict[str, Any] | None:
    """The stored reference, else the one the buckets give now (not stored)."""
    stored = read(reference_key(model_id, version))
    if stored is not None:
        return dict(stored)
    start = first_seen(read, model_id, version, clock_ms, lookback_ms)
    if start is None:
        return None
    return compute_reference(read, model_id, version, start, clock_ms, cfg)
