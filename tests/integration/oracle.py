"""Expected results computed straight from what the test sent, without the code under test.

Used by the exactness and crash tests. Everything here is plain counting over the generator's
records and ground truth: no buckets, no sketches, no state machine.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from tools.traffic import Record, Truth


@dataclass
class Expected:
    """Per model: counts and metrics; plus the joined rows and the dead-letter count."""

    models: dict[str, dict[str, Any]]
    joined: dict[str, dict[str, Any]]  # prediction_id -> expected Parquet row fields
    dead_letters: int


def occurrences(records: list[Record], valid_ids: set[str]) -> Counter[tuple[str, str]]:
    """How many times each valid (topic, prediction_id) was sent."""
    seen: Counter[tuple[str, str]] = Counter()
    for record in records:
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        for item in body if isinstance(body, list) else [body]:
            pid = item.get("prediction_id") if isinstance(item, dict) else None
            if isinstance(pid, str) and pid in valid_ids:
                seen[(record.topic, pid)] += 1
    return seen


def exact_auc(pairs: list[tuple[float, int]]) -> float:
    pos = [s for s, y in pairs if y == 1]
    neg = [s for s, y in pairs if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def nearest_rank(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[max(math.ceil(q * len(ordered)) - 1, 0)])


def expected(
    records: list[Record], truth: Truth, orphans: dict[str, int], late: dict[str, int]
) -> Expected:
    predictions = {p.prediction_id: p for p in truth.predictions}
    outcomes: dict[str, Any] = {}
    for outcome in truth.outcomes:
        outcomes.setdefault(outcome.prediction_id, outcome)  # first outcome wins
    counts = occurrences(records, set(predictions) | set(outcomes))
    tasks = {m.model_id: m.task for m in truth.models}
    per_model: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    delays: dict[str, list[int]] = defaultdict(list)
    binary_pairs: dict[str, list[tuple[float, int]]] = defaultdict(list)
    errors: dict[str, list[float]] = defaultdict(list)
    joined: dict[str, dict[str, Any]] = {}
    for pid, pred in predictions.items():
        m = per_model[pred.model_id]
        m["predictions"] += 1
        m["duplicate_predictions"] += counts[("predictions", pid)] - 1
        outcome = outcomes.get(pid)
        if outcome is None:
            m["unlabeled_expired"] += 1
            continue
        m["labeled"] += 1
        m["duplicate_outcomes"] += counts[("outcomes", pid)] - 1
        delay = outcome.timestamp - pred.timestamp
        delays[pred.model_id].append(delay)
        if pred.task == "binary":
            binary_pairs[pred.model_id].append((pred.score, int(outcome.label)))
        else:
            errors[pred.model_id].append(pred.score - outcome.label)
        joined[pid] = {
            "model_id": pred.model_id,
            "model_version": pred.model_version,
            "timestamp": pred.timestamp,
            "score": pred.score,
            "label": float(outcome.label),
            "outcome_timestamp": outcome.timestamp,
            "label_delay_ms": delay,
        }
    for model_id, count in orphans.items():
        per_model[model_id]["orphan_outcomes"] += count
    for model_id, count in late.items():
        per_model[model_id]["late_outcomes"] += count
    result: dict[str, dict[str, Any]] = {}
    for model_id, m in per_model.items():
        figures = dict(m)
        figures["label_coverage"] = m["labeled"] / m["predictions"]
        figures["delays"] = delays[model_id]
        if tasks[model_id] == "binary":
            pairs = binary_pairs[model_id]
            eps = 1e-15
            figures["accuracy"] = sum((s >= 0.5) == (y == 1) for s, y in pairs) / len(pairs)
            figures["log_loss"] = sum(
                -math.log(min(max(s, eps), 1 - eps) if y else 1 - min(max(s, eps), 1 - eps))
                for s, y in pairs
            ) / len(pairs)
            figures["brier"] = sum((s - y) ** 2 for s, y in pairs) / len(pairs)
            figures["roc_auc_exact"] = exact_auc(pairs)
        else:
            errs = errors[model_id]
            figures["mae"] = sum(abs(e) for e in errs) / len(errs)
            figures["rmse"] = math.sqrt(sum(e * e for e in errs) / len(errs))
            figures["mean_error"] = sum(errs) / len(errs)
        result[model_id] = figures
    return Expected(result, joined, sum(truth.malformed.values()))


COUNT_FIELDS = (
    "predictions",
    "labeled",
    "unlabeled_expired",
    "duplicate_predictions",
    "duplicate_outcomes",
    "orphan_outcomes",
    "late_outcomes",
)


def assert_view_matches(view: dict[str, str], figures: dict[str, Any], task: str) -> None:
    """Compare one Redis window hash with the oracle's figures for its model."""
    for name in COUNT_FIELDS:
        assert int(view.get(name, "0")) == figures.get(name, 0), (name, view, figures)
    assert float(view["label_coverage"]) == figures["label_coverage"]
    for q, field in ((0.5, "label_delay_p50_ms"), (0.95, "label_delay_p95_ms")):
        exact = nearest_rank(figures["delays"], q)
        assert abs(float(view[field]) - exact) <= 0.011 * exact + 1, (field, view[field], exact)
    if task == "binary":
        for name in ("accuracy", "log_loss", "brier"):
            assert math.isclose(float(view[name]), figures[name], rel_tol=1e-6, abs_tol=1e-9), (
                name,
                view[name],
                figures[name],
            )
        bound = float(view["roc_auc_error_bound"])
        assert abs(float(view["roc_auc"]) - figures["roc_auc_exact"]) <= bound + 1e-12
    else:
        for name in ("mae", "rmse", "mean_error"):
            assert math.isclose(float(view[name]), figures[name], rel_tol=1e-5, abs_tol=1e-5), (
                name,
                view[name],
                figures[name],
            )
