"""Staleness events (topic `staleness`, key model_id) and when to emit them. Pure.

The event's fields are fixed by README.md ("Public contracts", and the table of "Staleness
events"); changing one needs a new `schema_version`. Unknown fields are tolerated on reading,
like the input messages. `docs/schemas/staleness.schema.json` is generated from
`StalenessEvent` (`runway schemas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from contracts.ids import Id
from staleness.verdict import Verdict

SCHEMA_VERSION = 1
EpochMs = Annotated[StrictInt, Field(ge=0, lt=10**14)]
MetricValue = StrictInt | float | str | bool | None


class StalenessEvent(BaseModel):
    """A model version's staleness verdict at an event time."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: int = SCHEMA_VERSION
    model_id: Id
    model_version: Id
    state: Literal["FRESH", "WARNING", "STALE"]
    score: float = Field(ge=0.0, le=1.0, description="0 fresh .. 1 stale (the worst signal).")
    basis: list[Literal["performance", "drift", "age"]] = Field(
        description="The signals the verdict used; a missing one could not be computed."
    )
    uncertainty: float = Field(ge=0.0, le=1.0, description="0 sure .. 1 nothing known.")
    reason: str = Field(description="One sentence a person can read.")
    event_time: EpochMs = Field(description="The event time the verdict speaks for (epoch ms).")
    emitted_at: EpochMs = Field(description="Wall-clock time of emission (epoch ms).")
    metrics: dict[str, MetricValue] = Field(
        default_factory=dict, description="The figures behind the verdict (README)."
    )
    impacted: list[str] = Field(
        default_factory=list, description="Downstream model ids (transitive) of this model."
    )


def to_event(
    verdict: Verdict,
    model_id: str,
    model_version: str,
    emitted_at_ms: int,
    impacted: Sequence[str] = (),
) -> StalenessEvent:
    return StalenessEvent(
        model_id=model_id,
        model_version=model_version,
        state=verdict.state,
        score=verdict.score,
        basis=list(verdict.basis),
        uncertainty=verdict.uncertainty,
        reason=verdict.reason,
        event_time=verdict.event_time_ms,
        emitted_at=emitted_at_ms,
        metrics=verdict.metrics,
        impacted=list(impacted),
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    return {"staleness": StalenessEvent.model_json_schema()}


Trigger = Literal["first", "state_change", "version_change", "heartbeat"]


@dataclass(frozen=True)
class Emitted:
    version: str
    state: str
    at_ms: int  # wall clock


class EmissionPolicy:
    """Emit on a model's first verdict, on a change of state or version, and as a heartbeat.

    The heartbeat interval is wall clock (`RUNWAY_STALENESS_HEARTBEAT_INTERVAL_MS`, as README.md's
    "Staleness events" says); the verdict itself is a function of event time. Memory is per
    model and kept by the policy: call `due` to ask, `record` once the event is sent (a failed
    send is then retried next time), `forget` when the model's partition moves away (the new
    owner emits a first event: at-least-once, never silence).
    """

    def __init__(self, heartbeat_interval_ms: int) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.memory: dict[str, Emitted] = {}

    def due(self, model_id: str, version: str, state: str, now_ms: int) -> Trigger | None:
        last = self.memory.get(model_id)
        if last is None:
            return "first"
        if last.state != state:
            return "state_change"
        if last.version != version:
            return "version_change"
        if now_ms - last.at_ms >= self.heartbeat_interval_ms:
            return "heartbeat"
        return None

    def record(self, model_id: str, version: str, state: str, now_ms: int) -> None:
        self.memory[model_id] = Emitted(version, state, now_ms)

    def forget(self, model_id: str) -> None:
        self.memory.pop(model_id, None)
