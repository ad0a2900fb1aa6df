"""The verdict: ramps, states, degradation paths, uncertainty, determinism."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import ModelSignals, VersionFacts
from staleness.verdict import judge, ramp
from tables import aggregates

CFG = StalenessConfig()
NOW = 1_700_000_000_000
REF_START = NOW - 3 * DAY_MS


def agg(n: int, bins: dict[float, int], labels: Sequence[tuple[float, int]] = ()) -> dict[str, Any]:
    """`n` predictions spread over score `bins` (score -> share in 1000ths), then labels."""
    out: dict[str, Any] = {}
    for score, per_mille in bins.items():
        for _ in range(n * per_mille // 1000):
            aggregates.add_prediction(out, "binary", score)
    for score, label in labels:
        aggregates.add_label(out, "binary", score, label, 60_000)
    return out


def separable(k: int) -> list[tuple[float, int]]:
    """k labelled pairs with AUC 1: positives at 0.9, negatives at 0.1."""
    return [(0.9, 1)] * (k // 2) + [(0.1, 0)] * (k // 2)


SPREAD = {0.1: 500, 0.9: 500}
SHIFTED = {0.1: 200, 0.9: 800}


def signals(**kw: Any) -> ModelSignals:
    base: dict[str, Any] = dict(
        model_id="m",
        version="v1",
        task="binary",
        event_time_ms=NOW,
        recent={"24h": agg(2000, SPREAD, separable(400))},
        reference=agg(2000, SPREAD, separable(400)),
        reference_start_ms=REF_START,
        reference_end_ms=REF_START + DAY_MS,
    )
    base.update(kw)
    return ModelSignals(**base)


def test_ramp_anchors() -> None:
    assert [ramp(x, 0.1, 0.2, CFG) for x in (0, 0.05, 0.1, 0.15, 0.2, 0.3)] == pytest.approx(
        [0.0, 0.2, 0.4, 0.55, 0.7, 1.0]
    )


def test_all_signals_fresh() -> None:
    v = judge(signals(), CFG)
    assert (v.state, v.basis) == ("FRESH", ["performance", "drift", "age"])
    assert v.metrics["psi"] == 0.0 and v.metrics["baseline_source"] == "reference"
    assert v.metrics["age_days"] == 3.0 and v.metrics["age_since"] == "first_seen"
    assert v.score == pytest.approx(0.4 * (3 / 30) / 0.8)  # age 10 % of max -> ramp to 0.4 at 80 %
    assert not v.ground_truth_delayed and not v.drift_unavailable


def test_ground_truth_delayed_gives_drift_and_age_only() -> None:
    v = judge(signals(recent={"24h": agg(2000, SHIFTED)}), CFG)
    assert v.basis == ["drift", "age"] and v.ground_truth_delayed
    assert v.state == "STALE" and v.metrics["psi_band"] == "significant"
    assert "ground truth delayed, so judged on drift and age only" in v.reason
    assert v.metrics["ground_truth_delayed"] is True


def test_low_label_coverage_counts_as_delayed() -> None:
    # 300 labels but 4000 predictions: coverage 0.075 < 0.1
    v = judge(signals(recent={"24h": agg(4000, SPREAD, separable(300))}), CFG)
    assert v.ground_truth_delayed and "performance" not in v.basis


def test_no_drift_gives_age_and_performance() -> None:
    facts = VersionFacts(trained_at_ms=NOW - 10 * DAY_MS, baseline={"roc_auc": 1.0})
    v = judge(
        signals(reference=None, reference_start_ms=None, reference_end_ms=None, facts=facts), CFG
    )
    assert v.basis == ["performance", "age"] and v.drift_unavailable
    assert "drift not computable (no complete reference window)" in v.reason
    assert v.metrics["baseline_source"] == "registry" and v.metrics["age_since"] == "trained"


def test_reference_not_complete_yet() -> None:
    v = judge(signals(reference_end_ms=NOW + 1), CFG)
    assert v.basis == ["age"] and v.drift_unavailable and not v.ground_truth_delayed
    assert "no performance baseline yet and drift not computable" in v.reason


def test_no_signal_at_all() -> None:
    v = judge(
        signals(recent={"24h": {}}, reference=None, reference_start_ms=None, reference_end_ms=None),
        CFG,
    )
    assert (v.state, v.score, v.basis, v.uncertainty) == ("FRESH", 0.0, [], 1.0)


def test_uncertainty_grows_as_signals_go_missing() -> None:
    full = judge(signals(), CFG).uncertainty
    no_truth = judge(signals(recent={"24h": agg(2000, SPREAD)}), CFG).uncertainty
    # drift: 0.3 * allowance/0.1; two score bins merge into B = 2 runs, c = 1/2000 + 1/2000,
    # allowance = (B-1) c + 3 sqrt(2 (B-1)) c; performance: missing = 0.4 (the reference's
    # scores 0.1/0.9 with labels 0/1 have ECE 0.1, so no estimate stands in for it)
    c = 2 / 2000
    floor_u = 0.3 * (c + 3 * 2**0.5 * c) / 0.1
    assert no_truth == pytest.approx(1 - (1 - 0.4) * (1 - floor_u))
    assert full < no_truth < 1


def test_same_state_and_event_time_same_verdict() -> None:
    assert judge(signals(), CFG) == judge(signals(), CFG)
