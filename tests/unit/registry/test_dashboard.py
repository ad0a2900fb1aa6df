"""The dashboard's pure parts: fleet rows, counts, chart series and levels, the graph."""

from __future__ import annotations

from typing import Any

import pytest

from registry.dashboard import charts, dashboard_row, fleet_doc, impact_graph, retrain_health
from registry.fleet import fleet_row
from registry.graph import Edge
from stack.processes import free_port
from staleness.config import StalenessConfig

CFG = StalenessConfig()
MODEL = {"model_id": "m", "task": "binary", "owner": "o"}


def verdict(at: int, **metrics: Any) -> dict[str, Any]:
    return {
        "model_id": "m", "model_version": "v1", "state": "WARNING", "score": 0.5,
        "basis": ["drift"], "uncertainty": 0.25, "reason": "WARNING: x", "event_time": at,
        "emitted_at": at + 7, "metrics": metrics, "impacted": ["n", "o"],
    }  # fmt: skip


def test_row_takes_live_figures_from_the_speed_view() -> None:
    live = {"predictions": "600", "label_coverage": "0.25", "label_delay_p95_ms": "1500.5"}
    v = verdict(10, window_predictions=1)
    row = dashboard_row(fleet_row(MODEL, v), MODEL, v, live, 30 * 60_000)  # a 30 min window
    assert row["predictions_per_hour"] == 1200  # 600 in half an hour
    assert (row["label_coverage"], row["label_delay_p95_ms"]) == (0.25, 1500.5)
    assert (row["state"], row["score"], row["basis"], row["uncertainty"]) == (
        "WARNING", 0.5, ["drift"], 0.25,
    )  # fmt: skip
    assert (row["last_verdict_at"], row["impacted"], row["figures_from"]) == (17, 2, "speed view")


def test_row_falls_back_to_the_verdicts_window_counts() -> None:
    v = verdict(10, window_predictions=200, window_labels=50, window_ms=3_600_000,
                window_label_delay_p95_ms=900.0)  # fmt: skip
    row = dashboard_row(fleet_row(MODEL, v), MODEL, v, None, 3_600_000)
    assert (row["predictions_per_hour"], row["label_coverage"]) == (200, 0.25)
    assert (row["label_delay_p95_ms"], row["figures_from"]) == (900.0, "verdict")


def test_a_model_without_verdict_is_unknown_and_counted() -> None:
    row = dashboard_row(fleet_row(MODEL, None), MODEL, None, {"predictions": "nan"}, 3_600_000)
    assert row["state"] == "UNKNOWN" and row["score"] is None
    assert row["predictions_per_hour"] is None  # NaN is no figure
    models = [{"model_id": m} for m in ("s1", "u", "f", "s2")]
    latest = {"s1": {"state": "STALE"}, "f": {"state": "FRESH"}, "s2": {"state": "STALE"}}
    doc = fleet_doc(models, latest, {}, 3_600_000)
    assert [r["state"] for r in doc["models"]] == ["STALE", "UNKNOWN", "FRESH", "STALE"]
    assert doc["counts"] == {"STALE": 2, "WARNING": 0, "FRESH": 1, "UNKNOWN": 1}


def test_a_row_has_the_keys_the_page_reads_in_their_order() -> None:
    v = verdict(10)
    assert list(dashboard_row(fleet_row(MODEL, v), MODEL, v, None, 3_600_000)) == [
        "model_id", "task", "owner", "state", "score", "basis", "uncertainty", "reason",
        "model_version", "event_time", "last_verdict_at", "impacted", "label_coverage",
        "label_delay_p95_ms", "predictions_per_hour", "figures_from",
    ]  # fmt: skip


def series(found: list[dict[str, Any]], chart: str, name: str) -> list[list[float]]:
    (c,) = [c for c in found if c["id"] == chart]
    (s,) = [s for s in c["series"] if s["name"] == name]
    return list(s["points"])


def test_series_have_a_point_per_verdict_with_the_figure() -> None:
    history = [
        verdict(1, psi=0.05, window_predictions=100, window_labels=0, window_ms=1_800_000),
        verdict(2, psi=0.15, **{"feature_psi.a": 0.3, "feature_psi.b": 0.1},
                metric="roc_auc", metric_value=0.8, baseline_value=0.9, degradation_noise=0.02,
                window_label_delay_p50_ms=1000.0),
        verdict(3, metric="rmse", metric_value=2.5, baseline_value=2.0, degradation_noise=0.1),
    ]  # fmt: skip
    found = charts(history, CFG)
    assert series(found, "score", "score") == [[1, 0.5], [2, 0.5], [3, 0.5]]
    assert series(found, "score", "score_stale") == [[1, 0.7], [2, 0.7], [3, 0.7]]
    assert series(found, "psi", "psi") == [[1, 0.05], [2, 0.15]]
    assert series(found, "psi", "feature_psi") == [[2, 0.3]]  # the worst feature's
    assert series(found, "psi", "psi_warning") == [[1, 0.1], [2, 0.1]]
    assert series(found, "volume", "predictions_per_hour") == [[1, 200]]
    assert series(found, "volume", "labels_per_hour") == [[1, 0]]
    assert series(found, "delay", "delay_p50") == [[2, 1000.0]]
    # levels: degradation beyond the point's noise of 5 % (WARNING) and 10 % (STALE)
    # AUC (higher is better): 0.9 - 0.9 * (0.02 + 0.05); RMSE (lower): 2.0 + 2.0 * (0.1 + 0.05)
    warning = series(found, "metric", "metric_warning")
    assert [p[0] for p in warning] == [2, 3]
    assert [p[1] for p in warning] == pytest.approx([0.837, 2.3])
    assert [p[1] for p in series(found, "metric", "metric_stale")] == pytest.approx([0.792, 2.4])
    assert series(found, "metric", "baseline_value") == [[2, 0.9], [3, 2.0]]
    (metric,) = [c for c in found if c["id"] == "metric"]
    assert metric["title"] == "RMSE / ROC AUC vs baseline"


def test_graph_places_lineage_left_and_impact_right() -> None:
    down = [Edge("m", "a"), Edge("a", "b"), Edge("m", "f", "model", "feature")]
    up = [Edge("raw", "m", "dataset"), Edge("x", "m")]
    g = impact_graph("m", down, up, {"m": "STALE", "a": "WARNING"})
    placed = {n["id"]: (n["column"], n["row"], n["kind"], n["state"]) for n in g["nodes"]}
    assert placed == {
        "m": (0, 0, "model", "STALE"),
        "a": (1, 0, "model", "WARNING"),
        "f": (1, 1, "feature", None),
        "b": (2, 0, "model", "UNKNOWN"),
        "raw": (-1, 0, "dataset", None),
        "x": (-1, 1, "model", "UNKNOWN"),
    }
    assert g["edges"] == [
        {"from": "a", "to": "b"}, {"from": "m", "to": "a"}, {"from": "m", "to": "f"},
        {"from": "raw", "to": "m"}, {"from": "x", "to": "m"},
    ]  # fmt: skip
    assert g["impacted"] == ["a", "b"] and g["truncated"] is False


def test_graph_keeps_the_nearest_nodes() -> None:
    down = [Edge("m", f"d{i:02}") for i in range(30)]
    g = impact_graph("m", down, [], {}, limit=5)
    assert [n["id"] for n in g["nodes"]] == ["m", "d00", "d01", "d02", "d03", "d04"]
    assert len(g["edges"]) == 5 and g["truncated"] is True


async def test_retrain_health_unset_or_unreachable() -> None:
    assert await retrain_health(None) == {"configured": False}
    port = free_port()  # nothing listens there
    found = await retrain_health(f"http://127.0.0.1:{port}/health")
    assert found["configured"] is True and found["ok"] is False and found["error"]
