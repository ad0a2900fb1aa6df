"""`runway models` / `runway model` rendering (registry/fleet.py), over hand-written records."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from registry.fleet import (
    ModelDetail,
    ago,
    detail_group,
    detail_json,
    fleet_json,
    fleet_rows,
    fleet_table,
    short,
    state_counts,
    utc,
)

NOW = 1_764_489_600_000  # 2025-11-30 08:00:00 UTC
MIN = 60_000


def verdict(model_id: str, state: str, score: float, emitted_at: int, **more: Any) -> dict:
    return {
        "model_id": model_id,
        "model_version": more.pop("model_version", "v1"),
        "state": state,
        "score": score,
        "basis": more.pop("basis", ["drift", "age"]),
        "uncertainty": more.pop("uncertainty", 0.3),
        "reason": more.pop("reason", f"{state}: because."),
        "event_time": more.pop("event_time", emitted_at - 5 * MIN),
        "emitted_at": emitted_at,
        **more,
    }


MODELS = [
    {"model_id": m, "task": t}
    for m, t in [("a", "binary"), ("b", "binary"), ("c", "regression"), ("d", None), ("e", None)]
]
LATEST = {
    "a": verdict("a", "FRESH", 0.1, NOW - 30_000),
    "b": verdict("b", "STALE", 0.8, NOW - 2 * MIN),
    "c": verdict("c", "WARNING", 0.5, NOW - 3 * 3_600_000 - 5 * MIN),
    "d": None,
    "e": verdict("e", "STALE", 0.95, NOW - 2 * 86_400_000 - 3 * 3_600_000),
}


def render(renderable: Any, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def test_times_in_utc_and_how_long_ago() -> None:
    assert utc(NOW) == "2025-11-30 08:00:00Z" and utc(None) == "-"
    assert short(NOW + 1_000) == "11-30 08:00:01"
    assert ago(NOW - 59_999, NOW) == "59s ago"
    assert ago(NOW - 61_000, NOW) == "1m ago"
    assert ago(NOW - 3_600_000 - 5 * MIN, NOW) == "1h05m ago"
    assert ago(NOW - 86_400_000 * 3 - 3_600_000 * 2, NOW) == "3d02h ago"
    assert ago(NOW + 90_000, NOW) == "1m ahead"  # the demo's fast event time
    assert ago(None, NOW) == "-"


def test_rows_worst_first_filtered_and_counted() -> None:
    rows = fleet_rows(MODELS, LATEST)
    assert [(r.model_id, r.state) for r in rows] == [
        ("e", "STALE"),  # 0.95 before 0.8
        ("b", "STALE"),
        ("c", "WARNING"),
        ("a", "FRESH"),
        ("d", "-"),
    ]
    assert state_counts(rows) == {"STALE": 2, "WARNING": 1, "FRESH": 1, "-": 1}
    only = fleet_rows(MODELS, LATEST, states=("WARNING", "FRESH"))
    assert [r.model_id for r in only] == ["c", "a"]


def test_json_has_every_field_and_none_for_no_verdict() -> None:
    doc = fleet_json(fleet_rows(MODELS, LATEST), "database")
    assert doc["source"] == "database"
    assert doc["counts"] == {"STALE": 2, "WARNING": 1, "FRESH": 1, "none": 1}
    assert doc["models"][1] == {
        "model_id": "b",
        "task": "binary",
        "state": "STALE",
        "score": 0.8,
        "basis": ["drift", "age"],
        "uncertainty": 0.3,
        "model_version": "v1",
        "event_time": NOW - 7 * MIN,
        "emitted_at": NOW - 2 * MIN,
        "reason": "STALE: because.",
    }
    assert doc["models"][4] == {
        "model_id": "d",
        "task": None,
        "state": None,
        "score": None,
        "basis": [],
        "uncertainty": None,
        "model_version": None,
        "event_time": None,
        "emitted_at": None,
        "reason": None,
    }


def test_the_fleet_table() -> None:
    text = render(fleet_table(fleet_rows(MODELS, LATEST), NOW, "database"))
    lines = text.splitlines()
    assert lines[0] == "ML models in the registry (database)"
    body = [line.split() for line in lines[4:9]]
    assert body == [
        ["e", "STALE", "0.950", "drift,age", "v1", "2d03h", "ago"],
        ["b", "STALE", "0.800", "drift,age", "v1", "2m", "ago"],
        ["c", "WARNING", "0.500", "drift,age", "v1", "3h05m", "ago"],
        ["a", "FRESH", "0.100", "drift,age", "v1", "30s", "ago"],
        ["d", "-", "-", "-", "-", "-"],
    ]
    assert lines[2].split() == ["model", "state", "score", "basis", "version", "last", "verdict"]
    assert lines[-1] == "5 models: 2 STALE, 1 WARNING, 1 FRESH, 1 without a verdict"


def test_the_table_fits_80_columns_with_long_versions() -> None:
    rows = fleet_rows(
        [{"model_id": "model-000", "task": "binary"}],
        {"model-000": verdict("model-000", "STALE", 1.0, NOW, model_version="v20261130-031248",
                              basis=["performance", "drift", "age"])},
    )  # fmt: skip
    text = render(fleet_table(rows, NOW, "database"), width=80)
    assert text.splitlines()[4].split() == [
        "model-000", "STALE", "1.000", "perf,drift,age", "v20261130-031248", "0s", "ago"
    ]  # fmt: skip


DETAIL = ModelDetail(
    model={"model_id": "a", "task": "binary", "owner": "risk-team", "description": None},
    versions=[
        {
            "model_id": "a",
            "version": "v2",
            "task": "binary",
            "trained_at": NOW - 86_400_000,
            "deployed_at": None,
            "baseline_metrics": {"roc_auc": 0.9, "accuracy": 0.85},
            "max_age_ms": 30 * 86_400_000,
            "created_at": NOW,
        }
    ],
    history=[
        verdict("a", "STALE", 0.75, NOW - MIN, model_version="v2", reason="STALE: PSI 0.31."),
        verdict("a", "WARNING", 0.45, NOW - 2 * MIN, model_version="v2"),
        verdict("a", "FRESH", 0.0, NOW - 9 * MIN, model_version="v1"),
    ],
    impacted=["b", "c"],
    downstream=[
        {"node": "b", "kind": "model", "depth": 1},
        {"node": "c", "kind": "model", "depth": 2},
    ],
    upstream=[{"node": "raw", "kind": "dataset", "depth": 1}],
    retrains=[
        {
            "request_id": "0123456789abcdef",
            "model_id": "a",
            "model_version": "v2",
            "episode": NOW,
            "status": "started",
            "detail": None,
            "created_at": NOW - 50_000,
            "updated_at": NOW - 40_000,
            "history": [
                {"status": "queued", "detail": None, "at": NOW - 50_000},
                {"status": "started", "detail": None, "at": NOW - 40_000},
            ],
        }
    ],
)


def test_the_model_detail() -> None:
    lines = render(detail_group(DETAIL, NOW), width=100).splitlines()
    head = dict(line.split(None, 1) for line in lines[:4])
    assert head == {"model": "a", "task": "binary", "owner": "risk-team", "state": "STALE"}
    assert lines[4].split(None, 1)[1] == "0.750 (uncertainty 0.300)"
    assert "last verdict     2025-11-30 07:59:00Z (1m ago)" in lines
    assert "reason           STALE: PSI 0.31." in lines
    assert "impacted models  b, c" in lines
    assert "downstream       b (model, depth 1), c (model, depth 2)" in lines
    assert "upstream         raw (dataset, depth 1)" in lines
    version_row = next(line for line in lines if line.split()[:1] == ["v2"])
    assert version_row.split() == [
        "v2", "binary", "11-29", "08:00:00", "-", "30", "d", "accuracy=0.85,", "roc_auc=0.9"
    ]  # fmt: skip
    start = lines.index("verdicts, newest first (latest 3; times UTC)")
    # two versions in the history: each verdict names its own
    assert lines[start + 1 : start + 7] == [
        "11-30 07:59:00  event time 11-30 07:54:00  v2  STALE  0.750  drift,age",
        "    STALE: PSI 0.31.",
        "11-30 07:58:00  event time 11-30 07:53:00  v2  WARNING  0.450  drift,age",
        "    WARNING: because.",
        "11-30 07:51:00  event time 11-30 07:46:00  v1  FRESH  0.000  drift,age",
        "    FRESH: because.",
    ]
    retrain_row = next(line for line in lines if line.split()[:1] == ["01234567"])
    assert retrain_row.split() == ["01234567", "v2", "started", "11-30", "07:59:20", "queued", ">",
                                   "started"]  # fmt: skip


def test_a_model_without_verdicts_versions_or_retrains() -> None:
    bare = ModelDetail(model={"model_id": "z", "task": None})
    lines = render(detail_group(bare, NOW)).splitlines()
    assert lines == [
        "model            z",
        "task             -",
        "state            -",
        "impacted models  none",
        "downstream       none",
        "upstream         none",
        "versions: none registered",
        "verdicts: none recorded",
        "retrain requests: none",
    ]
    assert detail_json(bare, "database") == {
        "source": "database",
        "model": {"model_id": "z", "task": None},
        "versions": [],
        "history": [],
        "impacted": [],
        "downstream": [],
        "upstream": [],
        "retrains": [],
    }
