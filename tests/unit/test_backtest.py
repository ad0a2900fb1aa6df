"""`runway backtest` over a generated file (`streams.backtest`, `streams.backtest_cli`).

Two days of two binary models, 300 predictions an hour each, scores cycling through ten values
and labels observed with their predictions (no delay), so every hour's state is exact:

- `drop`: labels are 1 exactly when the score is above 0.5 (AUC 1) until `DROP`, inverted from
  then on (AUC 0). The first hour whose state holds an inverted label is DROP + 1h: its 1-hour
  window is all inverted, a drop far beyond the STALE level. So its first WARNING (first
  verdict at WARNING or worse) and first STALE are both at DROP + 1h, and FRESH before.
- `aging`: never changes; its registry document says it was trained at T0 - 90 min with a
  maximum age of 10 h. Age reaches 0.8 of it (WARNING) at T0 + 6.5 h and 1.0 (STALE) at
  T0 + 8.5 h: first WARNING at the hour T0 + 7h, first STALE at T0 + 9h.

Each model has one verdict for every whole hour after its first event up to its last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from config.settings import Settings
from streams.backtest import Event, HourFeed, run_backtest
from streams.backtest_cli import file_events, load_registry, row_events, selected, timeline

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOURS = 48
DROP = T0 + 30 * HOUR
PER_HOUR = 300
ROOT = Path(__file__).resolve().parents[2]
RUNWAY = str(Path(sys.executable).parent / "runway")
SHM = Path("/dev/shm")


def history() -> list[dict[str, Any]]:
    lines = []
    for i in range(HOURS * PER_HOUR):
        for m, model in enumerate(("drop", "aging")):
            ts = T0 + i * (HOUR // PER_HOUR) + m
            score = 0.05 + 0.1 * (i % 10)
            label = int(score > 0.5)
            if model == "drop" and ts >= DROP:
                label = 1 - label
            pid = f"{model}-{i}"
            lines.append(
                {
                    "prediction_id": pid,
                    "model_id": model,
                    "model_version": "v1",
                    "timestamp": ts,
                    "task": "binary",
                    "score": round(score, 2),
                }
            )
            lines.append({"prediction_id": pid, "model_id": model, "timestamp": ts, "label": label})
    return lines


REGISTRY = {
    "aging": {
        "versions": [{"version": "v1", "trained_at": T0 - 90 * 60_000, "max_age_ms": 10 * HOUR}],
        "impacted": ["after-aging"],
    }
}


def expected_hours() -> list[int]:
    return list(range(T0 + HOUR, T0 + HOURS * HOUR, HOUR))  # last events at T0 + 48h - 12 s


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """tmpfs when there is one: the backtest's RocksDB on a loaded disk costs a minute here."""
    if not SHM.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=SHM, prefix="runway-backtest-test-") as path:
        yield Path(path)


async def one(events: Iterable[Event]) -> AsyncIterator[tuple[int, Iterable[Event]]]:
    yield 0, events


def write_jsonl(path: Path) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in history()))
    return path


def check(models: dict[str, Any], verdicts: list[dict[str, Any]]) -> None:
    for model in ("drop", "aging"):
        hours = [v["event_time"] for v in verdicts if v["model_id"] == model]
        assert hours == expected_hours(), model
        assert models[model]["hours_without_verdict"] == 0
        assert models[model]["verdicts"] == len(expected_hours())
    drop, aging = models["drop"], models["aging"]
    assert drop["first_warning"]["event_time"] == DROP + HOUR
    assert drop["first_stale"]["event_time"] == DROP + HOUR
    assert "performance" in drop["first_stale"]["basis"]
    assert aging["first_warning"]["event_time"] == T0 + 7 * HOUR
    assert aging["first_warning"]["state"] == "WARNING"
    assert aging["first_stale"]["event_time"] == T0 + 9 * HOUR
    assert "age" in aging["first_stale"]["basis"]
    assert all(
        v["state"] == "FRESH"
        for v in verdicts
        if v["model_id"] == "drop" and v["event_time"] <= DROP
    )
    assert all(v["impacted"] == ["after-aging"] for v in verdicts if v["model_id"] == "aging")


async def test_the_first_warning_and_stale_hours_of_a_generated_history(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "history.jsonl")
    registry = load_registry(_registry_file(tmp_path))
    result = await run_backtest(
        one(selected(file_events(path), None, None, None)),
        Settings(),
        registry=registry,
        state_dir=tmp_path,
    )
    check(result.models, result.verdicts)
    assert result.events == 2 * HOURS * PER_HOUR * 2 and result.dead_letters == 0
    assert result.late == 0
    text = timeline(result)
    assert "drop: 47 verdicts over 47 hours" in text
    assert "first STALE: 2026-01-02 07:00" in text  # DROP + 1h = day 2, 07:00 UTC
    assert set(tmp_path.iterdir()) == {path, tmp_path / "registry.json"}  # its state is gone


async def test_a_range_and_models_are_chosen(tmp_path: Path) -> None:
    """--from-ms/--to-ms keep the events of [from, to); --models the models named."""
    path = write_jsonl(tmp_path / "history.jsonl")
    frm, to = T0 + 4 * HOUR, T0 + 40 * HOUR
    result = await run_backtest(
        one(selected(file_events(path), frm, to, {"drop"})), Settings(), state_dir=tmp_path
    )
    assert set(result.models) == {"drop"}
    assert [v["event_time"] for v in result.verdicts] == list(range(frm + HOUR, to, HOUR))
    # its reference is the range's first 24 h, complete before the drop
    assert result.models["drop"]["first_stale"]["event_time"] == DROP + HOUR


async def test_a_parquet_file_of_joined_rows(tmp_path: Path) -> None:
    """The `joined`/batch-view shape: one row per prediction with its label and the time it
    was observed; gives the same verdicts as the events themselves."""
    preds = {line["prediction_id"]: dict(line) for line in history() if "score" in line}
    for line in history():
        if "label" in line:
            preds[line["prediction_id"]].update(
                label=line["label"], outcome_timestamp=line["timestamp"]
            )
    path = tmp_path / "joined.parquet"
    pq.write_table(pa.Table.from_pylist(list(preds.values())), str(path))
    result = await run_backtest(
        one(selected(file_events(path), None, None, None)),
        Settings(),
        registry=load_registry(_registry_file(tmp_path)),
        state_dir=tmp_path,
    )
    check(result.models, result.verdicts)


def test_rows_and_the_hour_feed() -> None:
    joined = {"prediction_id": "a", "model_id": "m", "model_version": "v", "timestamp": 5,
              "task": "binary", "score": 0.5, "features": '{"x": 1}', "label": 1,
              "outcome_timestamp": 9, "label_delay_ms": 4}  # fmt: skip
    assert list(row_events(joined)) == [
        ("predictions", {"prediction_id": "a", "model_id": "m", "model_version": "v",
                         "timestamp": 5, "task": "binary", "score": 0.5, "features": {"x": 1}}),
        ("outcomes", {"prediction_id": "a", "model_id": "m", "timestamp": 9, "label": 1}),
    ]  # fmt: skip
    assert list(row_events({**joined, "label": None}))[1:] == []
    feed = HourFeed(max_disorder_ms=HOUR // 2)
    event = lambda ts: ("predictions", {"timestamp": ts})  # noqa: E731
    assert list(feed.add(*event(T0 + 10))) == []
    assert list(feed.add(*event(T0 + HOUR + 1))) == []
    released = list(feed.add(*event(T0 + HOUR + HOUR // 2)))  # the first hour + 30 min seen
    assert released == [[event(T0 + 10)]]
    assert list(feed.add(*event(T0 + 20))) == []  # late: joins the oldest hour held
    assert feed.late == 1
    assert list(feed.drain()) == [
        [event(T0 + HOUR + 1), event(T0 + HOUR + HOUR // 2), event(T0 + 20)]
    ]


def _registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(REGISTRY))
    return path


def test_the_command_prints_the_timeline_as_json(tmp_path: Path) -> None:
    """`runway backtest --file ... --models aging --to-ms ... --json`, as a user runs it."""
    path = write_jsonl(tmp_path / "history.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    done = subprocess.run(
        [RUNWAY, "backtest", "--file", str(path), "--registry", str(_registry_file(tmp_path)),
         "--models", "aging", "--to-ms", str(T0 + 12 * HOUR), "--json"],
        cwd=ROOT, env={**env, "TMPDIR": str(tmp_path)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert list(doc["models"]) == ["aging"]
    assert [v["event_time"] for v in doc["verdicts"]] == list(
        range(T0 + HOUR, T0 + 12 * HOUR, HOUR)
    )
    aging = doc["models"]["aging"]
    assert aging["first_warning"]["event_time"] == T0 + 7 * HOUR
    assert aging["first_stale"]["event_time"] == T0 + 9 * HOUR
    assert doc["events"] == 12 * PER_HOUR * 2
    assert set(tmp_path.iterdir()) == {path, tmp_path / "registry.json"}
