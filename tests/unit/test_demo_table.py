"""`runway demo`'s table: speed-view hashes (as Redis returns them) -> table cells."""

from __future__ import annotations

from streams.demo import COLUMNS, metrics_table, table_rows


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
        ),
    }
    assert table_rows(views) == [
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
        ),
        ("model-001", "regression", "2,000", "1,500", "75.0%", "5.0s", "1.235", "2.500", "7", "3"),
    ]


def test_missing_nan_and_bad_figures_show_as_dash() -> None:
    views = {
        "model-000": (
            {"task": "binary"},
            {"predictions": "10", "labeled": "0", "roc_auc": "nan", "accuracy": "x"},
        ),
        "model-002": ({}, {}),  # a model hash without its window hash yet
    }
    assert table_rows(views) == [
        ("model-000", "binary", "10", "0", "-", "-", "-", "-", "-", "-"),
        ("model-002", "-", "-", "-", "-", "-", "-", "-", "-", "-"),
    ]


def test_table_has_every_column_and_a_placeholder_when_empty() -> None:
    table = metrics_table([], "t")
    assert [c.header for c in table.columns] == list(COLUMNS)
    assert table.row_count == 1
    assert metrics_table(table_rows({"m": ({"task": "binary"}, {})}), "t").row_count == 1
