"""One staleness verdict from performance, drift and age. Pure: event time in, verdict out.

Each signal maps to a score in [0, 1] by a ramp through two anchors: its warning level maps to
`warning_score` (0.4) and its stale level to `stale_score` (0.7), linearly between and beyond
(capped at 1):

    performance  degradation beyond noise   5 % -> 0.4, 10 % -> 0.7   (performance.py)
    drift        PSI (worst window/feature) 0.1 -> 0.4, 0.2 -> 0.7    (drift.py)
    age          age / max age              0.8 -> 0.4, 1.0 -> 0.7    (age.py)

The model's score is the worst signal's (any one of them is reason enough to act), and the state
is STALE at score >= 0.7, WARNING at >= 0.4, else FRESH. `basis` lists the signals that could be
computed. Degradation, as the seed asks:
- ground truth delayed (no recent window has `min_labels` labels at `min_label_coverage`):
  performance is left out, the verdict rests on drift and age, and says so;
- drift not computable (no complete reference window, or fewer than `min_predictions` on a
  side): drift is left out, the verdict rests on age and performance, and says so.

`uncertainty` is a documented heuristic in [0, 1]: 1 - (1 - u_perf)(1 - u_drift)(1 - u_age),
where a missing signal contributes its weight (performance 0.4, drift 0.3, age 0.1) and a
measured one its weight times its noise share (performance: noise / stale level; drift: noise
floor / moderate band; age: 0). No signal at all gives 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from staleness import drift, performance
from staleness.age import AgeAssessment, assess_age
from staleness.config import StalenessConfig
from staleness.inputs import ModelSignals
from tables import aggregates

State = Literal["FRESH", "WARNING", "STALE"]
Signal = Literal["performance", "drift", "age"]
WEIGHTS: dict[Signal, float] = {"performance": 0.4, "drift": 0.3, "age": 0.1}
_DAY_MS = 24 * 3_600_000


@dataclass(frozen=True)
class Verdict:
    state: State
    score: float
    basis: list[Signal]
    uncertainty: float
    reason: str
    event_time_ms: int
    metrics: dict[str, Any] = field(default_factory=dict)
    ground_truth_delayed: bool = False
    drift_unavailable: bool = False


@dataclass(frozen=True)
class DriftAssessment:
    psi: float
    window: str  # a recent window name, or "feature:<name>"
    noise_floor: float
    predictions: int
    reference_predictions: int
    features: dict[str, float]


def ramp(x: float, warn_at: float, stale_at: float, cfg: StalenessConfig) -> float:
    lo, hi = cfg.warning_score, cfg.stale_score
    if x <= 0:
        return 0.0
    if x < warn_at:
        return lo * x / warn_at
    slope = (hi - lo) / (stale_at - warn_at)
    return min(1.0, lo + slope * (x - warn_at))


def state_of(score: float, cfg: StalenessConfig) -> State:
    if score >= cfg.stale_score:
        return "STALE"
    return "WARNING" if score >= cfg.warning_score else "FRESH"


def baseline_of(s: ModelSignals, metric: str, cfg: StalenessConfig) -> performance.Baseline | None:
    if metric in s.facts.baseline:
        return performance.Baseline(metric, float(s.facts.baseline[metric]), source="registry")
    if s.reference is None or not s.reference_complete:
        return None
    ref = performance.measure(s.reference, s.task, metric)
    if ref is None or not performance.usable(ref, cfg.min_labels, cfg.min_label_coverage):
        return None
    return performance.Baseline(metric, ref.value, ref.se, ref.bound, "reference")


def assess_performance(
    s: ModelSignals, cfg: StalenessConfig
) -> tuple[performance.Assessment | None, bool]:
    """The worst judged window (largest excess), and whether ground truth is delayed."""
    metric = performance.primary_metric(s.task, cfg.binary_metric)
    judged = []
    for name, agg in s.recent.items():
        m = performance.measure(agg, s.task, metric)
        if performance.usable(m, cfg.min_labels, cfg.min_label_coverage):
            assert m is not None
            judged.append((name, m))
    if not judged:
        return None, True
    baseline = baseline_of(s, metric, cfg)
    if baseline is None:
        return None, False
    found = [performance.assess(name, m, baseline, cfg.noise_z) for name, m in judged]
    return max(found, key=lambda a: (a.excess, a.degradation)), False


def assess_drift(s: ModelSignals, cfg: StalenessConfig) -> DriftAssessment | None:
    if s.reference is None or not s.reference_complete:
        return None
    ref_hist = s.reference.get("sh", {})
    n_ref = sum(ref_hist.values())
    if n_ref < cfg.min_predictions:
        return None
    best: DriftAssessment | None = None
    for name, agg in s.recent.items():
        hist = agg.get("sh", {})
        n = sum(hist.values())
        if n < cfg.min_predictions:
            continue
        value = drift.histogram_psi(ref_hist, hist, cfg.psi_bins, cfg.psi_epsilon)
        floor = drift.noise_floor(cfg.psi_bins, n_ref, n)
        if best is None or value > best.psi:
            best = DriftAssessment(value, name, floor, n, n_ref, {})
    if best is None:
        return None
    features = drift.feature_psi(
        s.feature_reference, s.feature_recent, cfg.psi_bins, cfg.psi_epsilon
    )
    worst = max(features.items(), key=lambda kv: kv[1], default=None)
    if worst is not None and worst[1] > best.psi:
        return DriftAssessment(
            worst[1], f"feature:{worst[0]}", best.noise_floor, best.predictions, n_ref, features
        )
    return DriftAssessment(
        best.psi, best.window, best.noise_floor, best.predictions, n_ref, features
    )


def judge(s: ModelSignals, cfg: StalenessConfig) -> Verdict:
    perf, delayed = assess_performance(s, cfg)
    drift_ = assess_drift(s, cfg)
    age = assess_age(
        s.event_time_ms,
        s.facts.max_age_ms or cfg.max_age_ms,
        s.facts.trained_at_ms,
        s.facts.deployed_at_ms,
        s.reference_start_ms,
    )
    scores: dict[Signal, float] = {}
    u: dict[Signal, float] = dict(WEIGHTS)
    clauses: dict[Signal, str] = {}
    metrics: dict[str, Any] = {"ground_truth_delayed": delayed, "drift_unavailable": drift_ is None}
    metrics.update(window_counts(s, cfg))
    if perf is not None:
        scores["performance"] = ramp(perf.excess, cfg.perf_warning, cfg.perf_stale, cfg)
        u["performance"] = WEIGHTS["performance"] * min(1.0, perf.noise / cfg.perf_stale)
        clauses["performance"] = _perf_clause(perf)
        metrics.update(_perf_metrics(perf))
    if drift_ is not None:
        scores["drift"] = ramp(drift_.psi, cfg.psi_moderate, cfg.psi_significant, cfg)
        u["drift"] = WEIGHTS["drift"] * min(1.0, drift_.noise_floor / cfg.psi_moderate)
        band = drift.band(drift_.psi, cfg.psi_moderate, cfg.psi_significant)
        clauses["drift"] = f"PSI {drift_.psi:.3f} ({band}) over the last {drift_.window}"
        metrics.update(_drift_metrics(drift_, band))
    if age is not None:
        scores["age"] = ramp(age.fraction, cfg.age_warning_fraction, 1.0, cfg)
        u["age"] = 0.0
        clauses["age"] = (
            f"{age.age_ms / _DAY_MS:.1f} days since {age.since.replace('_', ' ')}"
            f" (max {age.max_age_ms / _DAY_MS:g})"
        )
        metrics.update(_age_metrics(age))
    basis: list[Signal] = [sig for sig in ("performance", "drift", "age") if sig in scores]
    for sig, value in scores.items():
        metrics[f"score_{sig}"] = round(value, 6)
    if not basis:
        reason = "FRESH by default: no signal can be computed yet" + _notes(s, [], delayed, drift_)
        return Verdict("FRESH", 0.0, [], 1.0, reason + ".", s.event_time_ms, metrics, delayed, True)
    score = max(scores.values())
    state = state_of(score, cfg)
    uncertainty = 1 - math.prod(1 - v for v in u.values())
    ordered = sorted(basis, key=lambda sig: -scores[sig])
    reason = f"{state}: " + ", ".join(clauses[sig] for sig in ordered)
    reason += _notes(s, basis, delayed, drift_) + "."
    return Verdict(
        state,
        round(score, 6),
        basis,
        round(uncertainty, 6),
        reason,
        s.event_time_ms,
        metrics,
        delayed,
        drift_ is None,
    )


def _notes(
    s: ModelSignals, basis: list[Signal], delayed: bool, drift_: DriftAssessment | None
) -> str:
    missing = []
    if delayed:
        missing.append("ground truth delayed")
    elif "performance" not in basis:
        missing.append("no performance baseline yet")
    if drift_ is None:
        why = "no complete reference window" if not s.reference_complete else "too few predictions"
        missing.append(f"drift not computable ({why})")
    if not missing:
        return ""
    on = " and ".join(basis) if basis else "nothing"
    return f"; {' and '.join(missing)}, so judged on {on} only"


def _perf_clause(a: performance.Assessment) -> str:
    name = {"roc_auc": "ROC AUC", "accuracy": "accuracy", "rmse": "RMSE"}[a.recent.metric]
    return (
        f"{name} {a.recent.value:.3f} over the last {a.window} vs baseline {a.baseline.value:.3f}"
        f" ({_worse(a.degradation)}, {a.excess:.1%} beyond noise)"
    )


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _perf_metrics(a: performance.Assessment) -> dict[str, Any]:
    return {
        "metric": a.recent.metric,
        "metric_value": _finite(a.recent.value),
        "metric_window": a.window,
        "baseline_value": _finite(a.baseline.value),
        "baseline_source": a.baseline.source,
        "degradation": _finite(a.degradation),
        "degradation_noise": _finite(a.noise),
        "degradation_excess": _finite(a.excess),
        "degradation_z": _finite(a.z),
        "labels": a.recent.labeled,
        "label_coverage": _finite(a.recent.coverage),
    }


def _drift_metrics(d: DriftAssessment, band: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "psi": _finite(d.psi),
        "psi_band": band,
        "psi_window": d.window,
        "psi_noise_floor": _finite(d.noise_floor),
        "predictions": d.predictions,
        "reference_predictions": d.reference_predictions,
    }
    out.update({f"feature_psi.{k}": _finite(v) for k, v in d.features.items()})
    return out


def window_counts(s: ModelSignals, cfg: StalenessConfig) -> dict[str, Any]:
    """The shortest window's predictions, labels and label delay, in every verdict whatever its
    basis: each recorded verdict is then a point of the dashboard's volume and delay charts."""
    shortest = min(cfg.windows, key=lambda w: w.length_ms)
    agg = s.recent.get(shortest.name, {})
    delays = agg.get("dh", {})
    return {
        "window": shortest.name,
        "window_ms": shortest.length_ms,
        "window_predictions": aggregates.as_int(agg.get("n", 0)),
        "window_labels": aggregates.as_int(agg.get("lab", 0)),
        "window_label_delay_p50_ms": _finite(aggregates.delay_percentile(delays, 0.50)),
        "window_label_delay_p95_ms": _finite(aggregates.delay_percentile(delays, 0.95)),
    }


def _age_metrics(a: AgeAssessment) -> dict[str, Any]:
    return {
        "age_days": round(a.age_ms / _DAY_MS, 6),
        "max_age_days": round(a.max_age_ms / _DAY_MS, 6),
        "age_since": a.since,
    }


def _worse(degradation: float) -> str:
    return f"{degradation:.1%} worse" if degradation >= 0 else f"{-degradation:.1%} better"
