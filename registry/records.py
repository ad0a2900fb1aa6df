"""The registry's records: API bodies and what the store returns (pydantic, validated once)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

Task = Literal["binary", "regression"]
NodeKind = Literal["model", "feature", "dataset"]
RetrainStatus = Literal["queued", "started", "succeeded", "failed", "dead-lettered"]
RETRAIN_STATUSES: tuple[str, ...] = ("queued", "started", "succeeded", "failed", "dead-lettered")

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


class StalenessRecord(BaseModel):
    """A staleness event as recorded (ARCHITECTURE.md "Staleness events"; unknown fields are
    ignored). Mirrors `staleness.events.StalenessEvent` so the registry validates the same way
    without importing the scorer."""

    model_config = ConfigDict(extra="ignore")

    model_id: str = Field(min_length=1, max_length=200)
    model_version: str | None = None
    schema_version: int | None = None
    state: Literal["FRESH", "WARNING", "STALE"]
    score: float = Field(ge=0.0, le=1.0)
    uncertainty: float | None = Field(None, ge=0.0, le=1.0)
    basis: list[Literal["performance", "drift", "age"]] = Field(default_factory=list)
    reason: str | None = None
    event_time: int = Field(ge=0)
    emitted_at: int = Field(ge=0)
    metrics: dict[str, object] = Field(default_factory=dict)
    impacted: list[str] = Field(default_factory=list)
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
