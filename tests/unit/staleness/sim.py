"""A simulated model stream that builds join state exactly as the join does, fast.

Predictions and labels go through `tables.aggregates.add_prediction` / `add_label` into the
version's 1-minute and 1-hour buckets under `tables.keys`, the model record carries task, clock,
versions and last times, buckets older than the join's retention (RUNWAY_WINDOWS=1h,24h,7d:
1 h for minute buckets, 7 d for hour buckets) are dropped, and the reference record is refreshed
the way the worker is asked to (staleness.reference.refresh_reference). Events are applied in
event-time order: at time t the state holds every prediction with timestamp <= t and every
label observed at <= t. (The all-versions buckets are left out: the scorer reads one version.)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from config.windows import GRANULARITIES, HOUR_MS, MINUTE_MS
from staleness.config import StalenessConfig
from staleness.reference import reference_key, refresh_reference
from tables import aggregates, keys

RETENTION = {"m": HOUR_MS, "h": 7 * 24 * HOUR_MS}
T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS  # an hour boundary


class Sim:
    def __init__(
        self, model_id: str, version: str, task: str, cfg: StalenessConfig, seed: int = 7
    ) -> None:
        self.model_id, self.version, self.task, self.cfg = model_id, version, task, cfg
        self.rng = random.Random(seed)
        self.state: dict[bytes, Any] = {}
        self.labels: list[tuple[int, int, float, float]] = []  # (observed, pred ts, score, y)
        self.clock = 0
        self._next_step = 0

    def read(self, key: bytes) -> Any:
        return self.state.get(key)

    def _bump(self, ts: int, update: Callable[..., None], *args: Any) -> None:
        for gran, size in GRANULARITIES.items():
            key = keys.bucket(self.model_id, self.version, gran, ts // size * size)
            agg = self.state.setdefault(key, {})
            update(agg, *args)

    def _touch(self, ts: int, field: str) -> None:
        key = keys.model(self.model_id)
        info = self.state.setdefault(
            key, {"task": self.task, "clock": ts, "versions": [], "lp": None, "lo": None}
        )
        if self.version not in info["versions"]:
            info["versions"].append(self.version)
        info["clock"] = max(info["clock"], ts)
        info[field] = ts if info[field] is None else max(info[field], ts)
        self.clock = info["clock"]

    def run(
        self,
        start: int,
        end: int,
        per_hour: int,
        draw: Callable[[random.Random, int], tuple[float, float]],
        delay: Callable[[random.Random], int | None],
        on_step: Callable[[int], None] | None = None,
        step_ms: int = HOUR_MS,
        features: Callable[[random.Random, int], dict[str, Any]] | None = None,
    ) -> None:
        """Predictions at `per_hour`, evenly spread over [start, end); `draw(rng, ts)` gives
        (score, label), `delay(rng)` the label delay in ms (None: never labelled). At every
        multiple t of `step_ms` after `start` up to `end` (the state then holds the predictions
        before t and the labels observed up to t), the reference is refreshed and `on_step(t)`
        called. Labels observed after `end` wait for the next `run`. `features(rng, ts)` gives
        the prediction's feature values, if any."""
        self._next_step = start + step_ms
        for ts in range(start, end, HOUR_MS // per_hour):
            self._advance(ts, on_step, step_ms)
            score, y = draw(self.rng, ts)
            self._touch(ts, "lp")
            values = features(self.rng, ts) if features is not None else None
            self._bump(ts, aggregates.add_prediction, self.task, score, values)
            d = delay(self.rng)
            if d is not None:
                heapq.heappush(self.labels, (ts + d, ts, score, y))
        self._advance(end, on_step, step_ms)

    def _advance(self, t: int, on_step: Callable[[int], None] | None, step_ms: int) -> None:
        while True:
            label_at = self.labels[0][0] if self.labels else None
            if label_at is not None and label_at <= min(t, self._next_step):
                observed, pts, score, y = heapq.heappop(self.labels)
                self._touch(observed, "lo")
                self._bump(pts, aggregates.add_label, self.task, score, y, observed - pts)
            elif self._next_step <= t:
                self._step(self._next_step, on_step)
                self._next_step += step_ms
            else:
                return

    def _step(self, t: int, on_step: Callable[[int], None] | None) -> None:
        self._expire(t)
        record = refresh_reference(self.read, self.model_id, self.version, t, self.cfg)
        if record is not None:
            self.state[reference_key(self.model_id, self.version)] = record
        if on_step is not None:
            on_step(t)

    def _expire(self, t: int) -> None:
        for key in [k for k in self.state if k.startswith(keys.BUCKET)]:
            _, _, gran, start = keys.split_bucket(key)
            if start + GRANULARITIES[gran] + RETENTION[gran] <= t:
                del self.state[key]


def binary_draw(positive_rate: float = 0.4, noise: float = 0.0, shift: float = 0.0):
    """Scores from Beta(4, 2) for positives and Beta(2, 4) for negatives (AUC ~0.85).

    `noise`: share of labels drawn at random, independent of the score (concept drift: the
    score distribution does not move, the accuracy does). `shift`: share of predictions whose
    score is pushed up to Beta(8, 1) (a score-distribution shift)."""

    def draw(rng: random.Random, ts: int) -> tuple[float, float]:
        y = 1 if rng.random() < positive_rate else 0
        score = rng.betavariate(4, 2) if y else rng.betavariate(2, 4)
        if shift and rng.random() < shift:
            score = rng.betavariate(8, 1)
        if noise and rng.random() < noise:
            y = 1 if rng.random() < positive_rate else 0
        return score, float(y)

    return draw


def exp_delay(mean_ms: int) -> Callable[[random.Random], int]:
    return lambda rng: int(rng.expovariate(1 / mean_ms))


MINUTE = MINUTE_MS
