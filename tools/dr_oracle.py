"""What a region's views must hold, computed from its input alone: the drill's oracle. Pure.

Why a second oracle (the tests have one): `runway dr-drill` is a command, and commands import
no test code. This one is also narrower: it knows only what the drill sends (valid events and
byte-for-byte duplicates, no malformed ones, nothing expires within the drill's minutes), and it
counts from the records the standby region actually received, whatever subset of the primary's
input the mirror delivered before the primary died. Plain counting, no buckets, no sketches.

Event identity: an event is a prediction or an outcome, named `(kind, prediction_id)`; a
record carries one event or a JSON array of events.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

EventId = tuple[str, str]  # ("predictions" | "outcomes", prediction_id)
COUNTS = (
    "predictions",
    "labeled",
    "pending",
    "unlabeled_expired",
    "duplicate_predictions",
    "duplicate_outcomes",
    "late_outcomes",
    "orphan_outcomes",
)
# The view keeps its sums in fixed point, each event rounded: 1e-9 for binary figures (log loss,
# Brier), 1e-6 for regression errors, so a mean may differ by that much from the exact one.
ABS_TOL = {"binary": 1e-9, "regression": 1e-6}
REL_TOL = 1e-6


def events_of(value: bytes) -> list[dict[str, Any]]:
    """The events of one input record (an object or an array of objects)."""
    body = orjson.loads(value)
    items = body if isinstance(body, list) else [body]
    return [item for item in items if isinstance(item, dict)]


def event_ids(records: Iterable[tuple[str, bytes]]) -> set[EventId]:
    """Every event named in `records` ((kind, value) pairs)."""
    return {
        (kind, str(event["prediction_id"])) for kind, value in records for event in events_of(value)
    }


@dataclass
class ModelFigures:
    task: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (score, label)

    def metrics(self) -> dict[str, float]:
        n = len(self.pairs)
        if not n:
            return {}
        if self.task == "binary":
            eps = 1e-15
            clipped = [(min(max(s, eps), 1 - eps), y) for s, y in self.pairs]
            return {
                "accuracy": sum((s >= 0.5) == (y == 1) for s, y in self.pairs) / n,
                "log_loss": sum(-math.log(s if y else 1 - s) for s, y in clipped) / n,
                "brier": sum((s - y) ** 2 for s, y in self.pairs) / n,
            }
        errors = [s - y for s, y in self.pairs]
        return {
            "mae": sum(abs(e) for e in errors) / n,
            "rmse": math.sqrt(sum(e * e for e in errors) / n),
            "mean_error": sum(errors) / n,
        }


@dataclass
class Expected:
    models: dict[str, ModelFigures]
    joined: dict[str, dict[str, Any]]  # prediction_id -> the batch view's row fields


def expected(records: Iterable[tuple[str, bytes]]) -> Expected:
    """The views the join must produce from exactly these input records (any order)."""
    predictions: dict[tuple[str, str], dict[str, Any]] = {}
    outcomes: dict[tuple[str, str], dict[str, Any]] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    for kind, value in records:
        for event in events_of(value):
            key = (str(event["model_id"]), str(event["prediction_id"]))
            seen[(kind, *key)] += 1
            target = predictions if kind == "predictions" else outcomes
            target.setdefault(key, event)  # the first wins (duplicates are identical)
    models: dict[str, ModelFigures] = {}
    joined: dict[str, dict[str, Any]] = {}
    for key, pred in predictions.items():
        model = models.setdefault(key[0], ModelFigures(task=str(pred["task"])))
        model.counts["predictions"] += 1
        model.counts["duplicate_predictions"] += seen[("predictions", *key)] - 1
        out = outcomes.get(key)
        if out is None:
            model.counts["pending"] += 1
            continue
        model.counts["labeled"] += 1
        # Copies of an outcome count once its pair resolves; those of an outcome still
        # waiting for its prediction are not counted yet.
        model.counts["duplicate_outcomes"] += seen[("outcomes", *key)] - 1
        model.pairs.append((float(pred["score"]), float(out["label"])))
        joined[key[1]] = {
            "model_id": key[0],
            "model_version": pred["model_version"],
            "timestamp": pred["timestamp"],
            "score": float(pred["score"]),
            "label": float(out["label"]),
            "outcome_timestamp": out["timestamp"],
            "label_delay_ms": out["timestamp"] - pred["timestamp"],
        }
    return Expected(models, joined)


def view_problems(expected_views: Expected, windows: Mapping[str, Mapping[str, str]]) -> list[str]:
    """How each model's window hash (one window covering the whole drill) differs."""
    problems = []
    for model_id in sorted(set(expected_views.models) | set(windows)):
        figures = expected_views.models.get(model_id)
        view = windows.get(model_id)
        if figures is None or not view:
            problems.append(f"{model_id}: {'not expected' if figures is None else 'no view'}")
            continue
        for name in COUNTS:
            got, want = int(view.get(name, "0")), figures.counts.get(name, 0)
            if got != want:
                problems.append(f"{model_id}: {name} {got} != {want}")
        for name, want_value in figures.metrics().items():
            got_value = float(view.get(name, "nan"))
            tolerance = ABS_TOL.get(figures.task, 1e-6)
            if not math.isclose(got_value, want_value, rel_tol=REL_TOL, abs_tol=tolerance):
                problems.append(f"{model_id}: {name} {got_value!r} != {want_value!r}")
    return problems


def row_problems(expected_views: Expected, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """How the batch view's rows differ: each joined pair once, with its fields."""
    problems = []
    counts: Counter[str] = Counter()
    for row in rows:
        pid = str(row["prediction_id"])
        counts[pid] += 1
        want = expected_views.joined.get(pid)
        if want is None:
            problems.append(f"row {pid}: not a joined pair of the input")
            continue
        for name, value in want.items():
            if row.get(name) != value:
                problems.append(f"row {pid}: {name} {row.get(name)!r} != {value!r}")
    doubled = sorted(pid for pid, n in counts.items() if n > 1)
    missing = sorted(set(expected_views.joined) - set(counts))
    if doubled:
        problems.append(f"{len(doubled)} pairs written more than once, e.g. {doubled[:3]}")
    if missing:
        problems.append(f"{len(missing)} joined pairs missing, e.g. {missing[:3]}")
    return problems


@dataclass(frozen=True)
class LossReport:
    """What the standby lacks of what the primary acknowledged (RPO)."""

    produced: int  # events the primary acknowledged
    mirrored: int  # events the standby holds
    lost: int  # acknowledged by the primary, absent from the standby
    unacknowledged_mirrored: int  # in the standby though the primary never acknowledged them
    rpo_s: float  # from the oldest lost event's acknowledgement to the kill (0: none lost)


def losses(
    acknowledged: Mapping[EventId, float], mirrored: set[EventId], killed_at: float
) -> LossReport:
    """`acknowledged`: each event's first acknowledgement time, on the clock of `killed_at`."""
    lost = [at for event, at in acknowledged.items() if event not in mirrored]
    return LossReport(
        produced=len(acknowledged),
        mirrored=len(mirrored),
        lost=len(lost),
        unacknowledged_mirrored=len(mirrored - acknowledged.keys()),
        rpo_s=max(0.0, killed_at - min(lost)) if lost else 0.0,
    )
