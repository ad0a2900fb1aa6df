"""`runway backtest`: the production join and scorer over history, in process, on a throwaway
state; each model's verdict at every whole hour of its event time.

Why in process: a backtest must give the verdicts the live worker would have given, and must
touch nothing live. So the real `JoinProcessor`, `CheckpointStore` and `JoinRules` run here, with
the hour verdicts of `sinks.hourly` (what a worker judges at each whole hour), over a RocksDB in
a temporary directory; their Kafka is an in-memory stand-in (`_Outputs`) that keeps the
`staleness` records and drops the rest. No consumer group, no producer, no Redis: nothing is
written outside the temporary directory, which is deleted at the end.

Input: (kind, event) pairs, "predictions" or "outcomes", as the input topics carry them. The
join sees them hour by hour of event time (`HourFeed`): every event of an hour, predictions then
outcomes, before any of the next hour, as live processing would have applied them, so each
hour's verdict is judged from every event before it. Input that is not sorted by time is
tolerated up to `max_disorder_ms`; an event older than that is applied late, as a late
arrival is live. A topic range is read one partition at a time (a model's state lives in one
partition), a file as one partition.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from rocksdict import Options, Rdict

from agents.continuity import Continuity, RawRecord
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.settings import Settings
from config.windows import HOUR_MS, parse_windows
from contracts import codec
from contracts.telemetry import Telemetry
from sinks.hourly import HourlyVerdicts, Registry
from staleness.config import from_settings as staleness_config
from staleness.scorer import references_to_store
from tables.checkpoint import CheckpointStore
from tables.join import JoinConfig, JoinRules
from tables.transaction import PartitionTransaction

TOPICS = {
    "predictions": "predictions",
    "outcomes": "outcomes",
    "joined": "joined",
    "dead_letters": "dead-letters",
}
STALENESS = "staleness"
NEVER_MS = 10**15
DAY_MS = 24 * HOUR_MS  # wall-clock fallbacks never fire: wall time means nothing to history
Event = tuple[str, dict[str, Any]]  # ("predictions" | "outcomes", the event)


# -- feeding the join hour by hour -------------------------------------------------------------


class HourFeed:
    """Events grouped by the hour of their timestamp, released in hour order.

    An hour is released once an event `max_disorder_ms` past its end has been seen (or at
    `drain`); an event of an hour already released joins the oldest hour still held (it is
    late, and applied late).
    """

    def __init__(self, max_disorder_ms: int) -> None:
        self.max_disorder_ms = max_disorder_ms
        self._held: dict[int, list[Event]] = {}
        self._released_upto = -1  # hours below this one were released
        self._newest = -1
        self.late = 0

    def add(self, kind: str, event: dict[str, Any]) -> Iterator[list[Event]]:
        ts = event["timestamp"]
        hour = ts - ts % HOUR_MS
        if hour < self._released_upto:
            self.late += 1
            hour = min(self._held, default=self._released_upto)
        self._held.setdefault(hour, []).append((kind, event))
        if ts > self._newest:
            self._newest = ts
        while self._held:
            first = min(self._held)
            if first + HOUR_MS + self.max_disorder_ms > self._newest:
                break
            yield self._release(first)

    def drain(self) -> Iterator[list[Event]]:
        while self._held:
            yield self._release(min(self._held))

    @property
    def released(self) -> int:
        """The end of the last hour released (-1 before the first)."""
        return self._released_upto

    def _release(self, hour: int) -> list[Event]:
        self._released_upto = hour + HOUR_MS
        return self._held.pop(hour)


def records_of(
    hour: list[Event], batch: int, offsets: dict[str, int], partition: int = 0
) -> Iterator[tuple[str, list[RawRecord]]]:
    """The input records of an hour's events: per topic (predictions first), per model, at
    most `batch` events each, numbered on from `offsets`."""
    for kind in ("predictions", "outcomes"):
        by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for k, event in hour:
            if k == kind:
                by_model[str(event.get("model_id"))].append(event)
        topic = TOPICS[kind]
        records = []
        for model, events in by_model.items():
            for at in range(0, len(events), batch):
                chunk = events[at : at + batch]
                value = orjson.dumps(chunk[0] if len(chunk) == 1 else chunk)
                records.append(RawRecord(topic, partition, offsets[topic], model.encode(), value))
                offsets[topic] += 1
        if records:
            yield topic, records


# -- the join's outputs, in memory --------------------------------------------------------------


class _Ack(NamedTuple):
    offset: int


class _Batch:
    def __init__(self) -> None:
        self.size = 0

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None) -> Any:
        self.size += 1
        return self


class _Outputs:
    """The producer the join and its checkpoints write to: `staleness` records are kept, the
    changelog and `joined` are counted and dropped (the local RocksDB holds the state)."""

    def __init__(self) -> None:
        self.verdicts: list[dict[str, Any]] = []
        self.dead_letters = 0
        self._next: dict[str, int] = defaultdict(int)

    def producer(self) -> _Outputs:
        return self

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(
        self, batch: _Batch, topic: str, *, partition: int
    ) -> asyncio.Future[_Ack]:
        return self._done(topic, batch.size)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[_Ack]:
        if topic == STALENESS and value is not None:
            self.verdicts.append(orjson.loads(value))
        elif topic == TOPICS["dead_letters"]:
            self.dead_letters += 1
        return self._done(topic, 1)

    def _done(self, topic: str, count: int) -> asyncio.Future[_Ack]:
        future: asyncio.Future[_Ack] = asyncio.get_running_loop().create_future()
        future.set_result(_Ack(self._next[topic]))
        self._next[topic] += count
        return future


async def _committed(offsets: dict[tuple[str, int], int]) -> bool:
    return True  # no consumer group: nothing to commit


async def _no_range(topic: str, partition: int, a: int, b: int) -> AsyncIterator[RawRecord]:
    raise AssertionError("a backtest's records are numbered without holes")
    yield  # pragma: no cover


async def _log_start(topic: str, partition: int) -> int:
    return 0


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Backtest:
    """What a run gives: every hour verdict (event dicts, by model then event time)."""

    verdicts: list[dict[str, Any]]
    events: int
    dead_letters: int
    late: int
    elapsed_s: float
    models: dict[str, dict[str, Any]] = field(default_factory=dict)


def _open_db(root: Path, partition: int) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(str(root / f"p{partition}"), options)


async def run_backtest(
    sources: AsyncIterable[tuple[int, Iterable[Event]]],
    settings: Settings,
    *,
    registry: dict[str, Registry] | None = None,
    max_disorder_ms: int = HOUR_MS,
    state_dir: Path | None = None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    on_day: Callable[[int, int, int], object] | None = None,
) -> Backtest:
    """Join and judge each (partition, events) source in turn; the hour verdicts.

    `registry`: each model's registry document (trained and deployed times, maximum age,
    baseline, as the registry's Redis cache holds it) and downstream models; absent models
    are judged without (age from first sight, baseline measured). `on_day(day_ms, events,
    verdicts)` is told as each whole day of event time is applied (progress).
    """
    started = time.perf_counter()
    registry = registry or {}
    root = Path(tempfile.mkdtemp(prefix="runway-backtest-", dir=state_dir))
    dbs: dict[int, Rdict] = {}
    outputs = _Outputs()
    events = late = 0
    windows = parse_windows(settings.windows)
    judging = staleness_config(settings)
    try:

        def db_for(partition: int) -> Rdict:
            if partition not in dbs:
                dbs[partition] = _open_db(root, partition)
            return dbs[partition]

        rules = JoinRules(
            JoinConfig(
                label_ttl_for=settings.label_ttl_for,
                early_outcome_ttl_ms=settings.early_outcome_ttl_ms,
                done_retention_ms=settings.done_retention_ms,
                windows=windows,
            )
        )

        async def lookup(models: list[str]) -> dict[str, Registry]:
            return {m: registry.get(m, (None, [])) for m in models}

        def store_references(txn: PartitionTransaction, models: set[str]) -> None:
            """As the worker does: the frozen drift reference, stored with its buckets."""
            for model_id in models:
                for key, value in references_to_store(txn.get, model_id, judging):
                    txn.set(key, value)

        join = JoinProcessor(
            store=CheckpointStore(
                changelog_topic="changelog",
                db_for=db_for,
                producer=outputs.producer,
                commit=_committed,
            ),
            rules=rules,
            topics=TOPICS,
            limits=codec.Limits(settings.max_batch_events, settings.max_message_bytes),
            producer=outputs.producer,
            checkpoint_interval_ms=NEVER_MS,
            checkpoint_max_events=settings.checkpoint_max_events,
            checkpoint_max_keys=settings.checkpoint_max_keys,
            checkpoint_max_bytes=settings.checkpoint_max_bytes,
            idle_wall_clock_after_ms=NEVER_MS,
            on_models_changed=lambda partition, models: None,
            telemetry=Telemetry(),
            ownership=Ownership(),
            continuity=Continuity(_no_range, _log_start),
            derive=store_references,
            hours=HourlyVerdicts(
                cfg=judging,
                topic=STALENESS,
                settle=rules.settle,
                registry=lookup,
                clock_ms=clock_ms,
            ),
        )
        batch = min(settings.max_batch_events, 100)
        async for partition, stream in sources:
            await join.on_assigned({partition})
            feed = HourFeed(max_disorder_ms)
            offsets: dict[str, int] = defaultdict(int)

            for kind, event in stream:
                events += 1
                for hour in feed.add(kind, event):
                    await _apply(join, hour, batch, offsets, partition)
                    if on_day is not None and feed.released % DAY_MS == 0:
                        on_day(feed.released, events, len(outputs.verdicts))
            for hour in feed.drain():
                await _apply(join, hour, batch, offsets, partition)
            await join.checkpoint()
            await join.store.settle()
            late += feed.late
    finally:
        for db in dbs.values():
            db.close()
        shutil.rmtree(root, ignore_errors=True)
    verdicts = sorted(outputs.verdicts, key=lambda v: (v["model_id"], v["event_time"]))
    return Backtest(
        verdicts=verdicts,
        events=events,
        dead_letters=outputs.dead_letters,
        late=late,
        elapsed_s=time.perf_counter() - started,
        models=summarize(verdicts),
    )


async def _apply(
    join: JoinProcessor, hour: list[Event], batch: int, offsets: dict[str, int], partition: int
) -> None:
    for topic, records in records_of(hour, batch, offsets, partition):
        await join.process(topic, partition, records)


# -- the timeline ------------------------------------------------------------------------------


def _moment(verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_time": verdict["event_time"],
        "state": verdict["state"],
        "score": verdict["score"],
        "basis": verdict["basis"],
        "reason": verdict["reason"],
    }


def summarize(verdicts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: verdicts, hours covered, the first WARNING (the first verdict at WARNING or
    worse: the first alarm) and the first STALE, each with its basis and reason."""
    out: dict[str, dict[str, Any]] = {}
    judged: dict[str, set[int]] = defaultdict(set)
    for v in verdicts:
        judged[v["model_id"]].add(v["event_time"] - v["event_time"] % HOUR_MS)
        model = out.setdefault(
            v["model_id"],
            {
                "verdicts": 0,
                "states": {"FRESH": 0, "WARNING": 0, "STALE": 0},
                "first_hour": v["event_time"],
                "last_hour": v["event_time"],
                "first_warning": None,
                "first_stale": None,
                "last": None,
            },
        )
        model["verdicts"] += 1
        model["states"][v["state"]] += 1
        model["first_hour"] = min(model["first_hour"], v["event_time"])
        model["last_hour"] = max(model["last_hour"], v["event_time"])
        if v["state"] != "FRESH" and model["first_warning"] is None:
            model["first_warning"] = _moment(v)
        if v["state"] == "STALE" and model["first_stale"] is None:
            model["first_stale"] = _moment(v)
        model["last"] = _moment(v)
    for model_id, model in out.items():
        hours = (model["last_hour"] - model["first_hour"]) // HOUR_MS + 1
        model["hours"] = hours
        model["hours_without_verdict"] = hours - len(judged[model_id])
        model["verdicts_per_hour"] = round(model["verdicts"] / hours, 3)
    return out
