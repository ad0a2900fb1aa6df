"""Property tests of the decoder at the edge of the system: whatever bytes arrive, nothing raises,
every event is accounted for once (accepted, or one dead letter of a documented kind), what is
accepted is a valid event of the record's model that can travel on, and dead letters and batch
records keep their byte budgets.

Expectations are derived here from the input (its size, key, JSON shape and each event's own
validation), not from the decoder's answer. `make fuzz` runs the same properties longer.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts.codec import (
    SCHEMAS,
    Limits,
    Rejected,
    _plainly_valid,
    dead_letter,
    decode_record,
    encode_batches,
)
from contracts.schemas import Outcome, Prediction
from tests.unit.fuzz_profile import fuzz_settings, say

KINDS = {
    "empty",
    "too_large",
    "no_key",
    "malformed_json",
    "invalid_event",
    "key_mismatch",
    "future_event_time",
}
WHOLE_RECORD_KINDS = {"empty", "too_large", "no_key", "malformed_json"}
MAX_TS = 10**14  # EpochMs: 0 <= timestamp < 10**14
# The smallest dead-letter budget the envelope is promised to fit: its reason and key are cut to
# 1,000 characters (6 bytes each at worst once JSON-escaped) and its value to what is left.
ENVELOPE_FLOOR = 16_384
# An event nesting deeper than this may be refused as invalid, whatever else it is: the limit
# that keeps it writable (orjson writes 254 levels, a pair's record adds one) is the decoder's.
REFUSABLE_DEPTH = 16

HUGE_INTS = [
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    2**70,
    -(2**70),
    10**30,
    MAX_TS,
    MAX_TS - 1,
    2**31,
    -1,
]
HOSTILE_FLOATS = [1e308, -1e308, -0.0, 5e-324, 1.7976931348623157e308, 1e-300, 0.5, 1.0, 0.0]
HOSTILE_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\x1f",
    "\x7f",
    "\x85",
    "\u2028",
    "\ud800",  # a lone surrogate: escaped as \ud800, or raw (invalid UTF-8), by the encoder below
    "\udfff",
    "é",
    "😀",
    "\ufffd",
    " ",
    "__HIVE_DEFAULT_PARTITION__",
    "a:version:v1",
    "../x",
    "%3A",
    "x" * 241,
    "é" * 121,
    "binary",
    "regression",
    "1",
]
FIELDS = [
    "prediction_id",
    "model_id",
    "model_version",
    "timestamp",
    "task",
    "score",
    "features",
    "label",
    "schema_version",
]
# Nesting depths around orjson's limits: it reads up to 1,024 levels and writes up to 254.
DEPTHS = [1, 2, 64, 200, 253, 254, 255, 256, 300, 1000, 1023, 1024, 1025, 2000]
SENTINEL = "DEEP-{}-SENTINEL-7f3a"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_FLOATS),
    st.text(max_size=12),
    st.sampled_from(HOSTILE_STRINGS),
)
deep_values = st.sampled_from(DEPTHS).map(lambda depth: SENTINEL.format(depth))
json_values = st.recursive(
    st.one_of(scalars, deep_values),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=6), st.sampled_from(FIELDS)), children, max_size=4
        ),
    ),
    max_leaves=10,
)

ids = st.one_of(
    st.sampled_from(["m1", "m2", "p1", "v1", "a:version:v1", "é", "😀", "x/../y", "%41", "a b"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16),
)
MODELS = ["m1", "m2", "a:version:v1"]
timestamps = st.one_of(
    st.integers(0, MAX_TS - 1), st.sampled_from([0, MAX_TS - 1, 1_700_000_000_000])
)
probabilities = st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 0.0, 1.0, 5e-324, 0.5]))
finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_FLOATS),
    st.integers(-(2**53), 2**53),
)
features = st.dictionaries(
    st.one_of(st.text(max_size=8), st.sampled_from(HOSTILE_STRINGS)),
    st.one_of(finite, st.text(max_size=8), st.sampled_from(HOSTILE_STRINGS)),
    max_size=5,
)


@st.composite
def predictions(draw: st.DrawFn, model_id: str | None = None) -> dict[str, Any]:
    task = draw(st.sampled_from(["binary", "regression"]))
    event: dict[str, Any] = {
        "prediction_id": draw(ids),
        "model_id": model_id if model_id is not None else draw(st.sampled_from(MODELS)),
        "model_version": draw(ids),
        "timestamp": draw(timestamps),
        "task": task,
        "score": draw(probabilities if task == "binary" else finite),
    }
    if draw(st.booleans()):
        event["features"] = draw(st.one_of(st.none(), features))
    if draw(st.integers(0, 4)) == 0:
        event["schema_version"] = draw(st.integers(1, 2**31 - 1))
    if draw(st.integers(0, 3)) == 0:
        event[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
    return event


@st.composite
def outcomes(draw: st.DrawFn, model_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "prediction_id": draw(ids),
        "model_id": model_id if model_id is not None else draw(st.sampled_from(MODELS)),
        "timestamp": draw(timestamps),
        "label": draw(st.one_of(st.sampled_from([0, 1, 0.5, 7, 1e200, -1e308]), finite)),
    }
    if draw(st.integers(0, 3)) == 0:
        event[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
    return event


@st.composite
def near_valid(draw: st.DrawFn, model_id: str | None = None, topic: str | None = None) -> Any:
    """A valid event, or one with a field deleted, replaced by a hostile value, or added;
    mostly of `topic`'s kind when one is given."""
    if topic is None or draw(st.integers(0, 4)) == 0:
        event = draw(st.one_of(predictions(model_id), outcomes(model_id)))
    else:
        event = draw(predictions(model_id) if topic == "predictions" else outcomes(model_id))
    how = draw(st.sampled_from(["keep", "keep", "keep", "delete", "replace", "replace", "add"]))
    if how == "delete":
        event.pop(draw(st.sampled_from(sorted(event))))
    elif how == "replace":
        event[draw(st.sampled_from(sorted(event)))] = draw(json_values)
    elif how == "add":
        event[draw(st.sampled_from(FIELDS))] = draw(json_values)
    return event


def deep_json(depth: int) -> str:
    """`depth` levels of alternating arrays and objects, written out (no encoder recursion)."""
    opens, closes = [], []
    for level in range(depth):
        if level % 2:
            opens.append('{"k":')
            closes.append("}")
        else:
            opens.append("[")
            closes.append("]")
    return "".join(opens) + "0" + "".join(reversed(closes))


def to_json(value: Any, ascii_only: bool) -> bytes:
    """JSON text of `value`, integers of any size included; lone surrogates come out escaped
    (`ascii_only`) or as raw surrogate bytes (invalid UTF-8); sentinels become deep nesting."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)
    for depth in DEPTHS:
        text = text.replace(json.dumps(SENTINEL.format(depth)), deep_json(depth))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """Bytes a broken producer or a bit flip could make of a JSON text."""
    how = draw(st.sampled_from(["cut", "flip", "insert", "nan", "bom", "trail"]))
    at = draw(st.integers(0, len(raw)))
    if how == "cut":
        return raw[:at]
    if how == "flip" and raw:
        at = min(at, len(raw) - 1)
        return raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    fragment = {
        "insert": draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b",", b"}"])),
        "nan": draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])),
        "bom": b"\xef\xbb\xbf",
        "trail": b" x",
        "flip": b"",
    }[how]
    if how == "bom":
        return fragment + raw
    if how == "trail":
        return raw + fragment
    return raw[:at] + fragment + raw[at:]


@st.composite
def records(draw: st.DrawFn) -> tuple[str, bytes | None, bytes | None]:
    """(topic, key, value) of one record: raw bytes, arbitrary JSON, one event or a batch."""
    topic = draw(st.sampled_from(sorted(SCHEMAS)))
    model_id = draw(st.sampled_from(MODELS))
    shape = draw(st.sampled_from(["bytes", "json", "event", "event", "batch", "batch", "none"]))
    if shape == "none":
        value: bytes | None = None
    elif shape == "bytes":
        value = draw(st.binary(max_size=64))
    else:
        if shape == "json":
            body = draw(json_values)
        elif shape == "event":
            body = draw(near_valid(model_id, topic))
        else:
            items = st.one_of(near_valid(model_id, topic), near_valid(model_id, topic), json_values)
            body = draw(st.lists(items, max_size=8))
        value = to_json(body, draw(st.booleans()))
        if draw(st.integers(0, 5)) == 0:
            value = draw(mutated(value))
    key = draw(
        st.one_of(
            st.just(model_id.encode()),
            st.just(model_id.encode()),
            st.just(model_id.encode()),
            st.none(),
            st.binary(max_size=12),
            st.sampled_from([b"\xff\xfe", b"", b"m1\x00", "é".encode("latin-1")]),
        )
    )
    return topic, key, value


limits = st.builds(
    Limits,
    max_events=st.integers(0, 12),
    max_bytes=st.one_of(st.just(10**7), st.just(10**7), st.integers(0, 4000)),
)
not_after = st.one_of(st.none(), timestamps)


def validates(schema: type[BaseModel], item: Any) -> bool:
    try:
        schema.model_validate(item)
    except ValidationError:
        return False
    return True


def expected_kind(
    schema: type[BaseModel], item: Any, model_id: str, not_after_ms: int | None
) -> str | None:
    """The dead-letter kind one event deserves, None when it is valid."""
    if not isinstance(item, dict) or not validates(schema, item):
        return "invalid_event"
    if item["model_id"] != model_id:
        return "key_mismatch"
    if not_after_ms is not None and item["timestamp"] > not_after_ms:
        return "future_event_time"
    return None


def check_decode(
    topic: str, key: bytes | None, value: bytes | None, lim: Limits, not_after_ms: int | None
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Decode one record and check every property; returns what the decoder returned."""
    say(f"decode_record({topic!r}, {key!r}, {value!r}, {lim!r}, {not_after_ms!r})")
    schema = SCHEMAS[topic]
    good, bad = decode_record(schema, key, value, lim, not_after_ms)
    raw = value or b""
    for rejected in bad:
        assert isinstance(rejected, Rejected)
        assert isinstance(rejected.reason, str) and rejected.reason.strip()
        assert rejected.kind in KINDS
        assert isinstance(rejected.value, bytes)

    whole: str | None = None
    body: Any = None
    if not raw:
        whole = "empty"
    elif len(raw) > lim.max_bytes:
        whole = "too_large"
    elif key is None:
        whole = "no_key"
    else:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            whole = "malformed_json"
        else:
            if isinstance(body, list) and len(body) > lim.max_events:
                whole = "too_large"
            elif not isinstance(body, dict | list):
                whole = "malformed_json"
    if whole is not None:
        assert good == []
        assert [(r.kind, r.index, r.value) for r in bad] == [(whole, None, raw)]
        return good, bad

    assert key is not None
    model_id = key.decode("utf-8", "replace")
    batch = isinstance(body, list)
    items = body if batch else [body]
    by_index = {(r.index if batch else 0): r for r in bad}
    assert len(by_index) == len(bad)  # one dead letter per event at most
    assert len(good) + len(bad) == len(items)
    accepted = iter(good)
    for index, item in enumerate(items):
        want = expected_kind(schema, item, model_id, not_after_ms)
        found = by_index.get(index)
        if found is None:
            assert want is None, (index, want)
            assert next(accepted) == item
            continue
        rejected = found
        # How deep an unknown field may nest is the decoder's choice, beyond a sane depth.
        assert rejected.kind == want or (
            rejected.kind == "invalid_event" and nesting(item) > REFUSABLE_DEPTH
        ), (index, rejected.kind, want)
        if batch:
            assert rejected.index == index
            if rejected.value != raw:  # the record's bytes when the event's cannot be written
                assert orjson.loads(rejected.value) == item
        else:
            assert (rejected.index, rejected.value) == (None, raw)
    for event in good:
        schema.model_validate(event)
        assert event["model_id"] == model_id
        assert not_after_ms is None or event["timestamp"] <= not_after_ms
        # An accepted event travels on: into the join's state (inside a pair's record) and the
        # joined records, both written with orjson.
        assert orjson.loads(orjson.dumps({"pred": event})) == {"pred": event}
    return good, bad


def nesting(value: Any) -> int:
    """How many arrays and objects deep `value` goes (iterative: any depth)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth + 1)
            stack += [
                (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
            ]
    return deepest


def check_envelope(
    rejected: Rejected, topic: str, key: bytes | None, max_bytes: int | None
) -> dict[str, Any]:
    say(f"dead_letter({rejected!r}, {topic!r}, 3, 2**40, {key!r}, {max_bytes!r})")
    envelope = dead_letter(rejected, topic, 3, 2**40, key, max_bytes)
    decoded = json.loads(envelope.decode("utf-8"))  # strict JSON, strict UTF-8
    assert isinstance(decoded, dict)
    assert decoded["source_topic"] == topic
    assert (decoded["source_partition"], decoded["source_offset"]) == (3, 2**40)
    assert decoded["index"] == rejected.index
    carried = base64.b64decode(decoded["value_b64"], validate=True)
    if decoded.get("value_truncated"):
        assert max_bytes is not None
        assert decoded["value_bytes"] == len(rejected.value)
        assert rejected.value.startswith(carried)
        assert rejected.reason.startswith(decoded["reason"]) and decoded["reason"]
    else:
        assert carried == rejected.value
        assert decoded["reason"] == rejected.reason
        expected_key = None if key is None else key.decode("utf-8", "replace")
        assert decoded["key"] == expected_key
    if max_bytes is not None and max_bytes >= ENVELOPE_FLOOR:
        assert len(envelope) <= max_bytes
    return decoded


# -- the decoder ----------------------------------------------------------------------------------
@fuzz_settings(300)
@given(
    record=records(),
    lim=limits,
    not_after_ms=not_after,
    envelope_bytes=st.one_of(st.none(), st.integers(ENVELOPE_FLOOR, 70_000), st.integers(0, 500)),
)
def test_every_event_is_accepted_or_dead_lettered_once(
    record: tuple[str, bytes | None, bytes | None],
    lim: Limits,
    not_after_ms: int | None,
    envelope_bytes: int | None,
) -> None:
    topic, key, value = record
    _, bad = check_decode(topic, key, value, lim, not_after_ms)
    for rejected in bad:
        check_envelope(rejected, topic, key, envelope_bytes)


@fuzz_settings(120)
@given(
    topic=st.sampled_from(sorted(SCHEMAS)),
    events=st.lists(near_valid("m1"), min_size=1, max_size=6),
    ascii_only=st.booleans(),
    not_after_ms=not_after,
)
def test_a_batch_equals_its_events_one_by_one(
    topic: str, events: list[Any], ascii_only: bool, not_after_ms: int | None
) -> None:
    """A batch decodes to what its events decode to alone (only the dead letters' index and
    bytes differ): batching is a transport detail."""
    big = Limits(100, 10**7)
    value = to_json(events, ascii_only)
    good, bad = check_decode(topic, b"m1", value, big, not_after_ms)
    if [r.kind for r in bad] == ["malformed_json"]:
        return  # a lone surrogate written raw: not JSON at all, as a batch or alone
    one_by_one_good: list[dict[str, Any]] = []
    one_by_one_bad: list[tuple[int, str]] = []
    for index, event in enumerate(events):
        g, b = check_decode(topic, b"m1", to_json(event, ascii_only), big, not_after_ms)
        assert [r.kind for r in b if r.kind in WHOLE_RECORD_KINDS] == []
        one_by_one_good += g
        one_by_one_bad += [(index, r.kind) for r in b]
    assert good == one_by_one_good
    assert [(r.index, r.kind) for r in bad if r.index is not None] == [
        (i, k) for i, k in one_by_one_bad
    ]


# -- dead letters ---------------------------------------------------------------------------------
@fuzz_settings(200)
@given(
    reason=st.one_of(
        st.text(min_size=1), st.sampled_from(HOSTILE_STRINGS[1:]).map(lambda s: s * 900)
    ),
    index=st.one_of(st.none(), st.integers(0, 10**6)),
    value=st.tuples(st.binary(max_size=64), st.integers(1, 3000)).map(lambda t: t[0] * t[1]),
    kind=st.sampled_from(sorted(KINDS)),
    key=st.one_of(
        st.none(),
        st.binary(max_size=32),
        st.tuples(
            st.sampled_from([b"\xff", b"\x01", "é".encode(), b"a"]), st.integers(1, 5000)
        ).map(lambda t: t[0] * t[1]),
    ),
    topic=st.sampled_from(["predictions", "outcomes", "joined"]),
    max_bytes=st.one_of(st.none(), st.integers(ENVELOPE_FLOOR, 200_000)),
)
def test_a_dead_letter_is_json_within_its_budget(
    reason: str,
    index: int | None,
    value: bytes,
    kind: str,
    key: bytes | None,
    topic: str,
    max_bytes: int | None,
) -> None:
    reason = reason.encode("utf-8", "replace").decode("utf-8")  # a reason is text, no surrogates
    check_envelope(Rejected(reason, index, value, kind), topic, key, max_bytes)


# -- batch records --------------------------------------------------------------------------------
@st.composite
def accepted_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events as the decoder hands them on (valid, decoded by orjson), of a few models."""
    events = []
    for candidate in draw(st.lists(st.one_of(predictions(), outcomes()), max_size=25)):
        schema = Prediction if "task" in candidate else Outcome
        key = candidate["model_id"].encode()
        events += decode_record(schema, key, to_json(candidate, True), Limits(1, 10**7))[0]
    return events


@fuzz_settings(120)
@given(
    events=accepted_events(),
    max_events=st.integers(1, 6),
    max_bytes=st.one_of(st.none(), st.integers(2, 3000)),
)
def test_batches_carry_every_event_once_in_order_within_budget(
    events: list[dict[str, Any]], max_events: int, max_bytes: int | None
) -> None:
    say(f"encode_batches({events!r}, {max_events!r}, model_id, {max_bytes!r})")
    records = encode_batches(events, max_events, lambda e: e["model_id"], max_bytes)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_key.setdefault(event["model_id"], []).append(event)
    carried: dict[str, list[dict[str, Any]]] = {}
    for key, value in records:
        batch = orjson.loads(value)
        assert isinstance(batch, list) and 1 <= len(batch) <= max_events
        assert max_bytes is None or len(value) <= max_bytes or len(batch) == 1
        carried.setdefault(key.decode(), []).extend(batch)
        schema = Prediction if "task" in batch[0] else Outcome
        if all(("task" in e) == ("task" in batch[0]) for e in batch):
            good, bad = decode_record(schema, key, value, Limits(max_events, len(value)))
            assert (good, bad) == (batch, [])
    assert carried == by_key
    assert sum(len(orjson.loads(v)) for _, v in records) == len(events)


# -- bugs this harness found (fixed) -------------------------------------------------------------
def test_a_rejected_deep_event_in_a_batch_is_dead_lettered() -> None:
    """A rejected batch event was re-encoded with orjson, which writes at most 254 levels of
    nesting (it reads 1,024): the decoder raised. Now the dead letter carries the record."""
    value = b'[{"x":' + deep_json(300).encode() + b"}]"
    check_decode("predictions", b"m1", value, Limits(10, 10**7), None)


def test_an_accepted_event_can_be_written_again() -> None:
    """A valid event with an unknown field nested 255-1,023 levels deep was accepted, and orjson
    could not write it to the join's state or `joined`. Now it is refused at the door."""
    event = {
        "prediction_id": "p",
        "model_id": "m1",
        "model_version": "v",
        "timestamp": 1,
        "task": "binary",
        "score": 0.5,
    }
    value = to_json({**event, "x": SENTINEL.format(300)}, True)
    check_decode("predictions", b"m1", value, Limits(10, 10**7), None)


@fuzz_settings(400)
@given(event=near_valid(), topic=st.sampled_from(sorted(SCHEMAS)))
def test_the_fast_path_accepts_only_what_pydantic_accepts(event: Any, topic: str) -> None:
    """The decoder's plain-type fast path never lets through an event pydantic would refuse."""
    schema = SCHEMAS[topic]
    if isinstance(event, dict) and _plainly_valid(schema, event):
        schema.model_validate(event)


def test_the_fast_path_takes_the_common_events() -> None:
    """It is a fast path only if the usual events take it (pydantic is the slow one)."""
    prediction = {
        "schema_version": 1,
        "prediction_id": "run-1",
        "model_id": "model-001",
        "model_version": "v1",
        "timestamp": 1_764_480_000_000,
        "task": "binary",
        "score": 0.25,
    }
    outcome = {"prediction_id": "run-1", "model_id": "model-001", "timestamp": 1, "label": 1}
    assert _plainly_valid(Prediction, prediction)
    assert _plainly_valid(Prediction, {**prediction, "features": {"x": 1.5, "c": "red"}})
    assert _plainly_valid(Outcome, outcome) and _plainly_valid(Outcome, {**outcome, "label": 0.5})
    assert not _plainly_valid(Prediction, {**prediction, "score": 1})  # pydantic decides
    assert not _plainly_valid(Outcome, {**outcome, "label": True})
