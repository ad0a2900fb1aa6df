"""The synthetic traffic generator: counts, ordering, batching, validity, determinism."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from config.settings import load_settings
from contracts.schemas import Outcome, Prediction
from tools import generate_cli
from tools.traffic import MALFORMED_KINDS, Record, TrafficSpec, Truth, generate, plan_models

NOISY = {"early_share": 0.1, "duplicate_share": 0.05, "malformed_share": 0.05}


@dataclass
class Item:
    """One event as a consumer would see it: where it came from and whether it is valid."""

    index: int  # record position in the stream
    topic: str
    key: str
    body: Any  # the decoded event, or None when the record could not be decoded
    valid: bool


def run(spec: TrafficSpec, seed: int = 7) -> tuple[list[Record], Truth]:
    truth = Truth()
    return list(generate(spec, random.Random(seed), truth)), truth


def is_valid(topic: str, key: str, body: Any) -> bool:
    model = Prediction if topic == "predictions" else Outcome
    try:
        event = model.model_validate(body)
    except ValidationError:
        return False
    return event.model_id == key


def items(records: list[Record], batch_size: int) -> list[Item]:
    """Decode records independently of the generator, the way the join will."""
    found = []
    for index, rec in enumerate(records):
        key = rec.key.decode()
        try:
            decoded = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            found.append(Item(index, rec.topic, key, None, False))
            continue
        bodies = decoded if batch_size > 1 else [decoded]
        assert isinstance(decoded, list) == (batch_size > 1)
        for body in bodies:
            found.append(Item(index, rec.topic, key, body, is_valid(rec.topic, key, body)))
    return found


def test_exact_counts_without_noise() -> None:
    quiet = {"early_share": 0.0, "duplicate_share": 0.0, "malformed_share": 0.0}
    spec = TrafficSpec(events=10_001, unlabeled_share=0.2, **quiet)
    records, truth = run(spec)
    assert len(truth.predictions) + len(truth.outcomes) == 10_001
    assert sum(r.events for r in records) == 10_001
    assert truth.duplicates == 0 and sum(truth.malformed.values()) == 0
    unlabeled = 1 - len(truth.outcomes) / len(truth.predictions)
    assert 0.17 < unlabeled < 0.23
    found = items(records, spec.batch_size)
    assert all(item.valid for item in found)
    topics = Counter(item.topic for item in found)
    assert topics == {"predictions": len(truth.predictions), "outcomes": len(truth.outcomes)}


def test_duration_sets_the_total() -> None:
    spec = TrafficSpec(rate=500.0, duration_s=4.0, malformed_share=0.0, duplicate_share=0.0)
    _, truth = run(spec)
    assert len(truth.predictions) + len(truth.outcomes) == 2000
    unpaced = TrafficSpec(rate=0, event_rate=None, duration_s=2.0)
    assert unpaced.total_events == 2000  # event time falls back to 1000 events/s


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_stream_matches_truth_and_bad_items_are_invalid(batch_size: int) -> None:
    spec = TrafficSpec(events=20_000, models=5, batch_size=batch_size, **NOISY)
    records, truth = run(spec)
    found = items(records, batch_size)
    valid = [item for item in found if item.valid]
    invalid = [item for item in found if not item.valid]
    assert sum(r.events for r in records) == len(found)
    assert len(invalid) == sum(truth.malformed.values()) > 0
    assert all(truth.malformed[kind] > 0 for kind in MALFORMED_KINDS)
    assert len(valid) == len(truth.predictions) + len(truth.outcomes) + truth.duplicates
    valid_ids = {p.prediction_id for p in truth.predictions}
    bad_ids = {str(i.body.get("prediction_id")) for i in invalid if isinstance(i.body, dict)}
    assert not bad_ids & valid_ids
    mismatched = [i for i in valid if i.body["model_id"] != i.key]
    assert not mismatched

    sent_predictions = {
        item.body["prediction_id"]: item.body for item in valid if item.topic == "predictions"
    }
    sent_outcomes = {
        item.body["prediction_id"]: item.body for item in valid if item.topic == "outcomes"
    }
    assert sent_predictions == {
        p.prediction_id: {
            "schema_version": 1,
            "prediction_id": p.prediction_id,
            "model_id": p.model_id,
            "model_version": p.model_version,
            "timestamp": p.timestamp,
            "task": p.task,
            "score": p.score,
        }
        for p in truth.predictions
    }
    assert {pid: (o["timestamp"], o["label"]) for pid, o in sent_outcomes.items()} == {
        o.prediction_id: (o.timestamp, o.label) for o in truth.outcomes
    }
    kinds = Counter(
        "empty" if records[i.index].value == b"" else "bad_json" for i in invalid if i.body is None
    )
    assert kinds["empty"] == truth.malformed["empty"]
    assert kinds["bad_json"] == truth.malformed["bad_json"]


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_early_outcomes_precede_their_prediction_and_others_follow(batch_size: int) -> None:
    spec = TrafficSpec(
        events=30_000, models=4, batch_size=batch_size, early_share=0.2, label_delay_ms=50
    )
    records, truth = run(spec)
    first_seen: dict[tuple[str, str], int] = {}
    for item in items(records, batch_size):
        if item.valid:
            first_seen.setdefault((item.topic, item.body["prediction_id"]), item.index)
    assert 0.17 < len(truth.early) / len(truth.outcomes) < 0.23
    for outcome in truth.outcomes:
        pid = outcome.prediction_id
        before = first_seen[("outcomes", pid)] < first_seen[("predictions", pid)]
        assert before == (pid in truth.early), pid


@pytest.mark.parametrize("batch_size", [2, 10, 100])
def test_batches_hold_one_model_and_at_most_batch_size(batch_size: int) -> None:
    spec = TrafficSpec(events=20_000, models=7, batch_size=batch_size, **NOISY)
    records, truth = run(spec)
    mismatched = 0
    for rec in records:
        assert 1 <= rec.events <= batch_size
        if rec.value in (b"",) or not rec.value.endswith(b"]"):
            continue  # a malformed record of its own
        batch = orjson.loads(rec.value)
        assert len(batch) == rec.events
        for event in batch:
            if "model_id" in event and event["model_id"] != rec.key.decode():
                mismatched += 1
    assert mismatched == truth.malformed["key_mismatch"]


def test_single_events_are_objects() -> None:
    records, _ = run(TrafficSpec(events=500, batch_size=1, malformed_share=0.0))
    assert all(isinstance(orjson.loads(r.value), dict) and r.events == 1 for r in records)


def test_duplicates_are_exact_copies() -> None:
    spec = TrafficSpec(events=20_000, duplicate_share=0.1, malformed_share=0.0, batch_size=10)
    records, truth = run(spec)
    seen: dict[tuple[str, str], Any] = {}
    copies = 0
    for item in items(records, spec.batch_size):
        key = (item.topic, item.body["prediction_id"])
        if key in seen:
            assert item.body == seen[key]
            copies += 1
        seen[key] = item.body
    assert copies == truth.duplicates
    expected = 0.1 * (len(truth.predictions) + len(truth.outcomes))
    assert abs(copies - expected) < 5 * math.sqrt(expected)


def test_fixed_label_delay_is_exact() -> None:
    spec = TrafficSpec(events=5000, label_delay="fixed", label_delay_ms=1234)
    _, truth = run(spec)
    stamps = {p.prediction_id: p.timestamp for p in truth.predictions}
    assert {o.timestamp - stamps[o.prediction_id] for o in truth.outcomes} == {1234}


def test_exponential_label_delay_has_the_mean() -> None:
    spec = TrafficSpec(events=40_000, label_delay_ms=3000)
    _, truth = run(spec)
    stamps = {p.prediction_id: p.timestamp for p in truth.predictions}
    delays = [o.timestamp - stamps[o.prediction_id] for o in truth.outcomes]
    assert min(delays) >= 0
    assert 2850 < sum(delays) / len(delays) < 3150


def test_outcomes_are_sent_once_due_in_event_time() -> None:
    """An outcome goes out once event time (the next prediction's stamp) reaches its own."""
    spec = TrafficSpec(events=10_000, batch_size=1, early_share=0.0, malformed_share=0.0)
    records, truth = run(spec)
    stamps = [p.timestamp for p in truth.predictions]
    step = stamps[1] - stamps[0]  # 1000 * 1.9 / 1000 events/s, truncated to ms
    latest_prediction = 0
    for rec in records:
        body = orjson.loads(rec.value)
        if rec.topic == "predictions":
            latest_prediction = max(latest_prediction, body["timestamp"])
        elif latest_prediction < stamps[-1]:  # not the final drain
            assert body["timestamp"] <= latest_prediction + step + 1
            assert body["timestamp"] > latest_prediction - step - 1 - spec.duplicate_delay_ms


def test_event_time_spacing() -> None:
    spec = TrafficSpec(events=10_000, event_rate=100.0, unlabeled_share=0.0, malformed_share=0.0)
    _, truth = run(spec)
    stamps = [p.timestamp for p in truth.predictions]
    assert stamps[0] == spec.start_ms
    assert stamps[1] - stamps[0] == 20  # 100 events/s, half of them predictions
    assert stamps == sorted(stamps)


def test_no_drain_drops_pending_outcomes_from_truth() -> None:
    spec = TrafficSpec(events=4000, drain=False, label_delay_ms=10_000, malformed_share=0.0)
    records, truth = run(spec)
    sent = {
        item.body["prediction_id"]
        for item in items(records, spec.batch_size)
        if item.topic == "outcomes"
    }
    assert sent == {o.prediction_id for o in truth.outcomes}
    assert len(truth.outcomes) + len(truth.predictions) < 4000


def test_scores_are_informative() -> None:
    spec = TrafficSpec(events=60_000, models=2, unlabeled_share=0.0)
    _, truth = run(spec)
    scores = {p.prediction_id: p.score for p in truth.predictions}
    tasks = {p.prediction_id: p.task for p in truth.predictions}
    binary = [
        (scores[o.prediction_id], o.label)
        for o in truth.outcomes
        if tasks[o.prediction_id] == "binary"
    ]
    assert {label for _, label in binary} == {0, 1}
    assert 0.77 < _auc(binary) < 0.83
    regression = [
        (scores[o.prediction_id], o.label)
        for o in truth.outcomes
        if tasks[o.prediction_id] == "regression"
    ]
    assert _correlation(regression) > 0.7


def test_models_alternate_tasks() -> None:
    plans = plan_models(TrafficSpec(models=4), random.Random(0))
    assert [p.model_id for p in plans] == ["model-000", "model-001", "model-002", "model-003"]
    assert [p.task for p in plans] == ["binary", "regression", "binary", "regression"]
    assert {p.model_version for p in plans} == {"v1"}
    assert plan_models(TrafficSpec(models=1001), random.Random(0))[-1].model_id == "model-1000"


def test_deterministic_by_seed() -> None:
    spec = TrafficSpec(events=5000, **NOISY)
    assert run(spec, seed=3)[0] == run(spec, seed=3)[0]
    assert run(spec, seed=3)[0] != run(spec, seed=4)[0]


def test_features_are_numbers() -> None:
    records, _ = run(TrafficSpec(events=200, features=3, malformed_share=0.0, batch_size=1))
    bodies = [orjson.loads(r.value) for r in records if r.topic == "predictions"]
    assert all(set(b["features"]) == {"x0", "x1", "x2"} for b in bodies)
    assert all(Prediction.model_validate(b).features for b in bodies)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_drift_shifts_the_first_models_scores_after_its_time_and_nothing_else() -> None:
    """Drift draws no random numbers, so the stream lines up event by event with the calm one:
    models 000 (binary) and 001 (regression) move from 10 s of event time on, labels stay."""
    base = TrafficSpec(models=4, events=20_000, event_rate=1000, malformed_share=0.0)
    drifted = TrafficSpec(**{**base.__dict__, "drift_models": 2, "drift_after_ms": 10_000})
    (_, calm), (_, moved) = run(base), run(drifted)
    assert moved.outcomes == calm.outcomes
    scale = {p.model_id: p.scale for p in calm.models}
    cut = base.start_ms + 10_000
    shifted = 0
    for before, after in zip(calm.predictions, moved.predictions, strict=True):
        assert after._replace(score=before.score) == before
        if after.model_id in ("model-000", "model-001") and after.timestamp >= cut:
            shifted += 1
            if after.task == "binary":
                assert _logit(after.score) == pytest.approx(_logit(before.score) + 1.5, abs=1e-9)
            else:
                assert after.score == pytest.approx(before.score + 1.5 * scale[after.model_id])
        else:
            assert after.score == before.score
    in_window = [p for p in calm.predictions if p.timestamp >= cut]
    assert shifted == sum(p.model_id in ("model-000", "model-001") for p in in_window) > 1000


def test_drift_after_the_run_and_no_drift_give_the_same_stream() -> None:
    spec = TrafficSpec(models=3, events=3000, **NOISY)
    late = TrafficSpec(**{**spec.__dict__, "drift_models": 3, "drift_after_ms": 10**9})
    assert run(late)[0] == run(spec)[0]


def test_model_version_is_carried() -> None:
    records, truth = run(TrafficSpec(models=2, events=400, model_version="v7", batch_size=1))
    bodies = [orjson.loads(r.value) for r in records if r.topic == "predictions"]
    assert {b["model_version"] for b in bodies if isinstance(b, dict) and "score" in b} == {"v7"}
    assert {p.model_version for p in truth.predictions} == {"v7"}


@pytest.mark.parametrize(
    "bad",
    [
        {"models": 0},
        {"batch_size": 0},
        {"events": None, "duration_s": None},
        {"early_share": 1.5},
        {"models": 2, "drift_models": 3},
        {"drift_models": 1, "drift_after_ms": -1},
    ],
)
def test_spec_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TrafficSpec(**bad)


def _auc(pairs: list[tuple[float, float]]) -> float:
    """Rank-sum AUC (no ties expected with continuous scores)."""
    ranked = sorted(pairs)
    positives = sum(1 for _, label in ranked if label == 1)
    negatives = len(ranked) - positives
    rank_sum = sum(rank for rank, (_, label) in enumerate(ranked, 1) if label == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _correlation(pairs: list[tuple[float, float]]) -> float:
    n = len(pairs)
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    cov = sum((x - mx) * (y - my) for x, y in pairs)
    vx = sum((x - mx) ** 2 for x, _ in pairs)
    vy = sum((y - my) ** 2 for _, y in pairs)
    return cov / math.sqrt(vx * vy)


class _FakeProducer:
    """Stands in for AIOKafkaProducer: records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_produce_sends_every_record_to_the_prefixed_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FakeProducer()
    monkeypatch.setattr(generate_cli, "make_producer", lambda settings: fake)
    settings = load_settings(topic_prefix="t-")
    spec = TrafficSpec(events=3000, rate=None, **NOISY)
    report = await generate_cli.produce(settings, spec, progress=False, rng=random.Random(5))
    expected = list(generate(spec, random.Random(5)))
    assert fake.started and fake.stopped
    prefixed = {"predictions": "t-predictions", "outcomes": "t-outcomes"}
    assert fake.sent == [(prefixed[r.topic], r.key, r.value) for r in expected]
    assert report.records == len(expected)
    assert report.events == sum(r.events for r in expected)
    assert report.bytes == sum(len(r.value) for r in expected)
