"""Trust at the edges, end to end: every class of hostile input beside honest traffic.

One worker on real Kafka, Redis and a local batch view. Every record of the test goes to one
partition of `predictions` and `outcomes` (sent with an explicit partition number: the worker
does not check it, and so the hostile records share the partition, its stream time and its
state with the honest model `a`). Hostile traffic:

- numbers beyond fixed point: a regression score of 1e200, a label of 1e200, and three thousand
  regression events with errors of three million in one bucket (sums beyond 64 bits);
- event time ten years ahead (a prediction and an outcome of `a`), sent before `a`'s labels;
- values the batch view cannot hold: integers beyond 2**53 as score and label, a
  schema_version of 2**40;
- ids: `a:version:v1`, `x/date=1999-01-01` and `../../(...)/tmp/escape-<uuid>` as valid models
  with their own traffic; a NUL model id, an ESC prediction id, a 300-byte id,
  `__HIVE_DEFAULT_PARTITION__`, a key that disagrees with the body;
- another model's outcome carrying `a`'s prediction ids with the other label, before `a`'s own;
- a record without a key; a binary label 7 before the valid label 1;
- a valid prediction of about 900 KB, and 300 predictions of 11 KB joined at once (one naive
  joined record of them would be 3.3 MB, beyond the broker's limit);
- malformed JSON, a JSON string, an empty record, a record beyond RUNWAY_MAX_MESSAGE_BYTES, a
  batch with one bad event among honest ones.

Sent in three phases, each once the worker has committed the previous one, so that the order
the assertions depend on (prediction before the label 7, label 7 before label 1, future events
and foreign outcomes before `a`'s labels) is the order the worker saw. Expected figures are
computed here and by `oracle.py` from what was sent: the speed views of `a`, of the three
models with hostile ids (each under its escaped id, per model and per version) and of the
big-error model are exact; the 1e200 model's figures are not asserted (only that its pairs are
joined and the worker stays up). At the end the worker must stop with exit 0 and no CRITICAL
line, the dead letters and `runway_dead_letters_total{reason}` must be exactly the expected
ones, every valid pair must be on `joined` and once in Parquet with its own label, and nothing
may have been written outside the batch view's root.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from config.connections import redis_options
from config.settings import Settings
from streams.producer import make_producer
from tests.integration import oracle
from tests.integration.dataset import START_MS
from tests.integration.harness import Worker, group_caught_up, read_topic, wait_for
from tests.integration.test_join import own_redis_prefix, redis_snapshot, worker_settings
from tools.traffic import ModelPlan, Record, TrueOutcome, TruePrediction, Truth

pytestmark = pytest.mark.integration

PARTITION = 1  # of the test's 4: every input record goes here
WINDOWS = ("1h", "24h", "7d")
YEAR_MS = 365 * 24 * 3600 * 1000
DATE = "2023-11-14"  # the UTC date of START_MS and of every valid event here


@dataclass
class Out:
    """One input record, and what the worker must make of it."""

    topic: str  # "predictions" or "outcomes"
    key: bytes | None
    value: bytes
    honest: bool = False  # the oracle counts its valid events
    dead: list[tuple[str, int | None]] = field(default_factory=list)  # (class, index)
    offset: int = -1


def _escaped(model_id: str) -> str:
    """Hive's path escaping, for the few characters the ids of this test use (README "Ids")."""
    assert set(model_id) <= set("abcdefghijklmnopqrstuvwxyz0123456789-./:=")
    return "".join(f"%{ord(c):02X}" if c in "%/:=" else c for c in model_id)


class Traffic:
    """The test's records, the truth of its valid pairs, the expected dead letters."""

    def __init__(self, escape_model: str) -> None:
        self.rng = random.Random(23)
        self.now_ms = int(time.time() * 1000)
        self.phases: list[list[Out]] = [[], [], []]
        self.pairs: dict[tuple[str, str], dict[str, Any]] = {}  # expected Parquet rows
        self.truth = Truth()  # of the view models only
        # Models whose speed view must equal the oracle's, and their tasks.
        self.view_models = {
            "a": "binary",
            "a:version:v1": "binary",
            "x/date=1999-01-01": "binary",
            escape_model: "binary",
            "big-errors": "regression",  # sums of squared errors beyond 64 bits, still exact
        }
        self.escape_model = escape_model
        self.extra: dict[tuple[str, str], dict[str, Any]] = {}  # fields beyond Parquet's
        for model, task in self.view_models.items():
            plan = ModelPlan(model, "v1", task, 0.5, 0.0, 1.0)  # type: ignore[arg-type]
            self.truth.models.append(plan)

    # -- building blocks -------------------------------------------------------------------------
    def add(self, phase: int, out: Out) -> Out:
        self.phases[phase].append(out)
        return out

    @staticmethod
    def event(topic: str, model: str, body: dict[str, Any] | list[Any], **kw: Any) -> Out:
        return Out(topic, model.encode(), orjson.dumps(body), **kw)

    def prediction(
        self, model: str, pid: str, ts: int, task: str, score: float, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "prediction_id": pid,
            "model_id": model,
            "model_version": "v1",
            "timestamp": ts,
            "task": task,
            "score": score,
            **extra,
        }
        if model in self.view_models:
            self.truth.predictions.append(TruePrediction(pid, model, "v1", ts, task, score))
        return body

    def outcome(self, pred: dict[str, Any], label: float, delay: int) -> dict[str, Any]:
        """The valid, first outcome of `pred`: its pair is expected on `joined` and in Parquet."""
        model, pid, ts = pred["model_id"], pred["prediction_id"], pred["timestamp"]
        body = {"prediction_id": pid, "model_id": model, "timestamp": ts + delay, "label": label}
        self.pairs[(model, pid)] = {
            "model_id": model,
            "prediction_id": pid,
            "model_version": "v1",
            "timestamp": ts,
            "task": pred["task"],
            "score": float(pred["score"]),
            "label": float(label),
            "outcome_timestamp": ts + delay,
            "label_delay_ms": delay,
            "date": DATE,
        }
        if model in self.view_models:
            self.truth.outcomes.append(TrueOutcome(pid, model, ts + delay, label))
        return body

    def binary_model(self, model: str, prefix: str, count: int, start: int, flip: bool) -> None:
        """`count` labelled predictions: predictions in phase 0, labels in phase 2."""
        preds = [
            self.prediction(model, f"{prefix}-{i:04d}", start + 150 * i, "binary", score)
            for i in range(count)
            for score in [round(self.rng.random(), 3)]
        ]
        for start_i in range(0, count, 10):
            self.add(
                0, self.event("predictions", model, preds[start_i : start_i + 10], honest=True)
            )
        outs = []
        for pred in preds:
            label = int(self.rng.random() < pred["score"]) ^ int(flip)
            outs.append(self.outcome(pred, label, 500 + self.rng.randrange(5_000)))
        self.add(2, self.event("outcomes", model, outs, honest=True))

    def future_ms(self) -> int:
        return self.now_ms + 10 * YEAR_MS


def build(escape_model: str) -> Traffic:
    t = Traffic(escape_model)
    rng = t.rng
    # -- the honest model `a`: 120 labelled predictions; some labels come first (early) ------
    a_preds = [
        t.prediction("a", f"a-{i:04d}", START_MS + 200 * i, "binary", round(rng.random(), 3))
        for i in range(120)
    ]
    labels = {p["prediction_id"]: int(rng.random() < p["score"]) for p in a_preds}
    labels["a-0007"] = 1  # its label 7 is refused first
    early = a_preds[100:105]  # outcomes in phase 0, predictions in phase 1
    on_time = a_preds[:100] + a_preds[105:]
    bad_score = {**a_preds[0], "prediction_id": "a-bad-score", "score": "0.5"}
    batches = [on_time[i : i + 20] for i in range(0, len(on_time), 20)]
    batches[1] = batches[1][:3] + [bad_score] + batches[1][3:]
    for number, batch in enumerate(batches):
        dead = [("invalid_event", 3)] if number == 1 else []
        t.add(0, t.event("predictions", "a", batch, honest=True, dead=dead))
    t.add(0, t.event("predictions", "a", a_preds[10], honest=True))  # a duplicate prediction
    a_outcomes = {
        p["prediction_id"]: t.outcome(p, labels[p["prediction_id"]], 1_000 + rng.randrange(5_000))
        for p in a_preds
    }
    t.add(0, t.event("outcomes", "a", [a_outcomes[p["prediction_id"]] for p in early], honest=True))
    t.add(1, t.event("predictions", "a", early, honest=True))
    rest = [a_outcomes[p["prediction_id"]] for p in on_time]
    t.add(2, t.event("outcomes", "a", rest[:60], honest=True))
    t.add(2, t.event("outcomes", "a", rest[60:], honest=True))
    t.add(2, t.event("outcomes", "a", a_outcomes["a-0011"], honest=True))  # a duplicate outcome

    # -- valid models whose ids would escape or collide, raw ---------------------------------
    t.binary_model("a:version:v1", "kv", 30, START_MS + 1_000, flip=True)
    t.binary_model("x/date=1999-01-01", "xd", 20, START_MS + 2_000, flip=False)
    t.binary_model(escape_model, "esc", 20, START_MS + 3_000, flip=True)

    # -- numbers beyond fixed point ---------------------------------------------------------------
    big = [
        t.prediction("big-errors", f"be-{i:05d}", START_MS + 5_000 + i, "regression", 3e6 + i)
        for i in range(3_000)
    ]
    for i in range(0, len(big), 500):
        t.add(0, t.event("predictions", "big-errors", big[i : i + 500], honest=True))
    big_out = [t.outcome(p, -(i % 7), 1_000) for i, p in enumerate(big)]
    for i in range(0, len(big_out), 500):
        t.add(2, t.event("outcomes", "big-errors", big_out[i : i + 500], honest=True))
    huge = [
        t.prediction("huge", "huge-0", START_MS + 6_000, "regression", 1e200),
        t.prediction("huge", "huge-1", START_MS + 6_001, "regression", 0.0),
    ]
    t.add(0, t.event("predictions", "huge", huge))
    t.add(
        2, t.event("outcomes", "huge", [t.outcome(huge[0], 0, 10), t.outcome(huge[1], 1e200, 10)])
    )

    # -- size: one prediction of ~900 KB, 300 of ~11 KB joined at once ---------------------------
    features = {f"f{i:05d}": round(i / 7, 6) for i in range(46_000)}
    large = t.prediction("large", "large-0", START_MS + 7_000, "binary", 0.8, features=features)
    record = t.add(0, t.event("predictions", "large", large))
    assert 880_000 <= len(record.value) <= 950_000, len(record.value)
    t.extra[("large", "large-0")] = {"features": features}
    t.add(2, t.event("outcomes", "large", t.outcome(large, 1, 2_000)))
    context = "y" * 11_000
    wide = [
        t.prediction("wide", f"w-{i:04d}", START_MS + 8_000 + i, "binary", 0.25, context=context)
        for i in range(300)
    ]
    for i in range(0, len(wide), 60):
        t.add(0, t.event("predictions", "wide", wide[i : i + 60]))
    t.add(2, t.event("outcomes", "wide", [t.outcome(p, i % 2, 3_000) for i, p in enumerate(wide)]))
    for pred in wide:
        t.extra[("wide", pred["prediction_id"])] = {"context": context}

    # -- refused at the door -------------------------------------------------------------------
    def refused(phase: int, topic: str, key: bytes | None, value: bytes, kind: str) -> None:
        t.add(phase, Out(topic, key, value, dead=[(kind, None)]))

    def pred_body(model: str, pid: str, **changes: Any) -> bytes:
        body = {
            "prediction_id": pid,
            "model_id": model,
            "model_version": "v1",
            "timestamp": START_MS + 9_000,
            "task": "regression",
            "score": 1.0,
            **changes,
        }
        return orjson.dumps(body)

    future = t.future_ms()
    refused(
        0,
        "predictions",
        b"a",
        pred_body("a", "a-future", task="binary", score=0.9, timestamp=future),
        "future_event_time",
    )
    a3 = a_outcomes["a-0003"]
    refused(
        0,
        "outcomes",
        b"a",
        orjson.dumps({**a3, "timestamp": future, "label": 1 - a3["label"]}),
        "future_event_time",
    )
    refused(0, "predictions", b"ints", pred_body("ints", "ints-0", score=2**60), "invalid_event")
    refused(
        0,
        "predictions",
        b"ints",
        pred_body("ints", "ints-1", schema_version=2**40),
        "invalid_event",
    )
    refused(
        0,
        "outcomes",
        b"ints",
        orjson.dumps(
            {
                "prediction_id": "ints-2",
                "model_id": "ints",
                "timestamp": START_MS + 9_000,
                "label": 2**53 + 2,
            }
        ),
        "invalid_event",
    )
    refused(0, "predictions", b"nul\x00model", pred_body("nul\x00model", "n-0"), "invalid_event")
    refused(
        0,
        "predictions",
        b"a",
        pred_body("a", "a-\x1b[31m", task="binary", score=0.5),
        "invalid_event",
    )
    long_id = "m" * 300
    refused(0, "predictions", long_id.encode(), pred_body(long_id, "l-0"), "invalid_event")
    hive_null = "__HIVE_DEFAULT_PARTITION__"
    refused(0, "predictions", hive_null.encode(), pred_body(hive_null, "h-0"), "invalid_event")
    refused(
        0,
        "predictions",
        b"a",
        pred_body("a:version:v1", "kmm-0", task="binary", score=0.5),
        "key_mismatch",
    )
    refused(0, "predictions", None, pred_body("a", "a-nokey", task="binary", score=0.5), "no_key")
    refused(0, "predictions", b"a", b'{"prediction_id": "a-', "malformed_json")
    refused(0, "outcomes", b"a", b'"just a string"', "malformed_json")
    refused(0, "outcomes", b"a", b"", "empty")
    padding = "z" * 1_010_000
    refused(0, "predictions", b"a", pred_body("a", "a-too-large", pad=padding), "too_large")
    # Phase 1, once `a`'s predictions are applied: another model's outcomes for `a`'s ids with
    # the other label, and a binary label 7 for a-0007 (its label 1 comes in phase 2).
    for pid in ("a-0005", "a-0006"):
        foreign = {**a_outcomes[pid], "model_id": "b", "label": 1 - labels[pid]}
        t.add(1, t.event("outcomes", "b", foreign))
    t.add(
        1,
        Out(
            "outcomes",
            b"a",
            orjson.dumps({**a_outcomes["a-0007"], "label": 7}),
            dead=[("binary_label", None)],
        ),
    )
    return t


# -- I/O -------------------------------------------------------------------------------------------


async def send_phase(settings: Settings, outs: list[Out]) -> None:
    """Send in order to PARTITION of each topic; record every record's offset."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic(o.topic), o.value, key=o.key, partition=PARTITION)
            for o in outs
        ]
        for out, meta in zip(outs, await asyncio.gather(*futures), strict=True):
            out.offset = meta.offset
    finally:
        await producer.stop()


def classify(reason: str) -> str:
    """The class of a dead letter's reason text (the metric's label, README "Refused at the
    door")."""
    marks = [
        ("beyond the latest accepted event time", "future_event_time"),
        ("of a binary model's outcome is not 0 or 1", "binary_label"),
        ("record without a key", "no_key"),
        ("malformed JSON", "malformed_json"),
        ("neither a JSON object nor an array", "malformed_json"),
        ("empty message", "empty"),
        ("does not match model_id", "key_mismatch"),
        ("invalid prediction:", "invalid_event"),
        ("invalid outcome:", "invalid_event"),
    ]
    for mark, kind in marks:
        if mark in reason:
            return kind
    if reason.startswith("message of ") and " exceeds " in reason:
        return "too_large"
    return f"unknown: {reason}"


def dead_letter_counts(metrics_text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "runway_dead_letters_total":
                counts[sample.labels["reason"]] = sample.value
    return counts


def metric(metrics_text: str, name: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def scrape(settings: Settings) -> str:
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def read_batch_view(root: Path) -> list[dict[str, Any]]:
    partitioning = ds.partitioning(
        pa.schema([("date", pa.string()), ("model_id", pa.string())]), flavor="hive"
    )
    dataset = ds.dataset(str(root), format="parquet", partitioning=partitioning)
    return dataset.to_table().to_pylist()


def joined_events(records: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    events = []
    for _, value in records:
        body = orjson.loads(value)
        events.extend(body if isinstance(body, list) else [body])
    return events


async def models_set(settings: Settings) -> set[str]:
    redis = Redis.from_url(settings.redis_url, **redis_options(settings), decode_responses=True)
    try:
        return {str(m) for m in await redis.smembers(f"{settings.redis_key_prefix}:models")}
    finally:
        await redis.aclose()


# -- the test --------------------------------------------------------------------------------------


async def test_hostile_traffic_beside_an_honest_model(settings: Settings, tmp_path: Path) -> None:
    settings = own_redis_prefix(settings)
    escape_model = "../" * 12 + f"tmp/escape-{uuid.uuid4().hex}"
    traffic = build(escape_model)
    config = worker_settings(settings, tmp_path, "a")
    worker = Worker(config, tmp_path / "worker.log").start()
    inputs = [settings.topic("predictions"), settings.topic("outcomes")]

    async def committed(topics: list[str]) -> bool:
        assert worker.alive(), f"the worker stopped ({worker.stop()})"
        return await group_caught_up(settings, topics)

    try:
        await wait_for(worker.healthy, 90, "the worker's /health")
        for number, phase in enumerate(traffic.phases):
            await send_phase(settings, phase)
            await wait_for(lambda: committed(inputs), 60, f"phase {number} committed")
        await wait_for(
            lambda: committed([*inputs, settings.topic("joined")]),
            60,
            "the batch view to commit `joined`",
        )
        await check_views(settings, traffic)
        await check_joined(settings, traffic)
        check_batch_view(tmp_path, traffic)
        await check_dead_letters(settings, config, traffic)
        assert metric(scrape(config), "runway_joined_pairs_total") == len(traffic.pairs)
        assert worker.healthy(), worker.log_tail(80)
    except BaseException:
        print(worker.log_tail(120))
        raise
    finally:
        how = worker.stop()
    assert how == "exit 0", worker.log_tail(80)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert [line for line in log.splitlines() if "CRITICAL" in line] == []
    check_nothing_outside(tmp_path, escape_model)


async def check_views(settings: Settings, traffic: Traffic) -> None:
    """The view models' hashes, per model and per version, equal the oracle's; no other key."""
    honest = [
        Record(o.topic, o.key or b"", o.value, 1)  # type: ignore[arg-type]
        for phase in traffic.phases
        for o in phase
        if o.honest
    ]
    expected = oracle.expected(honest, traffic.truth, {}, {})
    assert set(expected.models) == set(traffic.view_models)
    prefix = f"{settings.redis_key_prefix}:model:"

    def names(model: str) -> list[str]:
        base = prefix + _escaped(model)
        return [f"{level}:window:{w}" for level in (base, f"{base}:version:v1") for w in WINDOWS]

    def matches(snapshot: dict[str, dict[str, str]]) -> bool:
        try:
            compare(snapshot)
        except (AssertionError, KeyError):
            return False
        return True

    def compare(snapshot: dict[str, dict[str, str]]) -> None:
        for model, task in traffic.view_models.items():
            for name in names(model):
                oracle.assert_view_matches(snapshot[name], expected.models[model], task)

    async def settled() -> dict[str, dict[str, str]] | None:
        snapshot = await redis_snapshot(settings)
        return snapshot if matches(snapshot) else None

    try:
        snapshot = await wait_for(settled, 30, "the speed view to match the oracle")
    except AssertionError:
        compare(await redis_snapshot(settings))  # says which figure differs
        raise
    # Every model hash belongs to a model that had valid predictions, under its escaped id.
    models_with_predictions = [*traffic.view_models, "huge", "large", "wide"]
    allowed = {prefix + _escaped(m) for m in models_with_predictions}
    allowed |= {name for m in models_with_predictions for name in names(m)}
    assert set(snapshot) <= allowed, sorted(set(snapshot) - allowed)
    assert set(traffic.view_models) <= await models_set(settings)


async def check_joined(settings: Settings, traffic: Traffic) -> None:
    """Every valid pair on `joined` with its own label and its fields as they arrived; every
    record within the output budget (the 300 wide pairs split by bytes)."""
    records = await read_topic(settings, settings.topic("joined"))
    assert max(len(value) for _, value in records) <= settings.output_record_bytes
    wide_records = [value for key, value in records if key == b"wide"]
    assert len(wide_records) >= 4, "300 pairs of 11 KB cannot travel in fewer than 4 records"
    events = joined_events(records)
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in events:
        by_pair.setdefault((event["model_id"], event["prediction_id"]), []).append(event)
    assert set(by_pair) == set(traffic.pairs)
    for pair, seen in by_pair.items():
        want = traffic.pairs[pair]
        for event in seen:  # `joined` may carry a replayed pair twice, never another label
            assert {k: event[k] for k in want if k != "date"} == {
                k: v for k, v in want.items() if k != "date"
            }, pair
            for name, value in traffic.extra.get(pair, {}).items():
                assert event[name] == value, (pair, name)


def check_batch_view(tmp_path: Path, traffic: Traffic) -> None:
    """Each valid pair exactly once in Parquet, with its own label, under its original id."""
    rows = read_batch_view(tmp_path / "batch-view")
    pairs = Counter((row["model_id"], row["prediction_id"]) for row in rows)
    assert [p for p, n in pairs.items() if n > 1] == [], "a pair was written twice"
    assert set(pairs) == set(traffic.pairs), (
        sorted(set(traffic.pairs) - set(pairs))[:5],
        sorted(set(pairs) - set(traffic.pairs))[:5],
    )
    for row in rows:
        want = traffic.pairs[(row["model_id"], row["prediction_id"])]
        assert {k: row[k] for k in want} == want
        extra = traffic.extra.get((row["model_id"], row["prediction_id"]), {})
        if "features" in extra:
            assert orjson.loads(row["features"]) == extra["features"]
    ids = {row["model_id"] for row in rows}
    assert {"a:version:v1", "x/date=1999-01-01", traffic.escape_model} <= ids


async def check_dead_letters(settings: Settings, config: Settings, traffic: Traffic) -> None:
    """Exactly the expected dead letters, by source and class, with the original bytes; and
    the same counts per class on the worker's /metrics."""
    expected: dict[tuple[str, int, int, int | None], str] = {}
    sources: dict[tuple[str, int, int, int | None], Out] = {}
    for phase in traffic.phases:
        for out in phase:
            for kind, index in out.dead:
                where = (settings.topic(out.topic), PARTITION, out.offset, index)
                expected[where] = kind
                sources[where] = out
    letters = [
        orjson.loads(v) for _, v in await read_topic(settings, settings.topic("dead_letters"))
    ]
    got: dict[tuple[str, int, int, int | None], str] = {}
    for letter in letters:
        where = (
            letter["source_topic"],
            letter["source_partition"],
            letter["source_offset"],
            letter["index"],
        )
        got[where] = classify(letter["reason"])
        source = sources.get(where)
        if source is None:
            continue
        out = source
        key = None if out.key is None else out.key.decode("utf-8", "replace")
        assert letter["key"] == key, letter
        value = base64.b64decode(letter["value_b64"])
        if letter["index"] is not None:  # one event of a batch: that event, as JSON
            assert orjson.loads(value) == orjson.loads(out.value)[letter["index"]]
        elif letter.get("value_truncated"):
            assert letter["value_bytes"] == len(out.value)
            assert out.value.startswith(value)
        elif expected[where] == "binary_label":
            assert orjson.loads(value) == orjson.loads(out.value)
        else:
            assert value == out.value
    assert len(letters) == len(got), "a dead letter was written twice"
    assert got == expected
    kinds = Counter(expected.values())
    counts = dead_letter_counts(scrape(config))
    assert {k: v for k, v in counts.items() if v} == {k: float(n) for k, n in kinds.items()}


def check_nothing_outside(tmp_path: Path, escape_model: str) -> None:
    """The batch view wrote only `date=/model_id=/part-*.parquet` files and `_flushes/`; the
    escaping id's raw target does not exist; the test's directory holds nothing else."""
    root = tmp_path / "batch-view"
    raw_target = os.path.normpath(f"{root}/date={DATE}/model_id={escape_model}")
    assert not os.path.exists(raw_target), raw_target
    assert not Path("/tmp", escape_model.rsplit("/", 1)[1]).exists()
    for path in tmp_path.rglob("*"):
        relative = path.relative_to(tmp_path)
        top = relative.parts[0]
        assert top in ("batch-view", "data-a", "worker.log"), relative
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if parts[0] == "_flushes":
            assert len(parts) == 1 or (len(parts) == 2 and parts[1].endswith(".json")), parts
            continue
        assert parts[0] == f"date={DATE}", parts
        if len(parts) >= 2:
            assert parts[1].startswith("model_id=") and "/" not in parts[1], parts
        if len(parts) >= 3:
            assert len(parts) == 3 and parts[2].startswith("part-"), parts
            assert parts[2].endswith(".parquet"), parts
    models = {p.name for p in root.glob(f"date={DATE}/model_id=*")}
    assert f"model_id={_escaped(escape_model)}" in models
    assert "model_id=x%2Fdate%3D1999-01-01" in models
    assert "model_id=a%3Aversion%3Av1" in models
    assert not list(tmp_path.rglob("date=1999-01-01"))
