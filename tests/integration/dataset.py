"""The crafted data set of the join tests: generated traffic plus hand-made edge cases.

Phase 1 (sent before any worker starts, so the worker faces a backlog in which outcomes are
often read before their predictions): one orphan outcome per model (its prediction never
comes), the generated traffic (early outcomes, duplicates of both sides, never-labeled
predictions, malformed records, binary and regression models), one prediction per model that
will be answered too late, and a tail prediction+outcome per model far enough in event time
that every deadline of the traffic passes. Phase 2 (sent once phase 1 is fully processed): the
late outcomes, which must be counted late, not joined.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from tools.traffic import Record, TrafficSpec, TrueOutcome, TruePrediction, Truth, generate

TTL_MS = 60_000
START_MS = 1_700_000_000_000


@dataclass
class DataSet:
    phase1: list[Record]
    phase2: list[Record]
    truth: Truth
    orphans: dict[str, int]
    late: dict[str, int]

    @property
    def records(self) -> list[Record]:
        return self.phase1 + self.phase2


def _record(topic: str, event: dict[str, object]) -> Record:
    key = str(event["model_id"]).encode()
    return Record(topic, key, orjson.dumps([event]), 1)  # type: ignore[arg-type]


def build(events: int, seed: int = 7, models: int = 6, batch_size: int = 50) -> DataSet:
    spec = TrafficSpec(
        models=models,
        rate=None,
        events=events,
        event_rate=max(events / 300, 50),  # about five minutes of event time: > 4 TTLs
        batch_size=batch_size,
        start_ms=START_MS,
        label_delay="uniform",
        label_delay_ms=20_000,  # well inside the TTL: a labelled prediction is never late
        unlabeled_share=0.15,
        early_share=0.1,
        duplicate_share=0.02,
        malformed_share=0.004,
        run_id=f"s{seed}",
    )
    truth = Truth()
    traffic = list(generate(spec, random.Random(seed), truth))
    span_end = max(p.timestamp for p in truth.predictions)
    tail_ms = span_end + 3 * TTL_MS
    head: list[Record] = []
    tail: list[Record] = []
    phase2: list[Record] = []
    orphans: dict[str, int] = {}
    late: dict[str, int] = {}
    for plan in truth.models:
        model = plan.model_id
        binary = plan.task == "binary"
        head.append(
            _record(
                "outcomes",
                {
                    "prediction_id": f"orphan-{model}",
                    "model_id": model,
                    "timestamp": START_MS + 1_000,
                    "label": 1,
                },
            )
        )
        orphans[model] = 1
        late_pred = {
            "prediction_id": f"late-{model}",
            "model_id": model,
            "model_version": plan.model_version,
            "timestamp": START_MS + 2_000,
            "task": plan.task,
            "score": 0.25 if binary else 3.0,
        }
        head.append(_record("predictions", late_pred))
        truth.predictions.append(
            TruePrediction(
                f"late-{model}",
                model,
                plan.model_version,
                START_MS + 2_000,
                plan.task,
                float(late_pred["score"]),
            )
        )  # type: ignore[arg-type]
        phase2.append(
            _record(
                "outcomes",
                {
                    "prediction_id": f"late-{model}",
                    "model_id": model,
                    "timestamp": tail_ms + 5_000,
                    "label": 1,
                },
            )
        )
        late[model] = 1
        score = 0.75 if binary else 2.5
        tail.append(
            _record(
                "predictions",
                {
                    "prediction_id": f"tail-{model}",
                    "model_id": model,
                    "model_version": plan.model_version,
                    "timestamp": tail_ms,
                    "task": plan.task,
                    "score": score,
                },
            )
        )
        tail.append(
            _record(
                "outcomes",
                {
                    "prediction_id": f"tail-{model}",
                    "model_id": model,
                    "timestamp": tail_ms + 1_000,
                    "label": 1,
                },
            )
        )
        truth.predictions.append(
            TruePrediction(f"tail-{model}", model, plan.model_version, tail_ms, plan.task, score)
        )
        truth.outcomes.append(TrueOutcome(f"tail-{model}", model, tail_ms + 1_000, 1))
    return DataSet(head + traffic + tail, phase2, truth, orphans, late)
