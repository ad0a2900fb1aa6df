"""The drill's oracle over hand-made input: every expected figure worked out by hand below."""

from __future__ import annotations

import math

import orjson
import pytest

from tools import dr_oracle

T0 = 1_800_000_000_000


def pred(pid: str, model: str = "m-b", score: float = 0.8, task: str = "binary") -> bytes:
    return orjson.dumps(
        [
            {
                "prediction_id": pid,
                "model_id": model,
                "model_version": "v1",
                "timestamp": T0,
                "task": task,
                "score": score,
            }
        ]
    )


def out(pid: str, label: float, model: str = "m-b", delay: int = 1_000) -> bytes:
    event = {"prediction_id": pid, "model_id": model, "timestamp": T0 + delay, "label": label}
    return orjson.dumps(event)  # a single event, not an array


RECORDS = [
    ("outcomes", out("a", 1)),  # early: before its prediction
    ("predictions", pred("a", score=0.8)),
    ("predictions", pred("a", score=0.8)),  # a duplicate prediction
    ("predictions", pred("b", score=0.3)),
    ("outcomes", out("b", 1, delay=2_000)),
    ("outcomes", out("b", 1, delay=2_000)),  # a duplicate outcome of a joined pair
    ("predictions", pred("c", score=0.6)),  # never labelled: pending
    ("outcomes", out("z", 0)),  # its prediction never mirrored: waits, counted nowhere yet
    ("outcomes", out("z", 0)),
    ("predictions", pred("r", model="m-r", score=2.5, task="regression")),
    ("outcomes", out("r", 2.0, model="m-r")),
]


def test_counts_pairs_and_metrics_from_the_input_alone() -> None:
    expected = dr_oracle.expected(RECORDS)
    binary = expected.models["m-b"]
    assert dict(binary.counts) == {
        "predictions": 3,
        "labeled": 2,
        "pending": 1,
        "duplicate_predictions": 1,
        "duplicate_outcomes": 1,
    }
    # a: score 0.8, label 1; b: score 0.3, label 1.
    metrics = binary.metrics()
    assert metrics["accuracy"] == 0.5
    assert metrics["brier"] == pytest.approx((0.2**2 + 0.7**2) / 2)
    assert metrics["log_loss"] == pytest.approx((-math.log(0.8) - math.log(0.3)) / 2)
    regression = expected.models["m-r"].metrics()
    assert regression == pytest.approx({"mae": 0.5, "rmse": 0.5, "mean_error": 0.5})
    assert sorted(expected.joined) == ["a", "b", "r"]
    assert expected.joined["b"] == {
        "model_id": "m-b",
        "model_version": "v1",
        "timestamp": T0,
        "score": 0.3,
        "label": 1.0,
        "outcome_timestamp": T0 + 2_000,
        "label_delay_ms": 2_000,
    }


def view(**counts: int) -> dict[str, str]:
    return {name: str(value) for name, value in counts.items()}


def test_views_equal_and_each_difference_named() -> None:
    expected = dr_oracle.expected(RECORDS)
    good = {
        "m-b": {
            **view(predictions=3, labeled=2, pending=1, duplicate_predictions=1),
            "duplicate_outcomes": "1",
            "accuracy": "0.5",
            "brier": repr((0.2**2 + 0.7**2) / 2),
            "log_loss": repr((-math.log(0.8) - math.log(0.3)) / 2),
        },
        "m-r": {**view(predictions=1, labeled=1), "mae": "0.5", "rmse": "0.5", "mean_error": "0.5"},
    }
    assert dr_oracle.view_problems(expected, good) == []
    bad = {"m-b": {**good["m-b"], "labeled": "3"}, "x": view(predictions=1)}
    assert dr_oracle.view_problems(expected, bad) == [
        "m-b: labeled 3 != 2",
        "m-r: no view",
        "x: not expected",
    ]


def test_rows_each_pair_once_with_its_fields() -> None:
    expected = dr_oracle.expected(RECORDS)
    rows = [{"prediction_id": pid, **fields} for pid, fields in expected.joined.items()]
    assert dr_oracle.row_problems(expected, rows) == []
    problems = dr_oracle.row_problems(
        expected, [rows[0], rows[0], {**rows[1], "label": 0.0}, {"prediction_id": "c"}]
    )
    assert problems == [
        "row b: label 0.0 != 1.0",
        "row c: not a joined pair of the input",
        "1 pairs written more than once, e.g. ['a']",
        "1 joined pairs missing, e.g. ['r']",
    ]


def test_losses_count_acknowledged_events_the_standby_lacks() -> None:
    acknowledged = {("predictions", "a"): 10.0, ("outcomes", "a"): 12.5, ("predictions", "b"): 14.0}
    mirrored = {("predictions", "a"), ("predictions", "x")}
    report = dr_oracle.losses(acknowledged, mirrored, killed_at=20.0)
    assert report == dr_oracle.LossReport(
        produced=3, mirrored=2, lost=2, unacknowledged_mirrored=1, rpo_s=7.5
    )
    nothing_lost = dr_oracle.losses(acknowledged, set(acknowledged), killed_at=20.0)
    assert (nothing_lost.lost, nothing_lost.rpo_s) == (0, 0.0)


def test_event_ids_name_each_event_of_a_batch() -> None:
    batch = orjson.dumps([{"prediction_id": "p1"}, {"prediction_id": "p2"}])
    assert dr_oracle.event_ids([("predictions", batch), ("outcomes", out("p1", 1))]) == {
        ("predictions", "p1"),
        ("predictions", "p2"),
        ("outcomes", "p1"),
    }


def test_metrics_within_the_views_fixed_point_rounding() -> None:
    """A regression mean near zero differs from the exact one by up to 1e-6 (each event's error
    rounded at 1e-6), far beyond a relative tolerance; a binary figure by up to 1e-9."""
    expected = dr_oracle.expected(RECORDS)
    rounded = {"predictions": "1", "labeled": "1", "mae": "0.5", "rmse": "0.5"}
    assert dr_oracle.view_problems(
        expected, {"m-b": {}, "m-r": {**rounded, "mean_error": repr(0.5 + 9e-7)}}
    ) == ["m-b: no view"]
    assert dr_oracle.view_problems(
        expected, {"m-b": {}, "m-r": {**rounded, "mean_error": repr(0.5 + 2e-6)}}
    ) == ["m-b: no view", f"m-r: mean_error {0.5 + 2e-6!r} != 0.5"]
