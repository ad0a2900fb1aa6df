"""The typed shape of what the join keeps under each key prefix of `tables.keys`.

Values are stored as JSON (orjson), so these are TypedDicts over plain dicts: they document and
type-check the fields without a conversion on the hot path.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class PairRecord(TypedDict):
    """`p<prediction_id>`: one pair as it moves P → J (or E → J, P → X)."""

    s: Literal["P", "E", "J", "X"]  # pending, early outcome, joined, expired
    dl: int  # deadline (event time, ms): its one entry in the expiry index
    pred: NotRequired[dict[str, Any]]  # P: the prediction, as it will be joined
    out: NotRequired[dict[str, Any]]  # E: the outcome waiting for its prediction
    d: NotRequired[int]  # E: duplicates of the outcome seen while waiting
    t: NotRequired[int]  # J/X: the prediction's timestamp (the buckets it counts in)
    m: NotRequired[str]  # J/X: model_id
    v: NotRequired[str]  # J/X: model_version


class ModelRecord(TypedDict):
    """`m<model_id>`: what the speed view and the scorer need to know of a model."""

    task: str | None  # None until its first prediction (only outcomes seen so far)
    clock: int  # the model's clock: the latest event time seen for it
    versions: list[str]
    lp: int | None  # last prediction timestamp
    lo: int | None  # last outcome timestamp


Bucket = dict[str, Any]  # `b...`: exact integer aggregates (tables.aggregates), merged by adding
