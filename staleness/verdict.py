"""One staleness verdict from performance, drift and age. Pure: event time in, verdict out.

Each signal maps to a score in [0, 1] by a ramp through two anchors: its warning level maps to
`warning_score` (0.4) and its stale level to `stale_score` (0.7), linearly between and beyond
(capped at 1):

    performance  degradation beyond noise   5 % -> 0.4, 10 % -> 0.7   (performance.py)
    estimated    the same, from scores alone 5 % -> 0.4, 10 % -> 0.7  (estimate.py)
    drift        PSI beyond its noise       0.1 -> 0.4, 0.2 -> 0.7    (drift.py)
                 (worst window/feature)
    age          age / max age              0.8 -> 0.4, 1.0 -> 0.7    (age.py)

The model's score is the worst signal's (any one of them is reason enough to act), and the state
is STALE at score >= 0.7, WARNING at >= 0.4, else FRESH. `basis` lists the signals that could be
computed. Degradation, as the seed asks:
- ground truth delayed (no recent window has `min_labels` labels at `min_label_coverage`):
  performance is left out, the verdict rests on drift and age, and says so; for a binary
  model whose scores were calibrated over the reference, performance estimated from the scores
  (CBPE, `estimate.py`) joins as its own signal, "estimated performance". The event schema stays
  version 1: `basis` keeps its three values (an estimate is not a measured performance), the
  estimate's figures and score are in `metrics` (`performance_estimated`,
  `score_estimated_performance`, `estimated_metric_value`, ...) and the reason names it;
- drift not computable (no complete reference window, or fewer than `min_predictions` on a
  side): drift is left out, the verdict rests on age and performance, and says so.

`uncertainty` is a documented heuristic in [0, 1]: 1 - (1 - u_perf)(1 - u_drift)(1 - u_age),
where a missing signal contributes its weight (performance 0.4, drift 0.3, age 0.1) and a
measured one its weight times its noise share (performance: noise / stale level; drift: noise
allowance / moderate band; age: 0); an estimated performance counts at least half its weight
(it is an estimate). No signal at all gives 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from staleness import drift, estimate, performance
from staleness.age import AgeAssessment, assess_age
from staleness.config import StalenessConfig
from staleness.inputs import ModelSignals
from tables import aggregates

State = Literal["FRESH", "WARNING", "STALE"]
Signal = Literal["performance", "drift", "age"]
Judged = Literal["performance", "estimated_performance", "drift", "age"]
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
    excess: float = 0.0  # PSI beyond its noise allowance: what the score ramps on
    allowance: float = 0.0  # null mean + psi_noise_z null deviations


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
    for name, agg in (*s.recent.items(), *s.labelled.items()):
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
    """The worst score or feature PSI beyond its noise, over windows with enough predictions."""
    if s.reference is None or not s.reference_complete:
        return None
    ref_hist = s.reference.get("sh", {})
    n_ref = sum(ref_hist.values())
    if n_ref < cfg.min_predictions:
        return None
    z = cfg.psi_noise_z
    found: list[DriftAssessment] = []
    for name, agg in sorted(s.recent.items(), key=lambda kv: sum(kv[1].get("sh", {}).values())):
        hist = agg.get("sh", {})
        n = sum(hist.values())
        if n < cfg.min_predictions:
            continue
        ref_runs, rec_runs = drift.coarsen(ref_hist, hist, cfg.psi_bins)
        value = drift.psi(ref_runs, rec_runs, cfg.psi_epsilon)
        k = len(ref_runs)
        floor = drift.noise_floor(k, n_ref, n)
        allowance = drift.noise_allowance(k, n_ref, n, z)
        per_feature = drift.feature_drift(
            s.reference.get("fh", {}), agg.get("fh", {}), cfg.psi_bins, cfg.psi_epsilon
        )
        features = {f: d.psi for f, d in per_feature.items()}
        found.append(
            DriftAssessment(value, name, floor, n, n_ref, features, max(value - allowance, 0.0),
                            allowance)
        )  # fmt: skip
        for f, d in per_feature.items():
            if min(d.n_reference, d.n_recent) < cfg.min_predictions:
                continue
            f_allow = drift.noise_allowance(d.groups, d.n_reference, d.n_recent, z)
            found.append(
                DriftAssessment(
                    d.psi,
                    f"feature:{f}",
                    drift.noise_floor(d.groups, d.n_reference, d.n_recent),
                    d.n_recent,
                    d.n_reference,
                    features,
                    max(d.psi - f_allow, 0.0),
                    f_allow,
                )
            )
    if not found:
        return None
    # the worst beyond noise; among equals (all within noise) the shortest window's raw PSI
    return max(found, key=lambda d: (d.excess, d.psi if d.excess else 0.0))


@dataclass(frozen=True)
class EstimateAssessment:
    assessment: performance.Assessment
    ece: float
    accuracy: float
    roc_auc: float


def assess_estimate(
    s: ModelSignals, cfg: StalenessConfig
) -> tuple[EstimateAssessment | None, str | None, float | None]:
    """Performance from scores alone (CBPE), the reason it is left out, and the reference ECE.

    Only for binary models, once the reference is complete and its scores calibrated."""
    if s.task != "binary" or s.reference is None or not s.reference_complete:
        return None, None, None
    cal = estimate.calibration(s.reference.get("shp", {}), s.reference.get("shn", {}))
    if cal.labeled < cfg.min_labels:
        why = "too few labelled reference predictions to check the scores' calibration"
        return None, f"performance not estimated: {why}", None
    ece = round(cal.ece, 6)
    if cal.ece > cfg.calibration_max_ece:
        return (
            None,
            (
                f"performance not estimated: scores not calibrated over the reference"
                f" (ECE {cal.ece:.3f} > {cfg.calibration_max_ece:g})"
            ),
            ece,
        )
    metric = performance.primary_metric(s.task, cfg.binary_metric)
    ref = estimate.estimate(s.reference.get("sh", {}), metric)
    if ref is None:
        return None, None, ece
    baseline = performance.Baseline(metric, ref.value, ref.se, ref.bound, "reference estimate")
    judged = []
    for name, agg in s.recent.items():
        hist = agg.get("sh", {})
        if sum(hist.values()) < cfg.min_predictions:
            continue
        m = estimate.estimate(hist, metric)
        if m is not None:
            judged.append((name, hist, performance.assess(name, m, baseline, cfg.noise_z)))
    if not judged:
        return None, None, ece
    name, hist, worst = max(judged, key=lambda j: (j[2].excess, j[2].degradation))
    acc, _ = estimate.expected_accuracy(hist)
    auc, _, _ = estimate.expected_roc_auc(hist)
    return EstimateAssessment(worst, ece, acc, auc), None, ece


def judge(s: ModelSignals, cfg: StalenessConfig) -> Verdict:
    perf, delayed = assess_performance(s, cfg)
    drift_ = assess_drift(s, cfg)
    est, est_note, ece = assess_estimate(s, cfg) if perf is None and delayed else (None, None, None)
    age = assess_age(
        s.event_time_ms,
        s.facts.max_age_ms or cfg.max_age_ms,
        s.facts.trained_at_ms,
        s.facts.deployed_at_ms,
        s.reference_start_ms,
    )
    scores: dict[Judged, float] = {}
    u: dict[Signal, float] = dict(WEIGHTS)
    clauses: dict[Judged, str] = {}
    metrics: dict[str, Any] = {
        "ground_truth_delayed": delayed,
        "drift_unavailable": drift_ is None,
        "performance_estimated": est is not None,
    }
    metrics.update(window_counts(s, cfg))
    if perf is not None:
        scores["performance"] = ramp(perf.excess, cfg.perf_warning, cfg.perf_stale, cfg)
        u["performance"] = WEIGHTS["performance"] * min(1.0, perf.noise / cfg.perf_stale)
        clauses["performance"] = _perf_clause(perf)
        metrics.update(_perf_metrics(perf))
    if ece is not None:
        metrics["calibration_ece"] = ece
    if est is not None:
        e = est.assessment
        scores["estimated_performance"] = ramp(e.excess, cfg.perf_warning, cfg.perf_stale, cfg)
        u["performance"] = WEIGHTS["performance"] * max(0.5, min(1.0, e.noise / cfg.perf_stale))
        clauses["estimated_performance"] = "estimated " + _perf_clause(e) + " from scores alone"
        metrics.update(_estimate_metrics(est))
    if drift_ is not None:
        scores["drift"] = ramp(drift_.excess, cfg.psi_moderate, cfg.psi_significant, cfg)
        u["drift"] = WEIGHTS["drift"] * min(1.0, drift_.allowance / cfg.psi_moderate)
        band = drift.band(drift_.excess, cfg.psi_moderate, cfg.psi_significant)
        clauses["drift"] = (
            f"PSI {drift_.psi:.3f} ({drift_.excess:.3f} beyond noise, {band})"
            f" over the last {drift_.window}"
        )
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
    judged: list[Judged] = [
        sig for sig in ("performance", "estimated_performance", "drift", "age") if sig in scores
    ]
    for sig, value in scores.items():
        metrics[f"score_{sig}"] = round(value, 6)
    if not judged:
        reason = "FRESH by default: no signal can be computed yet"
        reason += _notes(s, [], delayed, drift_, est_note)
        return Verdict("FRESH", 0.0, [], 1.0, reason + ".", s.event_time_ms, metrics, delayed, True)
    score = max(scores.values())
    state = state_of(score, cfg)
    uncertainty = 1 - math.prod(1 - v for v in u.values())
    ordered = sorted(judged, key=lambda sig: -scores[sig])
    reason = f"{state}: " + ", ".join(clauses[sig] for sig in ordered)
    reason += _notes(s, judged, delayed, drift_, est_note) + "."
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
    s: ModelSignals,
    judged: list[Judged],
    delayed: bool,
    drift_: DriftAssessment | None,
    estimate_note: str | None = None,
) -> str:
    missing = []
    if delayed:
        missing.append("ground truth delayed")
    elif "performance" not in judged:
        missing.append("no performance baseline yet")
    if drift_ is None:
        why = "no complete reference window" if not s.reference_complete else "too few predictions"
        missing.append(f"drift not computable ({why})")
    aside = f" ({estimate_note})" if estimate_note is not None else ""
    if not missing:
        return aside
    names = [sig.replace("_", " ") for sig in judged]
    on = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names) or "nothing"
    return f"; {' and '.join(missing)}, so judged on {on} only{aside}"


def _estimate_metrics(est: EstimateAssessment) -> dict[str, Any]:
    a = est.assessment
    return {
        "estimated_metric": a.recent.metric,
        "estimated_metric_value": _finite(a.recent.value),
        "estimated_metric_window": a.window,
        "estimated_baseline_value": _finite(a.baseline.value),
        "estimated_degradation": _finite(a.degradation),
        "estimated_degradation_noise": _finite(a.noise),
        "estimated_degradation_excess": _finite(a.excess),
        "estimated_accuracy": _finite(est.accuracy),
        "estimated_roc_auc": _finite(est.roc_auc),
        "estimated_predictions": a.recent.labeled,
    }


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
        "psi_noise_allowance": _finite(d.allowance),
        "psi_excess": _finite(d.excess),
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
