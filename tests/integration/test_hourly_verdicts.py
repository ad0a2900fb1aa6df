"""Verdicts in event time on the real worker, and `runway backtest` over the same topics (issue 15).

Three days of history of two binary models (a prediction every two minutes each, labels ten minutes
late) are on the input topics before the worker starts, so it reads them as a backlog, far
faster than real time; their records are stamped with their event time, as a backlog produced
live is, so the worker takes the two inputs of a partition in time order (`streams.feed`).
Expected from the input alone: for each model a verdict on `staleness`
for every whole hour h with (first event time) < h <= (last event time), `event_time` = h,
besides the wall-clock ones. The backtest over the same topics (no group, its own state) gives
exactly those hours too, and over a range only the range's.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from staleness.events import StalenessEvent
from streams.backtest import run_backtest
from streams.backtest_cli import topic_sources
from tests.integration.harness import Worker, read_topic, send_records, wait_for
from tests.integration.test_join import worker_settings
from tools.traffic import Record

HOUR = 3_600_000
DAY = 24 * HOUR
# A few ms past an hour (no event on an hour), four days ago: the records carry their event time
# as their Kafka timestamp, and the topics' retention (7 days) deletes older ones.
START = (int(time.time() * 1000) - 4 * DAY) // HOUR * HOUR + 7
MODELS = ("alpha", "beta")
DAYS = 3


def history(rng: random.Random) -> list[Record]:
    """Per model and hour: one record of its 30 predictions, one of the labels seen in it."""
    records = []
    labels: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    for hour in range(DAYS * 24 + 1):
        for model in MODELS:
            if hour < DAYS * 24:
                preds = []
                for i in range(30):
                    ts = START + hour * HOUR + i * 120_000
                    y = int(rng.random() < 0.4)
                    score = min(max(rng.gauss(0.65 if y else 0.35, 0.2), 0.0), 1.0)
                    pid = f"{model}-{hour}-{i}"
                    preds.append(
                        {
                            "prediction_id": pid,
                            "model_id": model,
                            "model_version": "v1",
                            "timestamp": ts,
                            "task": "binary",
                            "score": round(score, 4),
                        }
                    )
                    labels[model].append(
                        {
                            "prediction_id": pid,
                            "model_id": model,
                            "timestamp": ts + 600_000,
                            "label": y,
                        }
                    )
                records.append(Record("predictions", model.encode(), orjson.dumps(preds), 30))
            end = START + (hour + 1) * HOUR
            due = [o for o in labels[model] if o["timestamp"] < end]
            labels[model] = [o for o in labels[model] if o["timestamp"] >= end]
            if due:
                records.append(Record("outcomes", model.encode(), orjson.dumps(due), len(due)))
    return records


def whole_hours(first: int, last: int) -> list[int]:
    return list(range(first - first % HOUR + HOUR, last + 1, HOUR))


EXPECTED = whole_hours(START, START + (DAYS * 24 - 1) * HOUR + 58 * 60_000 + 600_000)


async def test_a_backlog_gives_a_verdict_per_model_per_hour_and_backtest_the_same(
    settings: Settings, tmp_path: Path
) -> None:
    base = settings.model_copy(
        update={
            "redis_key_prefix": settings.app_id,
            "label_ttl_ms": 7 * DAY,
            "early_outcome_ttl_ms": DAY,
            "done_retention_ms": DAY,
        }
    )
    assert EXPECTED[0] == START - 7 + HOUR and len(EXPECTED) == DAYS * 24
    await send_records(base, history(random.Random(15)), event_time_stamps=True)
    worker = Worker(
        worker_settings(
            base,
            tmp_path,
            "w",
            label_ttl_ms=7 * DAY,
            early_outcome_ttl_ms=DAY,
            done_retention_ms=DAY,
        ),
        tmp_path / "worker.log",
    )

    async def every_hour_judged() -> dict[str, list[int]] | None:
        sent = [
            StalenessEvent.model_validate_json(value)
            for _, value in await read_topic(base, base.topic("staleness"))
        ]
        hours = {
            m: sorted({e.event_time for e in sent if e.model_id == m and e.event_time % HOUR == 0})
            for m in MODELS
        }
        return hours if all(hours[m] == EXPECTED for m in MODELS) else None

    try:
        worker.start()
        await wait_for(every_hour_judged, 120, "a verdict for every hour of both models", 1.0)
    except BaseException:
        print(worker.log_tail(60))
        raise
    finally:
        worker.stop()

    whole = await run_backtest(topic_sources(base, None, None, None), base, state_dir=tmp_path)
    for model in MODELS:
        assert [v["event_time"] for v in whole.verdicts if v["model_id"] == model] == EXPECTED
        assert whole.models[model]["hours_without_verdict"] == 0
    assert whole.events == 2 * DAYS * 24 * 30 * 2 and whole.dead_letters == 0

    frm, to = START + DAY, START - 7 + 2 * DAY
    part = await run_backtest(topic_sources(base, frm, to, {"beta"}), base, state_dir=tmp_path)
    assert set(part.models) == {"beta"}
    assert [v["event_time"] for v in part.verdicts] == whole_hours(frm, to - 1)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("runway-backtest")) == []
