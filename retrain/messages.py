"""What the retrain agent reads and writes: staleness events (read tolerantly), retrain requests
(the body of a `retrain-dlq` record) and their idempotency key."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.ids import escape_id

# Fixed namespace: request ids are the same in every process and every replay.
REQUEST_NAMESPACE = uuid.UUID("5b0a6c1e-8d1f-4f57-9a53-7d2f4c1e0a11")

Status = Literal["queued", "started", "succeeded", "failed", "dead-lettered", "parked"]


def request_id(model_id: str, model_version: str, episode: int) -> str:
    """The idempotency key: a UUID derived from model, version and episode (the episode is the
    event time of the STALE verdict that opened it), so a retried or replayed call repeats it."""
    # Escaped: model "a/b" version "c" and model "a" version "b/c" are two requests (plain
    # ids escape to themselves, so their request ids are unchanged).
    name = f"{escape_id(model_id)}/{escape_id(model_version)}/{episode}"
    return str(uuid.uuid5(REQUEST_NAMESPACE, name))


def synthetic_staleness(
    model_id: str, model_version: str, state: str, reason: str, at_ms: int
) -> bytes:
    """A contract staleness event (event time and emission `at_ms`), for the feeders of
    `runway retrain-send-staleness` and `runway bench-isolation`."""
    from staleness.events import StalenessEvent  # the scorer's package stays out of the agent

    event = StalenessEvent(
        model_id=model_id, model_version=model_version, state=state,  # type: ignore[arg-type]
        score=0.9 if state == "STALE" else 0.1, basis=["performance"], uncertainty=0.0,
        reason=reason, event_time=at_ms, emitted_at=at_ms,
    )  # fmt: skip
    return event.model_dump_json().encode()


class StalenessView(BaseModel):
    """The fields of a staleness event the agent needs (the contract has more; all tolerated)."""

    model_config = ConfigDict(extra="ignore")

    model_id: str
    model_version: str = ""
    state: Literal["FRESH", "WARNING", "STALE"]
    score: float = 0.0
    reason: str = ""
    event_time: int
    impacted: list[str] = Field(default_factory=list)


class RetrainRequest(BaseModel):
    """One retrain request; also the JSON value of a `retrain-dlq` record (key model_id)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1
    request_id: str
    model_id: str
    model_version: str
    episode: int
    score: float
    reason: str
    upstream: str | None = None  # set when requested as a downstream dependent of this model
    dlq_reason: str | None = None  # why it was dead-lettered
    dead_lettered_at: int | None = None  # epoch ms, wall clock

    def run_params(self) -> dict[str, dict[str, str]]:
        """Maestro-style typed run parameters."""
        values = {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "score": f"{self.score:.6f}",
            "reason": self.reason,
            "episode": str(self.episode),
        }
        if self.upstream:
            values["upstream_model_id"] = self.upstream
        return {name: {"value": value, "type": "STRING"} for name, value in values.items()}
