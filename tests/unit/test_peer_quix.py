"""The peer's join (tools/peer_quix.py) over a dict standing in for Quix's State.

Expected results come from the traffic generator's `Truth` (what was sent), not from the code
under test: every valid outcome's pair is joined exactly once, with the prediction's fields and
the outcome's label and times, however early, late or duplicated its events arrive.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from tools.peer_quix import (
    OUTCOME,
    PREDICTION,
    Ttls,
    events_of,
    join_event,
    joined_record,
    parse_args,
    tagged,
)
from tools.traffic import TrafficSpec, Truth, generate

DAY_MS = 86_400_000
TTLS = Ttls(label_ttl_ms=7 * DAY_MS, early_outcome_ttl_ms=2 * DAY_MS, done_retention_ms=DAY_MS)


class DictState:
    """Quix's State for one message key: get, and set with the TTL remembered."""

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}
        self.ttls: dict[Any, timedelta | None] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: Any, value: Any, ttl: timedelta | None = None) -> None:
        # Quix serializes values as JSON: a stored value must survive the round trip
        self.values[key] = json.loads(json.dumps(value))
        self.ttls[key] = ttl


def prediction(pid: str, ts: int = 1_000, model: str = "m") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "prediction_id": pid,
        "model_id": model,
        "model_version": "v1",
        "timestamp": ts,
        "task": "binary",
        "score": 0.25,
    }


def outcome(pid: str, ts: int = 4_000, label: int = 1, model: str = "m") -> dict[str, Any]:
    return {"schema_version": 1, "prediction_id": pid, "model_id": model, "timestamp": ts,
            "label": label}  # fmt: skip


def test_a_prediction_then_its_outcome_is_joined_once() -> None:
    state = DictState()
    assert join_event(PREDICTION, prediction("a"), state, TTLS) == []
    assert state.ttls["a"] == timedelta(days=7)
    (joined,) = join_event(OUTCOME, outcome("a"), state, TTLS)
    assert joined == {
        **prediction("a"),
        "label": 1,
        "outcome_timestamp": 4_000,
        "label_delay_ms": 3_000,
    }
    assert state.ttls["a"] == timedelta(days=8)  # label TTL + retention of the joined marker
    assert join_event(OUTCOME, outcome("a", label=0), state, TTLS) == []  # first outcome won
    assert join_event(PREDICTION, prediction("a"), state, TTLS) == []  # duplicate prediction


def test_an_early_outcome_waits_for_its_prediction() -> None:
    state = DictState()
    assert join_event(OUTCOME, outcome("b", ts=900), state, TTLS) == []
    assert state.ttls["b"] == timedelta(days=2)
    assert join_event(OUTCOME, outcome("b", ts=950, label=0), state, TTLS) == []  # duplicate
    (joined,) = join_event(PREDICTION, prediction("b", ts=1_000), state, TTLS)
    assert joined["label"] == 1 and joined["outcome_timestamp"] == 900
    assert joined["label_delay_ms"] == -100
    assert join_event(PREDICTION, prediction("b"), state, TTLS) == []
    assert join_event(OUTCOME, outcome("b"), state, TTLS) == []


def test_a_duplicate_prediction_while_pending_keeps_the_first() -> None:
    state = DictState()
    join_event(PREDICTION, prediction("c", ts=1_000), state, TTLS)
    join_event(PREDICTION, prediction("c", ts=2_000), state, TTLS)
    (joined,) = join_event(OUTCOME, outcome("c", ts=5_000), state, TTLS)
    assert joined["timestamp"] == 1_000 and joined["label_delay_ms"] == 4_000


def test_records_expand_to_their_events_tagged_by_side() -> None:
    assert events_of([1, 2]) == [1, 2] and events_of({"a": 1}) == [{"a": 1}]
    assert tagged(OUTCOME)([{"x": 1}, {"x": 2}]) == [(OUTCOME, {"x": 1}), (OUTCOME, {"x": 2})]
    assert tagged(PREDICTION)({"x": 1}) == [(PREDICTION, {"x": 1})]


def test_the_joined_record_has_the_contract_fields() -> None:
    pred = {**prediction("d"), "features": {"x0": 1.5}, "extra": "kept"}
    assert joined_record(pred, outcome("d", ts=1_250, label=0)) == {
        **pred,
        "label": 0,
        "outcome_timestamp": 1_250,
        "label_delay_ms": 250,
    }


@pytest.mark.parametrize("batch_size", [1, 100])
def test_generated_traffic_joins_every_outcome_exactly_once(batch_size: int) -> None:
    spec = TrafficSpec(
        models=4,
        rate=None,
        events=6_000,
        batch_size=batch_size,
        label_delay_ms=2_000.0,
        unlabeled_share=0.1,
        early_share=0.05,
        duplicate_share=0.05,
        malformed_share=0.0,
        run_id="t",
    )
    truth = Truth()
    states: dict[bytes, DictState] = {}  # Quix scopes state by the message key (the model)
    joined: list[dict[str, Any]] = []
    for record in generate(spec, random.Random(7), truth):
        side = PREDICTION if record.topic == "predictions" else OUTCOME
        state = states.setdefault(record.key, DictState())
        for item_side, event in tagged(side)(json.loads(record.value)):
            joined += join_event(item_side, event, state, TTLS)

    assert truth.early and truth.duplicates  # the traffic has both hard cases
    predictions = {p.prediction_id: p for p in truth.predictions}
    expected = {
        o.prediction_id: (o.model_id, o.label, o.timestamp, predictions[o.prediction_id])
        for o in truth.outcomes
    }
    assert len(joined) == len(truth.outcomes)
    got = {
        j["prediction_id"]: (j["model_id"], j["label"], j["outcome_timestamp"], j) for j in joined
    }
    assert got.keys() == expected.keys()
    for pid, (model_id, label, out_ts, record) in got.items():
        want_model, want_label, want_ts, pred = expected[pid]
        assert (model_id, label, out_ts) == (want_model, want_label, want_ts)
        assert (record["timestamp"], record["score"], record["task"]) == (
            pred.timestamp,
            pred.score,
            pred.task,
        )
        assert record["label_delay_ms"] == want_ts - pred.timestamp


def test_the_command_line_carries_the_worker_settings() -> None:
    args = parse_args(
        ["--predictions", "p", "--outcomes", "o", "--output", "j", "--group", "g",
         "--state-dir", "/tmp/s", "--commit-interval", "0.5", "--label-ttl-ms", "10"]
    )  # fmt: skip
    assert (args.predictions, args.outcomes, args.output, args.group) == ("p", "o", "j", "g")
    assert (args.commit_interval, args.label_ttl_ms, args.partitions) == (0.5, 10, 16)
