"""Decode a Kafka record into valid events and dead letters. Pure.

A record carries one event (a JSON object) or a batch of events of one model (a JSON array).
Each event is validated on its own; a bad event becomes a dead letter with its index and its
neighbours go on. Valid events are returned as the dicts they arrived as (unknown fields kept),
since the joined record carries the prediction's fields as they are.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from contracts.ids import plain_id, plain_repeated_id
from contracts.schemas import EXACT_FLOAT_INT, INT32_MAX, MAX_EPOCH_MS, Outcome, Prediction

Kind = type[BaseModel]
SCHEMAS: dict[str, Kind] = {"predictions": Prediction, "outcomes": Outcome}
KNOWN_FIELDS: dict[Kind, frozenset[str]] = {
    kind: frozenset(kind.model_fields) for kind in SCHEMAS.values()
}


@dataclass(frozen=True)
class Limits:
    max_events: int
    max_bytes: int


@dataclass(frozen=True)
class Rejected:
    """One dead letter: why, and the bytes it concerns (the event's, or the whole record's).

    `kind` is the reason's class, a short fixed word: the label of
    `runway_dead_letters_total{reason}` (the full reason names values and would not do as one).
    """

    reason: str
    index: int | None
    value: bytes
    kind: str = "invalid_event"


def decode_record(
    schema: Kind,
    key: bytes | None,
    value: bytes | None,
    limits: Limits,
    not_after_ms: int | None = None,
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """`not_after_ms`: the latest event time accepted (wall clock + allowed skew); an event
    stamped later is a dead letter, so it moves no clock of the join."""
    raw = value or b""
    if not raw:
        return [], [Rejected("empty message", None, raw, "empty")]
    if len(raw) > limits.max_bytes:
        reason = f"message of {len(raw)} bytes exceeds {limits.max_bytes}"
        return [], [Rejected(reason, None, raw, "too_large")]
    if key is None:
        # The key (the model id) is what partitions a model's events together; without one
        # the record may sit on any partition, beside another model's state.
        return [], [Rejected("record without a key (the model_id)", None, raw, "no_key")]
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [], [Rejected(f"malformed JSON: {exc}", None, raw, "malformed_json")]
    if isinstance(body, dict):
        items, batch = [body], False
    elif isinstance(body, list):
        if len(body) > limits.max_events:
            reason = f"batch of {len(body)} events exceeds {limits.max_events}"
            return [], [Rejected(reason, None, raw, "too_large")]
        items, batch = body, True
    else:
        reason = "message is neither a JSON object nor an array"
        return [], [Rejected(reason, None, raw, "malformed_json")]
    model_id = key.decode("utf-8", "replace") if key is not None else None
    good: list[dict[str, Any]] = []
    bad: list[Rejected] = []
    for index, item in enumerate(items):
        problem = _check(schema, item, model_id)
        if problem is None and not_after_ms is not None and item["timestamp"] > not_after_ms:
            problem = (
                "future_event_time",
                f"timestamp {item['timestamp']} is beyond the latest accepted event time "
                f"{not_after_ms} (wall clock + RUNWAY_MAX_FUTURE_SKEW_MS)",
            )
        if problem is None:
            good.append(item)
        else:
            kind, reason = problem
            bad.append(
                Rejected(reason, index if batch else None, _event_bytes(item, batch, raw), kind)
            )
    return good, bad


# The fast path: pydantic's validation of an event costs more than everything else the decoder
# does for it. `_plainly_valid` accepts the common shape of a valid event with plain type checks
# and sends everything else (ints where floats are usual, long ids, features with ints, any
# doubt) to pydantic, which decides and words the error. It only ever accepts what pydantic
# accepts (a property test holds it to that); it never refuses anything itself.
_TASKS = ("binary", "regression")


def _plain_common(item: dict[str, Any]) -> bool:
    version = item.get("schema_version", 1)
    ts = item.get("timestamp")
    return (
        type(version) is int
        and 1 <= version <= INT32_MAX
        and type(ts) is int
        and 0 <= ts < MAX_EPOCH_MS
        and plain_id(item.get("prediction_id"))
        and plain_repeated_id(item.get("model_id"))
    )


def _plainly_valid(schema: Kind, item: dict[str, Any]) -> bool:
    if not _plain_common(item):
        return False
    if schema is Prediction:
        score, task, features = item.get("score"), item.get("task"), item.get("features")
        if not (
            type(score) is float
            and type(task) is str
            and task in _TASKS
            and plain_repeated_id(item.get("model_version"))
        ):
            return False
        if task == "binary":
            if not 0.0 <= score <= 1.0:
                return False
        elif not math.isfinite(score):
            return False
        return features is None or (
            type(features) is dict
            and all(
                type(name) is str and type(value) in (float, str)
                for name, value in features.items()
            )
        )
    if schema is Outcome:
        label = item.get("label")
        if type(label) is float:
            return math.isfinite(label)
        return type(label) is int and abs(label) <= EXACT_FLOAT_INT
    return False


# Unknown fields travel on as they came, into the join's state and onto `joined`, all written
# with orjson, which reads 1,024 levels of nesting but writes only 254: an unknown field nested
# deeper than this is refused at the door rather than failing the checkpoint.
MAX_NESTING = 32


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels deep in `value` (a scalar: 0 levels)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _check(schema: Kind, item: Any, model_id: str | None) -> tuple[str, str] | None:
    """(kind, reason) of what is wrong with one event, None when it is valid."""
    if not isinstance(item, dict):
        return "invalid_event", "event is not a JSON object"
    if not _plainly_valid(schema, item):
        try:
            schema.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            return "invalid_event", f"invalid {schema.__name__.lower()}: {where}: {first['msg']}"
    if model_id is not None and item["model_id"] != model_id:
        return "key_mismatch", f"key {model_id!r} does not match model_id {item['model_id']!r}"
    known = KNOWN_FIELDS[schema]
    if item.keys() <= known:  # the usual event: no unknown field, no set built
        return None
    for name in item.keys() - known:
        if isinstance(item[name], dict | list) and _nests_deeper(item[name], MAX_NESTING):
            reason = f"unknown field {name!r:.80} nests deeper than {MAX_NESTING} levels"
            return "invalid_event", reason
    return None


def _event_bytes(item: Any, batch: bool, raw: bytes) -> bytes:
    """The bytes a dead letter carries for one event: the event as JSON in a batch, or the
    whole record when the event cannot be written again (nested beyond what orjson writes)."""
    if not batch:
        return raw
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        return raw


def dead_letter(
    rejected: Rejected,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    max_bytes: int | None = None,
) -> bytes:
    """The documented dead-letter envelope, within `max_bytes`.

    The rejected bytes travel base64-encoded (a third larger), so the envelope of an input
    near the size limit would itself be too large for the topic: its value is then cut to
    fit, and `value_truncated` / `value_bytes` say so (the source offset still finds it).
    """
    envelope: dict[str, Any] = {
        "reason": rejected.reason,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "index": rejected.index,
        "key": None if key is None else key.decode("utf-8", "replace"),
        "value_b64": base64.b64encode(rejected.value).decode(),
    }
    encoded = orjson.dumps(envelope)
    if max_bytes is None or len(encoded) <= max_bytes:
        return bytes(memoryview(encoded))  # right-sized: it waits for its send (see encode)
    spare = max_bytes - (len(encoded) - len(envelope["value_b64"])) - 96  # the two new fields
    keep = max(spare // 4 * 3, 0)
    envelope["reason"] = rejected.reason[:1000]
    envelope["key"] = None if key is None else envelope["key"][:1000]
    envelope["value_b64"] = base64.b64encode(rejected.value[:keep]).decode()
    envelope["value_truncated"] = True
    envelope["value_bytes"] = len(rejected.value)
    return orjson.dumps(envelope)


def encode_batches(
    events: list[dict[str, Any]],
    max_events: int,
    key_of: Callable[[dict[str, Any]], str],
    max_bytes: int | None = None,
) -> list[tuple[bytes, bytes]]:
    """Group events by model into (key, JSON array) records of at most `max_events` events
    and at most `max_bytes` bytes each (an event larger than that travels alone)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_key.setdefault(key_of(event), []).append(event)
    records: list[tuple[bytes, bytes]] = []
    for key, group in by_key.items():
        encoded_key = key.encode()
        # Slices of max_events, one orjson call each, whenever they all fit (the usual case):
        # the same bytes the packing loop below would make (orjson's array is its elements'
        # texts joined by commas) at a third of its cost, which calls orjson once per event.
        slices = [
            orjson.dumps(group[start : start + max_events])
            for start in range(0, len(group), max_events)
        ]
        if max_bytes is None or all(len(value) <= max_bytes for value in slices):
            records.extend((encoded_key, value) for value in slices)
            continue
        parts: list[bytes] = []
        size = 2  # the brackets
        for event in group:
            part = orjson.dumps(event)
            if parts and (len(parts) >= max_events or size + 1 + len(part) > max_bytes):
                records.append((encoded_key, b"[" + b",".join(parts) + b"]"))
                parts, size = [], 2
            parts.append(part)
            size += len(part) + (1 if len(parts) > 1 else 0)
        if parts:
            records.append((encoded_key, b"[" + b",".join(parts) + b"]"))
    return records
