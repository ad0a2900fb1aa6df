"""The speed view: per-model Redis hashes, overwritten from the join's committed state.

Key layout (prefix `RUNWAY_REDIS_KEY_PREFIX`, default `runway`):

    runway:models                                  set of model ids
    runway:model:{model_id}                        task, clock, versions, last times, staleness
    runway:model:{model_id}:window:{w}             all versions, window w (1h, 24h, 7d)
    runway:model:{model_id}:version:{v}:window:{w} one version, window w
    runway:model:{model_id}:staleness              the last staleness event's fields (JSON
                                                   values), written by `sinks.staleness`

A window hash holds the fields of `tables.aggregates.summarize` (NaN figures are left out),
`score_histogram` (JSON: bin -> count), `window_start` / `window_end` (epoch ms) and
`updated_at`. Each write replaces whole hashes inside MULTI, so a replay or a rebuild yields the
same hashes, and a reader never sees half a model. Writes are coalesced: a model is written at
most once per `RUNWAY_SPEED_VIEW_INTERVAL_MS`, whatever the input rate. While Redis is down the
join goes on; the models stay dirty and are rewritten from state when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.windows import Window
from contracts.ids import escape_id
from contracts.telemetry import Telemetry
from tables import aggregates, keys
from tables import read as state

log = logging.getLogger(__name__)

Reader = Callable[[bytes], Any]


def model_view(
    read: Reader, model_id: str, windows: list[Window], prefix: str
) -> dict[str, dict[str, str]]:
    """Every hash of one model, from state. Pure apart from `read`."""
    info = state.model(read, model_id)
    if info is None or info["task"] is None:
        return {}  # only outcomes seen so far: nothing to show until a prediction comes
    base = f"{prefix}:model:{escape_id(model_id)}"
    clock = info["clock"]
    hashes: dict[str, dict[str, str]] = {
        base: _strings(
            {
                "model_id": model_id,
                "task": info["task"],
                "clock": clock,
                "versions": orjson.dumps(info["versions"]).decode(),
                "last_prediction_ts": info["lp"],
                "last_outcome_ts": info["lo"],
            }
        )
    }
    levels = [(keys.ALL_VERSIONS, base)] + [
        (version, f"{base}:version:{escape_id(version)}") for version in info["versions"]
    ]
    for version, name in levels:
        for window in windows:
            starts = window.bucket_starts(clock)
            merged = state.window(read, model_id, version, window, clock)
            fields: dict[str, Any] = aggregates.summarize(merged, info["task"])
            fields["score_histogram"] = orjson.dumps(
                merged.get("sh", {}), option=orjson.OPT_SORT_KEYS
            ).decode()
            fields["window_start"] = min(starts) if starts else clock
            fields["window_end"] = clock
            hashes[f"{name}:window:{window.name}"] = _strings(fields)
    return hashes


def _strings(fields: dict[str, Any]) -> dict[str, str]:
    return {
        k: str(v)
        for k, v in fields.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }


class SpeedView:
    """Sink: `add` marks models dirty, `flush` writes those whose interval has passed."""

    def __init__(
        self,
        redis: Redis,
        reader_for: Callable[[int], Reader | None],
        windows: list[Window],
        prefix: str,
        interval_ms: int,
        telemetry: Telemetry,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._redis = redis
        self._reader_for = reader_for
        self._windows = windows
        self._prefix = prefix
        self._interval_ms = interval_ms
        self._telemetry = telemetry
        self._now = clock_ms
        self._dirty: dict[str, int] = {}  # model -> partition
        self._known: dict[str, int] = {}  # every model seen: rewritten when Redis comes back
        self._written_at: dict[str, int] = {}
        self._gone: dict[str, list[str]] = {}  # forgotten models whose hashes are to delete
        self._failing = False
        self._flushing = asyncio.Lock()
        self._soon: asyncio.Future[None] | None = None

    def add(self, partition: int, models: set[str]) -> None:
        for model_id in models:
            self._dirty[model_id] = partition
            self._known[model_id] = partition
            self._gone.pop(model_id, None)

    def forget(self, partition: int, models: dict[str, list[str]]) -> None:
        """Models the join forgot as idle: their hashes go at the next flush, and this sink
        keeps nothing of them (the maps would otherwise grow with every id ever seen)."""
        for model_id, versions in models.items():
            self._dirty.pop(model_id, None)
            self._known.pop(model_id, None)
            self._written_at.pop(model_id, None)
            self._gone[model_id] = versions

    def _delete_gone(self, pipe: Any) -> list[str]:
        gone = list(self._gone.items())
        for model_id, versions in gone:
            base = f"{self._prefix}:model:{escape_id(model_id)}"
            levels = [base] + [f"{base}:version:{escape_id(v)}" for v in versions]
            names = [base, f"{base}:staleness"] + [
                f"{level}:window:{w.name}" for level in levels for w in self._windows
            ]
            pipe.delete(*names)
            pipe.srem(f"{self._prefix}:models", model_id)
        return [model_id for model_id, _ in gone]

    @property
    def failing(self) -> bool:
        """The last write to Redis failed (for /health: degraded)."""
        return self._failing

    async def flush(self, force: bool = False) -> int:
        # One flush at a time: the timer's and the one a checkpoint asks for (`soon`).
        async with self._flushing:
            return await self._flush(force)

    def soon(self) -> None:
        """Flush as soon as the event loop allows (after a checkpoint changed models), rather
        than at the next tick: the view lags the state by one flush, not by a tick more."""
        if self._soon is None or self._soon.done():
            self._soon = asyncio.ensure_future(self._flush_logged())

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - the timer's next flush retries; this one is a bonus
            log.exception("speed view: flush after a checkpoint failed")

    async def _flush(self, force: bool) -> int:
        now = self._now()
        due = [
            (m, p)
            for m, p in self._dirty.items()
            if force or now - self._written_at.get(m, 0) >= self._interval_ms
        ]
        if not due and not self._gone:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        deleted = self._delete_gone(pipe)
        written = []
        for model_id, partition in due:
            read = self._reader_for(partition)
            if read is None:  # partition moved to another worker: it writes the model now
                self._dirty.pop(model_id, None)
                self._known.pop(model_id, None)
                continue
            try:
                hashes = model_view(read, model_id, self._windows, self._prefix)
            except Exception:  # noqa: BLE001 - one model's state must not stop every other's view
                log.exception("speed view: model %r could not be summarized; skipped", model_id)
                self._telemetry.timer_errors.labels("speed_view_model").inc()
                self._dirty.pop(model_id, None)  # tried again when its next event marks it
                continue
            pipe.sadd(f"{self._prefix}:models", model_id)
            for name, fields in hashes.items():
                pipe.delete(name)
                if fields:
                    pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            written.append(model_id)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._telemetry.speed_view_errors.inc()
            if not self._failing:
                log.warning("speed view: Redis unavailable (%s); will rebuild from state", exc)
            self._failing = True
            return 0
        if self._failing:
            # Redis may have come back empty: rebuild every model this worker owns.
            log.warning(
                "speed view: Redis is back; rewriting %d models from state", len(self._known)
            )
            self._failing = False
            self._dirty.update(self._known)
        for model_id in deleted:
            self._gone.pop(model_id, None)
        for model_id in written:
            self._dirty.pop(model_id, None)
            self._written_at[model_id] = now
        self._telemetry.speed_view_writes.inc(len(written))
        return len(written)
