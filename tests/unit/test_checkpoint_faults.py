"""Checkpoint faults, in process: each step of a checkpoint fails once, then the worker recovers
(or the same processor checkpoints again) and replays. Afterwards the state must equal an
undisturbed run's, key by key (exactly once: counters included), and every pair must be on
`joined` (at least once).

The real `JoinProcessor` and `CheckpointStore` run over a fake runtime (`tests.unit.faultkit`:
in-memory logs for the inputs, `joined`, dead letters and the changelog; recorded commits) and
real raw-mode rocksdict DBs, one per partition. The four steps of `CheckpointStore.checkpoint`:
1 the outputs (`joined`, dead letters), 2 one changelog record batch per partition, 3 the local
WriteBatch, 4 the group's commit. A crash drops the processor; the disk is kept (reopened) or
lost (an empty directory), the DB is recovered from the changelog as Faust does, and a new
processor replays the input from the group's committed offsets, or from offset 0 (then the
processor itself skips what its marker holds).

Expected pairs, dead letters and counters are computed from the generated input. TTLs are a
week and the events span minutes, so nothing expires and the final state does not depend on
where the checkpoints fell. The one key left out of the state comparison is Faust's persisted
changelog offset (FAUST_OFFSET_KEY): a failed or repeated changelog batch moves the changelog's
offsets, so it legitimately differs; it is checked on its own (it names the changelog's last
record). The marker (input offsets applied, stream time, sides) is compared like any key.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError

from agents.continuity import Continuity, RawRecord
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.windows import parse_windows
from contracts import codec
from contracts.telemetry import Telemetry
from streams.runtime import is_retriable
from tables import keys
from tables.checkpoint import FAUST_OFFSET_KEY, ChangelogTooLarge, CheckpointStore, _once
from tables.join import JoinConfig, JoinRules
from tests.unit.faultkit import Disk, FakeGroup, FakeKafka, Fault, Faults, Inputs, recover

WEEK = 7 * 24 * 3_600_000
T0 = 1_700_000_000_000
MODELS = {0: ("m-a", "m-b"), 1: ("m-c",)}  # input partition -> the models keyed to it
EVENTS = {"m-a": 26, "m-b": 22, "m-c": 30}
PARTITIONS = set(MODELS)
TOPICS = {
    "predictions": "in.predictions",
    "outcomes": "in.outcomes",
    "joined": "out.joined",
    "dead_letters": "out.dead-letters",
}
CHANGELOG = "runway-join-changelog"
OUTPUTS = (TOPICS["joined"], TOPICS["dead_letters"])
LIMITS = codec.Limits(max_events=20, max_bytes=1_000_000)
SHM = Path("/dev/shm")


# -- the input, and what it must give --------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    topic: str
    partition: int
    records: tuple[RawRecord, ...]


@dataclass(frozen=True)
class Checkpoint:
    pass


Step = Fetch | Checkpoint


@dataclass
class Scenario:
    inputs: Inputs
    plan: list[Step]
    pairs: dict[str, dict[str, Any]]  # prediction_id -> the record expected on `joined`
    dead_letters: set[tuple[str, int, int, int | None]]  # topic, partition, offset, index
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # model -> counter -> total


def generate(seed: int = 7) -> Scenario:
    """Predictions and outcomes of three models on two partitions, records of 1-10 events.

    Per model: some predictions never labelled, some invalid (score 1.5: a dead letter, its
    outcome an orphan), some sent twice, some outcomes sent twice; outcomes shuffled, so some
    arrive before their prediction. Plus one malformed outcome record.
    """
    rng = random.Random(seed)
    inputs = Inputs()
    pairs: dict[str, dict[str, Any]] = {}
    dead: set[tuple[str, int, int, int | None]] = set()
    counts: dict[str, Counter[str]] = {}
    for partition, models in MODELS.items():
        chunks: dict[str, list[tuple[int, str, list[dict[str, Any]]]]] = defaultdict(list)
        for model in models:
            count = counts[model] = Counter()
            preds: list[dict[str, Any]] = []
            outs: list[dict[str, Any]] = []
            for i in range(EVENTS[model]):
                pid = f"{model}-{i:03d}"
                ts = T0 + i * 1_500 + rng.randrange(1_000)
                pred: dict[str, Any] = {
                    "prediction_id": pid,
                    "model_id": model,
                    "model_version": "v2" if i % 3 == 0 else "v1",
                    "timestamp": ts,
                    "task": "binary",
                    "score": round(rng.random(), 4),
                }
                if i % 4 == 0:
                    pred["schema_version"] = 1
                valid = i % 11 != 7
                if not valid:
                    pred["score"] = 1.5
                preds.append(pred)
                if valid:
                    count["n"] += 1
                    if i % 10 == 5:
                        preds.append(dict(pred))
                        count["dp"] += 1
                if i % 6 == 4:
                    continue  # never labelled
                labelled = ts + rng.randrange(1, 120_000)
                out: dict[str, Any] = {
                    "prediction_id": pid,
                    "model_id": model,
                    "timestamp": labelled,
                    "label": rng.randint(0, 1),
                }
                outs.append(out)
                if not valid:
                    continue  # an orphan outcome
                pairs[pid] = {
                    **pred,
                    "label": out["label"],
                    "outcome_timestamp": out["timestamp"],
                    "label_delay_ms": labelled - ts,
                }
                count["lab"] += 1
                if i % 8 == 3:
                    outs.append(dict(out))
                    count["do"] += 1
            rng.shuffle(outs)
            for kind, events in (("predictions", preds), ("outcomes", outs)):
                start, seq = 0, 0
                while start < len(events):
                    size = rng.choice((1, 4, 7, 10))
                    chunks[kind].append((seq, model, events[start : start + size]))
                    start, seq = start + size, seq + 1
        for kind in ("predictions", "outcomes"):
            topic = TOPICS[kind]
            for n, (_, model, events) in enumerate(sorted(chunks[kind])):
                if kind == "outcomes" and partition == 1 and n == 2:
                    record = inputs.append(topic, partition, b"m-c", b'{"prediction_id": ')
                    dead.add((topic, partition, record.offset, None))
                single = len(events) == 1
                value = orjson.dumps(events[0] if single else events)
                record = inputs.append(topic, partition, model.encode(), value)
                for index, event in enumerate(events):
                    if event.get("score", 0) > 1:
                        dead.add((topic, partition, record.offset, None if single else index))
    return Scenario(inputs, _plan(inputs, rng), pairs, dead, counts)


def _plan(inputs: Inputs, rng: random.Random) -> list[Step]:
    """Fetches of 1-2 records, the four input partitions in turn; a checkpoint every 3 fetches
    and at the end."""
    order = sorted(inputs.logs)
    cursor = dict.fromkeys(order, 0)
    plan: list[Step] = []
    fetches = 0
    while any(cursor[tp] < len(inputs.logs[tp]) for tp in order):
        for tp in order:
            log, start = inputs.logs[tp], cursor[tp]
            if start >= len(log):
                continue
            cursor[tp] = min(start + rng.randint(1, 2), len(log))
            plan.append(Fetch(tp[0], tp[1], tuple(log[start : cursor[tp]])))
            fetches += 1
            if fetches % 3 == 0:
                plan.append(Checkpoint())
    if not isinstance(plan[-1], Checkpoint):
        plan.append(Checkpoint())
    return plan


SCENARIO = generate()
CHECKPOINTS = sum(isinstance(step, Checkpoint) for step in SCENARIO.plan)


# -- the world: fake runtime, real disk ------------------------------------------------------


class World:
    def __init__(self, root: Path, batch_limit: int | None = None) -> None:
        self.faults = Faults()
        self.kafka = FakeKafka(self.faults, partitions=2, batch_limit=batch_limit)
        self.group = FakeGroup(self.faults)
        self.disk = Disk(root, self.faults)
        self.inputs = SCENARIO.inputs

    async def start(
        self, *, retry: Any = _once, cls: type[JoinProcessor] = JoinProcessor
    ) -> JoinProcessor:
        """A new processor over the disk as it is, owning every partition."""
        store = CheckpointStore(
            changelog_topic=CHANGELOG,
            db_for=self.disk.db_for,
            producer=self.kafka.producer,
            commit=self.group.commit,
            retry=retry,
        )
        join = cls(
            store=store,
            rules=JoinRules(
                JoinConfig(
                    label_ttl_for=lambda model_id: WEEK,
                    early_outcome_ttl_ms=WEEK,
                    done_retention_ms=WEEK,
                    windows=parse_windows("1h,24h"),
                )
            ),
            topics=TOPICS,
            limits=LIMITS,
            producer=self.kafka.producer,
            checkpoint_interval_ms=10**12,  # checkpoints only where the plan says
            checkpoint_max_events=10**9,
            checkpoint_max_keys=10**9,
            idle_wall_clock_after_ms=WEEK,
            on_models_changed=lambda partition, models: None,
            telemetry=Telemetry(),
            ownership=Ownership(),
            continuity=Continuity(self.inputs.read, self.inputs.earliest),
            retry=retry,
            wall_clock_ms=lambda: T0,
        )
        await join.on_assigned(set(PARTITIONS))
        return join

    def crash(self, *, lose_disk: bool) -> None:
        """The process dies (its processor is dropped by the caller); the replacement opens the
        disk, or an empty one, and recovers it from the changelog."""
        if lose_disk:
            self.disk.lose()
        else:
            self.disk.restart()
        recover(self.disk, self.kafka, CHANGELOG, PARTITIONS)

    def state(self) -> dict[int, dict[bytes, bytes]]:
        return {
            p: {k: v for k, v in self.disk.contents(p).items() if k != FAUST_OFFSET_KEY}
            for p in sorted(PARTITIONS)
        }

    def persisted(self, partition: int) -> int | None:
        raw = self.disk.db_for(partition).get(FAUST_OFFSET_KEY)
        return None if raw is None else int(raw)

    def changelog_sizes(self) -> dict[int, int]:
        return {p: len(self.kafka.logs[(CHANGELOG, p)]) for p in sorted(PARTITIONS)}

    def joined(self) -> dict[str, list[dict[str, Any]]]:
        copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, value in self.kafka.values(TOPICS["joined"]):
            assert value is not None
            for event in orjson.loads(value):
                copies[event["prediction_id"]].append(event)
        return dict(copies)


OnFailure = Callable[[BaseException, JoinProcessor], Awaitable[bool]]


async def drive(
    join: JoinProcessor,
    *,
    since: dict[tuple[str, int], int] | None = None,
    arm: Callable[[], object] | None = None,
    at: int = 0,
    on_failure: OnFailure | None = None,
) -> list[BaseException]:
    """Feed the plan's records from `since` (the next offset per input partition, 0 when
    absent); `arm()` right before checkpoint number `at`. A checkpoint that raises ends the
    run (a crash) unless `on_failure` returns True (it then did what it wanted, e.g. try the
    checkpoint again, and the run goes on). The failures, in order."""
    since = since or {}
    failures: list[BaseException] = []
    number = 0
    for step in SCENARIO.plan:
        if isinstance(step, Fetch):
            first = since.get((step.topic, step.partition), 0)
            records = [record for record in step.records if record.offset >= first]
            if records:
                await join.process(step.topic, step.partition, records)
            continue
        number += 1
        if number == at and arm is not None:
            await join.store.settle()  # the previous checkpoint's commit lands before the fault
            arm()
        try:
            await join.checkpoint()
            if number == CHECKPOINTS:  # the last commit is awaited like a revocation's
                await join.store.settle()
        except Exception as exc:
            failures.append(exc)
            if on_failure is None or not await on_failure(exc, join):
                return failures
    return failures


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """Where the worlds' disks live: tmpfs when there is one (opening and closing a RocksDB
    costs ~25 ms on a loaded disk, ~3 ms there), else pytest's tmp_path."""
    if not SHM.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=SHM, prefix="runway-checkpoint-faults-") as path:
        yield Path(path)


@dataclass
class Baseline:
    state: dict[int, dict[bytes, bytes]]
    changelog_sizes: dict[int, int]
    joined: dict[str, list[dict[str, Any]]]
    output_sends: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The undisturbed run over the same input."""
    world = World(tmp_path_factory.mktemp("undisturbed"))
    join = await world.start()
    assert await drive(join) == []
    result = Baseline(
        world.state(),
        world.changelog_sizes(),
        world.joined(),
        sum(len(log) for (topic, _), log in world.kafka.logs.items() if topic in OUTPUTS),
    )
    world.disk.restart()
    return result


# -- the checks ------------------------------------------------------------------------------


def _show(key: bytes, value: bytes | None) -> str:
    return f"{key!r}: {value.decode(errors='replace') if value is not None else None}"


def assert_same_state(world: World, baseline: Baseline) -> None:
    """(a)+(c): the state equals the undisturbed run's key by key (counters are state), the DB
    has applied its whole changelog, and the changelog alone rebuilds the same state."""
    state = world.state()
    for partition in sorted(PARTITIONS):
        got, want = state[partition], baseline.state[partition]
        if got != want:
            extra = [_show(k, got[k]) for k in sorted(got.keys() - want.keys())]
            lacking = [_show(k, want[k]) for k in sorted(want.keys() - got.keys())]
            changed = [
                f"{_show(k, got[k])} (undisturbed: {want[k].decode(errors='replace')})"
                for k in sorted(got.keys() & want.keys())
                if got[k] != want[k]
            ]
            pytest.fail(
                f"partition {partition}: state differs from the undisturbed run\n"
                f"  extra keys {len(extra)}: {extra[:4]}\n"
                f"  missing keys {len(lacking)}: {lacking[:4]}\n"
                f"  changed values {len(changed)}: {changed[:4]}"
            )
        assert world.persisted(partition) == world.changelog_sizes()[partition] - 1
        rebuilt: dict[bytes, bytes] = {}  # what recovery on an empty disk would write
        for key, value in world.kafka.logs[(CHANGELOG, partition)]:
            assert key is not None
            if value is None:
                rebuilt.pop(key, None)
            else:
                rebuilt[key] = value
        assert rebuilt == got, f"partition {partition}: the changelog does not restore the state"
    assert_counted_once(state)


def assert_counted_once(state: dict[int, dict[bytes, bytes]]) -> None:
    """Counters over every minute bucket of each model (all versions), from the input."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for contents in state.values():
        for key, raw in contents.items():
            if not key.startswith(keys.BUCKET):
                continue
            model, version, gran, _ = keys.split_bucket(key)
            if version != keys.ALL_VERSIONS or gran != "m":
                continue
            agg = orjson.loads(raw)
            for name in ("n", "lab", "dp", "do", "exp", "orph", "late"):
                totals[model][name] += agg.get(name, 0)
    for model, want in SCENARIO.counts.items():
        assert +totals[model] == +want, f"{model}: counted {dict(totals[model])}, want {want}"


def assert_every_pair_joined(world: World) -> None:
    """(b): every expected pair at least once on `joined` (each copy the expected record),
    nothing else; every dead letter at least once."""
    copies = world.joined()
    missing = sorted(SCENARIO.pairs.keys() - copies.keys())
    assert not missing, f"{len(missing)} pairs never reached joined: {missing[:6]}"
    assert copies.keys() == SCENARIO.pairs.keys()
    for pid, events in copies.items():
        assert all(event == SCENARIO.pairs[pid] for event in events), pid
    dead = set()
    for _, value in world.kafka.values(TOPICS["dead_letters"]):
        assert value is not None
        envelope = orjson.loads(value)
        dead.add(
            (
                envelope["source_topic"],
                envelope["source_partition"],
                envelope["source_offset"],
                envelope["index"],
            )
        )
    assert dead == SCENARIO.dead_letters


# -- what follows a failed checkpoint --------------------------------------------------------

RETRY = "retry"  # the same processor checkpoints again (no crash), and goes on
AFTER = [
    RETRY,
    "restart/committed",  # crash; disk kept; replay from the group's committed offsets
    "restart/0",  # crash; disk kept; replay from offset 0
    "new-disk/committed",  # crash; disk lost, rebuilt from the changelog
    "new-disk/0",
]


async def finish(world: World, after: str) -> None:
    """After a crash: recover, start a new processor, replay to the end."""
    if after == RETRY:
        return
    disk, replay = after.split("/")
    world.crash(lose_disk=disk == "new-disk")
    join = await world.start()
    since = dict(world.group.committed) if replay == "committed" else {}
    assert await drive(join, since=since) == []


@dataclass
class Durable:
    """What the durable steps had done just before the faulty checkpoint."""

    changelog: dict[int, int]
    persisted: dict[int, int | None]
    commits: int

    @classmethod
    def of(cls, world: World) -> Durable:
        return cls(
            world.changelog_sizes(),
            {p: world.persisted(p) for p in sorted(PARTITIONS)},
            len(world.group.commits),
        )


def retry_once_more(after: str) -> OnFailure | None:
    async def again(exc: BaseException, join: JoinProcessor) -> bool:
        await join.checkpoint()
        return True

    return again if after == RETRY else None


# 1. output sends -----------------------------------------------------------------------------


@pytest.mark.parametrize("after", AFTER)
@pytest.mark.parametrize(
    "checkpoint, nth, at, written",
    [
        (1, 1, "call", False),  # the first send of the checkpoint raises
        (3, 2, "call", False),  # a later one: the first is on `joined` already
        (3, 1, "ack", True),  # on `joined`, but its ack lost
        (2, 2, "ack", False),
    ],
    ids=["first-send", "second-send", "ack-lost", "second-ack-fails"],
)
async def test_a_failed_output_send_fails_the_checkpoint_and_loses_no_pair(
    root: Path, baseline: Baseline, after: str, checkpoint: int, nth: int, at: str, written: bool
) -> None:
    world = World(root)
    before: list[Durable] = []
    faults: list[Fault] = []

    def arm() -> None:
        before.append(Durable.of(world))
        error = KafkaTimeoutError("fake: joined send timed out")
        faults.append(world.faults.arm("output", error, nth=nth, at=at, written=written))

    async def on_failure(exc: BaseException, join: JoinProcessor) -> bool:
        # step 1 failed: nothing of the checkpoint is durable, and everything is still pending
        assert Durable.of(world) == before[0]
        assert all(part.dirty for part in join.store.partitions.values())
        again = retry_once_more(after)
        return again is not None and await again(exc, join)

    join = await world.start()
    failures = await drive(join, arm=arm, at=checkpoint, on_failure=on_failure)
    assert failures == [faults[0].error]  # the checkpoint failed: the exception escaped
    del join
    await finish(world, after)
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


def _drain(buffer: Any) -> list[Any]:
    """Everything in a processor's output buffer (a list, or lists by partition), emptied."""
    items = [x for part in buffer.values() for x in part] if isinstance(buffer, dict) else buffer
    items = list(items)
    buffer.clear()
    return items


class _EmptiesBeforeSending(JoinProcessor):
    """`_send_outputs` as it was before 0222ae4: buffers emptied, then sent."""

    async def _send_outputs(self) -> None:
        outputs = _drain(self._outputs)
        joined = _drain(self._joined)
        for key, value in codec.encode_batches(joined, LIMITS.max_events, lambda e: e["model_id"]):
            outputs.append((self._joined_topic, key, value))
        if outputs:
            await self._retry(lambda: self._send_each(outputs), "outputs")

    async def _send_each(self, outputs: list[tuple[str, bytes, bytes]]) -> None:
        producer = self._producer()
        futures = [await producer.send(topic, value, key=key) for topic, key, value in outputs]
        await asyncio.gather(*futures)


async def test_the_retry_check_catches_outputs_emptied_before_they_are_sent(
    root: Path, baseline: Baseline
) -> None:
    """The in-process retry above fails on a processor that empties its buffers before the
    sends are acknowledged: the retried checkpoint marks the pairs joined without them."""
    world = World(root)
    join = await world.start(cls=_EmptiesBeforeSending)

    def arm() -> None:
        world.faults.arm("output", KafkaTimeoutError("fake"), nth=1)

    failures = await drive(join, arm=arm, at=1, on_failure=retry_once_more(RETRY))
    assert len(failures) == 1
    assert_same_state(world, baseline)  # the state is right...
    with pytest.raises(AssertionError, match="pairs never reached joined"):
        assert_every_pair_joined(world)  # ...but pairs of checkpoint 1 are not on `joined`


# 2. changelog sends --------------------------------------------------------------------------


@pytest.mark.parametrize("after", AFTER)
@pytest.mark.parametrize(
    "checkpoint, nth, at, written, error",
    [
        (1, 1, "call", False, KafkaTimeoutError("fake: no metadata")),
        (3, 2, "call", False, RuntimeError("fake: producer closed")),  # p0 appended, p1 not
        (3, 1, "ack", True, KafkaTimeoutError("fake: ack lost")),  # appended, ack lost
        (2, 2, "ack", False, RequestTimedOutError()),
    ],
    ids=["first-partition", "second-partition", "ack-lost", "second-ack-fails"],
)
async def test_a_failed_changelog_send_fails_the_checkpoint_and_recovery_counts_once(
    root: Path,
    baseline: Baseline,
    after: str,
    checkpoint: int,
    nth: int,
    at: str,
    written: bool,
    error: BaseException,
) -> None:
    world = World(root)
    before: list[Durable] = []

    def arm() -> None:
        before.append(Durable.of(world))
        world.faults.arm("changelog", error, nth=nth, at=at, written=written)

    async def on_failure(exc: BaseException, join: JoinProcessor) -> bool:
        now = Durable.of(world)
        assert now.persisted == before[0].persisted  # no local write
        assert now.commits == before[0].commits  # no commit
        again = retry_once_more(after)
        return again is not None and await again(exc, join)

    join = await world.start()
    assert await drive(join, arm=arm, at=checkpoint, on_failure=on_failure) == [error]
    del join
    await finish(world, after)
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


# 3. between the changelog and the local write ------------------------------------------------


@pytest.mark.parametrize("after", AFTER)
@pytest.mark.parametrize("checkpoint, nth", [(1, 1), (3, 2)], ids=["first-db", "second-db"])
async def test_a_crash_between_changelog_and_local_write_recovers_from_the_changelog(
    root: Path, baseline: Baseline, after: str, checkpoint: int, nth: int
) -> None:
    world = World(root)
    before: list[Durable] = []
    error = OSError("fake: disk write failed")

    def arm() -> None:
        before.append(Durable.of(world))
        world.faults.arm("write", error, nth=nth)

    async def on_failure(exc: BaseException, join: JoinProcessor) -> bool:
        now = Durable.of(world)
        assert all(now.changelog[p] > before[0].changelog[p] for p in PARTITIONS)
        assert now.commits == before[0].commits
        again = retry_once_more(after)
        return again is not None and await again(exc, join)

    join = await world.start()
    assert await drive(join, arm=arm, at=checkpoint, on_failure=on_failure) == [error]
    del join
    await finish(world, after)
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


# 4. between the local write and the commit ---------------------------------------------------


@pytest.mark.parametrize("after", AFTER)
@pytest.mark.parametrize("checkpoint", [2, CHECKPOINTS])
async def test_a_failed_commit_replays_from_old_offsets_without_counting_twice(
    root: Path, baseline: Baseline, after: str, checkpoint: int
) -> None:
    world = World(root)
    before: list[Durable] = []
    error = KafkaTimeoutError("fake: commit timed out")

    def arm() -> None:
        before.append(Durable.of(world))
        world.faults.arm("commit", error)

    async def on_failure(exc: BaseException, join: JoinProcessor) -> bool:
        now = Durable.of(world)
        assert now.persisted == {p: now.changelog[p] - 1 for p in PARTITIONS}  # written
        assert now.commits == before[0].commits
        again = retry_once_more(after)
        return again is not None and await again(exc, join)

    join = await world.start()
    assert await drive(join, arm=arm, at=checkpoint, on_failure=on_failure) == [error]
    committed = dict(world.group.committed)
    del join
    await finish(world, after)
    if after.endswith("/committed"):
        # the replay really started below the marker: some records were skipped, not applied
        ends = {tp: len(log) for tp, log in SCENARIO.inputs.logs.items()}
        assert any(committed.get(tp, 0) < ends[tp] for tp in ends)
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


# -- a retry policy: transient failures retried within the checkpoint --------------------------


class Retrying:
    """`retry(step, what)` as the worker's policy, without the waits: retriable errors are
    retried up to `attempts` times, anything else escapes at once."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self.failed: list[tuple[str, str]] = []

    async def __call__(self, step: Callable[[], Awaitable[Any]], what: str) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return await step()
            except Exception as exc:
                self.failed.append((what, type(exc).__name__))
                if not is_retriable(exc) or attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "kind, nth, at, written, what",
    [
        ("changelog", 1, "call", False, "changelog"),
        ("changelog", 2, "call", False, "changelog"),
        ("changelog", 1, "ack", True, "changelog"),  # the retry appends the batch again
        ("changelog", 2, "ack", False, "changelog"),
        ("output", 2, "call", False, "outputs"),
        ("output", 1, "ack", True, "outputs"),  # the retry puts records on `joined` again
        ("commit", 1, "call", False, "commit"),
    ],
)
async def test_a_transient_failure_is_retried_and_the_checkpoint_completes(
    root: Path,
    baseline: Baseline,
    kind: str,
    nth: int,
    at: str,
    written: bool,
    what: str,
) -> None:
    world = World(root)
    retry = Retrying()
    checkpoint = 2

    def arm() -> None:
        error = KafkaTimeoutError("fake: transient")
        world.faults.arm(kind, error, nth=nth, at=at, written=written)

    join = await world.start(retry=retry)
    assert await drive(join, arm=arm, at=checkpoint) == []
    assert retry.failed == [(what, "KafkaTimeoutError")]
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)
    sizes = world.changelog_sizes()
    if kind == "changelog" and written:
        assert sum(sizes.values()) > sum(baseline.changelog_sizes.values())  # a batch twice
    else:
        assert sizes == baseline.changelog_sizes  # every batch once
    outputs = sum(len(log) for (topic, _), log in world.kafka.logs.items() if topic in OUTPUTS)
    if kind == "output" and written:  # the retry sends again what was not acknowledged
        assert outputs > baseline.output_sends
    else:
        assert outputs == baseline.output_sends
        assert world.joined() == baseline.joined


async def test_a_non_retriable_changelog_error_is_not_retried(
    root: Path, baseline: Baseline
) -> None:
    world = World(root)
    retry = Retrying()
    error = RuntimeError("fake: producer closed")
    join = await world.start(retry=retry)

    def arm() -> None:
        world.faults.arm("changelog", error)

    assert await drive(join, arm=arm, at=2) == [error]
    assert retry.failed == [("changelog", "RuntimeError")]
    del join
    await finish(world, "restart/committed")
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


# -- the undisturbed run, and a batch too large -------------------------------------------------


async def test_the_undisturbed_run_joins_each_pair_once_and_counts_each_event_once(
    root: Path, baseline: Baseline
) -> None:
    assert CHECKPOINTS >= 4 and len(SCENARIO.pairs) >= 40 and SCENARIO.dead_letters
    assert {pid: len(copies) for pid, copies in baseline.joined.items()} == dict.fromkeys(
        SCENARIO.pairs, 1
    )
    assert_counted_once(baseline.state)
    assert all(any(k.startswith(keys.PAIR) for k in s) for s in baseline.state.values())
    # an undisturbed replay of the same input on a second world gives the same state
    world = World(root)
    assert await drive(await world.start()) == []
    assert_same_state(world, baseline)
    assert_every_pair_joined(world)


async def test_changes_beyond_one_record_batch_fail_the_checkpoint_before_any_write(
    root: Path,
) -> None:
    world = World(root, batch_limit=5)
    join = await world.start()
    failures = await drive(join)
    assert len(failures) == 1 and isinstance(failures[0], ChangelogTooLarge)
    assert world.changelog_sizes() == dict.fromkeys(sorted(PARTITIONS), 0)
    assert world.group.commits == []
    assert all(world.disk.contents(p) == {} for p in PARTITIONS)
