"""Verdicts in event time (`sinks.hourly`), in process: the real `JoinProcessor` and
`CheckpointStore` over the fake runtime of `tests.unit.faultkit` (in-memory logs, real rocksdict).

Three models on two partitions send predictions and labels (0-40 min late) for 30 hours of event
time, fed in event-time order in records of 1-12 events; `m-c` is silent for five hours in the
middle. Expected, computed from the input alone: each model has exactly one verdict for every
whole hour h with (its first event time) < h <= (its last event time), `event_time` = h; and
each equals the scorer's verdict at h over a state built independently (`JoinRules` applied
directly, event by event, to every event before h), with the registry's facts.
"""

from __future__ import annotations

import functools
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from agents.continuity import Continuity
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.windows import HOUR_MS, parse_windows
from contracts import codec
from contracts.telemetry import Telemetry
from sinks.hourly import MAX_HOURS_PER_CROSSING, HourlyVerdicts, hours_crossed, next_hour
from sinks.staleness import version_facts
from staleness.config import StalenessConfig
from staleness.events import to_event
from staleness.scorer import score_model
from tables.checkpoint import FAUST_OFFSET_KEY, CheckpointStore
from tables.join import JoinConfig, JoinEffects, JoinRules
from tables.transaction import PartitionTransaction
from tests.unit.faultkit import Disk, FakeGroup, FakeKafka, Faults, Inputs, recover
from tests.unit.memdb import MemDB

WEEK = 7 * 24 * HOUR_MS
T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS + 17 * 60_000  # 17 minutes past an hour
HOURS = 30
MODELS = {"m-a": 0, "m-b": 0, "m-c": 1}  # model -> partition
SILENT = range(10, 15)  # hours (from T0) in which m-c sends nothing
TOPICS = {
    "predictions": "in.predictions",
    "outcomes": "in.outcomes",
    "joined": "out.joined",
    "dead_letters": "out.dead-letters",
}
STALENESS = "out.staleness"
SHM = Path("/dev/shm")
CHANGELOG = "changelog"
CFG = StalenessConfig(windows=tuple(parse_windows("1h,24h")), min_labels=20, min_predictions=40)
JOIN = JoinConfig(
    label_ttl_for=lambda model_id: WEEK,
    early_outcome_ttl_ms=WEEK,
    done_retention_ms=WEEK,
    windows=parse_windows("1h,24h,7d"),
)
REGISTRY: dict[str, tuple[dict[str, Any] | None, list[str]]] = {
    "m-a": (
        {"versions": [{"version": "v1", "trained_at": T0 - 20 * 24 * HOUR_MS}]},
        ["downstream"],
    ),
}


def test_next_hour_and_the_hours_a_clock_crosses() -> None:
    h = 1_700_000_000_000 // HOUR_MS * HOUR_MS
    assert next_hour(h - 1) == h
    assert next_hour(h) == h + HOUR_MS  # an event at exactly the hour has crossed it
    assert hours_crossed(h - 1, h) == [h]
    assert hours_crossed(h - 1, h - 1) == []
    assert hours_crossed(h, h + HOUR_MS - 1) == []
    assert hours_crossed(h + 5, h + 3 * HOUR_MS + 9) == [
        h + HOUR_MS,
        h + 2 * HOUR_MS,
        h + 3 * HOUR_MS,
    ]
    far = hours_crossed(h, h + 1000 * HOUR_MS)
    assert len(far) == MAX_HOURS_PER_CROSSING and far[-1] == h + 1000 * HOUR_MS


# -- the input -------------------------------------------------------------------------------


def events(seed: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """(kind, event) of every model, in event-time order (predictions before labels at a tie)."""
    rng = random.Random(seed)
    out: list[tuple[int, int, str, dict[str, Any]]] = []
    for model in MODELS:
        for i in range(HOURS * 60):  # one prediction a minute
            ts = T0 + i * 60_000 + rng.randrange(60_000)
            if model == "m-c" and (ts - T0) // HOUR_MS in SILENT:
                continue
            y = int(rng.random() < 0.4)
            score = round(min(max(rng.gauss(0.65 if y else 0.35, 0.2), 0.0), 1.0), 4)
            pid = f"{model}-{i}"
            out.append(
                (
                    ts,
                    0,
                    "predictions",
                    {
                        "prediction_id": pid,
                        "model_id": model,
                        "model_version": "v1",
                        "timestamp": ts,
                        "task": "binary",
                        "score": score,
                    },
                )
            )
            if rng.random() < 0.9:
                seen = ts + rng.randrange(40 * 60_000)
                if model == "m-c" and (seen - T0) // HOUR_MS in SILENT:
                    continue
                out.append(
                    (
                        seen,
                        1,
                        "outcomes",
                        {"prediction_id": pid, "model_id": model, "timestamp": seen, "label": y},
                    )
                )
    out.sort(key=lambda e: (e[0], e[1], e[3]["prediction_id"]))
    return [(kind, event) for _, _, kind, event in out]


EVENTS = events()


def expected_hours() -> dict[str, list[int]]:
    """Every whole hour in (first event time, last event time] of each model."""
    out = {}
    for model in MODELS:
        times = [e["timestamp"] for _, e in EVENTS if e["model_id"] == model]
        first, last = min(times), max(times)
        out[model] = list(range(first - first % HOUR_MS + HOUR_MS, last + 1, HOUR_MS))
    return out


def oracle() -> dict[tuple[str, int], dict[str, Any]]:
    """(model, hour) -> the event the scorer gives at the hour over every event before it."""
    rules = JoinRules(JOIN)
    states = {p: PartitionTransaction(MemDB()) for p in set(MODELS.values())}
    hours = expected_hours()
    verdicts: dict[tuple[str, int], dict[str, Any]] = {}
    pending = {model: list(hs) for model, hs in hours.items()}

    def judge_until(ts: int) -> None:
        for model, hs in pending.items():
            while hs and hs[0] <= ts:
                hour = hs.pop(0)
                cached, impacted = REGISTRY.get(model, (None, []))
                judged = score_model(
                    states[MODELS[model]].get,
                    model,
                    CFG,
                    now_ms=hour,
                    facts_for=lambda v, c=cached: version_facts(c, v),  # type: ignore[misc]
                )
                assert judged is not None
                version, verdict = judged
                verdicts[(model, hour)] = comparable(
                    to_event(verdict, model, version, 0, impacted).model_dump(mode="json")
                )

    for kind, event in EVENTS:
        judge_until(event["timestamp"])
        txn = states[MODELS[event["model_id"]]]
        if kind == "predictions":
            rules.on_prediction(txn, event, JoinEffects())
        else:
            rules.on_outcome(txn, event, 0, JoinEffects())
    return verdicts


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "emitted_at"}


# -- the world -------------------------------------------------------------------------------


class World:
    def __init__(self, root: Path, judged: bool = True) -> None:
        self.faults = Faults()
        self.kafka = FakeKafka(self.faults, partitions=2)
        self.group = FakeGroup(self.faults)
        self.disk = Disk(root, self.faults)
        self.inputs = Inputs()
        self.fetches: list[tuple[str, int, list[Any]]] = []
        self.judged = judged
        self.sent: list[dict[str, Any]] = []
        rng = random.Random(5)
        run: list[tuple[str, dict[str, Any]]] = []

        def cut() -> None:
            if not run:
                return
            kind, first = run[0]
            topic, partition = TOPICS[kind], MODELS[first["model_id"]]
            body = [e for _, e in run]
            value = orjson.dumps(body[0] if len(body) == 1 else body)
            record = self.inputs.append(topic, partition, first["model_id"].encode(), value)
            last = self.fetches[-1] if self.fetches else None
            if last and last[:2] == (topic, partition) and len(last[2]) < 8:
                last[2].append(record)
            else:
                self.fetches.append((topic, partition, [record]))
            run.clear()

        size = rng.randint(1, 12)
        for kind, event in EVENTS:
            if run and (run[0][0] != kind or run[0][1]["model_id"] != event["model_id"]):
                cut()
            run.append((kind, event))
            if len(run) >= size:
                cut()
                size = rng.randint(1, 12)
        cut()

    async def start(self) -> JoinProcessor:
        rules = JoinRules(JOIN)

        async def registry(models: list[str]) -> dict[str, Any]:
            return {m: REGISTRY.get(m, (None, [])) for m in models}

        hours = HourlyVerdicts(
            cfg=CFG,
            topic=STALENESS,
            settle=functools.partial(rules.settle, index=False),
            registry=registry,
            on_sent=self.sent.extend,
            clock_ms=lambda: T0,
        )
        join = JoinProcessor(
            store=CheckpointStore(
                changelog_topic=CHANGELOG,
                db_for=self.disk.db_for,
                producer=self.kafka.producer,
                commit=self.group.commit,
            ),
            rules=rules,
            topics=TOPICS,
            limits=codec.Limits(1000, 1_000_000),
            producer=self.kafka.producer,
            checkpoint_interval_ms=10**12,
            checkpoint_max_events=10**9,
            checkpoint_max_keys=10**9,
            idle_wall_clock_after_ms=WEEK,
            on_models_changed=lambda partition, models: None,
            telemetry=Telemetry(),
            ownership=Ownership(),
            continuity=Continuity(self.inputs.read, self.inputs.earliest),
            wall_clock_ms=lambda: T0,
            hours=hours if self.judged else None,
        )
        await join.on_assigned(set(MODELS.values()))
        return join

    async def drive(self, join: JoinProcessor, every: int = 60) -> None:
        """Every fetch from the group's committed offsets on, a checkpoint every `every`."""
        for n, (topic, partition, records) in enumerate(self.fetches, 1):
            first = self.group.committed.get((topic, partition), 0)
            todo = [r for r in records if r.offset >= first]
            if todo:
                await join.process(topic, partition, todo)
            if n % every == 0:
                await join.checkpoint()
        await join.checkpoint()
        await join.store.settle()

    def verdicts(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _, v in self.kafka.values(STALENESS) if v is not None]

    def state(self) -> dict[int, dict[bytes, Any]]:
        """Every key of every partition and its value, decoded (a histogram's bins are a
        count per bin, whatever order the settling of its deltas wrote them in)."""
        return {
            p: {
                k: orjson.loads(v)
                for k, v in self.disk.contents(p).items()
                if k != FAUST_OFFSET_KEY
            }
            for p in sorted(set(MODELS.values()))
        }


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """tmpfs when there is one (RocksDB's files on a loaded disk cost seconds here)."""
    if not SHM.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=SHM, prefix="runway-hourly-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def expected() -> dict[tuple[str, int], dict[str, Any]]:
    return oracle()


def by_hour(verdicts: list[dict[str, Any]]) -> dict[str, list[int]]:
    hours: dict[str, list[int]] = {}
    for v in verdicts:
        hours.setdefault(v["model_id"], []).append(v["event_time"])
    return {m: sorted(hs) for m, hs in hours.items()}


async def test_each_model_is_judged_at_every_whole_hour_from_the_state_before_it(
    root: Path, expected: dict[tuple[str, int], dict[str, Any]]
) -> None:
    world = World(root)
    await world.drive(await world.start())
    verdicts = world.verdicts()
    assert by_hour(verdicts) == expected_hours()
    hours = expected_hours()
    assert len(hours["m-c"]) == len(hours["m-a"])  # m-c's silent hours judged at the crossing
    for v in verdicts:
        assert comparable(v) == expected[(v["model_id"], v["event_time"])], v["event_time"]
    states = Counter(v["state"] for v in verdicts)
    assert sum(states.values()) == len(verdicts) and states  # every one a verdict
    # m-a: 20 days old at T0 of a 30-day maximum age: WARNING on age from day 24 (0.8) - not
    # within these 30 hours; its facts did reach the verdicts (age since "trained")
    since = {
        m: {v["metrics"].get("age_since") for v in verdicts if v["model_id"] == m} for m in MODELS
    }
    assert since == {"m-a": {"trained"}, "m-b": {"first_seen"}, "m-c": {"first_seen"}}
    assert all(v["impacted"] == ["downstream"] for v in verdicts if v["model_id"] == "m-a")
    assert [e["event_time"] for e in world.sent] == [v["event_time"] for v in verdicts]


async def test_judging_leaves_the_state_as_it_is(root: Path) -> None:
    """The hook settles early and reads through the transaction: the state is key for key and
    value for value that of a join that judges nothing."""
    plain = World(root / "plain", judged=False)
    await plain.drive(await plain.start())
    judged = World(root / "judged")
    await judged.drive(await judged.start())
    assert plain.verdicts() == []
    assert judged.state() == plain.state()


async def test_a_crash_before_the_changelog_judges_its_hours_again(
    root: Path, expected: dict[tuple[str, int], dict[str, Any]]
) -> None:
    """Verdicts go out in step 1 of a checkpoint: one that fails after them replays the input
    and judges those hours again (at least once, each copy the same verdict)."""
    world = World(root)
    join = await world.start()
    world.faults.arm("changelog", KafkaTimeoutError(), nth=41)
    with pytest.raises(KafkaTimeoutError):
        await world.drive(join, every=100)
    before = by_hour(world.verdicts())
    assert before and all(before.values())
    world.disk.restart()
    recover(world.disk, world.kafka, CHANGELOG, set(MODELS.values()))
    await world.drive(await world.start(), every=100)
    verdicts = world.verdicts()
    assert {m: sorted(set(hs)) for m, hs in by_hour(verdicts).items()} == expected_hours()
    assert len(verdicts) > sum(len(hs) for hs in expected_hours().values())  # some twice
    for v in verdicts:
        assert comparable(v) == expected[(v["model_id"], v["event_time"])]


# -- the emitter's side ------------------------------------------------------------------------


class FakeRedis:
    """What the emitter calls: `mget`, and a pipeline of `delete` + `hset`."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.hashes: dict[str, dict[str, Any]] = {}
        self.mgets: list[list[str]] = []

    async def mget(self, names: list[str]) -> list[bytes | None]:
        self.mgets.append(list(names))
        return [self.values.get(n) for n in names]

    def pipeline(self, transaction: bool = True) -> FakeRedis.Pipe:
        return FakeRedis.Pipe(self)

    class Pipe:
        def __init__(self, redis: FakeRedis) -> None:
            self.redis, self.ops = redis, []  # type: ignore[var-annotated]

        def delete(self, key: str) -> None:
            self.ops.append(lambda: self.redis.hashes.pop(key, None))

        def hset(self, key: str, mapping: dict[str, Any]) -> None:
            self.ops.append(lambda: self.redis.hashes.__setitem__(key, dict(mapping)))

        async def execute(self) -> None:
            for op in self.ops:
                op()


async def test_the_emitter_records_hour_verdicts_and_shows_the_newest() -> None:
    """An hour verdict counts as emitted for the wall-clock path (its state is not sent again
    until it changes); the newest hour verdict is shown; registry documents are looked up once."""
    import asyncio

    from sinks.staleness import StalenessEmitter

    rules = JoinRules(JOIN)
    txn = PartitionTransaction(MemDB())
    for kind, event in EVENTS[:400]:
        if event["model_id"] != "m-a":
            continue
        if kind == "predictions":
            rules.on_prediction(txn, event, JoinEffects())
        else:
            rules.on_outcome(txn, event, 0, JoinEffects())
    redis = FakeRedis({"p:registry:model:m-a": orjson.dumps(REGISTRY["m-a"][0])})
    sent: list[bytes] = []

    async def send(key: str, value: bytes) -> None:
        sent.append(value)

    emitter = StalenessEmitter(
        lambda partition: txn.get, send, redis, "p", CFG, 60_000, Telemetry(), lambda: T0
    )
    facts = await emitter.registry_for(["m-a"])
    assert facts["m-a"][0] == REGISTRY["m-a"][0]
    await emitter.registry_for(["m-a"])
    assert len(redis.mgets) == 1  # looked up once
    judged = score_model(txn.get, "m-a", CFG, facts_for=lambda v: version_facts(facts["m-a"][0], v))
    assert judged is not None
    version, verdict = judged

    def hour_event(state: str, at: int) -> dict[str, Any]:
        return {
            "model_id": "m-a",
            "model_version": version,
            "state": state,
            "score": 0.5,
            "event_time": at,
        }

    emitter.noted([hour_event(verdict.state, T0 + HOUR_MS), hour_event("STALE", T0)])
    await asyncio.sleep(0)  # the background show
    await asyncio.sleep(0)
    shown = redis.hashes["p:model:m-a:staleness"]
    assert (shown["state"], shown["event_time"]) == (verdict.state, str(T0 + HOUR_MS))
    emitter.add(0, {"m-a"})
    assert await emitter.flush() == 0 and sent == []  # the same state: already emitted
    emitter.noted([hour_event("STALE" if verdict.state != "STALE" else "FRESH", T0 + 2 * HOUR_MS)])
    emitter.add(0, {"m-a"})
    assert await emitter.flush() == 1 and len(sent) == 1  # the wall-clock state differs
