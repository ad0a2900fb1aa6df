"""Bucket aggregates and the figures `summarize` derives, against references computed here."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from tables import aggregates
from tables.aggregates import (
    add_label,
    add_prediction,
    delay_bin,
    delay_percentile,
    merge,
    roc_auc,
    score_bin,
    summarize,
)


def exact_auc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def lower_quantile(values: list[int], q: float) -> int:
    """The smallest value v with at least q of the values <= v."""
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def binary_pairs(rng: random.Random, count: int) -> list[tuple[float, int]]:
    pairs = []
    for _ in range(count):
        y = 1 if rng.random() < 0.4 else 0
        score = min(max(rng.gauss(0.62 if y else 0.4, 0.2), 0.0), 1.0)
        pairs.append((score, y))
    return pairs


def test_score_bins_binary_are_hundredths_with_one_in_the_top_bin() -> None:
    assert score_bin("binary", 0.0) == "0"
    assert score_bin("binary", 0.004) == "0"
    assert score_bin("binary", 0.5) == "50"
    assert score_bin("binary", 0.755) == "75"
    assert score_bin("binary", 0.999) == "99"
    assert score_bin("binary", 1.0) == "99"


def test_score_bins_regression_are_signed_log_bins_of_ratio_1_05() -> None:
    rng = random.Random(3)
    assert score_bin("regression", 0.0) == "0"
    for _ in range(500):
        value = rng.choice([-1, 1]) * 10 ** rng.uniform(-4, 6)
        bin_ = score_bin("regression", value)
        assert bin_[0] == ("+" if value > 0 else "-")
        k = int(bin_[1:])
        assert 1.05**k <= abs(value) * (1 + 1e-12)
        assert abs(value) < 1.05 ** (k + 1) * (1 + 1e-12)


def test_delay_bins_are_log_bins_of_ratio_1_02() -> None:
    assert delay_bin(0) == "0"
    assert delay_bin(-5) == "0"  # a clock skew below zero counts as no delay
    rng = random.Random(4)
    for _ in range(500):
        delay = rng.randrange(0, 10**10)
        k = int(delay_bin(delay))
        assert 1.02**k <= (delay + 1) * (1 + 1e-12)
        assert delay + 1 < 1.02 ** (k + 1) * (1 + 1e-12)


def test_binary_metrics_equal_a_reference_from_the_raw_pairs() -> None:
    rng = random.Random(11)
    pairs = binary_pairs(rng, 2000) + [(1.0, 1), (0.0, 0), (0.5, 0), (0.5, 1)]
    agg: dict = {}
    for score, y in pairs:
        add_prediction(agg, "binary", score)
        add_label(agg, "binary", score, y, delay_ms=1000)
    out = summarize(agg, "binary")

    n = len(pairs)
    accuracy = sum((s >= 0.5) == (y == 1) for s, y in pairs) / n
    log_loss = sum(-math.log(s if y else 1 - s) for s, y in pairs) / n  # no 0/1 mistakes here
    brier = sum((s - y) ** 2 for s, y in pairs) / n
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    auc = exact_auc(pos, neg)

    assert out["predictions"] == n
    assert out["labeled"] == n
    assert out["label_coverage"] == 1.0
    assert out["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert out["log_loss"] == pytest.approx(log_loss, abs=1e-8)
    assert out["brier"] == pytest.approx(brier, abs=1e-8)
    assert out["positive_rate"] == pytest.approx(len(pos) / n, abs=1e-12)
    assert 0 < out["roc_auc_error_bound"] < 0.05
    assert abs(out["roc_auc"] - auc) <= out["roc_auc_error_bound"] + 1e-12


def test_log_loss_clips_a_confident_mistake_instead_of_infinity() -> None:
    agg: dict = {}
    add_label(agg, "binary", 1.0, 0, delay_ms=0)
    # about -ln(1e-15), the clipping documented as EPS (1 - (1 - 1e-15) is not exactly 1e-15)
    assert summarize(agg, "binary")["log_loss"] == pytest.approx(34.5388, rel=1e-4)


def test_auc_by_hand_in_distinct_bins_is_exact_and_in_one_bin_is_a_tie() -> None:
    agg: dict = {}
    for score, y in [(0.9, 1), (0.8, 1), (0.1, 0), (0.85, 0)]:
        add_label(agg, "binary", score, y, delay_ms=0)
    auc, bound = roc_auc(agg["shp"], agg["shn"])
    assert (auc, bound) == (0.75, 0.0)  # 3 of the 4 pairs ordered right

    tie: dict = {}
    add_label(tie, "binary", 0.555, 1, delay_ms=0)
    add_label(tie, "binary", 0.551, 0, delay_ms=0)
    auc, bound = roc_auc(tie["shp"], tie["shn"])
    assert (auc, bound) == (0.5, 0.5)
    assert abs(auc - exact_auc([0.555], [0.551])) <= bound


def test_auc_is_nan_without_both_classes() -> None:
    agg: dict = {}
    add_label(agg, "binary", 0.7, 1, delay_ms=0)
    out = summarize(agg, "binary")
    assert math.isnan(out["roc_auc"])
    assert "roc_auc" in out


def test_regression_metrics_equal_a_reference_from_the_raw_pairs() -> None:
    rng = random.Random(12)
    pairs = [(rng.uniform(-50, 50), rng.uniform(-50, 50)) for _ in range(3000)]
    pairs += [(2.0, 2.0), (0.0, -3.5)]
    agg: dict = {}
    for score, label in pairs:
        add_prediction(agg, "regression", score)
        add_label(agg, "regression", score, label, delay_ms=10)
    out = summarize(agg, "regression")
    n = len(pairs)
    errors = [s - y for s, y in pairs]
    assert out["labeled"] == n
    assert out["mae"] == pytest.approx(sum(abs(e) for e in errors) / n, abs=1e-6)
    assert out["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / n), abs=1e-6)
    assert out["mean_error"] == pytest.approx(sum(errors) / n, abs=1e-6)
    assert "accuracy" not in out
    assert "mae" not in summarize(agg, "binary")


def test_regression_by_hand() -> None:
    agg: dict = {}
    for score, label in [(3.0, 1.0), (-1.0, 1.0), (5.0, 5.0)]:
        add_label(agg, "regression", score, label, delay_ms=0)
    out = summarize(agg, "regression")
    assert out["mae"] == pytest.approx(4 / 3, abs=1e-12)  # |2| + |-2| + 0
    assert out["rmse"] == pytest.approx(math.sqrt(8 / 3), abs=1e-12)
    assert out["mean_error"] == pytest.approx(0.0, abs=1e-12)


def test_merge_is_addition_and_independent_of_order() -> None:
    rng = random.Random(13)
    pairs = binary_pairs(rng, 300)
    whole: dict = {}
    parts: list[dict] = [{} for _ in range(7)]
    for i, (score, y) in enumerate(pairs):
        for agg in (whole, parts[i % 7]):
            add_prediction(agg, "binary", score)
            add_label(agg, "binary", score, y, delay_ms=1000 + i)
    assert merge(parts) == whole
    shuffled = parts[:]
    rng.shuffle(shuffled)
    assert merge(shuffled) == whole
    assert merge([]) == {}
    assert merge([{"n": 2, "sh": {"5": 1}}, {"n": 3, "sh": {"5": 2, "7": 1}, "exp": 1}]) == {
        "n": 5,
        "sh": {"5": 3, "7": 1},
        "exp": 1,
    }


def test_delay_percentiles_within_one_percent_of_exact() -> None:
    rng = random.Random(14)
    delays = [rng.randrange(1000, 10**8) for _ in range(37)]
    agg: dict = {}
    for delay in delays:
        add_label(agg, "regression", 0.0, 0.0, delay_ms=delay)
    out = summarize(agg, "regression")
    for field, q in (("label_delay_p50_ms", 0.5), ("label_delay_p95_ms", 0.95)):
        exact = lower_quantile(delays, q)
        assert abs(out[field] - exact) <= 0.01 * exact
    assert math.isnan(delay_percentile({}, 0.5))


def test_delay_percentile_by_hand() -> None:
    hist: dict = {}
    for delay in [5_000] * 9 + [600_000]:
        bin_ = delay_bin(delay)
        hist[bin_] = hist.get(bin_, 0) + 1
    assert delay_percentile(hist, 0.5) == pytest.approx(5_000, rel=0.01)
    assert delay_percentile(hist, 0.9) == pytest.approx(5_000, rel=0.01)
    assert delay_percentile(hist, 0.95) == pytest.approx(600_000, rel=0.01)


def test_summarize_counts_and_coverage() -> None:
    agg = {"n": 10, "lab": 6, "exp": 3, "dp": 2, "do": 4, "late": 1, "orph": 5}
    out = summarize(agg, "binary")
    assert out["predictions"] == 10
    assert out["labeled"] == 6
    assert out["unlabeled_expired"] == 3
    assert out["pending"] == 1
    assert out["duplicate_predictions"] == 2
    assert out["duplicate_outcomes"] == 4
    assert out["duplicates"] == 6
    assert out["late_outcomes"] == 1
    assert out["orphan_outcomes"] == 5
    assert out["label_coverage"] == 0.6


def test_summarize_of_nothing_is_zero_counts_and_nan_figures() -> None:
    out = summarize({}, "binary")
    assert out["predictions"] == 0
    assert out["pending"] == 0
    for field in ("label_coverage", "accuracy", "log_loss", "brier", "roc_auc"):
        assert math.isnan(out[field])


def test_binary_label_threshold_and_counts() -> None:
    agg: dict = {}
    add_label(agg, "binary", 0.2, 1, delay_ms=0)  # wrong
    add_label(agg, "binary", 0.5, 1, delay_ms=0)  # 0.5 predicts positive: right
    add_label(agg, "binary", 0.49, 0, delay_ms=0)  # right
    assert agg["cor"] == 2
    assert agg["pos"] == 2
    assert agg["lab"] == 3


def test_feature_histograms_bin_numbers_by_log_and_strings_by_category() -> None:
    agg: dict = {}
    aggregates.add_prediction(agg, "binary", 0.5, {"x": 1.0, "y": -3.0, "z": 0, "c": "red"})
    aggregates.add_prediction(agg, "binary", 0.5, {"x": 1.1, "c": "red", "n": float("nan")})
    # log(1.1)/log(1.2) = 0.52 -> bin 0, like 1.0; log(3)/log(1.2) = 6.03 -> bin 6
    assert agg["fh"] == {"x": {"+0": 2}, "y": {"-6": 1}, "z": {"0": 1}, "c": {"=red": 2}}
    merged = aggregates.merge([agg, {"n": 1, "fh": {"x": {"+0": 1, "+3": 1}}}])
    assert merged["fh"]["x"] == {"+0": 3, "+3": 1} and merged["fh"]["c"] == {"=red": 2}


def test_feature_histograms_are_bounded() -> None:
    agg: dict = {}
    aggregates.add_prediction(agg, "binary", 0.5, {f"f{i}": 1.0 for i in range(25)})
    assert len(agg["fh"]) == 20  # the first 20 features seen
    for i in range(60):
        aggregates.add_prediction(agg, "binary", 0.5, {"f0": f"cat{i}"})
    categories = agg["fh"]["f0"]
    # new categories join while the histogram has fewer than 50 bins (the numeric one counts)
    assert len(categories) == 1 + 49 + 1
    assert categories["=~other"] == 60 - 49


def test_huge_regression_errors_stay_exact_and_fit_the_state_encoding() -> None:
    """1e200 errors: no OverflowError, sums stored as decimal strings, figures still right."""
    import orjson

    agg: dict = {}
    add_label(agg, "regression", 1e200, 0.0, delay_ms=0)
    add_label(agg, "regression", -1.7e308, 1.7e308, delay_ms=0)  # float difference is -inf
    big = Fraction(-1.7e308) - Fraction(1.7e308)  # the second error, exact
    # first event: 1e200 * 1e6 is a finite float, rounded as usual; its square is not, so exact
    assert aggregates.as_int(agg["e"]) == round(1e200 * 1e6) + round(big * 10**6)
    assert aggregates.as_int(agg["ae"]) == round(1e200 * 1e6) + round(-big * 10**6)
    assert aggregates.as_int(agg["se"]) == round(Fraction(1e200) ** 2 * 10**6) + round(
        big**2 * 10**6
    )
    assert isinstance(agg["se"], str)  # beyond 64 bits
    restored = orjson.loads(orjson.dumps(agg))  # what the checkpoint writes and reads back
    out = summarize(aggregates.merge([restored, {}]), "regression")
    ae, e = aggregates.as_int(agg["ae"]), aggregates.as_int(agg["e"])
    assert out["mae"] == float(Fraction(ae, 2 * 10**6))  # 1.7e308, just inside the float range
    assert out["mean_error"] == float(Fraction(e, 2 * 10**6))
    assert out["rmse"] == math.inf  # sqrt of the mean square, 2.4e308, is beyond it


def test_sums_beyond_64_bits_give_the_exact_mean() -> None:
    agg: dict = {}
    for _ in range(3):
        add_label(agg, "regression", 1e150, 0.0, delay_ms=0)
    out = summarize(agg, "regression")
    assert out["mae"] == float(Fraction(1e150))  # exact: (3 * round(1e150 * 1e6)) / 1e6 / 3
    assert out["rmse"] == 1e150
    assert isinstance(agg["se"], str) and isinstance(agg["ae"], str)


def test_many_large_errors_in_one_bucket_do_not_overflow_the_counter() -> None:
    agg: dict = {}
    error = 3e6  # squared and scaled: 9e18 per event, past 2**63 after one
    for _ in range(4):
        add_label(agg, "regression", error, 0.0, delay_ms=0)
    assert aggregates.as_int(agg["se"]) == 4 * round(error * error * 10**6)
    assert summarize(agg, "regression")["rmse"] == error


def test_numeric_feature_bins_are_capped_at_fifty_and_fold_into_the_nearest() -> None:
    agg: dict = {}
    values = [1.2 ** (k + 0.5) for k in range(0, 200, 2)]  # 100 distinct bins "+0", "+2", ...
    for value in values:
        aggregates.add_prediction(agg, "regression", 1.0, {"x": value})
    hist = agg["fh"]["x"]
    assert len(hist) == 50
    assert sum(hist.values()) == 100
    # the first 50 bins are +0..+98; every later one (+100..+198) folds into +98, the nearest
    assert hist["+98"] == 1 + 50
    assert set(hist) == {f"+{k}" for k in range(0, 100, 2)}
    aggregates.add_prediction(agg, "regression", 1.0, {"x": -5.0})
    assert agg["fh"]["x"]["+0"] == 2  # below every bin there: the lowest one


def test_delta_updates_absorbed_equal_the_stored_updates() -> None:
    """A bucket built through deltas (plain ints, then `absorb`) is the bucket the per-event
    updates build, for both tasks, huge regression errors included."""
    import random

    rng = random.Random(7)
    for task in ("binary", "regression"):
        direct: dict = {}
        through: dict = {}
        for _ in range(300):
            delta: dict = {}
            for _ in range(rng.randint(1, 20)):
                score = rng.random() if task == "binary" else rng.choice([rng.gauss(0, 5), 1e200])
                label = rng.choice([0, 1]) if task == "binary" else rng.gauss(0, 5)
                delay = rng.randint(0, 10**9)
                add_prediction(direct, task, score)
                add_label(direct, task, score, label, delay)
                aggregates.add_prediction_delta(delta, task, score)
                aggregates.add_label_delta(delta, task, score, label, delay)
            aggregates.absorb(through, delta)
        assert through == direct, task
