"""The message contracts model servers and label sources integrate against.

Field names are fixed by README.md ("Public contracts"; the layer `contracts` of
docs/architecture.md); changing one needs a new `schema_version`. Unknown fields are tolerated
(`extra="allow"`) so producers can move first. Types are strict (no "0.5" for a number, no
`true` for a label): valid events travel on as they arrived, so a coerced value would reach the
join and the views uncoerced. `docs/schemas/*.json` is generated from these models
(`runway schemas`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from contracts.ids import Id

SCHEMA_VERSION = 1

Task = Literal["binary", "regression"]
Number = StrictInt | float
FeatureValue = StrictInt | float | str
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]
MAX_EPOCH_MS = 10**14
EpochMs = Annotated[StrictInt, Field(ge=0, lt=MAX_EPOCH_MS)]
# An integer beyond 2**53 has no exact float64, the batch view's type for scores and labels
# (pyarrow refuses to round it): such a value is refused here rather than failing the writer.
EXACT_FLOAT_INT = 2**53
INT32_MAX = 2**31 - 1


def _exact_as_float(value: Any, what: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_FLOAT_INT:
        raise ValueError(f"{what} {value} is an integer beyond 2**53 (not exact as a float64)")
    return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    schema_version: Annotated[int, Field(ge=1, le=INT32_MAX)] = SCHEMA_VERSION


class Prediction(_Event):
    """One model output, published by the model server when it answers."""

    prediction_id: Id
    model_id: Id
    model_version: Id
    timestamp: EpochMs = Field(description="Event time of the prediction, epoch milliseconds.")
    task: Task
    score: float = Field(
        description="Probability of the positive class (binary) or the predicted value."
    )
    features: dict[str, FeatureValue] | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score_exact(cls, value: Any) -> Any:
        return _exact_as_float(value, "score")  # before float() hides the integer

    @model_validator(mode="after")
    def _score_fits_task(self) -> Prediction:
        if not math.isfinite(self.score):
            raise ValueError("score must be a finite number")
        if self.task == "binary" and not 0.0 <= self.score <= 1.0:
            raise ValueError("binary score must be a probability in [0, 1]")
        return self


class Outcome(_Event):
    """The ground truth for one prediction, published by a label source when it is known."""

    prediction_id: Id
    model_id: Id
    timestamp: EpochMs = Field(description="When the label was observed, epoch milliseconds.")
    label: Number

    @field_validator("label")
    @classmethod
    def _finite(cls, value: float) -> float:
        if isinstance(value, bool) or not math.isfinite(value):
            raise ValueError("label must be a finite number")
        return _exact_as_float(value, "label")


class Joined(Prediction):
    """A prediction with its outcome: the `joined` topic and the batch view's rows."""

    label: Number
    outcome_timestamp: EpochMs
    label_delay_ms: StrictInt


def json_schemas() -> dict[str, dict[str, Any]]:
    """The documented JSON schemas, by message name."""
    return {
        "prediction": Prediction.model_json_schema(),
        "outcome": Outcome.model_json_schema(),
        "joined": Joined.model_json_schema(),
    }
