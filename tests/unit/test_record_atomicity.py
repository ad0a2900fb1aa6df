"""A record is applied whole or not at all: one whose content makes the join raise halfway
leaves no trace in the state, goes to dead-letters with the exception's name, and the records
around it are applied as if it had never been sent.

The real `JoinProcessor` over the fake runtime of `tests.unit.faultkit` and real rocksdict DBs;
the failure is injected in the join rules (one prediction id raises), after other events of the
same record have changed the transaction. The expected state is an undisturbed run over the
same input without that record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.continuity import Continuity
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.windows import parse_windows
from contracts import codec
from contracts.telemetry import Telemetry
from tables.checkpoint import FAUST_OFFSET_KEY, CheckpointStore
from tables.join import JoinConfig, JoinRules
from tests.unit.faultkit import Disk, FakeGroup, FakeKafka, Faults, Inputs

T0 = 1_800_000_000_000
WEEK = 7 * 24 * 3_600_000
TOPICS = {
    "predictions": "predictions",
    "outcomes": "outcomes",
    "joined": "joined",
    "dead_letters": "dead-letters",
}
POISON = "m-poison"


class Boom(ValueError):
    pass


class FailingRules(JoinRules):
    """The join rules, except that one prediction id raises once its record is half applied."""

    def on_prediction(
        self, txn: Any, item: dict[str, Any], fx: Any, *, settle: bool = True
    ) -> None:
        if item["prediction_id"] == POISON:
            raise Boom("cannot count this one")
        super().on_prediction(txn, item, fx, settle=settle)


def prediction(pid: str, ts: int, score: float) -> dict[str, Any]:
    return {
        "prediction_id": pid,
        "model_id": "m",
        "model_version": "v1",
        "timestamp": ts,
        "task": "binary",
        "score": score,
    }


def outcome(pid: str, ts: int, label: int) -> dict[str, Any]:
    return {"prediction_id": pid, "model_id": "m", "timestamp": ts, "label": label}


def build_inputs(with_poison: bool) -> tuple[Inputs, list[tuple[str, list[Any]]]]:
    """Three prediction records (the middle one poisoned when asked) and one of outcomes."""
    inputs = Inputs()
    records = [
        [prediction(f"m-{i}", T0 + i, 0.1 * (i % 10)) for i in range(0, 5)],
        [prediction(f"m-{i}", T0 + i, 0.1 * (i % 10)) for i in range(5, 8)]
        + [prediction(POISON, T0 + 8, 0.5)]
        + [prediction(f"m-{i}", T0 + i, 0.1 * (i % 10)) for i in range(9, 11)],
        [prediction(f"m-{i}", T0 + i, 0.1 * (i % 10)) for i in range(11, 15)],
    ]
    if not with_poison:
        records.pop(1)
    fetches: list[tuple[str, list[Any]]] = []
    for events in records:
        raw = inputs.append("predictions", 0, b"m", orjson.dumps(events))
        fetches.append(("predictions", [raw]))
    labels = [outcome(f"m-{i}", T0 + 60_000 + i, i % 2) for i in range(15)]
    fetches.append(("outcomes", [inputs.append("outcomes", 0, b"m", orjson.dumps(labels))]))
    return inputs, fetches


def processor(
    root: Path, inputs: Inputs, faults: Faults, kafka: FakeKafka, ship_after: int = 1_000
) -> tuple[Disk, JoinProcessor]:
    disk = Disk(root, faults)
    join = JoinProcessor(
        store=CheckpointStore(
            changelog_topic="changelog",
            db_for=disk.db_for,
            producer=kafka.producer,
            commit=FakeGroup(faults).commit,
        ),
        rules=FailingRules(
            JoinConfig(
                label_ttl_for=lambda model_id: WEEK,
                early_outcome_ttl_ms=WEEK,
                done_retention_ms=WEEK,
                windows=parse_windows("1h,24h"),
            )
        ),
        topics=TOPICS,
        limits=codec.Limits(1000, 1_000_000),
        producer=kafka.producer,
        checkpoint_interval_ms=10**12,
        checkpoint_max_events=10**9,
        checkpoint_max_keys=10**9,
        idle_wall_clock_after_ms=WEEK,
        on_models_changed=lambda partition, models: None,
        telemetry=Telemetry(),
        ownership=Ownership(),
        continuity=Continuity(inputs.read, inputs.earliest),
        wall_clock_ms=lambda: T0,
        ship_after=ship_after,
    )
    return disk, join


async def run(root: Path, with_poison: bool) -> tuple[Disk, FakeKafka, JoinProcessor]:
    faults = Faults()
    kafka = FakeKafka(faults, partitions=1)
    inputs, fetches = build_inputs(with_poison)
    disk, join = processor(root, inputs, faults, kafka)
    await join.on_assigned({0})
    first, *rest = fetches
    await join.process(first[0], 0, first[1])
    await join.checkpoint()  # the poisoned record is not the first after a checkpoint
    for topic, records in rest:
        await join.process(topic, 0, records)
    await join.checkpoint()
    return disk, kafka, join


def state(disk: Disk) -> dict[bytes, bytes]:
    contents = disk.contents(0)
    contents.pop(FAUST_OFFSET_KEY, None)
    marker = orjson.loads(contents.pop(b"\x00ckpt"))
    contents[b"marker-stream-time"] = str(marker["st"]).encode()
    return contents


async def test_a_record_that_fails_halfway_leaves_no_trace_and_is_dead_lettered(
    tmp_path: Path,
) -> None:
    disk, kafka, _ = await run(tmp_path / "poisoned", with_poison=True)
    clean, clean_kafka, _ = await run(tmp_path / "clean", with_poison=False)

    assert state(disk) == state(clean)  # m-5..m-10 of the failed record: not applied either

    letters = [orjson.loads(v) for _, v in kafka.values("dead-letters") if v is not None]
    assert [(d["source_topic"], d["source_offset"], d["index"]) for d in letters] == [
        ("predictions", 1, None)
    ]
    assert letters[0]["reason"] == "failed to apply: Boom: cannot count this one"

    def joined_ids(log: FakeKafka) -> set[str]:
        return {
            event["prediction_id"]
            for _, value in log.values("joined")
            if value is not None
            for event in orjson.loads(value)
        }

    expected = {f"m-{i}" for i in (*range(0, 5), *range(11, 15))}
    assert joined_ids(kafka) == joined_ids(clean_kafka) == expected


async def test_outputs_sent_early_are_sent_again_when_their_send_failed(tmp_path: Path) -> None:
    """With `ship_after=1` each fetch's pairs are sent at once; a send whose ack fails is sent
    again by the checkpoint (which fails first, having no retry policy), and none is lost."""
    from aiokafka.errors import KafkaTimeoutError

    faults = Faults()
    kafka = FakeKafka(faults, partitions=1)
    inputs, fetches = build_inputs(with_poison=False)
    _, join = processor(tmp_path, inputs, faults, kafka, ship_after=1)
    await join.on_assigned({0})
    outcomes = fetches.pop()  # outcomes first: the predictions' fetches then join and ship
    await join.process(outcomes[0], 0, outcomes[1])
    faults.arm("output", KafkaTimeoutError("fake: ack lost"), nth=1, at="ack")
    for topic, records in fetches:
        await join.process(topic, 0, records)
    assert faults.calls["output"] == len(fetches)  # sent before any checkpoint

    with pytest.raises(KafkaTimeoutError):
        await join.checkpoint()
    await join.checkpoint()  # sends the failed one again

    joined = [
        event["prediction_id"]
        for _, value in kafka.values("joined")
        if value is not None
        for event in orjson.loads(value)
    ]
    expected = {f"m-{i}" for i in (*range(0, 5), *range(11, 15))}
    assert sorted(joined) == sorted(expected)  # each once: the lost one sent again, no other
