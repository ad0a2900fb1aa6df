"""Performance estimated from scores (CBPE) and PSI beyond its noise, on histograms worked by hand.

Score bins are the join's (100 on [0, 1]); the estimate reads a bin as its middle, so bin "10"
is p = 0.105 and bin "90" is p = 0.905.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from staleness import drift, estimate
from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import ModelSignals
from staleness.verdict import judge

CFG = StalenessConfig()
NOW = 1_700_000_000_000
REF_START = NOW - 3 * DAY_MS


def test_calibration_error_by_hand() -> None:
    # bin 25 (p 0.255, ECE group 2): 3 positives, 1 negative -> |3 - 4 * 0.255| = 1.98
    # bin 85 (p 0.855, group 8): 1 positive, 1 negative -> |1 - 2 * 0.855| = 0.71
    cal = estimate.calibration({"25": 3, "85": 1}, {"25": 1, "85": 1})
    assert cal.labeled == 6
    assert cal.ece == pytest.approx((1.98 + 0.71) / 6, abs=1e-12)
    assert math.isnan(estimate.calibration({}, {}).ece)
    # bins of one group pool before the difference: 0.105 and 0.195 average to 0.15
    assert estimate.calibration({"10": 15, "19": 15}, {"10": 85, "19": 85}).ece == pytest.approx(
        abs(30 - (100 * 0.105 + 100 * 0.195)) / 200, abs=1e-12
    )


def test_expected_accuracy_by_hand() -> None:
    # p = 0.105, 0.905, 0.505: right with probability 0.895, 0.905, 0.505
    acc, se = estimate.expected_accuracy({"10": 2, "90": 2, "50": 1})
    assert acc == pytest.approx((2 * 0.895 + 2 * 0.905 + 0.505) / 5, abs=1e-12)
    var = 2 * 0.895 * 0.105 + 2 * 0.905 * 0.095 + 0.505 * 0.495
    assert se == pytest.approx(math.sqrt(var) / 5, abs=1e-12)


def test_expected_roc_auc_by_hand() -> None:
    # one prediction at 0.105 and one at 0.905: expected positives 0.105 and 0.905, negatives
    # 0.895 and 0.095; positive above negative: 0.905 * 0.895; ties (same bin) count half
    auc, se, bound = estimate.expected_roc_auc({"10": 1, "90": 1})
    pairs = (0.105 + 0.905) * (0.895 + 0.095)
    wins = 0.905 * 0.895 + 0.5 * (0.105 * 0.895 + 0.905 * 0.095)
    assert auc == pytest.approx(wins / pairs, abs=1e-12)
    assert bound == pytest.approx(0.5 * (0.105 * 0.895 + 0.905 * 0.095) / pairs, abs=1e-12)
    assert se > 0
    # everything in one bin: nothing told apart, AUC one half
    assert estimate.expected_roc_auc({"50": 10})[0] == pytest.approx(0.5)


def test_psi_noise_allowance_by_hand() -> None:
    c = 1 / 1000 + 1 / 1000
    assert drift.noise_sd(10, 1000, 1000) == pytest.approx(math.sqrt(18) * c)
    assert drift.noise_allowance(10, 1000, 1000, 3.0) == pytest.approx(
        9 * c + 3 * math.sqrt(18) * c
    )
    assert drift.beyond_noise(0.1, 10, 1000, 1000, 3.0) == pytest.approx(
        0.1 - 9 * c - 3 * math.sqrt(18) * c
    )
    assert drift.beyond_noise(0.01, 10, 1000, 1000, 3.0) == 0.0


def hist(n: int, shares: dict[str, float]) -> dict[str, int]:
    return {b: round(n * s) for b, s in shares.items()}


def model(recent_sh: dict[str, int], ref: dict[str, Any], cfg: StalenessConfig) -> ModelSignals:
    n = sum(recent_sh.values())
    return ModelSignals(
        "m",
        "v1",
        "binary",
        NOW,
        {"24h": {"n": n, "sh": recent_sh}},  # no labels: ground truth delayed
        reference=ref,
        reference_start_ms=REF_START,
        reference_end_ms=REF_START + DAY_MS,
    )


def test_same_shares_alarm_only_when_the_samples_say_so() -> None:
    """Shares 0.5/0.5 -> 0.7/0.3 over two runs: PSI = 0.2 ln 1.4 - 0.2 ln 0.6 either way.
    With 10 predictions a side that is noise (allowance (c + 3 sqrt 2 c), c = 0.2); with
    10,000 a side it is a shift, PSI beyond noise 0.16946 - 1.0485e-3 -> WARNING."""
    cfg = StalenessConfig(min_predictions=10, min_labels=10**9)
    raw = 0.2 * math.log(1.4) - 0.2 * math.log(0.6)
    for n, want in ((10, "FRESH"), (10_000, "WARNING")):
        ref = {"n": n, "sh": hist(n, {"10": 0.5, "90": 0.5})}
        v = judge(model(hist(n, {"10": 0.7, "90": 0.3}), ref, cfg), cfg)
        c = 2 / n
        excess = max(raw - (c + 3 * math.sqrt(2) * c), 0.0)
        assert v.metrics["psi"] == pytest.approx(raw, abs=1e-6)
        assert v.metrics["psi_excess"] == pytest.approx(excess, abs=1e-6)
        assert v.state == want, v.reason
    assert v.metrics["score_drift"] == pytest.approx(0.4 + 0.3 * (excess - 0.1) / 0.1, abs=1e-6)


CALIBRATED_REF = {
    "n": 2000,
    "sh": {"10": 1000, "90": 1000},
    # labelled: share positive 0.105 at p 0.105 and 0.905 at p 0.905: ECE 0
    "lab": 400,
    "shp": {"10": 21, "90": 181},
    "shn": {"10": 179, "90": 19},
}


def test_calibrated_scores_give_an_estimate_while_labels_are_missing() -> None:
    """All recent scores move to bin 50 (p 0.505): expected AUC one half against the reference's
    wins/pairs of the two-bin histogram; that drop is the estimate's, marked as such."""
    v = judge(model({"50": 2000}, CALIBRATED_REF, CFG), CFG)
    ref_auc, _, _ = estimate.expected_roc_auc({"10": 1000, "90": 1000})
    assert v.basis == ["drift", "age"]  # schema v1: the estimate is not a basis value
    assert v.metrics["performance_estimated"] is True
    assert v.metrics["calibration_ece"] == pytest.approx(0.0, abs=1e-9)
    assert v.metrics["estimated_metric"] == "roc_auc"
    assert v.metrics["estimated_metric_value"] == pytest.approx(0.5, abs=1e-6)
    assert v.metrics["estimated_baseline_value"] == pytest.approx(ref_auc, abs=1e-6)
    assert v.metrics["estimated_degradation"] == pytest.approx((ref_auc - 0.5) / ref_auc, abs=1e-6)
    assert v.metrics["estimated_accuracy"] == pytest.approx(0.505, abs=1e-6)
    assert v.metrics["score_estimated_performance"] == 1.0
    assert v.state == "STALE"
    assert "estimated ROC AUC 0.500 over the last 24h" in v.reason
    assert "judged on estimated performance, drift and age only" in v.reason


def test_uncalibrated_scores_give_no_estimate_and_say_why() -> None:
    """The same scores with every label at 0.105 negative and at 0.905 positive: ECE =
    (200 * 0.105 + 200 * 0.095) / 400 = 0.1 > 0.05."""
    ref = dict(CALIBRATED_REF, shp={"90": 200}, shn={"10": 200})
    v = judge(model({"10": 1000, "90": 1000}, ref, CFG), CFG)
    assert v.metrics["performance_estimated"] is False
    assert v.metrics["calibration_ece"] == pytest.approx(0.1, abs=1e-6)
    assert "score_estimated_performance" not in v.metrics
    assert "performance not estimated: scores not calibrated over the reference" in v.reason
    assert "(ECE 0.100 > 0.05)" in v.reason
    assert v.state == "FRESH"
