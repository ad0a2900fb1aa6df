"""`runway backtest`: where the events come from (a file, or a range of the input topics), and
the timeline it prints. The run itself is `streams.backtest`.

A file is JSON lines or Parquet (a file, or a directory such as the batch view's dataset). Each
line or row is an event as the input topics carry it, or a joined pair:

- a row with a `score` is a prediction (its `prediction_id`, `model_id`, `model_version`,
  `timestamp`, `task`, `score`, `features`: JSON text or an object); if it also has a `label`
  and an `outcome_timestamp` (the `joined` topic's and the batch view's shape), that is its
  outcome, observed at `outcome_timestamp`;
- a row with a `label` and no `score` is an outcome (`prediction_id`, `model_id`, `timestamp`,
  `label`).

Topics are read with a consumer of no group (assigned partitions, nothing committed), from the
first record that can hold an event at or after `--from-ms` (a record's create time is at most
`RUNWAY_MAX_FUTURE_SKEW_MS` before its events') to the end offsets at the start of the run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.cli import AppCommand, option

from config.connections import kafka_options
from config.settings import Settings
from config.windows import HOUR_MS
from sinks.hourly import Registry
from streams.backtest import Backtest, Event, run_backtest

PREDICTION_FIELDS = ("prediction_id", "model_id", "model_version", "timestamp", "task", "score")


def row_events(row: dict[str, Any]) -> Iterator[Event]:
    """The events of one line or row (see the module's docstring)."""
    if row.get("score") is not None:
        pred = {name: row.get(name) for name in PREDICTION_FIELDS}
        features = row.get("features")
        if isinstance(features, str):
            features = orjson.loads(features)
        if features:
            pred["features"] = features
        yield "predictions", pred
        if row.get("label") is not None and row.get("outcome_timestamp") is not None:
            yield (
                "outcomes",
                {
                    "prediction_id": row["prediction_id"],
                    "model_id": row["model_id"],
                    "timestamp": row["outcome_timestamp"],
                    "label": row["label"],
                },
            )
    elif row.get("label") is not None:
        yield (
            "outcomes",
            {name: row.get(name) for name in ("prediction_id", "model_id", "timestamp", "label")},
        )


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir() or path.suffix == ".parquet":
        import pyarrow.dataset as ds

        dataset = ds.dataset(str(path), format="parquet", partitioning="hive")
        # sorted by prediction time: a dataset's files follow its partitions, not time
        table = dataset.to_table().sort_by("timestamp")
        for batch in table.to_batches(max_chunksize=50_000):
            yield from batch.to_pylist()
        return
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def selected(
    events: Iterable[Event], from_ms: int | None, to_ms: int | None, models: set[str] | None
) -> Iterator[Event]:
    """Events of `models` whose timestamp is in [from_ms, to_ms)."""
    for kind, event in events:
        ts = event.get("timestamp")
        if not isinstance(ts, int):
            yield kind, event  # invalid: the join dead-letters it, as live
            continue
        if from_ms is not None and ts < from_ms or to_ms is not None and ts >= to_ms:
            continue
        if models is not None and event.get("model_id") not in models:
            continue
        yield kind, event


def file_events(path: Path) -> Iterator[Event]:
    for row in _rows(path):
        yield from row_events(row)


async def topic_sources(
    settings: Settings, from_ms: int | None, to_ms: int | None, models: set[str] | None
) -> AsyncIterator[tuple[int, list[Event]]]:
    """Each partition's events of the two input topics in the range, partition by partition."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = {
            settings.topic("predictions"): "predictions",
            settings.topic("outcomes"): "outcomes",
        }
        for partition in range(settings.partitions):
            tps = [TopicPartition(topic, partition) for topic in topics]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            if from_ms is not None:
                at = await consumer.offsets_for_times(
                    {tp: max(from_ms - settings.max_future_skew_ms, 0) for tp in tps}
                )
                starts = {tp: (found.offset if found else ends[tp]) for tp, found in at.items()}
            for tp in tps:
                consumer.seek(tp, starts[tp])
            events: list[Event] = []
            remaining = {tp for tp in tps if starts[tp] < ends[tp]}
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, messages in fetched.items():
                    for message in messages:
                        if message.offset >= ends[tp]:
                            remaining.discard(tp)
                            break
                        events.extend(_decoded(topics[tp.topic], message.value))
                        if message.offset + 1 >= ends[tp]:
                            remaining.discard(tp)
            events.sort(key=_time)
            yield partition, list(selected(events, from_ms, to_ms, models))
    finally:
        await consumer.stop()


def _time(event: Event) -> int:
    ts = event[1].get("timestamp")
    return ts if isinstance(ts, int) else 0


def _decoded(kind: str, value: bytes | None) -> list[Event]:
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return []  # a dead letter live; it changes no state
    items = body if isinstance(body, list) else [body]
    return [(kind, item) for item in items if isinstance(item, dict)]


async def _one(events: Iterable[Event]) -> AsyncIterator[tuple[int, Iterable[Event]]]:
    yield 0, events


def load_registry(path: Path | None) -> dict[str, Registry]:
    """`--registry FILE`: {model_id: its registry document}, the shape of the registry's cached
    model document (`versions`: [{version, trained_at, deployed_at, max_age_ms,
    baseline_metrics}]) plus an optional `impacted` list."""
    if path is None:
        return {}
    docs = json.loads(path.read_text())
    return {m: (doc, list(doc.get("impacted") or [])) for m, doc in docs.items()}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def timeline(result: Backtest) -> str:
    """Each model's verdict timeline in a few lines."""
    lines = [
        f"{result.events:,} events, {sum(m['verdicts'] for m in result.models.values()):,} "
        f"hour verdicts of {len(result.models)} models in {result.elapsed_s:.1f} s"
        + (f"; {result.dead_letters:,} dead letters" if result.dead_letters else "")
        + (f"; {result.late:,} events applied late" if result.late else "")
    ]
    for model_id, m in sorted(result.models.items()):
        lines.append(
            f"\n{model_id}: {m['verdicts']} verdicts over {m['hours']} hours "
            f"({_when(m['first_hour'])} .. {_when(m['last_hour'])} UTC), "
            f"{m['hours_without_verdict']} hours without one; "
            + ", ".join(f"{state} {n}" for state, n in m["states"].items())
        )
        for label, key in (("first WARNING", "first_warning"), ("first STALE", "first_stale")):
            moment = m[key]
            if moment is None:
                lines.append(f"  {label}: never")
            else:
                lines.append(
                    f"  {label}: {_when(moment['event_time'])} ({moment['state']}, score "
                    f"{moment['score']:.2f}, basis {'+'.join(moment['basis'])}) {moment['reason']}"
                )
    return "\n".join(lines)


def as_json(result: Backtest) -> dict[str, Any]:
    return {
        "events": result.events,
        "dead_letters": result.dead_letters,
        "late": result.late,
        "elapsed_s": round(result.elapsed_s, 3),
        "models": result.models,
        "verdicts": result.verdicts,
    }


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        option(
            "--file",
            "file",
            default=None,
            help="JSON lines or Parquet (file or directory) "
            "of predictions and outcomes; default: the input topics.",
        ),
        option("--from-ms", type=int, default=None, help="Events from this event time (ms)."),
        option("--to-ms", type=int, default=None, help="...up to, not including, this one."),
        option("--models", default=None, help="Only these models (comma-separated ids)."),
        option(
            "--registry",
            "registry_file",
            default=None,
            help="JSON of the models' registry documents (trained_at, max_age_ms, ...).",
        ),
        option(
            "--max-disorder-ms",
            type=int,
            default=HOUR_MS,
            help="How far out of time order the input may be before an event counts late.",
        ),
        option(
            "--json",
            "as_json_flag",
            is_flag=True,
            default=False,
            help="Print JSON: the summary and every verdict.",
        ),
    )
    async def backtest(
        self: AppCommand,
        file: str | None,
        from_ms: int | None,
        to_ms: int | None,
        models: str | None,
        registry_file: str | None,
        max_disorder_ms: int,
        as_json_flag: bool,
    ) -> None:
        """Replay history through the join and the scorer (a throwaway state, nothing written):
        each model's verdict at every whole hour of event time, first WARNING and STALE."""
        chosen = {m.strip() for m in models.split(",") if m.strip()} if models else None
        registry = load_registry(Path(registry_file) if registry_file else None)
        if file is not None:
            sources: Any = _one(selected(file_events(Path(file)), from_ms, to_ms, chosen))
        else:
            sources = topic_sources(settings, from_ms, to_ms, chosen)
        started = time.perf_counter()

        def progress(day_ms: int, events: int, verdicts: int) -> None:
            print(
                f"backtest: {_when(day_ms)} reached, {events:,} events read, {verdicts:,} "
                f"verdicts, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )

        result = await run_backtest(
            sources,
            settings,
            registry=registry,
            max_disorder_ms=max_disorder_ms,
            on_day=progress,
        )
        if as_json_flag or self.json:
            sys.stdout.write(orjson.dumps(as_json(result), option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        else:
            print(timeline(result))
