"""The registry's records: API bodies and what the store returns (pydantic, validated once)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from staleness.events import StalenessEvent

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

Task = Literal["binary", "regression"]
NodeKind = Literal["model", "feature", "dataset"]
# parked: the DLQ replay failed RUNWAY_RETRAIN_MAX_REPLAYS times; the queue moved on without it
RetrainStatus = Literal["queued", "started", "succeeded", "failed", "dead-lettered", "parked"]
RETRAIN_STATUSES: tuple[str, ...] = get_args(RetrainStatus)

_ID = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-/]+$")


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = _ID
    task: Task | None = None
    owner: str | None = Field(None, max_length=200)
    description: str | None = None


class Model(ModelIn):
    created_at: int
    updated_at: int


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = _ID
    task: Task
    trained_at: int | None = Field(None, ge=0, description="Epoch ms.")
    deployed_at: int | None = Field(None, ge=0, description="Epoch ms.")
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    max_age_ms: int = Field(THIRTY_DAYS_MS, gt=0)


class Version(VersionIn):
    model_id: str
    created_at: int


class DependencyIn(BaseModel):
    """`downstream` depends on `upstream`; `kind` is the upstream node's kind."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = _ID
    downstream: str = _ID
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
