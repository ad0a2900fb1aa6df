"""The performance signal: metrics from real aggregates, standard errors, the noise guard."""

from __future__ import annotations

import math
from typing import Any

import pytest

from staleness import performance
from tables import aggregates


def accuracy_agg(correct: int, wrong: int, predictions: int | None = None) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for _ in range(predictions or correct + wrong):
        aggregates.add_prediction(agg, "binary", 0.9)
    for i in range(correct + wrong):
        aggregates.add_label(agg, "binary", 0.9, 1 if i < correct else 0, 1000)
    return agg


def test_hanley_mcneil_by_hand() -> None:
    # A=0.8: Q1 = 0.8/1.2, Q2 = 1.28/1.8; var = (0.16 + 99*(Q1-0.64) + 99*(Q2-0.64)) / 1e4
    assert performance.hanley_mcneil_se(0.8, 100, 100) == pytest.approx(math.sqrt(9.84e-4))


def test_measure_accuracy_with_binomial_se() -> None:
    m = performance.measure(accuracy_agg(170, 30, 400), "binary", "accuracy")
    assert m is not None
    assert (m.value, m.labeled, m.coverage, m.bound) == (0.85, 200, 0.5, 0.0)
    assert m.se == pytest.approx(math.sqrt(0.85 * 0.15 / 200))


def test_measure_rmse() -> None:
    agg: dict[str, Any] = {}
    for score, label in [(1.0, 0.0), (2.0, 4.0), (3.0, 3.0), (0.0, 1.0)]:
        aggregates.add_prediction(agg, "regression", score)
        aggregates.add_label(agg, "regression", score, label, 10)
    m = performance.measure(agg, "regression", "rmse")
    assert m is not None
    assert m.value == pytest.approx(math.sqrt((1 + 4 + 0 + 1) / 4))
    assert m.se == pytest.approx(m.value / math.sqrt(8))


def test_a_drop_inside_the_noise_does_not_count() -> None:
    baseline = performance.Baseline("accuracy", 0.90)
    small = performance.measure(accuracy_agg(170, 30), "binary", "accuracy")
    assert small is not None
    a = performance.assess("1h", small, baseline, z=2.0)
    # 0.05/0.9 = 5.6 % worse, but 2 SE = 2*sqrt(.85*.15/200)/0.9 = 5.6 % of noise
    assert a.degradation == pytest.approx(0.05 / 0.9)
    assert a.noise == pytest.approx(2 * math.sqrt(0.85 * 0.15 / 200) / 0.9)
    assert a.excess == 0.0
    big = performance.measure(accuracy_agg(4250, 750), "binary", "accuracy")
    assert big is not None
    b = performance.assess("24h", big, baseline, z=2.0)
    assert b.excess == pytest.approx(0.05 / 0.9 - 2 * math.sqrt(0.85 * 0.15 / 5000) / 0.9)


def test_measured_baseline_noise_adds_up() -> None:
    recent = performance.Measurement("roc_auc", 0.70, 0.03, 0.01, 300, 0.5)
    baseline = performance.Baseline("roc_auc", 0.80, 0.04, 0.005, "reference")
    a = performance.assess("1h", recent, baseline, z=2.0)
    assert a.noise == pytest.approx((2 * 0.05 + 0.015) / 0.8)
    assert a.z == pytest.approx(0.1 / 0.05)


def test_rmse_is_worse_when_higher_and_usable_needs_labels_and_coverage() -> None:
    a = performance.assess(
        "1h",
        performance.Measurement("rmse", 1.2, 0.0, 0.0, 500, 1.0),
        performance.Baseline("rmse", 1.0),
        z=2.0,
    )
    assert a.degradation == pytest.approx(0.2) and a.excess == pytest.approx(0.2)
    m199 = performance.measure(accuracy_agg(190, 9), "binary", "accuracy")
    m200 = performance.measure(accuracy_agg(190, 10), "binary", "accuracy")
    low = performance.measure(accuracy_agg(190, 10, 2001), "binary", "accuracy")
    assert not performance.usable(m199, 200, 0.1)
    assert performance.usable(m200, 200, 0.1)
    assert not performance.usable(low, 200, 0.1)  # coverage 200/2001 < 0.1
    assert performance.primary_metric("binary") == "roc_auc"
    assert performance.primary_metric("regression", "accuracy") == "rmse"
