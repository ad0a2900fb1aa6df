"""What the scorer needs for one model, read from the join's state. Pure apart from `read`.

`staleness_inputs(read, model_id, now_ms, cfg)` is the entry point for the worker: `read` is the
same `Reader` as the speed view's (bytes key -> decoded value or None) and `now_ms` the event
time the verdict speaks for, normally the model's clock (`keys.model(model_id)["clock"]`). Given
the same state and `now_ms` it returns the same signals, so verdicts replay.

The recent windows (`RUNWAY_STALENESS_WINDOWS`, default 1h,24h) are read from the version's
buckets like the speed view's windows, so every staleness window must also be in
`RUNWAY_WINDOWS` (same bucket size, kept as long).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.windows import HOUR_MS, Window
from staleness.config import StalenessConfig
from staleness.reference import DEFAULT_LOOKBACK_MS, Reader, load_reference
from tables import aggregates, keys
from tables import read as state

Hist = Mapping[str, int]


@dataclass(frozen=True)
class VersionFacts:
    """What the registry declares for a version; every field optional."""

    trained_at_ms: int | None = None
    deployed_at_ms: int | None = None
    max_age_ms: int | None = None
    baseline: Mapping[str, float] = field(default_factory=dict)  # metric name -> value


@dataclass(frozen=True)
class ModelSignals:
    model_id: str
    version: str
    task: str
    event_time_ms: int
    recent: Mapping[str, Mapping[str, Any]]  # window name -> merged bucket aggregate
    reference: Mapping[str, Any] | None = None  # merged aggregate of the reference window
    reference_start_ms: int | None = None
    reference_end_ms: int | None = None
    facts: VersionFacts = field(default_factory=VersionFacts)
    feature_reference: Mapping[str, Hist] = field(default_factory=dict)
    feature_recent: Mapping[str, Hist] = field(default_factory=dict)
    # span name ("2h labelled") -> merged hour buckets of the last labelled hours (`labelled`)
    labelled: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def reference_complete(self) -> bool:
        return self.reference_end_ms is not None and self.event_time_ms >= self.reference_end_ms


def window_aggregate(
    read: Reader, model_id: str, version: str, window: Window, now_ms: int
) -> dict[str, Any]:
    return state.window(read, model_id, version, window, now_ms)


def current_version(
    read: Reader, model_id: str, versions: list[str], window: Window, now_ms: int
) -> str | None:
    """The version serving most predictions in `window`; ties go to the newest version."""
    best, best_n = None, -1
    for version in versions:  # in first-seen order: a later tie wins
        n = window_aggregate(read, model_id, version, window, now_ms).get("n", 0)
        if n >= best_n:
            best, best_n = version, n
    return best


def labelled_spans(
    read: Reader,
    model_id: str,
    version: str,
    now_ms: int,
    cfg: StalenessConfig,
    horizon_ms: int,
) -> dict[str, dict[str, Any]]:
    """The last k hours that have labels, for k in `cfg.labelled_spans_h`.

    Labels arrive after their predictions, so a sliding window ending at the clock holds few of
    them while labels are an hour or more late: a 1h window never gets any. These spans end at
    the newest 1-hour bucket (within `horizon_ms` of the clock) whose label coverage reaches
    `min_label_coverage`, so a drop is judged as soon as the labels that show it are in,
    whatever their delay. Event-time only: replays give the same spans."""
    newest = now_ms // HOUR_MS * HOUR_MS
    hours = [
        newest - i * HOUR_MS for i in range(max(horizon_ms // HOUR_MS, 1)) if newest >= i * HOUR_MS
    ]
    buckets = [state.hour(read, model_id, version, start) or {} for start in hours]
    frontier = next(
        (
            i
            for i, b in enumerate(buckets)
            if b.get("lab", 0) and b["lab"] >= cfg.min_label_coverage * b.get("n", 0)
        ),
        None,
    )
    if frontier is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for k in cfg.labelled_spans_h:
        if frontier + k <= len(buckets):
            out[f"{k}h labelled"] = aggregates.merge(buckets[frontier : frontier + k])
    return out


def staleness_inputs(
    read: Reader,
    model_id: str,
    now_ms: int,
    cfg: StalenessConfig,
    version: str | None = None,
    facts: VersionFacts | None = None,
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
) -> ModelSignals | None:
    """The signals of one model version at event time `now_ms`; None before any prediction."""
    info = read(keys.model(model_id))
    if info is None or info["task"] is None or not info["versions"]:
        return None
    shortest = min(cfg.windows, key=lambda w: w.length_ms)
    version = version or current_version(read, model_id, info["versions"], shortest, now_ms)
    assert version is not None
    recent = {w.name: window_aggregate(read, model_id, version, w, now_ms) for w in cfg.windows}
    ref = load_reference(read, model_id, version, now_ms, cfg, lookback_ms)
    longest = max(w.length_ms for w in cfg.windows)
    return ModelSignals(
        model_id=model_id,
        version=version,
        task=info["task"],
        event_time_ms=now_ms,
        recent=recent,
        reference=ref["agg"] if ref else None,
        reference_start_ms=ref["start"] if ref else None,
        reference_end_ms=ref["end"] if ref else None,
        facts=facts or VersionFacts(),
        # features drift is judged on the shortest recent window (the most sensitive)
        feature_reference=ref["agg"].get("fh", {}) if ref else {},
        feature_recent=recent[shortest.name].get("fh", {}),
        labelled=labelled_spans(read, model_id, version, now_ms, cfg, longest),
    )
