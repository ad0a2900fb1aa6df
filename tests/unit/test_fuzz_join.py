"""Property tests of the join rules: any sequence of records (duplicates, replays, both sides
first, ids shared across models, hostile values), expiry sweeps, idle sweeps, clock pull-backs,
checkpoints and crashes, driven the way the join agent drives them.

Each record goes through the decoder first, so the rules see exactly what a worker would give
them. A checkpoint writes the transaction's changes with orjson like the checkpoint does; a
crash drops everything since the last checkpoint and replays its records, as a restart from
the committed offsets does. The expected counts come from the sequence of records applied, not
from the rules. `make fuzz` runs the same properties longer.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from hypothesis import given
from hypothesis import strategies as st

from config.windows import Window, parse_windows
from contracts import codec
from contracts.schemas import Joined
from tables import keys, read
from tables.aggregates import as_int, merge, summarize
from tables.join import MAX_HELD_OUTCOMES, JoinConfig, JoinEffects, JoinRules, index_entries
from tables.transaction import PartitionTransaction
from tests.unit.fuzz_profile import fuzz_settings, say, tally
from tests.unit.memdb import MemDB

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_699_999_200_000  # an hour boundary
MAX_TS = 10**14 - 1
LIMITS = codec.Limits(max_events=100, max_bytes=10**7)
PREDICTIONS, OUTCOMES = "predictions", "outcomes"

# Few ids, so that duplicates, early outcomes and ids shared by two models happen often; the
# ids hold what must be escaped in keys.
MODELS = ["m1", "a:version:v1", "é/..%"]
TASKS = {"m1": ["binary"] * 5 + ["regression"], "a:version:v1": ["regression"]}
PIDS = ["p0", "p1", "p2", "p:1", "é"]
VERSIONS = ["v1", "v2", "v:1"]
COUNTERS = ("n", "lab", "exp", "dp", "do", "late", "orph")
PER_VERSION = ("n", "lab", "exp", "dp", "late")  # counters always kept per version as well

HOSTILE_FLOATS = [1e308, -1e308, 1.7976931348623157e308, -0.0, 5e-324, 1e-300, 1e200, -1e200]
BIG_INTS = [2**53, -(2**53), 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]
finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_FLOATS),
    st.integers(-(2**53), 2**53),
)
binary_scores = st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 0.0, 1.0, 5e-324, 1 - 1e-16]))
refused_scores = st.sampled_from([1.5, -0.1, 2**53 + 1, "0.5", True, None])  # decoder drops them
labels = st.one_of(
    st.sampled_from([0, 1]),
    st.sampled_from([0, 1, 0.0, 1.0, -0.0, 0.5, 7, -1, 1e200, -1e308, 2**53, True, "1"]),
    finite,
)
feature_values = st.one_of(
    finite,
    st.sampled_from(BIG_INTS),
    st.text(max_size=8),
    st.sampled_from(["", "\x00", "x" * 20_000, "é" * 300]),
)
feature_maps = st.dictionaries(
    st.one_of(st.sampled_from(["a", "b", "", "\x00", "x" * 300]), st.text(max_size=3)),
    feature_values,
    max_size=25,  # beyond the 20 features a bucket keeps
)


# -- operations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    topic: str
    event: dict[str, Any]


@dataclass(frozen=True)
class Op:
    name: str  # replay, idle, expire, sweep, pull_back, commit, crash
    arg: int = 0
    side: str = PREDICTIONS


def events(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[Send]:
    @st.composite
    def prediction(draw: st.DrawFn) -> Send:
        model = draw(st.sampled_from(MODELS))
        task = draw(st.sampled_from(TASKS.get(model, ["binary", "regression"])))
        score = draw(
            st.one_of(binary_scores if task == "binary" else finite, refused_scores)
            if draw(st.integers(0, 9)) == 0
            else binary_scores
            if task == "binary"
            else finite
        )
        event = {
            "prediction_id": draw(st.sampled_from(PIDS)),
            "model_id": model,
            "model_version": draw(st.sampled_from(VERSIONS)),
            "timestamp": T0 + draw(offsets),
            "task": task,
            "score": score,
        }
        if draw(st.booleans()):
            event["features"] = draw(st.one_of(st.none(), feature_maps))
        if draw(st.integers(0, 5)) == 0:
            event["label"] = draw(labels)  # an unknown field named like the joined record's
        return Send(PREDICTIONS, event)

    @st.composite
    def outcome(draw: st.DrawFn) -> Send:
        event = {
            "prediction_id": draw(st.sampled_from(PIDS)),
            "model_id": draw(st.sampled_from(MODELS)),
            "timestamp": T0 + draw(offsets),
            "label": draw(labels),
        }
        return Send(OUTCOMES, event)

    return st.one_of(prediction(), outcome())


def operations(
    offsets: st.SearchStrategy[int], extra: list[st.SearchStrategy[Op]]
) -> st.SearchStrategy[list[Send | Op]]:
    common: list[st.SearchStrategy[Send | Op]] = [
        events(offsets),
        events(offsets),
        events(offsets),
        st.builds(Op, st.just("replay"), st.integers(0, 1000)),
        st.builds(Op, st.just("idle"), offsets, st.sampled_from([PREDICTIONS, OUTCOMES])),
        st.just(Op("expire")),
        st.just(Op("sweep")),
        st.just(Op("commit")),
        st.just(Op("crash")),
        *extra,
    ]
    # Long enough for pairs to meet again: a plain list strategy averages a handful of items.
    return st.integers(0, 60).flatmap(
        lambda size: st.lists(st.one_of(common), min_size=size, max_size=size)
    )


# -- the partition, driven like the join agent --------------------------------------------------
@dataclass
class Applied:
    """What the rules were given and gave back, as of the last checkpoint (what survives)."""

    events: list[Send] = field(default_factory=list)
    joined: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    expired_upto: int = 0  # the highest stream time an expiry sweep ran at
    joined_after: list[int] = field(default_factory=list)  # expired_upto when each pair joined


class Partition:
    def __init__(self, config: JoinConfig) -> None:
        self.config = config
        self.rules = JoinRules(config)
        self.db = MemDB()
        self.txn = PartitionTransaction(self.db)
        self.sides: dict[str, int] = {}
        self.log: list[tuple[str, bytes, bytes]] = []  # every record sent, in order
        self.committed = Applied()
        self.pending = Applied()
        self.committed_sides: dict[str, int] = {}
        self.committed_log = 0
        self.first_joins: dict[tuple[str, str], int] = {}  # pair -> J deadline of its last join
        self.happened: set[str] = set()  # what the sequence exercised, for the statistics

    @property
    def stream_time(self) -> int:
        return min(self.sides.get(PREDICTIONS, 0), self.sides.get(OUTCOMES, 0))

    def send(self, item: Send) -> None:
        key = item.event["model_id"].encode()
        value = json.dumps(item.event).encode()
        self.log.append((item.topic, key, value))
        self._apply(item.topic, key, value)

    def replay(self, index: int) -> None:
        if self.log:
            self._apply(*self.log[index % len(self.log)])
            self.log.append(self.log[index % len(self.log)])

    def _apply(self, topic: str, key: bytes, value: bytes) -> None:
        good, _ = codec.decode_record(codec.SCHEMAS[topic], key, value, LIMITS, None)
        fx = JoinEffects()
        for item in good:
            self.sides[topic] = max(self.sides.get(topic, 0), item["timestamp"])
            if topic == PREDICTIONS:
                self.rules.on_prediction(self.txn, item, fx)
            else:
                self.rules.on_outcome(self.txn, item, self.stream_time, fx, 7)
            self.pending.events.append(Send(topic, item))
        self._collect(fx)

    def idle(self, side: str, at: int) -> None:
        """The wall-clock fallback of an input that has been quiet for long."""
        self.sides[side] = max(self.sides.get(side, 0), at)

    def expire(self, sweep_idle: bool) -> None:
        fx = JoinEffects()
        if sweep_idle:
            self.rules.forget_idle(self.txn, self.stream_time, fx)
        self.rules.expire(self.txn, self.stream_time, fx)
        self.pending.expired_upto = max(self.pending.expired_upto, self.stream_time)
        self._collect(fx)

    def pull_back(self, ceiling: int) -> None:
        if self.rules.pull_back(self.txn, ceiling):
            self.happened.add("pulled a model clock back")
        for side, at in self.sides.items():
            self.sides[side] = min(at, ceiling)

    def _collect(self, fx: JoinEffects) -> None:
        upto = max(self.committed.expired_upto, self.pending.expired_upto)
        self.pending.joined += fx.joined
        self.pending.joined_after += [upto] * len(fx.joined)
        self.pending.rejected += [(reason, outcome) for reason, outcome, _ in fx.rejected]
        for what, count in [
            ("joined a pair", fx.joined),
            ("refused a label", fx.rejected),
            ("forgot an idle model", fx.forgotten),
            ("applied a deadline", fx.expired),
        ]:
            if count:
                self.happened.add(what)

    def commit(self) -> None:
        """A checkpoint: outputs out, then the state changes, encoded as the checkpoint does."""
        for pair, upto in zip(self.pending.joined, self.pending.joined_after, strict=True):
            Joined.model_validate(pair)  # the batch view reads what the joined topic carries
            ident = (pair["model_id"], pair["prediction_id"])
            if ident in self.first_joins:
                # joined again only once the first join's record was gone (its done retention)
                assert self.first_joins[ident] <= upto, f"{ident} joined twice: {pair}"
                self.happened.add("joined a pair again after its done retention")
            deadline = self.config.label_ttl_for(pair["model_id"]) + self.config.done_retention_ms
            self.first_joins[ident] = pair["timestamp"] + deadline
        codec.encode_batches(self.pending.joined, 100, lambda e: e["model_id"], 1_000_000)
        self.db.apply(self.txn.changes())
        self.txn.reset()
        self.committed.events += self.pending.events
        self.committed.joined += self.pending.joined
        self.committed.rejected += self.pending.rejected
        self.committed.expired_upto = max(self.committed.expired_upto, self.pending.expired_upto)
        self.pending = Applied()
        self.committed_sides = dict(self.sides)
        self.committed_log = len(self.log)

    def crash(self) -> None:
        """Killed: what was not checkpointed is gone; the records after it come again."""
        if self.committed_log < len(self.log):
            self.happened.add("replayed records after a crash")
        self.txn.reset()
        self.pending = Applied()
        self.sides = dict(self.committed_sides)
        for record in self.log[self.committed_log :]:
            self._apply(*record)

    def run(self, ops: list[Send | Op], check: Literal["each", "end", "none"] = "each") -> None:
        """Apply `ops`, then a last checkpoint; `check`: the state's invariants at each
        checkpoint, at the last one only, or not at all."""
        say(f"ops={ops!r}")
        for op in ops:
            if isinstance(op, Send):
                self.send(op)
            elif op.name == "replay":
                self.replay(op.arg)
            elif op.name == "idle":
                self.idle(op.side, T0 + op.arg)
            elif op.name in ("expire", "sweep"):
                self.expire(sweep_idle=op.name == "sweep")
            elif op.name == "pull_back":
                self.pull_back(T0 + op.arg)
            elif op.name == "commit":
                self.commit()
                if check == "each":
                    self.check_state()
            elif op.name == "crash":
                self.crash()
        self.commit()
        if check != "none":
            self.check_state()
        for what in sorted(self.happened):
            tally(what)

    # -- what holds of any state ------------------------------------------------------------------
    def check_state(self) -> None:
        index = set(index_entries(self.txn.scan(keys.EXPIRY, b"y")))
        indexed_targets = {target for _, target in index}
        for key, record in self.txn.scan(keys.PAIR, b"q"):
            assert (record["dl"], key) in index, f"pair without its expiry entry: {key!r}"
        for key, bucket in self.txn.scan(keys.BUCKET, b"c"):
            assert key in indexed_targets, f"bucket without an expiry entry: {key!r}"
            orjson.dumps(bucket)
        for key, info in self.txn.scan(keys.MODEL, keys.MODEL_END):
            model_id = key[len(keys.MODEL) :].decode()
            for version in [keys.ALL_VERSIONS, *info["versions"]]:
                for window in self.config.windows:
                    agg = read.window(self.txn.get, model_id, version, window, info["clock"])
                    check_figures(summarize(agg, info["task"]))


def check_figures(figures: dict[str, float | int]) -> None:
    for name, value in figures.items():
        assert type(value) in (int, float), (name, value)
        if isinstance(value, int) and name not in ("pending",):
            assert value >= 0, (name, value)


def fits(task: str, label: float) -> bool:
    return task != "binary" or (label == 0 or label == 1)


def pair_of(event: dict[str, Any]) -> tuple[str, str]:
    return event["model_id"], event["prediction_id"]


def config(label_ttl: int, early_ttl: int, done: int, windows: list[Window]) -> JoinConfig:
    return JoinConfig(
        label_ttl_for=lambda model_id: label_ttl,
        early_outcome_ttl_ms=early_ttl,
        done_retention_ms=done,
        windows=windows,
    )


def check_joined_pairs(part: Partition) -> None:
    """Every joined pair is a prediction and an outcome of that model and id, of a fitting label;
    every refused label is one that does not fit."""
    preds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    outs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sent in part.committed.events:
        (preds if sent.topic == PREDICTIONS else outs).setdefault(pair_of(sent.event), []).append(
            sent.event
        )
    for pair in part.committed.joined:
        ident = pair_of(pair)
        prediction = {
            k: v
            for k, v in pair.items()
            if k not in ("label", "outcome_timestamp", "label_delay_ms")
        }
        candidates = [{k: v for k, v in p.items() if k != "label"} for p in preds.get(ident, [])]
        assert prediction in candidates
        assert any(
            o["label"] == pair["label"] and o["timestamp"] == pair["outcome_timestamp"]
            for o in outs.get(ident, [])
        )
        assert fits(pair["task"], pair["label"])
        assert pair["label_delay_ms"] == pair["outcome_timestamp"] - pair["timestamp"]
        if pair["task"] == "binary":
            assert pair["label"] in (0, 1)
    for reason, outcome in part.committed.rejected:
        assert reason
        assert outcome in outs.get(pair_of(outcome), [])
        assert not fits("binary", outcome["label"])


# -- with every kind of time: extreme timestamps, bucket expiry, idle models, pull-backs ---------
chaos_offsets = st.one_of(
    st.integers(-DAY, 3 * DAY),
    st.integers(0, 10 * MIN),
    st.sampled_from([-T0, MAX_TS - T0, 8 * DAY, 40 * DAY]),
)


@fuzz_settings(150)
@given(
    ops=operations(chaos_offsets, [st.builds(Op, st.just("pull_back"), chaos_offsets)]),
    label_ttl=st.sampled_from([1, MIN, 30 * MIN, DAY, 7 * DAY]),
    early_ttl=st.sampled_from([1, MIN, 30 * MIN, 7 * DAY]),
    done=st.sampled_from([MIN, 7 * DAY]),
    windows=st.sampled_from(["1h,24h,7d", "5m", "90s,2d"]).map(parse_windows),
)
def test_any_sequence_keeps_the_rules_whole(
    ops: list[Send | Op], label_ttl: int, early_ttl: int, done: int, windows: list[Window]
) -> None:
    """Nothing raises; a pair joins once (again only after its done retention); joined labels
    fit; the state encodes, every pair and bucket has its expiry entry and every window of
    every model summarizes."""
    part = Partition(config(label_ttl, early_ttl, done, windows))
    part.run(ops)
    check_joined_pairs(part)


# -- exact counts: no bucket expires and no pair record is forgotten within the horizon ---------
HORIZON = 5 * HOUR  # minute buckets live 6 h past their end here, pair records 30 days
EXACT_WINDOWS = parse_windows("6h,30d")
NO_EXPIRY = 30 * DAY


def bucket_totals(
    txn: PartitionTransaction, model_id: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """(version, granularity) -> the merged aggregate of all its buckets."""
    start, stop = keys.model_buckets(model_id)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, agg in txn.scan(start, stop):
        _, version, gran, _ = keys.split_bucket(key)
        grouped.setdefault((version, gran), []).append(agg)
    return {where: merge(aggs) for where, aggs in grouped.items()}


def counter(agg: dict[str, Any] | None, name: str) -> int:
    return as_int((agg or {}).get(name, 0))


@fuzz_settings(100)
@given(
    ops=operations(st.integers(0, HORIZON), []),
    label_ttl=st.sampled_from([MIN, 20 * MIN, 2 * HOUR, NO_EXPIRY]),
    early_ttl=st.sampled_from([MIN, 20 * MIN, NO_EXPIRY]),
)
def test_counts_are_exact(ops: list[Send | Op], label_ttl: int, early_ttl: int) -> None:
    """Per model, the buckets count each applied prediction once and each duplicate once; every
    pair is pending, joined or expired in the state and in the counts alike; every outcome is
    joined, a duplicate, late, an orphan, refused or still waiting; without expiry, a pair is
    joined exactly when a fitting outcome came, with the first fitting outcome."""
    part = Partition(config(label_ttl, early_ttl, NO_EXPIRY, EXACT_WINDOWS))
    part.run(ops, check="end")  # its 6 h window spans 360 buckets: every checkpoint is slow
    check_joined_pairs(part)
    applied = part.committed.events
    states: dict[str, Counter[str]] = {m: Counter() for m in MODELS}
    waiting: Counter[str] = Counter()
    for _, record in part.txn.scan(keys.PAIR, b"q"):
        model = record["m"] if "m" in record else (record.get("pred") or record["out"])["model_id"]
        states[model][record["s"]] += 1
        if record["s"] == "E":
            waiting[model] += 1 + record.get("d", 0) + len(record.get("more", ()))
    for model in MODELS:
        totals = bucket_totals(part.txn, model)
        everything = totals.get((keys.ALL_VERSIONS, "m"))
        for name in COUNTERS:
            assert counter(everything, name) == counter(totals.get((keys.ALL_VERSIONS, "h")), name)
        for name in PER_VERSION:
            by_version = sum(
                counter(agg, name)
                for (version, gran), agg in totals.items()
                if gran == "m" and version != keys.ALL_VERSIONS
            )
            assert by_version == counter(everything, name), name
        predictions = [
            s.event for s in applied if s.topic == PREDICTIONS and s.event["model_id"] == model
        ]
        outcomes = [
            s.event for s in applied if s.topic == OUTCOMES and s.event["model_id"] == model
        ]
        distinct = {e["prediction_id"] for e in predictions}
        joined = [p for p in part.committed.joined if p["model_id"] == model]
        rejected = [o for _, o in part.committed.rejected if o["model_id"] == model]
        n, lab, exp = (counter(everything, name) for name in ("n", "lab", "exp"))
        assert n == len(distinct)
        assert counter(everything, "dp") == len(predictions) - len(distinct)
        assert lab == len(joined) == states[model]["J"]
        assert exp == states[model]["X"]
        assert n == states[model]["P"] + lab + exp
        assert len(outcomes) == (
            lab
            + counter(everything, "do")
            + counter(everything, "late")
            + counter(everything, "orph")
            + len(rejected)
            + waiting[model]
        )
        figures = summarize(everything or {}, "binary" if model == "m1" else "regression")
        check_figures(figures)
        assert figures["pending"] == states[model]["P"]


@fuzz_settings(150)
@given(ops=operations(st.integers(0, HORIZON), []))
def test_without_expiry_the_first_fitting_outcome_joins(ops: list[Send | Op]) -> None:
    """Whichever side comes first, a pair joins exactly when an outcome with a label that fits
    its prediction's task came, and with the first such outcome (a refused label is no label).
    The one bound: of the outcomes that came before the prediction, those after the first
    binary-fitting one, or beyond the first 1 + MAX_HELD_OUTCOMES, are held as duplicates."""
    part = Partition(config(NO_EXPIRY, NO_EXPIRY, NO_EXPIRY, EXACT_WINDOWS))
    part.run(ops, check="none")
    first_prediction: dict[tuple[str, str], dict[str, Any]] = {}
    early: dict[tuple[str, str], list[dict[str, Any]]] = {}
    later: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sent in part.committed.events:
        ident = pair_of(sent.event)
        if sent.topic == PREDICTIONS:
            first_prediction.setdefault(ident, sent.event)
        else:
            (later if ident in first_prediction else early).setdefault(ident, []).append(sent.event)
    expected = {}
    for ident, prediction in first_prediction.items():
        held: list[dict[str, Any]] = []
        for out in early.get(ident, []):
            if len(held) > MAX_HELD_OUTCOMES or any(fits("binary", h["label"]) for h in held):
                break
            held.append(out)
        candidates = held + later.get(ident, [])
        fitting = [o for o in candidates if fits(prediction["task"], o["label"])]
        if fitting:
            expected[ident] = (fitting[0]["label"], fitting[0]["timestamp"])
    got = {pair_of(p): (p["label"], p["outcome_timestamp"]) for p in part.committed.joined}
    assert got == expected


def test_a_refused_early_label_does_not_hide_the_next_one() -> None:
    """Found by this harness: an early outcome whose label did not fit the task hid the fitting
    ones after it (held only as a duplicate count); the same outcomes after the prediction
    joined. Now the order makes no difference."""

    def run(first_prediction: bool) -> list[tuple[Any, int]]:
        part = Partition(config(NO_EXPIRY, NO_EXPIRY, NO_EXPIRY, EXACT_WINDOWS))
        prediction = {
            "prediction_id": "p0",
            "model_id": "m1",
            "model_version": "v1",
            "timestamp": T0,
            "task": "binary",
            "score": 0.0,
        }
        sends = [
            Send(
                OUTCOMES, {"prediction_id": "p0", "model_id": "m1", "timestamp": T0, "label": 2.0}
            ),
            Send(OUTCOMES, {"prediction_id": "p0", "model_id": "m1", "timestamp": T0, "label": 0}),
        ]
        sends.insert(0 if first_prediction else 2, Send(PREDICTIONS, prediction))
        part.run(list(sends))
        return [(p["label"], p["outcome_timestamp"]) for p in part.committed.joined]

    assert run(first_prediction=True) == [(0, T0)]
    assert run(first_prediction=False) == [(0, T0)]
