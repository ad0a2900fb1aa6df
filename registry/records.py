"""The registry's records: API bodies and what the store returns (pydantic, validated once)."""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from contracts.ids import Id
from staleness.events import StalenessEvent

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
# Epoch ms and durations: at most 2**53 - 1 (any JSON reader's exact integers; BIGINT would take
# 2**63 - 1, but the OpenAPI document renders bounds as doubles, and 2**63 - 1 is not one).
MAX_MS = 2**53 - 1

Task = Literal["binary", "regression"]
NodeKind = Literal["model", "feature", "dataset"]
# parked: the DLQ replay failed RUNWAY_RETRAIN_MAX_REPLAYS times; the queue moved on without it
RetrainStatus = Literal["queued", "started", "succeeded", "failed", "dead-lettered", "parked"]
RETRAIN_STATUSES: tuple[str, ...] = get_args(RetrainStatus)

# Free text: any length-bounded string but NUL (PostgreSQL's text refuses it); a pattern also makes
# pydantic refuse lone surrogates, which no database or JSON encoder takes either.
_TEXT = r"^[^\x00]*$"
Owner = Annotated[str, Field(max_length=200, pattern=_TEXT)]
Description = Annotated[str, Field(max_length=10_000, pattern=_TEXT)]
_METRIC_NAME = {"minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f]+$"}
MetricName = Annotated[
    str,
    Field(
        min_length=_METRIC_NAME["minLength"],
        max_length=_METRIC_NAME["maxLength"],
        pattern=_METRIC_NAME["pattern"],
    ),
]
# allow_inf_nan=False: NaN and infinities (which Python's JSON parser accepts as `NaN`,
# `Infinity` and `1e999`) cannot be written back as JSON and crash the staleness scorer.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# pydantic documents a constrained key as `patternProperties`, which lets any other key through;
# `propertyNames` says what the validation does.
Metrics = Annotated[
    dict[MetricName, FiniteFloat],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": _METRIC_NAME,
            "additionalProperties": {"type": "number"},
            "description": "Metric name to a finite number (no NaN, no infinity).",
        }
    ),
]
# strict: a JSON `false` or `"1"` is not a number, nor a float an integer (lax mode took them)
_INPUT = ConfigDict(extra="forbid", strict=True)


def _integral(value: object) -> object:
    """JSON Schema's integer: 1064.0 is one (strict mode alone refuses it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# the constraints go inside the validator, where the JSON schema (minimum, maximum) sees them
EpochMs = Annotated[
    int, Field(ge=0, le=MAX_MS, description="Epoch ms."), BeforeValidator(_integral)
]
Duration = Annotated[int, Field(gt=0, le=MAX_MS), BeforeValidator(_integral)]


class ModelIn(BaseModel):
    model_config = _INPUT

    model_id: Id
    task: Task | None = None
    owner: Owner | None = None
    description: Description | None = None


class Model(BaseModel):
    """A stored model as read back: not validated against today's input rules, so a row
    written under older ones still lists (one bad row once made `GET /models` fail for all)."""

    model_id: str
    task: str | None = None
    owner: str | None = None
    description: str | None = None
    created_at: int
    updated_at: int


class VersionIn(BaseModel):
    model_config = _INPUT

    version: Id
    task: Task
    trained_at: EpochMs | None = None
    deployed_at: EpochMs | None = None
    baseline_metrics: Metrics = Field(default_factory=dict)
    max_age_ms: Duration = THIRTY_DAYS_MS


def _finite_only(metrics: object) -> object:
    """A non-finite number stored before they were refused is left out when read back: JSON
    has no NaN (serving it failed the whole answer) and the staleness scorer cannot use it."""
    if isinstance(metrics, dict):
        return {
            k: v for k, v in metrics.items() if not (isinstance(v, float) and not math.isfinite(v))
        }
    return metrics


class Version(BaseModel):
    """A stored version as read back (see `Model`)."""

    model_id: str
    version: str
    task: str
    trained_at: int | None = None
    deployed_at: int | None = None
    baseline_metrics: Annotated[dict[str, float], BeforeValidator(_finite_only)]
    max_age_ms: int
    created_at: int


class DependencyIn(BaseModel):
    """`downstream` depends on `upstream`; `kind` is the upstream node's kind."""

    model_config = _INPUT

    upstream: Id
    downstream: Id
    kind: NodeKind = "model"
    downstream_kind: NodeKind = "model"


class StalenessRecord(StalenessEvent):
    """A staleness event as recorded: validated by the contract's own class, the one the scorer
    emits and `docs/schemas/staleness.schema.json` is generated from; unknown fields are dropped
    (nowhere to store them), and the row's `recorded_at` is added."""

    model_config = ConfigDict(extra="ignore")

    recorded_at: int | None = None


class RetrainStep(BaseModel):
    status: RetrainStatus
    detail: str | None
    at: int


class RetrainRequest(BaseModel):
    request_id: str
    model_id: str
    model_version: str
    episode: int
    status: RetrainStatus
    detail: str | None
    created_at: int
    updated_at: int
    history: list[RetrainStep]


class ParkedEvent(BaseModel):
    """A consumed event the database refused for good (`registry.dberrors`): the consumer
    recorded it here and committed past it. `value_b64` holds the event's bytes as a dead letter
    would (the whole record, or the event's JSON when it came in a batch)."""

    source_topic: str
    source_partition: int
    source_offset: int
    position: int = Field(description="Index in a batch record; -1 for a one-event record.")
    model_id: str | None
    value_b64: str
    error_class: str = Field(description='The driver\'s class, e.g. "psycopg.errors.DataError".')
    error_code: str | None = Field(description="SQLSTATE (PostgreSQL) or sqlite3 result code.")
    error: str
    parked_at: int
