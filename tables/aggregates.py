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
  bucket; a new bin only while the feature's histogram has fewer than 50 bins. Later new
  categories count as `=~other`; a later new numeric bin counts in the nearest numeric bin
  already there (so the histogram stays ordered for the drift deciles).

No overflow for any finite input: Python integers are unbounded, and a fixed-point term whose
float product would overflow (a regression error of 1e200 squared) is computed exactly with
`fractions.Fraction`. A counter beyond the signed 64-bit range, which the state's JSON encoding
(orjson) cannot hold, is stored as its decimal string and read back as an integer; figures
derived from such sums are floats, `inf` when they exceed the float range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
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
MAX_BINS = MAX_CATEGORIES
_INT64 = 2**63
# Orders numeric feature bins on one axis: "+k" above "0" above "-k", farther out as k grows.
_BIN_ORIGIN = 10_000  # beyond any log-1.2 bin index of a finite float (|k| < 3,900)


def score_bin(task: str, score: float) -> str:
    if task == "binary":
        return str(min(int(score * SCORE_BINS), SCORE_BINS - 1))
    if score == 0:
        return "0"
    index = int(math.floor(math.log(abs(score)) / _LOG_VALUE))
    return f"{'+' if score > 0 else '-'}{index}"


def delay_bin(delay_ms: int) -> str:
    return str(int(math.floor(math.log1p(max(delay_ms, 0)) / _LOG_DELAY)))


def as_int(value: int | str) -> int:
    """A stored counter: an int, or the decimal string of one beyond 64 bits."""
    return int(value) if isinstance(value, str) else value


def _stored(value: int) -> int | str:
    return value if -_INT64 <= value < _INT64 else str(value)


def fixed_point(value: float | Fraction, scale: int) -> int:
    """round(value * scale), exact when the float product would overflow."""
    if isinstance(value, float):
        scaled = value * scale
        if math.isfinite(scaled):
            return round(scaled)
        value = Fraction(value)
    return round(value * scale)


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
    """One prediction into a stored aggregate (its terms as a delta, then `absorb`)."""
    delta: dict[str, Any] = {}
    add_prediction_delta(delta, task, score, features)
    absorb(agg, delta)


# A delta's feature maps, in arrival order (`absorb` bins them into the bucket's `fh`): feature
# histograms are bounded by first arrival, so they cannot be summed ahead like the counters.
FEATURE_SEQUENCE = "fseq"


def add_prediction_delta(
    delta: dict[str, Any], task: str, score: float, features: Mapping[str, Any] | None = None
) -> None:
    """A prediction's terms into a delta (`tables.deltas`), its features kept for `absorb`.

    A delta's counters are plain ints, however large (`absorb` stores them): no conversion
    per event, which was most of what the per-event work cost. The stored forms
    (`add_prediction`, `add_label`) are these terms absorbed, so each term is written once."""
    delta["n"] = delta.get("n", 0) + 1
    _inc_hist(delta, "sh", score_bin(task, score))
    if features:
        delta.setdefault(FEATURE_SEQUENCE, []).append(features)


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
        if bin_ not in hist and len(hist) >= MAX_BINS:
            bin_ = OTHER_CATEGORY if bin_[0] == "=" else _nearest_numeric(hist, bin_)
        hist[bin_] = hist.get(bin_, 0) + 1


def _axis(bin_: str) -> int:
    if bin_ == "0":
        return 0
    index = int(bin_[1:]) + _BIN_ORIGIN
    return index if bin_[0] == "+" else -index


def _nearest_numeric(hist: Mapping[str, int], bin_: str) -> str:
    """The numeric bin of a full histogram closest to `bin_` (ties: the lower one)."""
    numeric = [b for b in hist if b[0] != "="]
    if not numeric:
        return OTHER_CATEGORY  # only categories so far: a number is one more "other"
    at = _axis(bin_)
    return min(numeric, key=lambda b: (abs(_axis(b) - at), _axis(b)))


def add_label(agg: dict[str, Any], task: str, score: float, label: float, delay_ms: int) -> None:
    """One label into a stored aggregate (its terms as a delta, then `absorb`)."""
    delta: dict[str, Any] = {}
    add_label_delta(delta, task, score, label, delay_ms)
    absorb(agg, delta)


def add_label_delta(
    delta: dict[str, Any], task: str, score: float, label: float, delay_ms: int
) -> None:
    """A label's terms into a delta, as plain ints however large (`absorb` stores them)."""
    get = delta.get
    delta["lab"] = get("lab", 0) + 1
    _inc_hist(delta, "dh", delay_bin(delay_ms))
    if task == "binary":
        y = 1 if label >= 0.5 else 0
        p = min(max(score, EPS), 1 - EPS)
        delta["pos"] = get("pos", 0) + y
        delta["cor"] = get("cor", 0) + int((score >= 0.5) == (y == 1))
        delta["ll"] = get("ll", 0) + round(-math.log(p if y else 1 - p) * BINARY_FP)
        delta["br"] = get("br", 0) + round((score - y) ** 2 * BINARY_FP)
        _inc_hist(delta, "shp" if y else "shn", score_bin(task, score))
        return
    error: float | Fraction = score - label
    if not math.isfinite(error):  # two finite values of opposite sign near the float range
        error = Fraction(score) - Fraction(label)
    squared = error * error
    if isinstance(squared, float) and not math.isfinite(squared):
        squared = Fraction(error) ** 2
    delta["e"] = get("e", 0) + fixed_point(error, REGRESSION_FP)
    delta["ae"] = get("ae", 0) + fixed_point(-error if error < 0 else error, REGRESSION_FP)
    delta["se"] = get("se", 0) + fixed_point(squared, REGRESSION_FP)


def merge(aggs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for agg in aggs:
        absorb(total, agg)
    return total


def absorb(total: dict[str, Any], agg: Mapping[str, Any]) -> None:
    """Add an aggregate (or a delta) into `total`, in place."""
    for field, value in agg.items():
        if field in HISTOGRAMS:
            _add_counts(total.setdefault(field, {}), value)
        elif field == FEATURE_SEQUENCE:
            features = total.setdefault("fh", {})
            for one in value:
                _add_features(features, one)
        elif field == "fh":
            features = total.setdefault("fh", {})
            for name, hist in value.items():
                _add_counts(features.setdefault(name, {}), hist)
        else:
            total[field] = _stored(as_int(total.get(field, 0)) + as_int(value))


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


def _mean(total: int | str, scale: int, count: int) -> float:
    """total / scale / count as a float; +-inf beyond the float range, NaN without a count."""
    if not count:
        return math.nan
    value = as_int(total)
    if -_INT64 <= value < _INT64:
        return value / scale / count  # the common case, as it always was computed
    try:
        return value / (scale * count)  # int / int: correctly rounded, whatever the size
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _root_mean(total: int | str, scale: int, count: int) -> float:
    """sqrt(total / scale / count), through an integer square root for sums beyond 64 bits."""
    if not count:
        return math.nan
    value = as_int(total)
    if value < _INT64:
        return math.sqrt(value / scale / count)
    try:
        return math.isqrt(value * scale // count) / scale
    except OverflowError:
        return math.inf


def summarize(agg: Mapping[str, Any], task: str) -> dict[str, float | int]:
    """The speed view's figures for one window from its merged aggregate."""
    agg = {k: as_int(v) if isinstance(v, str) else v for k, v in agg.items()}
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
            log_loss=_mean(agg.get("ll", 0), BINARY_FP, labeled),
            brier=_mean(agg.get("br", 0), BINARY_FP, labeled),
            positive_rate=agg.get("pos", 0) / labeled if labeled else math.nan,
        )
    else:
        out.update(
            mae=_mean(agg.get("ae", 0), REGRESSION_FP, labeled),
            rmse=_root_mean(agg.get("se", 0), REGRESSION_FP, labeled),
            mean_error=_mean(agg.get("e", 0), REGRESSION_FP, labeled),
        )
    return out
