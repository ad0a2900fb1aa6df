"""A month of history for `runway backtest` (the replay of issue 15): four binary models.

    python -m tools.history --out var/history.parquet --registry var/history-registry.json

Each model serves `per_day` predictions a day (evenly spaced), its scores uniform on [0, 1] and
calibrated: label 1 with probability equal to the score, so its accuracy at 0.5 is 0.75. Labels
are observed exactly `label_delay_ms` (an hour) after their prediction. From `change_day` on:

- `stationary`: nothing changes;
- `drop`: loses 10 accuracy points: each label is flipped with probability 0.2
  (accuracy 0.75 - 0.2 * (2 * 0.75 - 1) = 0.65);
- `shift`: its scores move up (s -> s ** 0.6; mean 0.5 -> 0.625) and it never gets labels;
- `old`: like `stationary`, registered as trained 60 days before the first prediction (the
  registry file gives its `trained_at`), past the default maximum age of 30 days.

Rows have the `joined` topic's shape (`label` and `outcome_timestamp` null when unlabelled), so
`runway backtest --file` reads each as a prediction and, when labelled, its outcome.
Deterministic for a seed; written a day at a time.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

DAY_MS = 24 * 3_600_000
MODELS = ("stationary", "drop", "shift", "old")
FLIP = 0.2  # label flips that take a calibrated uniform model from 0.75 to 0.65 accuracy
SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("model_id", pa.string()),
        ("model_version", pa.string()),
        ("timestamp", pa.int64()),
        ("task", pa.string()),
        ("score", pa.float64()),
        ("label", pa.int64()),
        ("outcome_timestamp", pa.int64()),
    ]
)


@dataclass(frozen=True)
class HistorySpec:
    days: int = 28
    per_day: int = 20_000
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00Z
    change_day: int = 20  # the day (from 0) the changes begin
    label_delay_ms: int = 3_600_000
    seed: int = 15

    @property
    def change_ms(self) -> int:
        return self.start_ms + self.change_day * DAY_MS


def day_rows(spec: HistorySpec, day: int) -> list[dict[str, Any]]:
    """One day of every model's predictions, in time order."""
    rows: list[dict[str, Any]] = []
    step = DAY_MS // spec.per_day
    for m, model in enumerate(MODELS):
        rng = random.Random(f"{spec.seed}-{model}-{day}")
        for i in range(spec.per_day):
            ts = spec.start_ms + day * DAY_MS + i * step + m  # models a millisecond apart
            changed = ts >= spec.change_ms
            score = rng.random()
            label = int(rng.random() < score)
            if model == "drop" and changed and rng.random() < FLIP:
                label = 1 - label
            if model == "shift" and changed:
                score = score**0.6
            labelled = model != "shift"
            rows.append(
                {
                    "prediction_id": f"{model}-{day}-{i}",
                    "model_id": model,
                    "model_version": "v1",
                    "timestamp": ts,
                    "task": "binary",
                    "score": round(score, 6),
                    "label": label if labelled else None,
                    "outcome_timestamp": ts + spec.label_delay_ms if labelled else None,
                }
            )
    rows.sort(key=lambda r: r["timestamp"])
    return rows


def rows(spec: HistorySpec) -> Iterator[dict[str, Any]]:
    for day in range(spec.days):
        yield from day_rows(spec, day)


def registry(spec: HistorySpec) -> dict[str, Any]:
    """`runway backtest --registry`: `old` trained 60 days before the first prediction."""
    return {"old": {"versions": [{"version": "v1", "trained_at": spec.start_ms - 60 * DAY_MS}]}}


def write(spec: HistorySpec, out: Path) -> int:
    """Parquet (`.parquet`) or JSON lines (anything else); returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    if out.suffix == ".parquet":
        with pq.ParquetWriter(str(out), SCHEMA) as writer:
            for day in range(spec.days):
                batch = day_rows(spec, day)
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                count += len(batch)
        return count
    with out.open("wb") as lines:
        for row in rows(spec):
            lines.write(orjson.dumps(row) + b"\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--registry", type=Path, default=None)
    parser.add_argument("--days", type=int, default=HistorySpec.days)
    parser.add_argument("--per-day", type=int, default=HistorySpec.per_day)
    args = parser.parse_args(argv)
    spec = HistorySpec(days=args.days, per_day=args.per_day)
    count = write(spec, args.out)
    if args.registry is not None:
        args.registry.write_text(json.dumps(registry(spec), indent=2))
    print(f"{count:,} predictions of {len(MODELS)} models over {spec.days} days -> {args.out}")


if __name__ == "__main__":
    main()
