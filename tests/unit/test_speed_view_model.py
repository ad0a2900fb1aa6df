"""`model_view`: the speed view's hashes of one model, derived from join state only."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from config.windows import parse_windows
from sinks.speed_view import model_view
from tables.join import JoinConfig, JoinEffects, JoinRules
from tables.transaction import PartitionTransaction
from tests.unit.memdb import MemDB

MIN = 60_000
HOUR = 60 * MIN
TTL = 7 * 24 * HOUR
C = 1_699_999_200_000 + 3 * HOUR  # the model's clock, an hour boundary
WINDOWS = parse_windows("1h,24h,7d")


def build() -> tuple[MemDB, PartitionTransaction]:
    db = MemDB()
    txn = PartitionTransaction(db)
    rules = JoinRules(JoinConfig(lambda m: TTL, TTL, TTL, WINDOWS))
    stream_time = 0

    def pred(pid: str, version: str, ts: int, score: float) -> None:
        event = {
            "prediction_id": pid,
            "model_id": "m1",
            "model_version": version,
            "timestamp": ts,
            "task": "binary",
            "score": score,
        }
        rules.on_prediction(txn, event, JoinEffects())

    def out(pid: str, ts: int, label: int) -> None:
        nonlocal stream_time
        stream_time = max(stream_time, ts)
        event = {"prediction_id": pid, "model_id": "m1", "timestamp": ts, "label": label}
        rules.on_outcome(txn, event, stream_time, JoinEffects())

    pred("a", "v1", C - 2 * HOUR, 0.9)
    out("a", C - 2 * HOUR + 1_000, 1)  # right, outside the 1 h window
    pred("b", "v1", C - 10 * MIN, 0.2)
    out("b", C - 10 * MIN + 2_000, 1)  # wrong
    pred("c", "v2", C - 5 * MIN, 0.7)  # no label yet
    pred("d", "v2", C, 0.1)
    out("d", C, 0)  # right
    return db, txn


def floats(hash_: dict[str, str], *fields: str) -> list[float]:
    return [float(hash_[f]) for f in fields]


def test_hash_names_for_all_versions_and_each_version() -> None:
    _, txn = build()
    view = model_view(txn.get, "m1", WINDOWS, "runway")
    assert set(view) == {
        "runway:model:m1",
        "runway:model:m1:window:1h",
        "runway:model:m1:window:24h",
        "runway:model:m1:window:7d",
        "runway:model:m1:version:v1:window:1h",
        "runway:model:m1:version:v1:window:24h",
        "runway:model:m1:version:v1:window:7d",
        "runway:model:m1:version:v2:window:1h",
        "runway:model:m1:version:v2:window:24h",
        "runway:model:m1:version:v2:window:7d",
    }
    assert model_view(txn.get, "unknown", WINDOWS, "runway") == {}


def test_model_hash() -> None:
    _, txn = build()
    assert model_view(txn.get, "m1", WINDOWS, "rw")["rw:model:m1"] == {
        "model_id": "m1",
        "task": "binary",
        "clock": str(C),
        "versions": '["v1","v2"]',
        "last_prediction_ts": str(C),
        "last_outcome_ts": str(C),
    }


def test_all_versions_one_hour_window() -> None:
    _, txn = build()
    h = model_view(txn.get, "m1", WINDOWS, "runway")["runway:model:m1:window:1h"]
    # b (0.2, label 1), c (0.7, unlabeled), d (0.1, label 0); a is 2 h old
    assert (h["predictions"], h["labeled"], h["pending"]) == ("3", "2", "1")
    assert (h["unlabeled_expired"], h["duplicates"], h["late_outcomes"]) == ("0", "0", "0")
    assert h["window_start"] == str(C - 59 * MIN)
    assert h["window_end"] == str(C)
    accuracy, coverage, brier, log_loss, auc, bound, positive_rate = floats(
        h, "accuracy", "label_coverage", "brier", "log_loss", "roc_auc", "roc_auc_error_bound",
        "positive_rate",
    )  # fmt: skip
    assert accuracy == 0.5
    assert coverage == pytest.approx(2 / 3, abs=1e-12)
    assert brier == pytest.approx((0.64 + 0.01) / 2, abs=1e-9)
    assert log_loss == pytest.approx((-math.log(0.2) - math.log(0.9)) / 2, abs=1e-9)
    assert (auc, bound) == (1.0, 0.0)  # the one positive outscores the one negative
    assert positive_rate == 0.5
    assert json.loads(h["score_histogram"]) == {"20": 1, "70": 1, "10": 1}
    assert float(h["label_delay_p95_ms"]) == pytest.approx(2_000, rel=0.01)


def test_all_versions_day_and_week_windows_include_the_older_prediction() -> None:
    _, txn = build()
    view = model_view(txn.get, "m1", WINDOWS, "runway")
    for name, start in (("24h", C - 23 * HOUR), ("7d", C - 167 * HOUR)):
        h = view[f"runway:model:m1:window:{name}"]
        assert (h["predictions"], h["labeled"], h["pending"]) == ("4", "3", "1")
        assert float(h["accuracy"]) == pytest.approx(2 / 3, abs=1e-12)
        assert json.loads(h["score_histogram"]) == {"90": 1, "20": 1, "70": 1, "10": 1}
        assert h["window_start"] == str(start)


def test_per_version_hashes() -> None:
    _, txn = build()
    view = model_view(txn.get, "m1", WINDOWS, "runway")
    v1 = view["runway:model:m1:version:v1:window:1h"]
    assert (v1["predictions"], v1["labeled"], v1["accuracy"]) == ("1", "1", "0.0")
    assert "roc_auc" not in v1  # only positives: AUC undefined, and NaN is left out
    v1_day = view["runway:model:m1:version:v1:window:24h"]
    assert (v1_day["predictions"], v1_day["labeled"], v1_day["accuracy"]) == ("2", "2", "0.5")
    v2 = view["runway:model:m1:version:v2:window:1h"]
    assert (v2["predictions"], v2["labeled"], v2["pending"], v2["accuracy"]) == (
        "2",
        "1",
        "1",
        "1.0",
    )
    assert json.loads(v2["score_histogram"]) == {"70": 1, "10": 1}


def test_view_from_committed_state_equals_view_from_the_live_transaction() -> None:
    db, txn = build()
    live = model_view(txn.get, "m1", WINDOWS, "runway")
    db.apply(txn.changes())

    def read(key: bytes) -> Any:
        raw = db.get(key)
        return None if raw is None else orjson.loads(raw)

    assert model_view(read, "m1", WINDOWS, "runway") == live
    assert all(isinstance(v, str) for h in live.values() for v in h.values())
