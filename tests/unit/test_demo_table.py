"""`runway demo`'s screen: Redis hashes and the services' answers -> table cells and panel lines."""

from __future__ import annotations

from typing import Any

from tools.demo_table import (
    COLUMNS,
    Milestones,
    ServiceStatus,
    metrics_table,
    service_panel,
    staleness_cell,
    started_runs,
    table_rows,
)

STALE = {"state": "STALE", "score": "0.794935", "model_version": "v2", "basis": '["drift"]'}


def test_binary_and_regression_rows_sorted_by_model() -> None:
    views = {
        "model-001": (
            {"model_id": "model-001", "task": "regression"},
            {
                "predictions": "2000",
                "labeled": "1500",
                "label_coverage": "0.75",
                "label_delay_p50_ms": "4999.7",
                "mae": "1.23456",
                "rmse": "2.5",
                "mean_error": "0.1",
                "duplicates": "7",
                "unlabeled_expired": "3",
            },
            {"state": "FRESH", "score": "0.000556", "model_version": "v2"},
        ),
        "model-000": (
            {"model_id": "model-000", "task": "binary"},
            {
                "predictions": "12345",
                "labeled": "11000",
                "label_coverage": "0.8910490077",
                "label_delay_p50_ms": "3466",
                "accuracy": "0.8004",
                "roc_auc": "0.79951",
                "duplicates": "123",
                "unlabeled_expired": "0",
            },
            STALE,
        ),
    }
    assert table_rows(views, "v2") == [
        (
            "model-000",
            "binary",
            "12,345",
            "11,000",
            "89.1%",
            "3.5s",
            "0.800",
            "0.800",
            "123",
            "0",
            "STALE 0.79",
        ),
        (
            "model-001",
            "regression",
            "2,000",
            "1,500",
            "75.0%",
            "5.0s",
            "1.235",
            "2.500",
            "7",
            "3",
            "FRESH 0.00",
        ),
    ]


def test_missing_nan_and_bad_figures_show_as_dash() -> None:
    views = {
        "model-000": (
            {"task": "binary"},
            {"predictions": "10", "labeled": "0", "roc_auc": "nan", "accuracy": "x"},
            {"state": "WARNING", "score": "bad"},
        ),
        "model-002": ({}, {}, {}),  # a model hash without its window hash or a verdict yet
    }
    assert table_rows(views) == [
        ("model-000", "binary", "10", "0", "-", "-", "-", "-", "-", "-", "WARNING"),
        ("model-002", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"),
    ]


def test_a_verdict_on_another_version_is_not_shown() -> None:
    assert staleness_cell(STALE, "v2") == "STALE 0.79"
    assert staleness_cell(STALE, "v1") == "-"  # the last run's verdict
    assert staleness_cell(STALE) == "STALE 0.79"  # no version asked: any
    assert staleness_cell({}) == "-"


def test_table_has_every_column_a_coloured_state_and_a_placeholder_when_empty() -> None:
    table = metrics_table([], "t")
    assert [c.header for c in table.columns] == list(COLUMNS)
    assert table.row_count == 1
    row = table_rows({"m": ({"task": "binary"}, {}, STALE)})
    table = metrics_table(row, "t")
    assert table.row_count == 1
    assert list(table.columns[-1].cells) == ["[bold red]STALE 0.79[/bold red]"]
    assert list(metrics_table([(*row[0][:-1], "-")], "t").columns[-1].cells) == ["-"]


def _call(outcome: str, model: str, version: str) -> dict[str, Any]:
    params = {"model_id": {"value": model, "type": "STRING"}}
    params["model_version"] = {"value": version, "type": "STRING"}
    return {"outcome": outcome, "request_id": f"{model}/{version}", "run_params": params}


CALLS = {
    "calls": [
        _call("503", "model-000", "v2"),
        _call("started", "model-000", "v1"),
        _call("started", "model-000", "v2"),
        _call("duplicate", "model-000", "v2"),
    ],
    "started": 2,
    "duplicates": 1,
}
RETRAIN = {
    "status": "ok",
    "breaker": "closed",
    "breaker_opened": 0,
    "queue_depth": 0,
    "models_in_flight": 1,
    "orchestrator_calls": 4,
}
API = {"status": "degraded", "checks": {"redis": "ok", "kafka": "ok", "database": "down"}}


def test_service_panel_lines() -> None:
    assert started_runs(CALLS) == [("model-000", "v1"), ("model-000", "v2")]
    assert service_panel(ServiceStatus(RETRAIN, CALLS, API)) == [
        "retrain agent: breaker closed (opened 0x), queue 0, in flight 1, orchestrator calls 4",
        "orchestrator stand-in: 2 retrain(s) started (model-000 v1, model-000 v2), 4 call(s), "
        "1 duplicate(s)",
        "registry API /health: degraded (database down, kafka ok, redis ok)",
    ]
    empty = {"calls": [], "started": 0, "duplicates": 0}
    assert service_panel(ServiceStatus(None, empty, None)) == [
        "retrain agent: no answer",
        "orchestrator stand-in: 0 retrain(s) started, 0 call(s), 0 duplicate(s)",
        "registry API: no answer",
    ]


def _rows(*cells: tuple[str, str]) -> list[tuple[str, ...]]:
    return [(model, *["-"] * (len(COLUMNS) - 2), state) for model, state in cells]


def test_milestones_first_sightings() -> None:
    seen = Milestones(frozenset({"model-000"}), "v2")
    nobody = ServiceStatus()
    seen.see(1.0, _rows(("model-000", "-"), ("model-001", "-")), nobody)
    seen.see(9.0, _rows(("model-000", "-"), ("model-001", "FRESH 0.00")), nobody)
    seen.see(120.0, _rows(("model-000", "WARNING 0.44"), ("model-001", "FRESH 0.00")), nobody)
    old_run_only = ServiceStatus(calls={"calls": [_call("started", "model-000", "v1")]})
    seen.see(130.0, _rows(("model-000", "STALE 0.79"), ("model-001", "FRESH 0.00")), old_run_only)
    seen.see(131.5, _rows(("model-000", "STALE 0.80")), ServiceStatus(calls=CALLS))
    seen.see(200.0, _rows(("model-000", "FRESH 0.10")), ServiceStatus(calls=CALLS))
    assert (seen.first_verdict, seen.warning, seen.stale, seen.retrain_started) == (
        9.0,
        120.0,
        130.0,
        131.5,
    )
    assert seen.summary() == (
        "since traffic started: first verdict 9s, drifted model WARNING/STALE 120s, STALE 130s, "
        "retrain started 132s; other models ever not FRESH: none"
    )
    seen.see(201.0, _rows(("model-001", "WARNING 0.40")), nobody)
    assert seen.others_flagged == {"model-001"}
    never = Milestones(frozenset(), "v1").summary()
    assert never.startswith("since traffic started: first verdict not seen, drifted model WARNING")
