"""The join's state machine (P/E/J/X), its expiry index and metric buckets, on an in-memory db.

TTLs are the seed's (7 days); time moves by event time, as the agent moves a partition's stream
time. Expected figures are computed here from the raw events.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from config.windows import parse_windows
from tables import keys
from tables.aggregates import delay_bin, merge, summarize
from tables.join import CHUNK_ENTRIES, JoinConfig, JoinEffects, JoinRules, index_entries
from tables.transaction import PartitionTransaction
from tests.unit.memdb import MemDB

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
TTL = 7 * DAY  # the seed's label TTL, early-outcome TTL and done retention
T0 = 1_699_999_200_000  # 2023-11-14T22:00:00Z, an hour boundary
WINDOWS = parse_windows("1h,24h,7d")
BY_NAME = {w.name: w for w in WINDOWS}
ALL = keys.ALL_VERSIONS


def prediction(pid: str, ts: int, score: float = 0.8, **extra: Any) -> dict[str, Any]:
    event = {
        "prediction_id": pid,
        "model_id": extra.pop("model_id", "m1"),
        "model_version": extra.pop("model_version", "v1"),
        "timestamp": ts,
        "task": extra.pop("task", "binary"),
        "score": score,
    }
    event.update(extra)
    return event


def outcome(pid: str, ts: int, label: float = 1, model_id: str = "m1") -> dict[str, Any]:
    return {"prediction_id": pid, "model_id": model_id, "timestamp": ts, "label": label}


class Harness:
    """One partition: a transaction over a MemDB, stream time moved like the join agent does."""

    def __init__(self, commit_each: bool = False) -> None:
        self.db = MemDB()
        self.txn = PartitionTransaction(self.db)
        self.rules = JoinRules(
            JoinConfig(
                label_ttl_for=lambda model_id: TTL,
                early_outcome_ttl_ms=TTL,
                done_retention_ms=TTL,
                windows=WINDOWS,
            )
        )
        self.stream_time = 0
        self.commit_each = commit_each

    def pred(self, event: dict[str, Any]) -> JoinEffects:
        fx = JoinEffects()
        self.stream_time = max(self.stream_time, event["timestamp"])
        self.rules.on_prediction(self.txn, event, fx)
        self._maybe_commit()
        return fx

    def out(self, event: dict[str, Any]) -> JoinEffects:
        fx = JoinEffects()
        self.stream_time = max(self.stream_time, event["timestamp"])
        self.rules.on_outcome(self.txn, event, self.stream_time, fx)
        self._maybe_commit()
        return fx

    def expire(self, upto: int, state: Any = None) -> JoinEffects:
        fx = JoinEffects()
        self.rules.expire(self.txn if state is None else state, upto, fx)
        self._maybe_commit()
        return fx

    def commit(self) -> None:
        self.db.apply(self.txn.changes())
        self.txn.reset()

    def _maybe_commit(self) -> None:
        if self.commit_each:
            self.commit()

    def record(self, pid: str) -> dict[str, Any] | None:
        return self.txn.get(keys.pair("m1", pid))

    def figures(
        self, model: str = "m1", window: str = "24h", version: str = ALL, clock: int | None = None
    ) -> dict[str, Any]:
        info = self.txn.get(keys.model(model))
        if clock is None:
            assert info is not None
            clock = info["clock"]
        w = BY_NAME[window]
        buckets = [
            self.txn.get(keys.bucket(model, version, w.gran, s)) for s in w.bucket_starts(clock)
        ]
        return summarize(merge(b for b in buckets if b), info["task"] if info else "binary")

    def index_entries(self) -> list[tuple[int, bytes]]:
        return list(index_entries(self.txn.scan(keys.EXPIRY, b"y")))

    def live_pair_entries(self) -> list[tuple[bytes, int]]:
        """(pair, deadline) of the index entries whose pair still holds that deadline (the
        others are stale: left behind when the pair moved on, skipped when due)."""
        return sorted(
            (t, d)
            for d, t in self.index_entries()
            if t.startswith(keys.PAIR) and (self.txn.get(t) or {}).get("dl") == d
        )


@pytest.fixture(params=[False, True], ids=["one-txn", "commit-each"])
def h(request: pytest.FixtureRequest) -> Harness:
    return Harness(commit_each=request.param)


# -- joining -------------------------------------------------------------------------------------
def test_prediction_then_outcome_joins_once(h: Harness) -> None:
    pred = prediction("p1", T0, 0.8, features={"age": 41, "city": "Oslo"}, region="eu")
    fx = h.pred(pred)
    assert fx.joined == []
    assert fx.models == {"m1"}
    fx = h.out(outcome("p1", T0 + 5_000, label=1))
    assert fx.joined == [
        {
            "prediction_id": "p1",
            "model_id": "m1",
            "model_version": "v1",
            "timestamp": T0,
            "task": "binary",
            "score": 0.8,
            "features": {"age": 41, "city": "Oslo"},
            "region": "eu",
            "label": 1,
            "outcome_timestamp": T0 + 5_000,
            "label_delay_ms": 5_000,
        }
    ]
    assert h.out(outcome("p1", T0 + 6_000, label=1)).joined == []  # a duplicate joins nothing
    f = h.figures()
    assert (f["predictions"], f["labeled"], f["pending"]) == (1, 1, 0)
    assert f["duplicate_outcomes"] == 1
    assert f["accuracy"] == 1.0
    assert f["brier"] == pytest.approx(0.04, abs=1e-9)
    assert f["log_loss"] == pytest.approx(-math.log(0.8), abs=1e-9)
    assert f["label_delay_p50_ms"] == pytest.approx(5_000, rel=0.01)


def test_outcome_first_waits_then_joins_when_the_prediction_comes(h: Harness) -> None:
    assert h.out(outcome("p1", T0 + 1_000, label=0)).joined == []
    assert h.record("p1")["s"] == "E"
    fx = h.pred(prediction("p1", T0, 0.3))
    assert fx.joined == [
        {
            "prediction_id": "p1",
            "model_id": "m1",
            "model_version": "v1",
            "timestamp": T0,
            "task": "binary",
            "score": 0.3,
            "label": 0,
            "outcome_timestamp": T0 + 1_000,
            "label_delay_ms": 1_000,
        }
    ]
    assert h.record("p1")["s"] == "J"
    f = h.figures()
    assert (f["predictions"], f["labeled"], f["pending"], f["orphan_outcomes"]) == (1, 1, 0, 0)
    assert f["accuracy"] == 1.0
    # one live expiry entry for the pair, at its joined deadline; the early outcome's entry is
    # stale now (the pair moved on) and is skipped when due
    assert h.live_pair_entries() == [(keys.pair("m1", "p1"), T0 + 2 * TTL)]
    assert sorted(d for d, t in h.index_entries() if t == keys.pair("m1", "p1")) == [
        T0 + 1_000 + TTL,
        T0 + 2 * TTL,
    ]


def test_duplicate_predictions_are_counted_not_double_counted(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.pred(prediction("p1", T0, 0.9))  # while pending
    h.out(outcome("p1", T0 + 10, label=1))
    h.pred(prediction("p1", T0, 0.9))  # after the join
    f = h.figures()
    assert f["predictions"] == 1
    assert f["labeled"] == 1
    assert f["duplicate_predictions"] == 2
    assert f["duplicates"] == 2
    v = h.figures(version="v1")
    assert (v["predictions"], v["duplicate_predictions"]) == (1, 2)


def test_first_outcome_wins_and_later_ones_only_count_as_duplicates(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.out(outcome("p1", T0 + 10, label=1))
    before = h.figures()
    fx = h.out(outcome("p1", T0 + 20, label=0))  # a different label must change nothing
    assert fx.joined == []
    after = h.figures()
    assert after["duplicate_outcomes"] == 1
    for field in ("labeled", "accuracy", "log_loss", "brier", "positive_rate"):
        assert after[field] == before[field]
    assert after["accuracy"] == 1.0
    assert after["positive_rate"] == 1.0


def test_first_early_outcome_wins_too(h: Harness) -> None:
    h.out(outcome("p1", T0 + 10, label=1))
    h.out(outcome("p1", T0 + 20, label=0))
    fx = h.pred(prediction("p1", T0, 0.9))
    assert [j["label"] for j in fx.joined] == [1]
    assert [j["outcome_timestamp"] for j in fx.joined] == [T0 + 10]
    f = h.figures()
    assert (f["labeled"], f["duplicate_outcomes"], f["accuracy"]) == (1, 1, 1.0)


# -- expiry --------------------------------------------------------------------------------------
def test_prediction_expires_exactly_at_the_ttl(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.expire(T0 + TTL - 1)
    assert h.record("p1")["s"] == "P"
    f = h.figures(clock=T0)
    assert (f["pending"], f["unlabeled_expired"]) == (1, 0)
    fx = h.expire(T0 + TTL)
    assert fx.models == {"m1"}
    assert h.record("p1")["s"] == "X"
    f = h.figures(clock=T0)
    assert (f["predictions"], f["pending"], f["unlabeled_expired"], f["labeled"]) == (1, 0, 1, 0)
    assert f["label_coverage"] == 0.0
    h.expire(T0 + TTL + 1)  # a second sweep counts nothing again
    assert h.figures(clock=T0)["unlabeled_expired"] == 1


def test_late_outcome_after_expiry_is_counted_late_not_joined(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.expire(T0 + TTL)
    fx = h.out(outcome("p1", T0 + TTL + 5, label=1))
    assert fx.joined == []
    f = h.figures(clock=T0)
    assert (f["late_outcomes"], f["labeled"], f["unlabeled_expired"]) == (1, 0, 1)
    h.pred(prediction("p1", T0, 0.9))  # a duplicate prediction of an expired pair
    f = h.figures(clock=T0)
    assert (f["predictions"], f["duplicate_predictions"], f["pending"]) == (1, 1, 0)


def test_outcome_at_the_deadline_before_any_sweep_is_late(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.pred(prediction("p2", T0, 0.9))
    assert h.out(outcome("p1", T0 + TTL - 1)).joined != []  # one ms before: still joins
    assert h.out(outcome("p2", T0 + TTL)).joined == []  # at the deadline: expired, late
    f = h.figures(clock=T0)
    assert (f["labeled"], f["unlabeled_expired"], f["late_outcomes"]) == (1, 1, 1)
    h.expire(T0 + TTL)  # the sweep must not expire p2 a second time
    assert h.figures(clock=T0)["unlabeled_expired"] == 1


def test_orphan_early_outcome_is_counted_at_the_early_ttl(h: Harness) -> None:
    h.out(outcome("o1", T0, label=1))
    h.expire(T0 + TTL - 1)
    assert h.record("o1")["s"] == "E"
    assert h.figures(clock=T0)["orphan_outcomes"] == 0
    fx = h.expire(T0 + TTL)
    assert fx.models == {"m1"}
    assert h.record("o1") is None
    assert h.figures(clock=T0)["orphan_outcomes"] == 1
    # the prediction arriving after that waits for a new outcome
    assert h.pred(prediction("o1", T0 + TTL + 1, 0.5)).joined == []
    assert h.record("o1")["s"] == "P"


def test_joined_pair_is_kept_for_the_done_retention_then_forgotten(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.out(outcome("p1", T0 + 1))
    end = T0 + TTL + TTL  # label TTL + done retention from the prediction's timestamp
    h.expire(end - 1)
    assert h.record("p1")["s"] == "J"
    h.out(outcome("p1", end - 1))  # still recognised as a duplicate
    assert h.figures(clock=T0)["duplicate_outcomes"] == 1
    h.expire(end)
    assert h.record("p1") is None
    assert [t for _, t in h.index_entries() if t.startswith(keys.PAIR)] == []  # stale ones too


def test_every_live_pair_has_an_index_entry_at_its_deadline(h: Harness) -> None:
    h.pred(prediction("a", T0))  # P
    h.out(outcome("b", T0 + 5))  # E
    h.pred(prediction("c", T0 + 1))
    h.out(outcome("c", T0 + 2))  # J
    h.pred(prediction("d", T0 + 3))
    h.out(outcome("e", T0 + 4))
    h.pred(prediction("e", T0 + 3))  # E then J
    assert h.live_pair_entries() == [
        (keys.pair("m1", "a"), T0 + TTL),
        (keys.pair("m1", "b"), T0 + 5 + TTL),
        (keys.pair("m1", "c"), T0 + 1 + 2 * TTL),
        (keys.pair("m1", "d"), T0 + 3 + TTL),
        (keys.pair("m1", "e"), T0 + 3 + 2 * TTL),
    ]


class CountingState:
    """The State protocol around a transaction, counting the items every scan yields."""

    def __init__(self, inner: PartitionTransaction) -> None:
        self.inner = inner
        self.scanned = 0

    def get(self, key: bytes) -> Any | None:
        return self.inner.get(key)

    def set(self, key: bytes, value: Any) -> None:
        self.inner.set(key, value)

    def put_absent(self, key: bytes, value: Any) -> None:
        self.inner.put_absent(key, value)

    def delete_stored(self, key: bytes) -> None:
        self.inner.delete_stored(key)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, Any]]:
        for item in self.inner.scan(start, stop):
            self.scanned += 1
            yield item


def test_expiry_sweep_reads_only_what_is_due() -> None:
    h = Harness()
    for i in range(3):
        h.pred(prediction(f"old-{i}", T0))
    t1 = T0 + TTL - 30 * MIN  # a minute boundary; these 9,997 are far from their deadline
    for i in range(9_997):
        h.pred(prediction(f"new-{i}", t1 + i))
    # the first sweep clears the minute buckets of T0 (out of every minute window by now)
    h.expire(t1 + 9_996)
    h.commit()
    due_later = [(d, t) for d, t in h.index_entries() if d <= T0 + TTL]
    assert due_later == [(T0 + TTL, keys.pair("m1", f"old-{i}")) for i in range(3)]
    h.commit()

    state = CountingState(h.txn)
    h.db.items_read = 0
    h.expire(T0 + TTL - 1, state)
    assert state.scanned == 0
    assert h.db.items_read <= 1  # the first entry not due, which ends the scan

    h.db.items_read = 0
    h.expire(T0 + TTL, state)
    # the 3 due pairs, then the 2 minute buckets of T0 (all versions, v1) that counting them
    # as expired re-created already past their deadline: dropped in the same call
    assert state.scanned == 3 + 2
    # a handful of reads (those entries, the first entry not due ending each of the two
    # passes, the records they touch), never the 9,997 pending ones
    assert h.db.items_read <= 16
    f = h.figures(window="7d")
    assert (f["predictions"], f["unlabeled_expired"], f["pending"]) == (3 + 9_997, 3, 9_997)
    assert [h.record(f"old-{i}")["s"] for i in range(3)] == ["X", "X", "X"]
    assert h.record("new-0")["s"] == "P"


def test_metric_buckets_are_dropped_only_once_the_model_clock_passes_them(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    hour_bucket = keys.bucket("m1", ALL, "h", T0)
    minute_bucket = keys.bucket("m1", ALL, "m", T0)
    # the partition's stream time moves far ahead, but this model's clock stays at T0
    h.expire(T0 + 3 * TTL)
    assert h.txn.get(hour_bucket) is not None
    assert h.txn.get(minute_bucket) is not None
    assert h.figures(window="7d")["predictions"] == 1
    # the model's clock moves past the 7 d window: its old buckets go with the next sweeps
    h.pred(prediction("p2", T0 + 3 * TTL, 0.9))
    h.expire(T0 + 4 * TTL)
    h.expire(T0 + 5 * TTL)
    assert h.txn.get(hour_bucket) is None
    assert h.txn.get(minute_bucket) is None


# -- metrics and windows -------------------------------------------------------------------------
def exact_auc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def lower_quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def scenario(task: str, seed: int) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """Events of two versions in one hour, shuffled (early outcomes, duplicates, unlabeled),
    and the truth: per prediction id its prediction and the first outcome's label and delay."""
    rng = random.Random(seed)
    events: list[tuple[str, dict[str, Any]]] = []
    truth: dict[str, Any] = {"pairs": {}, "dp": 0, "do": 0, "preds": {}}
    for i in range(300):
        pid = f"p{i}"
        version = "v1" if i % 3 else "v2"
        ts = T0 + rng.randrange(0, 40 * MIN)
        if task == "binary":
            label = 1 if rng.random() < 0.4 else 0
            score = round(min(max(rng.gauss(0.6 if label else 0.4, 0.2), 0.0), 1.0), 4)
        else:
            label = round(rng.uniform(-20, 20), 3)
            score = round(label + rng.gauss(0.5, 3.0), 3)
        pred = prediction(pid, ts, score, model_version=version, task=task)
        truth["preds"][pid] = pred
        items: list[tuple[str, dict[str, Any]]] = [("p", pred)]
        if rng.random() < 0.1:
            items.append(("p", dict(pred)))
            truth["dp"] += 1
        if rng.random() < 0.85:
            delay = rng.randrange(1_000, 15 * MIN)
            first = outcome(pid, ts + delay, label)
            truth["pairs"][pid] = (label, delay)
            items.append(("o", first))
            if rng.random() < 0.1:
                wrong = (1 - label) if task == "binary" else label + 100.0
                items.append(("o", outcome(pid, ts + delay + 1, wrong)))
                truth["do"] += 1
        events.extend(items)
    # shuffle while keeping each id's outcomes in their order, predictions anywhere around them
    order = list(range(len(events)))
    rng.shuffle(order)
    outcome_slots = sorted(i for i in order if events[i][0] == "o")
    by_pid: dict[str, list[int]] = {}
    for i in outcome_slots:
        by_pid.setdefault(events[i][1]["prediction_id"], []).append(i)
    shuffled = []
    seen: dict[str, int] = {}
    for i in order:
        kind, event = events[i]
        if kind == "o":
            pid = event["prediction_id"]
            j = by_pid[pid][seen.get(pid, 0)]
            seen[pid] = seen.get(pid, 0) + 1
            shuffled.append(events[j])
        else:
            shuffled.append((kind, event))
    return shuffled, truth


def run(h: Harness, events: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    joined = []
    for kind, event in events:
        fx = h.pred(event) if kind == "p" else h.out(event)
        joined.extend(fx.joined)
    return joined


@pytest.mark.parametrize("version", [ALL, "v1", "v2"])
def test_binary_metrics_equal_a_reference_from_the_raw_pairs(h: Harness, version: str) -> None:
    events, truth = scenario("binary", seed=21)
    early = sum(
        1
        for n, (kind, e) in enumerate(events)
        if kind == "o"
        and all(not (k == "p" and x["prediction_id"] == e["prediction_id"]) for k, x in events[:n])
    )
    assert early > 10  # the scenario does exercise outcomes that come first
    joined = run(h, events)
    assert sorted(j["prediction_id"] for j in joined) == sorted(truth["pairs"])
    preds = [p for p in truth["preds"].values() if version in (ALL, p["model_version"])]
    labeled = [
        (p["score"], *truth["pairs"][p["prediction_id"]])
        for p in preds
        if p["prediction_id"] in truth["pairs"]
    ]
    f = h.figures(window="1h", version=version)
    assert f["predictions"] == len(preds)
    assert f["labeled"] == len(labeled)
    assert f["pending"] == len(preds) - len(labeled)
    assert f["label_coverage"] == pytest.approx(len(labeled) / len(preds), abs=1e-12)
    n = len(labeled)
    accuracy = sum((s >= 0.5) == (y == 1) for s, y, _ in labeled) / n
    log_loss = sum(-math.log(min(max(s if y else 1 - s, 1e-15), 1.0)) for s, y, _ in labeled) / n
    brier = sum((s - y) ** 2 for s, y, _ in labeled) / n
    pos = [s for s, y, _ in labeled if y == 1]
    neg = [s for s, y, _ in labeled if y == 0]
    assert f["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert f["log_loss"] == pytest.approx(log_loss, abs=1e-6)
    assert f["brier"] == pytest.approx(brier, abs=1e-8)
    assert f["positive_rate"] == pytest.approx(len(pos) / n, abs=1e-12)
    assert abs(f["roc_auc"] - exact_auc(pos, neg)) <= f["roc_auc_error_bound"] + 1e-12
    delays = [d for _, _, d in labeled]
    assert f["label_delay_p50_ms"] == pytest.approx(lower_quantile(delays, 0.5), rel=0.01)
    assert f["label_delay_p95_ms"] == pytest.approx(lower_quantile(delays, 0.95), rel=0.01)
    if version == ALL:
        assert f["duplicate_predictions"] == truth["dp"]
        assert f["duplicate_outcomes"] == truth["do"]
        for window in ("24h", "7d"):  # everything is inside every window
            assert h.figures(window=window) == f


def test_regression_metrics_equal_a_reference_from_the_raw_pairs(h: Harness) -> None:
    events, truth = scenario("regression", seed=22)
    run(h, events)
    labeled = [
        (p["score"], truth["pairs"][pid][0])
        for pid, p in truth["preds"].items()
        if pid in truth["pairs"]
    ]
    errors = [s - y for s, y in labeled]
    n = len(errors)
    f = h.figures(window="24h")
    assert f["labeled"] == n
    assert f["mae"] == pytest.approx(sum(abs(e) for e in errors) / n, abs=1e-6)
    assert f["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / n), abs=1e-6)
    assert f["mean_error"] == pytest.approx(sum(errors) / n, abs=1e-6)
    assert f["duplicate_outcomes"] == truth["do"]


def test_window_membership_follows_the_model_clock(h: Harness) -> None:
    clock = T0 + 5 * HOUR + 30 * MIN
    h.pred(prediction("old", T0 + 3 * HOUR, 0.9))  # 2.5 h before the clock
    h.pred(prediction("edge", clock - HOUR, 0.9))  # its minute bucket is just out of the 1 h
    h.pred(prediction("in", clock - 59 * MIN, 0.9))  # its minute bucket is the oldest in the 1 h
    h.pred(prediction("now", clock, 0.9))
    h.pred(prediction("lastweek", clock - 6 * DAY, 0.9))
    assert h.txn.get(keys.model("m1"))["clock"] == clock
    assert h.figures(window="1h")["predictions"] == 2
    assert h.figures(window="24h")["predictions"] == 4
    assert h.figures(window="7d")["predictions"] == 5


def test_delay_bins_of_the_join_follow_outcome_minus_prediction_time(h: Harness) -> None:
    h.pred(prediction("p1", T0, 0.9))
    h.out(outcome("p1", T0 + 123_456))
    bucket = h.txn.get(keys.bucket("m1", "v1", "m", T0))
    assert bucket["dh"] == {delay_bin(123_456): 1}


# -- trust at the edges --------------------------------------------------------------------------
def test_an_outcome_of_another_model_never_labels_this_models_prediction(h: Harness) -> None:
    h.pred(prediction("shared", T0, model_id="a"))
    fx = h.out(outcome("shared", T0 + 5, label=0, model_id="b"))  # b's outcome, a's id
    assert fx.joined == []
    assert h.txn.get(keys.pair("a", "shared"))["s"] == "P"  # still waiting for a's label
    assert h.txn.get(keys.pair("b", "shared"))["s"] == "E"  # an early outcome of b
    fx = h.out(outcome("shared", T0 + 6, label=1, model_id="a"))
    assert [(p["model_id"], p["label"]) for p in fx.joined] == [("a", 1)]
    h.expire(T0 + 5 + TTL)
    assert h.figures("b")["orphan_outcomes"] == 1  # b's, in b's own figures
    assert h.figures("a")["labeled"] == 1 and h.figures("a")["orphan_outcomes"] == 0


def test_the_same_prediction_id_in_two_models_is_two_predictions(h: Harness) -> None:
    h.pred(prediction("p", T0, model_id="a"))
    h.pred(prediction("p", T0, model_id="b"))
    assert h.figures("a")["duplicate_predictions"] == 0
    assert h.figures("b")["duplicate_predictions"] == 0
    assert h.figures("b")["predictions"] == 1


@pytest.mark.parametrize("label", [7, -1, 0.5, 2.0])
def test_a_binary_label_other_than_0_or_1_is_refused_and_the_prediction_waits(
    h: Harness, label: float
) -> None:
    h.pred(prediction("p1", T0))
    fx = h.out(outcome("p1", T0 + 5, label=label))
    assert fx.joined == []
    assert len(fx.rejected) == 1
    reason, refused, offset = fx.rejected[0]
    assert refused["label"] == label and offset is None and "not 0 or 1" in reason
    assert h.figures()["labeled"] == 0 and h.figures()["pending"] == 1
    fx = h.out(outcome("p1", T0 + 6, label=1.0))  # a valid label later joins
    assert [p["label"] for p in fx.joined] == [1.0]


def test_an_early_binary_outcome_with_a_bad_label_is_refused_when_its_prediction_comes(
    h: Harness,
) -> None:
    fx = JoinEffects()
    h.rules.on_outcome(h.txn, outcome("p1", T0, label=3), T0, fx, offset=41)
    assert fx.rejected == []  # the task is not known yet: held as an early outcome
    fx = h.pred(prediction("p1", T0 - 5))
    assert fx.joined == []
    assert fx.rejected == [
        ("label 3 of a binary model's outcome is not 0 or 1", outcome("p1", T0, label=3), 41)
    ]
    assert h.txn.get(keys.pair("m1", "p1"))["s"] == "P"
    assert h.figures()["predictions"] == 1 and h.figures()["labeled"] == 0


def test_a_regression_label_may_be_any_finite_number(h: Harness) -> None:
    h.pred(prediction("r", T0, score=3.0, task="regression"))
    fx = h.out(outcome("r", T0 + 1, label=-12.5))
    assert [p["label"] for p in fx.joined] == [-12.5] and fx.rejected == []


def test_a_clock_from_the_far_future_is_pulled_back_with_its_buckets(h: Harness) -> None:
    h.pred(prediction("now", T0))
    h.pred(prediction("far", T0 + 400 * DAY))  # accepted before the door checked event time
    ceiling = T0 + HOUR
    assert h.rules.pull_back(h.txn, ceiling) == ["m1"]
    info = h.txn.get(keys.model("m1"))
    assert info["clock"] == ceiling and info["lp"] == ceiling
    far_buckets = [
        k for k, _ in h.txn.scan(*keys.model_buckets("m1")) if keys.split_bucket(k)[3] > ceiling
    ]
    assert far_buckets == []
    index_targets = {t for _, t in h.index_entries()}
    assert not any(
        t.startswith(keys.BUCKET) and keys.split_bucket(t)[3] > ceiling for t in index_targets
    )
    assert h.figures("m1", window="24h")["predictions"] == 1  # T0's prediction is in view again
    assert h.rules.pull_back(h.txn, ceiling) == []  # idempotent


def test_a_model_idle_for_its_longest_window_plus_its_ttl_is_forgotten_whole(h: Harness) -> None:
    h.pred(prediction("old", T0, model_id="retired", model_version="v7"))
    h.out(outcome("old", T0 + 5, model_id="retired"))
    h.txn.set(keys.reference("retired", "v7"), {"frozen": True})
    h.pred(prediction("live", T0, model_id="m1"))
    horizon = 7 * DAY + TTL  # longest window (7d) + label TTL
    assert h.rules.idle_after_ms("retired") == horizon
    h.pred(prediction("live2", T0 + horizon + 1, model_id="m1"))  # m1 keeps going
    fx = JoinEffects()
    h.rules.forget_idle(h.txn, T0 + 5 + horizon, fx)
    assert fx.forgotten == {}  # exactly at the horizon: still kept
    h.rules.forget_idle(h.txn, T0 + 5 + horizon + 1, fx)
    assert fx.forgotten == {"retired": ["v7"]}
    assert h.txn.get(keys.model("retired")) is None
    assert list(h.txn.scan(*keys.model_buckets("retired"))) == []
    assert list(h.txn.scan(*keys.model_references("retired"))) == []
    assert not any(t.startswith(keys.BUCKET + b"retired") for _, t in h.index_entries())
    assert h.txn.get(keys.model("m1")) is not None  # its clock moved: not idle
    assert list(h.txn.scan(*keys.model_buckets("m1"))) != []
    # the stale index entries of the deleted buckets go without a trace when due
    h.expire(T0 + 5 + horizon + 1 + 30 * DAY)
    assert not any(t.startswith(keys.BUCKET + b"retired") for _, t in h.index_entries())


# -- the pair index in chunks --------------------------------------------------------------------
def _chunks(h: Harness) -> list[tuple[int, list[list[Any]]]]:
    return [
        (keys.split_expiry(k)[0], v)
        for k, v in h.txn.scan(keys.EXPIRY, b"y")
        if keys.split_expiry(k)[1].startswith(keys.CHUNK)
    ]


def test_a_fetch_indexes_its_pairs_in_bounded_chunks_per_second_of_deadline(h: Harness) -> None:
    fx = JoinEffects()
    count = CHUNK_ENTRIES * 2 + 3
    for i in range(count):  # one second of timestamps, then one more second
        h.rules.on_prediction(h.txn, prediction(f"p{i:04d}", T0 + i % 2 * 1_000), fx, settle=False)
    h.rules.settle(h.txn, fx)
    chunks = _chunks(h)
    assert sorted(len(v) for _, v in chunks) == sorted(
        [CHUNK_ENTRIES, 2]  # the even ones: 258 at T0 + TTL
        + [CHUNK_ENTRIES, 1]  # the odd ones: 257 a second later
    )
    for deadline, entries in chunks:  # each chunk at its earliest entry's deadline
        assert deadline == min(d for _, d in entries)
    expected = sorted(
        (keys.pair("m1", f"p{i:04d}"), T0 + i % 2 * 1_000 + TTL) for i in range(count)
    )
    assert h.live_pair_entries() == expected
    assert (
        len(list(h.txn.changes())) == count + 4 + len(list(h.txn.scan(keys.BUCKET, b"c"))) * 2 + 1
    )


def test_a_sweep_that_cuts_a_chunk_keeps_the_rest_at_their_earliest_deadline(h: Harness) -> None:
    fx = JoinEffects()
    for i in range(10):
        h.rules.on_prediction(h.txn, prediction(f"p{i}", T0 + i * 100), fx, settle=False)
    h.rules.settle(h.txn, fx)
    assert [len(v) for _, v in _chunks(h)] == [10]
    h.expire(T0 + 450 + TTL)  # p0..p4 due
    assert [h.record(f"p{i}")["s"] for i in range(10)] == ["X"] * 5 + ["P"] * 5
    rest = [(d, sorted(t for t, _ in v)) for d, v in _chunks(h) if d < T0 + 2 * TTL]
    assert rest == [
        (T0 + 500 + TTL, sorted(keys.pair("m1", f"p{i}").decode() for i in range(5, 10)))
    ]
    h.expire(T0 + 900 + TTL)
    assert [h.record(f"p{i}")["s"] for i in range(10)] == ["X"] * 10
    assert [d for d, _ in _chunks(h) if d < T0 + 2 * TTL] == []


def test_a_pair_indexed_twice_at_one_deadline_shares_one_chunk() -> None:
    h = Harness()
    state = h.txn
    first = [[keys.pair("m1", "a").decode("latin-1"), T0]]
    again = [[keys.pair("m1", "a").decode("latin-1"), T0], [keys.pair("m1", "b").decode(), T0 + 5]]
    fx = JoinEffects()
    fx.index = {0: first}
    h.rules.settle(state, fx)
    fx.index = {0: again}
    h.rules.settle(state, fx)
    assert [(d, len(v)) for d, v in _chunks(h)] == [(T0, 3)]
