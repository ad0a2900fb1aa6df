"""Every verdict carries the shortest window's counts and label delay (the dashboard's series)."""

from __future__ import annotations

from typing import Any

import pytest

from config.windows import parse_windows
from staleness.config import StalenessConfig
from staleness.inputs import ModelSignals
from staleness.verdict import judge
from tables import aggregates

NOW = 1_700_000_000_000
CFG = StalenessConfig(windows=tuple(parse_windows("24h,1h")))  # the shortest is not first


def window(predictions: int, delays_ms: list[int]) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for i in range(predictions):
        aggregates.add_prediction(agg, "binary", 0.9 if i % 2 else 0.1)
    for i, delay in enumerate(delays_ms):
        aggregates.add_label(agg, "binary", 0.9 if i % 2 else 0.1, i % 2, delay)
    return agg


def signals(recent: dict[str, dict[str, Any]]) -> ModelSignals:
    return ModelSignals("m", "v1", "binary", NOW, recent)


def test_counts_and_delay_percentiles_of_the_shortest_window() -> None:
    # 80 labels 1 s after their prediction, 20 after 100 s: p50 is 1 s, p95 is 100 s
    delays = [1_000] * 80 + [100_000] * 20
    recent = {"1h": window(300, delays), "24h": window(5_000, [5_000] * 10)}
    metrics = judge(signals(recent), CFG).metrics
    assert metrics["window"] == "1h" and metrics["window_ms"] == 3_600_000
    assert metrics["window_predictions"] == 300 and metrics["window_labels"] == 100
    # log bins of ratio 1.02: within 1 % of the true delay
    assert metrics["window_label_delay_p50_ms"] == pytest.approx(1_000, rel=0.01)
    assert metrics["window_label_delay_p95_ms"] == pytest.approx(100_000, rel=0.01)


def test_no_labels_gives_counts_and_no_delay() -> None:
    metrics = judge(signals({"1h": window(40, []), "24h": {}}), CFG).metrics
    assert metrics["window_predictions"] == 40 and metrics["window_labels"] == 0
    assert metrics["window_label_delay_p50_ms"] is None
    assert metrics["window_label_delay_p95_ms"] is None


def test_an_empty_window_counts_zero() -> None:
    metrics = judge(signals({}), CFG).metrics
    assert (metrics["window_predictions"], metrics["window_labels"]) == (0, 0)
