"""Decoding Kafka records into valid events and dead letters, and the dead-letter envelope."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from contracts.codec import Limits, Rejected, dead_letter, decode_record, encode_batches
from contracts.schemas import Outcome, Prediction

LIMITS = Limits(max_events=1000, max_bytes=1_000_000)
TS = 1_700_000_000_000


def pred(pid: str = "p1", **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "prediction_id": pid,
        "model_id": "m1",
        "model_version": "v1",
        "timestamp": TS,
        "task": "binary",
        "score": 0.25,
    }
    event.update(changes)
    return event


def out(pid: str = "p1", **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"prediction_id": pid, "model_id": "m1", "timestamp": TS, "label": 1}
    event.update(changes)
    return event


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_single_valid_prediction() -> None:
    good, bad = decode_record(Prediction, b"m1", raw(pred()), LIMITS)
    assert good == [pred()]
    assert bad == []


def test_a_record_without_a_key_is_a_dead_letter() -> None:
    value = raw(out(label=0))
    good, bad = decode_record(Outcome, None, value, LIMITS)
    assert good == []
    assert bad == [Rejected("record without a key (the model_id)", None, value, "no_key")]


def test_batch_with_one_bad_event_dead_letters_it_alone() -> None:
    events = [pred("a"), pred("b", score="abc"), pred("c"), pred("d")]
    good, bad = decode_record(Prediction, b"m1", raw(events), LIMITS)
    assert good == [pred("a"), pred("c"), pred("d")]
    assert len(bad) == 1
    assert bad[0].index == 1
    assert "score" in bad[0].reason
    assert json.loads(bad[0].value) == pred("b", score="abc")


def test_batch_of_valid_events_keeps_their_order() -> None:
    events = [pred(f"p{i}", score=i / 10) for i in range(10)]
    good, bad = decode_record(Prediction, b"m1", raw(events), LIMITS)
    assert good == events
    assert bad == []


def test_batch_item_that_is_not_an_object() -> None:
    good, bad = decode_record(Outcome, b"m1", raw([out("a"), 7, out("b")]), LIMITS)
    assert [e["prediction_id"] for e in good] == ["a", "b"]
    assert [(r.index, r.value) for r in bad] == [(1, b"7")]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b'{"prediction_id": "p1", ', "malformed JSON"),
        (b"\xff\xfe not utf-8", "malformed JSON"),
        (b"", "empty"),
        (b'"just a string"', "neither"),
        (b"42", "neither"),
    ],
)
def test_whole_record_rejections_carry_the_record(value: bytes, why: str) -> None:
    good, bad = decode_record(Prediction, b"m1", value, LIMITS)
    assert good == []
    assert len(bad) == 1
    assert why in bad[0].reason
    assert bad[0].index is None
    assert bad[0].value == value


def test_missing_value_is_empty() -> None:
    good, bad = decode_record(Prediction, b"m1", None, LIMITS)
    assert (good, [(r.reason, r.index, r.value) for r in bad]) == (
        [],
        [("empty message", None, b"")],
    )


def test_oversized_record_is_rejected_whole() -> None:
    value = raw([pred(f"p{i}") for i in range(20)])
    limits = Limits(max_events=1000, max_bytes=len(value) - 1)
    good, bad = decode_record(Prediction, b"m1", value, limits)
    assert good == []
    assert [(r.index, r.value) for r in bad] == [(None, value)]
    assert str(len(value)) in bad[0].reason
    # one byte more allowed: accepted
    good, bad = decode_record(Prediction, b"m1", value, Limits(1000, len(value)))
    assert (len(good), bad) == (20, [])


def test_batch_over_max_events_is_rejected_whole() -> None:
    events = [pred(f"p{i}") for i in range(6)]
    good, bad = decode_record(Prediction, b"m1", raw(events), Limits(5, 1_000_000))
    assert good == []
    assert [(r.index, r.value) for r in bad] == [(None, raw(events))]
    assert "6" in bad[0].reason
    good, bad = decode_record(Prediction, b"m1", raw(events[:5]), Limits(5, 1_000_000))
    assert (len(good), bad) == (5, [])


@pytest.mark.parametrize(
    "field", ["prediction_id", "model_id", "model_version", "timestamp", "task", "score"]
)
def test_prediction_missing_a_required_field(field: str) -> None:
    event = pred()
    del event[field]
    good, bad = decode_record(Prediction, b"m1", raw(event), LIMITS)
    assert good == []
    assert len(bad) == 1
    assert field in bad[0].reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", "abc"),
        ("score", "0.5"),  # a number as text: would reach the metrics as text
        ("score", True),
        ("score", None),
        ("timestamp", 1.5),
        ("timestamp", "1700000000000"),
        ("timestamp", True),
        ("timestamp", -1),
        ("task", "multiclass"),
        ("prediction_id", 17),
        ("prediction_id", ""),
        ("features", {"age": True}),
        ("features", {"tags": ["a"]}),
        ("features", [1, 2]),
    ],
)
def test_prediction_with_a_wrong_type(field: str, value: Any) -> None:
    good, bad = decode_record(Prediction, b"m1", raw(pred(**{field: value})), LIMITS)
    assert good == []
    assert len(bad) == 1
    assert field in bad[0].reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", True), ("label", False), ("label", "1"), ("label", None), ("timestamp", 1.5)],
)
def test_outcome_with_a_wrong_type(field: str, value: Any) -> None:
    good, bad = decode_record(Outcome, b"m1", raw(out(**{field: value})), LIMITS)
    assert good == []
    assert len(bad) == 1
    assert field in bad[0].reason


@pytest.mark.parametrize("score", [-0.01, 1.01, 5.0])
def test_binary_score_outside_unit_interval_is_rejected(score: float) -> None:
    good, bad = decode_record(Prediction, b"m1", raw(pred(score=score)), LIMITS)
    assert good == []
    assert "[0, 1]" in bad[0].reason


@pytest.mark.parametrize("score", [0.0, 1.0, 0, 1])
def test_binary_score_at_the_bounds_is_accepted(score: float) -> None:
    good, bad = decode_record(Prediction, b"m1", raw(pred(score=score)), LIMITS)
    assert (good, bad) == ([pred(score=score)], [])


def test_regression_score_may_be_any_finite_number() -> None:
    events = [pred("a", task="regression", score=-1234.5), pred("b", task="regression", score=7)]
    good, bad = decode_record(Prediction, b"m1", raw(events), LIMITS)
    assert (good, bad) == (events, [])


def test_key_must_match_model_id() -> None:
    events = [pred("a"), pred("b", model_id="m2")]
    good, bad = decode_record(Prediction, b"m1", raw(events), LIMITS)
    assert good == [pred("a")]
    assert [r.index for r in bad] == [1]
    assert "'m1'" in bad[0].reason and "'m2'" in bad[0].reason


def test_unknown_fields_are_accepted_and_kept() -> None:
    event = pred(region="eu", extra={"nested": [1, 2]}, features={"age": 41, "city": "Oslo"})
    good, bad = decode_record(Prediction, b"m1", raw(event), LIMITS)
    assert bad == []
    assert good == [
        {
            "prediction_id": "p1",
            "model_id": "m1",
            "model_version": "v1",
            "timestamp": TS,
            "task": "binary",
            "score": 0.25,
            "region": "eu",
            "extra": {"nested": [1, 2]},
            "features": {"age": 41, "city": "Oslo"},
        }
    ]


def test_dead_letter_envelope_of_a_whole_record() -> None:
    value = b'{"broken": '
    (rejected,) = decode_record(Prediction, b"m1", value, LIMITS)[1]
    envelope = json.loads(dead_letter(rejected, "predictions", 3, 12345, b"m1"))
    assert set(envelope) == {
        "reason",
        "source_topic",
        "source_partition",
        "source_offset",
        "index",
        "key",
        "value_b64",
    }
    assert envelope["reason"].startswith("malformed JSON")
    assert envelope["source_topic"] == "predictions"
    assert envelope["source_partition"] == 3
    assert envelope["source_offset"] == 12345
    assert envelope["index"] is None
    assert envelope["key"] == "m1"
    assert base64.b64decode(envelope["value_b64"]) == value


def test_dead_letter_envelope_of_a_batch_event() -> None:
    events = [out("a"), out("b", label="yes"), out("c")]
    _, (rejected,) = decode_record(Outcome, b"m1", raw(events), LIMITS)
    envelope = json.loads(dead_letter(rejected, "outcomes", 0, 7, b"m1"))
    assert envelope["index"] == 1
    assert envelope["source_topic"] == "outcomes"
    assert (envelope["source_partition"], envelope["source_offset"]) == (0, 7)
    assert "label" in envelope["reason"]
    assert json.loads(base64.b64decode(envelope["value_b64"])) == out("b", label="yes")


def test_dead_letter_envelope_without_a_key() -> None:
    envelope = json.loads(dead_letter(Rejected("empty message", None, b""), "outcomes", 1, 2, None))
    assert envelope["key"] is None
    assert envelope["value_b64"] == ""


def test_encode_batches_groups_by_model_in_bounded_records() -> None:
    events = [pred(f"a{i}", model_id="a") for i in range(5)] + [pred("b0", model_id="b")]
    records = encode_batches(events, 2, key_of=lambda e: e["model_id"])
    assert [(k, [e["prediction_id"] for e in json.loads(v)]) for k, v in records] == [
        (b"a", ["a0", "a1"]),
        (b"a", ["a2", "a3"]),
        (b"a", ["a4"]),
        (b"b", ["b0"]),
    ]
    for key, value in records:  # and they decode back to the same events
        good, bad = decode_record(Prediction, key, value, LIMITS)
        assert bad == [] and all(e["model_id"] == key.decode() for e in good)


def test_an_event_stamped_beyond_the_accepted_future_is_a_dead_letter_its_neighbours_pass() -> None:
    now = 1_700_000_000_000
    ok, ahead = pred(timestamp=now + 60_000), pred(timestamp=now + 60_001)
    value = json.dumps([ok, ahead]).encode()
    good, bad = decode_record(Prediction, b"m1", value, LIMITS, not_after_ms=now + 60_000)
    assert good == [ok]
    assert [(b.index, b.kind) for b in bad] == [(1, "future_event_time")]
    assert str(now + 60_001) in bad[0].reason and str(now + 60_000) in bad[0].reason


def test_reason_kinds_name_the_class_of_each_rejection() -> None:
    kinds = {
        b"": "empty",
        b"{": "malformed_json",
        b"42": "malformed_json",
        json.dumps({"model_id": "m1"}).encode(): "invalid_event",
        raw(pred(model_id="m2")): "key_mismatch",
    }
    for value, kind in kinds.items():
        _, bad = decode_record(Prediction, b"m1", value, LIMITS)
        assert [b.kind for b in bad] == [kind], value
    _, bad = decode_record(Prediction, b"m1", raw(pred()), Limits(max_events=1, max_bytes=10))
    assert [b.kind for b in bad] == ["too_large"]


def test_output_records_are_split_by_bytes_and_keep_every_event_once_in_order() -> None:
    events = [pred(f"p{i}", filler="x" * (100 * (i % 7))) for i in range(200)]
    budget = 4_000
    records = encode_batches(
        events, max_events=1000, key_of=lambda e: e["model_id"], max_bytes=budget
    )
    assert all(len(value) <= budget for _, value in records)
    decoded = [e for _, value in records for e in json.loads(value)]
    assert decoded == events
    # greedy: a record closes only when the next event would not fit
    sizes = [len(json.dumps(e, separators=(",", ":"))) for e in events]
    cursor = 0
    for _, value in records[:-1]:
        count = len(json.loads(value))
        cursor += count
        assert len(value) + 1 + sizes[cursor] > budget


def test_records_within_both_bounds_are_slices_of_max_events_in_compact_json() -> None:
    events = [pred(f"p{i}", features={"f": i / 3}) for i in range(250)]
    records = encode_batches(events, 100, lambda e: e["model_id"], max_bytes=1_000_000)
    expected = [
        json.dumps(events[start : start + 100], separators=(",", ":")).encode()
        for start in (0, 100, 200)
    ]
    assert records == [(b"m1", value) for value in expected]


def test_one_slice_over_the_byte_budget_packs_the_whole_group_greedily() -> None:
    events = [pred(f"p{i}") for i in range(6)] + [pred("p6", filler="x" * 3_000)]
    one = len(json.dumps(events[0], separators=(",", ":")))
    budget = 3 * one + 4  # three small events a record; the big one alone
    records = encode_batches(events, 4, lambda e: e["model_id"], max_bytes=budget)
    assert [[e["prediction_id"] for e in json.loads(v)] for _, v in records] == [
        ["p0", "p1", "p2"],
        ["p3", "p4", "p5"],
        ["p6"],
    ]


def test_an_event_larger_than_the_budget_travels_alone() -> None:
    big, small = pred("big", filler="y" * 5_000), pred("small")
    records = encode_batches([small, big, small], 1000, lambda e: e["model_id"], max_bytes=1_000)
    assert [len(json.loads(v)) for _, v in records] == [1, 1, 1]


def test_a_dead_letter_of_a_huge_record_is_cut_to_its_budget_and_says_so() -> None:
    value = b"z" * 1_000_000
    envelope = dead_letter(
        Rejected("too big", None, value, "too_large"), "t", 1, 2, b"m1", max_bytes=1_032_768
    )
    assert len(envelope) <= 1_032_768
    body = json.loads(envelope)
    assert body["value_truncated"] is True and body["value_bytes"] == 1_000_000
    kept = base64.b64decode(body["value_b64"])
    assert value.startswith(kept) and len(kept) > 700_000
    small = json.loads(dead_letter(Rejected("r", 0, b"abc"), "t", 1, 2, None, max_bytes=10_000))
    assert "value_truncated" not in small and base64.b64decode(small["value_b64"]) == b"abc"
