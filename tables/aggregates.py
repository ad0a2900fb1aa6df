"""Per-bucket metric aggregates and what the speed view derives from them. Pure, no I/O.

A bucket aggregate is a small JSON object of integer counters and histograms, so that merging
buckets is addition and the result does not depend on the order events arrived in (a replayed
or reordered stream gives bit-identical figures). Real-valued sums are fixed point:
log loss and Brier at 1e-9, regression errors at 1e-6 per event.

Sketched figures and their error bounds:
- ROC AUC from score histograms of 100 equal bins on [0, 1]: pairs in the same bin count as
  ties (1/2); `roc_auc_error_bound` = half the share of positive-negative pairs sharing a bin.
- label-delay percentiles from logarithmic bins of ratio 1.02: at most 1 % relative error.
- score distribution (for drift): 100 bins on [0, 1] for binary, signed log bins of ratio 1.05
  (plus a zero bin) for regression.
- feature distributions (for drift, `fh`: feature -> bin -> count), from the predictions that
  carry `features`: numbers in signed log bins of ratio 1.2, strings as categories `=<value>`.
  Bounded so a model cannot grow its buckets without limit: the first 20 features seen in a
  bucket; a new category only while the feature's histogram has fewer than 50 bins (later ones
  count as `=~other`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

BINARY_FP = 10**9
REGRESSION_FP = 10**6
SCORE_BINS = 100
DELAY_RATIO = 1.02
VALUE_RATIO = 1.05
EPS = 1e-15

_LOG_DELAY = math.log(DELAY_RATIO)
_LOG_VALUE = math.log(VALUE_RATIO)

HISTOGRAMS = ("sh", "shp", "shn", "dh")
FEATURE_RATIO = 1.2
MAX_FEATURES = 20
MAX_CATEGORIES = 50
OTHER_CATEGORY = "=~other"
_LOG_FEATURE = math.log(FEATURE_RATIO)


def score_bin(task: str, score: float) -> str:
    if task == "binary":
        return str(min(int(score * SCORE_BINS), SCORE_BINS - 1))
    if score == 0:
        return "0"
    index = int(math.floor(math.log(abs(score)) / _LOG_VALUE))
    return f"{'+' if score > 0 else '-'}{index}"


def delay_bin(delay_ms: int) -> str:
    return str(int(math.floor(math.log1p(max(delay_ms, 0)) / _LOG_DELAY)))


def _inc(agg: dict[str, Any], field: str, amount: int = 1) -> None:
    agg[field] = agg.get(field, 0) + amount


def _inc_hist(agg: dict[str, Any], field: str, bin_: str) -> None:
    hist = agg.setdefault(field, {})
    hist[bin_] = hist.get(bin_, 0) + 1


def feature_bin(value: float | str) -> str | None:
    """The bin of one feature value; None for a value that has none (NaN, infinite)."""
    if isinstance(value, str):
        return "=" + value[:64]
    if not math.isfinite(value):
        return None
    if value == 0:
        return "0"
    index = int(math.floor(math.log(abs(value)) / _LOG_FEATURE))
    return f"{'+' if value > 0 else '-'}{index}"


def add_prediction(
    agg: dict[str, Any], task: str, score: float, features: Mapping[str, Any] | None = None
) -> None:
    _inc(agg, "n")
    _inc_hist(agg, "sh", score_bin(task, score))
    if features:
        _add_features(agg.setdefault("fh", {}), features)


def _add_features(per_feature: dict[str, dict[str, int]], features: Mapping[str, Any]) -> None:
    for name, value in features.items():
        bin_ = feature_bin(value)
        if bin_ is None:
            continue
        hist = per_feature.get(name)
        if hist is None:
            if len(per_feature) >= MAX_FEATURES:
                continue
            hist = per_feature[name] = {}
        if bin_ not in hist and bin_[0] == "=" and len(hist) >= MAX_CATEGORIES:
            bin_ = OTHER_CATEGORY
        hist[bin_] = hist.get(bin_, 0) + 1


def add_label(agg: dict[str, Any], task: str, score: float, label: float, delay_ms: int) -> None:
    _inc(agg, "lab")
    _inc_hist(agg, "dh", delay_bin(delay_ms))
    if task == "binary":
        y = 1 if label >= 0.5 else 0
        p = min(max(score, EPS), 1 - EPS)
        _inc(agg, "pos", y)
        _inc(agg, "cor", int((score >= 0.5) == (y == 1)))
        _inc(agg, "ll", round(-math.log(p if y else 1 - p) * BINARY_FP))
        _inc(agg, "br", round((score - y) ** 2 * BINARY_FP))
        _inc_hist(agg, "shp" if y else "shn", score_bin(task, score))
    else:
        error = score - label
        _inc(agg, "e", round(error * REGRESSION_FP))
        _inc(agg, "ae", round(abs(error) * REGRESSION_FP))
        _inc(agg, "se", round(error * error * REGRESSION_FP))


def merge(aggs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for agg in aggs:
        for field, value in agg.items():
            if field in HISTOGRAMS:
                _add_counts(total.setdefault(field, {}), value)
            elif field == "fh":
                features = total.setdefault("fh", {})
                for name, hist in value.items():
                    _add_counts(features.setdefault(name, {}), hist)
            else:
                total[field] = total.get(field, 0) + value
    return total


def _add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for bin_, count in counts.items():
        into[bin_] = into.get(bin_, 0) + count


def roc_auc(positives: Mapping[str, int], negatives: Mapping[str, int]) -> tuple[float, float]:
    """AUC from binned scores, ties within a bin counted 1/2, and its error bound."""
    n_pos, n_neg = sum(positives.values()), sum(negatives.values())
    if n_pos == 0 or n_neg == 0:
        return math.nan, math.nan
    wins = 0.0
    ties = 0
    neg_below = 0
    for index in range(SCORE_BINS):
        key = str(index)
        pos, neg = positives.get(key, 0), negatives.get(key, 0)
        wins += pos * neg_below + 0.5 * pos * neg
        ties += pos * neg
        neg_below += neg
    pairs = n_pos * n_neg
    return wins / pairs, 0.5 * ties / pairs


def delay_percentile(hist: Mapping[str, int], q: float) -> float:
    """The q-quantile of label delay in ms (geometric middle of its log bin)."""
    total = sum(hist.values())
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for bin_ in sorted(hist, key=int):
        seen += hist[bin_]
        if seen >= rank:
            low = DELAY_RATIO ** int(bin_)
            return math.sqrt(low * low * DELAY_RATIO) - 1
    raise AssertionError("unreachable: rank <= total")


def summarize(agg: Mapping[str, Any], task: str) -> dict[str, float | int]:
    """The speed view's figures for one window from its merged aggregate."""
    n, labeled = agg.get("n", 0), agg.get("lab", 0)
    out: dict[str, float | int] = {
        "predictions": n,
        "labeled": labeled,
        "unlabeled_expired": agg.get("exp", 0),
        "pending": max(n - labeled - agg.get("exp", 0), 0),
        "duplicate_predictions": agg.get("dp", 0),
        "duplicate_outcomes": agg.get("do", 0),
        "duplicates": agg.get("dp", 0) + agg.get("do", 0),
        "late_outcomes": agg.get("late", 0),
        "orphan_outcomes": agg.get("orph", 0),
        "label_coverage": labeled / n if n else math.nan,
        "label_delay_p50_ms": delay_percentile(agg.get("dh", {}), 0.50),
        "label_delay_p95_ms": delay_percentile(agg.get("dh", {}), 0.95),
    }
    if task == "binary":
        auc, bound = roc_auc(agg.get("shp", {}), agg.get("shn", {}))
        out.update(
            accuracy=agg.get("cor", 0) / labeled if labeled else math.nan,
            roc_auc=auc,
            roc_auc_error_bound=bound,
            log_loss=agg.get("ll", 0) / BINARY_FP / labeled if labeled else math.nan,
            brier=agg.get("br", 0) / BINARY_FP / labeled if labeled else math.nan,
            positive_rate=agg.get("pos", 0) / labeled if labeled else math.nan,
        )
    else:
        out.update(
            mae=agg.get("ae", 0) / REGRESSION_FP / labeled if labeled else math.nan,
            rmse=math.sqrt(agg.get("se", 0) / REGRESSION_FP / labeled) if labeled else math.nan,
            mean_error=agg.get("e", 0) / REGRESSION_FP / labeled if labeled else math.nan,
        )
    return out
