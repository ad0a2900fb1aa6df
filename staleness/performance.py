"""Recent primary metric against the version's baseline, with small-sample noise. Pure.

Primary metric: ROC AUC for binary (accuracy at 0.5 selectable), RMSE for regression. A window
is judged only with at least `min_labels` labels (default 200) and a label coverage of at least
`min_label_coverage`; otherwise ground truth counts as delayed for it.

Degradation is relative to the baseline: (baseline - recent) / baseline for AUC and accuracy,
(recent - baseline) / baseline for RMSE. Only the part beyond noise counts:

    excess = max(0, degradation - noise),
    noise  = (z * sqrt(se_recent^2 + se_baseline^2) + bound_recent + bound_baseline) / baseline

i.e. the lower one-sided confidence bound (z = 2 by default) of the degradation, less the
sketch's error bounds. Standard errors: Hanley & McNeil (1982) for AUC, binomial for accuracy,
RMSE / sqrt(2 n) for RMSE (delta method under normal errors; the aggregates keep no fourth
moment). A baseline declared in the registry has no standard error; one measured over the
reference window has its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tables import aggregates

HIGHER_IS_BETTER = {"roc_auc": True, "accuracy": True, "rmse": False}
_TINY = 1e-12


def primary_metric(task: str, binary_metric: str = "roc_auc") -> str:
    return binary_metric if task == "binary" else "rmse"


@dataclass(frozen=True)
class Measurement:
    """One metric over one window (or the reference), with what its noise needs."""

    metric: str
    value: float
    se: float
    bound: float  # the sketch's own error bound (AUC from binned scores), 0 when exact
    labeled: int
    coverage: float


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC estimate from n_pos positives and n_neg negatives."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def measure(agg: Mapping[str, Any], task: str, metric: str) -> Measurement | None:
    """The metric of a merged bucket aggregate, or None when it has no value (no labels...)."""
    labeled = agg.get("lab", 0)
    if labeled <= 0:
        return None
    n = agg.get("n", 0)
    coverage = labeled / n if n else 0.0
    figures = aggregates.summarize(agg, task)
    value = float(figures.get(metric, math.nan))
    if not math.isfinite(value):  # no labels yet, or errors beyond the float range: no verdict
        return None
    if metric == "roc_auc":
        n_pos = sum(agg.get("shp", {}).values())
        n_neg = sum(agg.get("shn", {}).values())
        se = hanley_mcneil_se(value, n_pos, n_neg)
        bound = float(figures["roc_auc_error_bound"])
    elif metric == "accuracy":
        se, bound = math.sqrt(value * (1 - value) / labeled), 0.0
    else:
        se, bound = value / math.sqrt(2 * labeled), 0.0
    return Measurement(metric, value, se, bound, labeled, coverage)


def usable(m: Measurement | None, min_labels: int, min_coverage: float) -> bool:
    return m is not None and m.labeled >= min_labels and m.coverage >= min_coverage


@dataclass(frozen=True)
class Baseline:
    metric: str
    value: float
    se: float = 0.0
    bound: float = 0.0
    source: str = "registry"  # or "reference"


@dataclass(frozen=True)
class Assessment:
    window: str
    recent: Measurement
    baseline: Baseline
    degradation: float  # relative, > 0 is worse
    noise: float  # relative
    excess: float  # degradation beyond noise, >= 0
    z: float  # degradation in standard errors


def assess(window: str, recent: Measurement, baseline: Baseline, z: float) -> Assessment:
    higher = HIGHER_IS_BETTER[recent.metric]
    scale = max(abs(baseline.value), _TINY)
    diff = (baseline.value - recent.value) if higher else (recent.value - baseline.value)
    se = math.hypot(recent.se, baseline.se)
    noise = (z * se + recent.bound + baseline.bound) / scale
    degradation = diff / scale
    z_score = diff / se if se > 0 else (math.inf if diff > 0 else 0.0)
    excess = max(degradation - noise, 0.0)
    return Assessment(window, recent, baseline, degradation, noise, excess, z_score)
