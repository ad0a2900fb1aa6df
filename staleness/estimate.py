"""Performance estimated from scores alone while labels are missing (CBPE). Pure.

The method is NannyML's confidence-based performance estimation (CBPE): if a binary model's
scores are calibrated (of the predictions scored p, a share p is positive), then without a
single label the expected accuracy and ROC AUC of a window follow from its scores:

- expected accuracy at threshold 0.5 = sum over score bins of count * max(p, 1 - p) / n
  (a prediction scored p is right with probability p when p >= 0.5, else 1 - p);
- expected ROC AUC = the AUC of the histogram pair (count * p, count * (1 - p)): each
  prediction counted as p of a positive and 1 - p of a negative, pairs in one bin as ties.

p is the middle of the join's score bin (100 bins on [0, 1], `tables.aggregates`). The scores'
calibration is checked over the reference window's labelled predictions (`shp`, `shn`: labelled
counts per score bin): the expected calibration error over 10 equal-width bins,
ECE = sum over bins of n_b / N * |positive share_b - mean score_b|, must be at most
`RUNWAY_STALENESS_CALIBRATION_MAX_ECE` (default 0.05), and needs `min_labels` labelled
reference predictions; otherwise nothing is estimated and the verdict's reason says why.

Limits (README "Staleness"): the estimate sees only what moves the scores. It assumes P(label |
score) stays as it was over the reference (covariate shift); a change in that relation (concept
drift: the same scores, different outcomes) leaves it unchanged, so labels remain the only
witness of such a drop. Standard errors: for accuracy, the sampling deviation of a sum of
Bernoulli(max(p, 1 - p)) over n; for AUC, Hanley & McNeil with the expected positive and negative
counts. The estimate is compared with the same estimate over the reference (not with realised
reference performance), so a small remaining miscalibration largely cancels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from staleness.performance import Measurement, hanley_mcneil_se
from tables.aggregates import SCORE_BINS

ECE_BINS = 10


def bin_score(bin_: str) -> float:
    """The middle of a binary score bin ("0".."99")."""
    return (int(bin_) + 0.5) / SCORE_BINS


@dataclass(frozen=True)
class Calibration:
    ece: float
    labeled: int


def calibration(positives: Mapping[str, int], negatives: Mapping[str, int]) -> Calibration:
    """Expected calibration error of labelled predictions binned by score; NaN without labels."""
    count = [0] * ECE_BINS
    pos = [0] * ECE_BINS
    score_sum = [0.0] * ECE_BINS
    for hist, positive in ((positives, True), (negatives, False)):
        for bin_, c in hist.items():
            g = min(int(bin_) * ECE_BINS // SCORE_BINS, ECE_BINS - 1)
            count[g] += c
            pos[g] += c if positive else 0
            score_sum[g] += c * bin_score(bin_)
    total = sum(count)
    if total == 0:
        return Calibration(math.nan, 0)
    ece = sum(abs(pos[g] - score_sum[g]) for g in range(ECE_BINS) if count[g]) / total
    return Calibration(ece, total)


def expected_accuracy(scores: Mapping[str, int]) -> tuple[float, float]:
    """Expected accuracy at threshold 0.5 of calibrated scores, and its standard error."""
    n = sum(scores.values())
    if n == 0:
        return math.nan, math.nan
    right = var = 0.0
    for bin_, c in scores.items():
        p = bin_score(bin_)
        q = max(p, 1 - p)
        right += c * q
        var += c * q * (1 - q)
    return right / n, math.sqrt(var) / n


def expected_roc_auc(scores: Mapping[str, int]) -> tuple[float, float, float]:
    """Expected ROC AUC of calibrated scores, its standard error and its binning error bound.

    The bound is half the share of (expected) positive-negative pairs within one bin, as for
    the realised AUC of `tables.aggregates.roc_auc`."""
    pos = [0.0] * SCORE_BINS
    neg = [0.0] * SCORE_BINS
    for bin_, c in scores.items():
        p = bin_score(bin_)
        pos[int(bin_)] += c * p
        neg[int(bin_)] += c * (1 - p)
    n_pos, n_neg = sum(pos), sum(neg)
    if n_pos <= 0 or n_neg <= 0:
        return math.nan, math.nan, math.nan
    wins = ties = neg_below = 0.0
    for b in range(SCORE_BINS):
        wins += pos[b] * neg_below + 0.5 * pos[b] * neg[b]
        ties += pos[b] * neg[b]
        neg_below += neg[b]
    pairs = n_pos * n_neg
    auc = wins / pairs
    se = hanley_mcneil_se(auc, max(round(n_pos), 1), max(round(n_neg), 1))
    return auc, se, 0.5 * ties / pairs


def estimate(scores: Mapping[str, int], metric: str) -> Measurement | None:
    """The expected `metric` ("roc_auc" or "accuracy") of a window's score histogram.

    `labeled` and `coverage` of the measurement are the predictions it rests on and 1: an
    estimate needs no labels."""
    n = sum(scores.values())
    if n == 0:
        return None
    if metric == "roc_auc":
        # no tie bound: within a 0.01-wide bin calibrated scores hardly differ, so an expected
        # pair of one bin is worth one half within about that width (unlike a realised pair)
        value, se, _ = expected_roc_auc(scores)
    elif metric == "accuracy":
        value, se = expected_accuracy(scores)
    else:
        return None
    if not math.isfinite(value):
        return None
    return Measurement(metric, value, se, 0.0, n, 1.0)
