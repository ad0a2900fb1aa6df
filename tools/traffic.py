"""Synthetic prediction/outcome traffic: pure generation, no I/O, randomness injected.

Why it exists: the join, the views and the benchmarks need traffic that looks live (labels
arrive later, some never, some before their prediction, duplicates, bad input) at a volume no
real model server gives a laptop, and tests need to know exactly what was sent.

`generate(spec, rng, truth)` yields `Record`s in the order a producer should send them. Each
record is one Kafka message: `topic` ("predictions" or "outcomes"), `key` (the model id) and
`value`: one JSON event when `batch_size == 1`, else a JSON array of events of one model
(at most `batch_size` events and about `max_batch_bytes` bytes).

Event time: prediction `i` has `timestamp = start_ms + int(i * 1000 / prediction_rate)`, where
`prediction_rate = event_rate / (2 - unlabeled_share)`, so predictions plus outcomes arrive at
about `event_rate` per second of event time. An outcome's `timestamp` is its prediction's plus a
label delay (>= 0). Outcomes are held in a priority queue and sent once event time reaches their
timestamp; `early_share` of them are sent *before* their prediction instead (in an earlier
record). At the end, pending outcomes are sent in time order (`drain=True`) or dropped.

What is valid and what is not (tests rely on this):

- **valid**: every prediction and outcome listed in `Truth.predictions` / `Truth.outcomes`.
  Each validates against `contracts.schemas.Prediction` / `Outcome` and its `model_id` equals the
  record key. Exactly `total_events` of them are generated (predictions + outcomes; with
  `drain=False` the outcomes still pending at the end are dropped and left out of `Truth`).
- **duplicates** (`Truth.duplicates` of them): a valid event sent again, byte for byte, a little
  later (`duplicate_delay_ms` of event time at most). Each valid event is duplicated with
  probability `duplicate_share`; duplicates are not duplicated again.
- **malformed** (`Truth.malformed`, counted by kind): after each valid event, with probability
  `malformed_share`, one bad item is added, on a random topic, keyed by a real model id:
  `bad_json` (a record whose bytes are truncated JSON), `empty` (a record with an empty
  value), both always a record of their own; and event-level ones that travel inside batches
  like valid events: `missing_field` (a required field removed), `wrong_type` (a required field
  with a value of the wrong type), `key_mismatch` (a schema-valid event whose `model_id` is
  another model's, so it disagrees with the record key). Malformed events use prediction ids
  `<run_id>-bad-<n>`, which no valid event uses.

**Drift** (for staleness demos and tests): the first `drift_models` models (`model-000`, ...)
shift their score distribution from event time `start_ms + drift_after_ms` on, labels
unchanged: a binary model's score logit moves by `drift_shift` (1.5 by default: a PSI far above
0.2), a regression model's score by `drift_shift` times its spread. It draws no extra random
numbers, so a spec without drift gives the same stream as before.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

TopicKind = Literal["predictions", "outcomes"]
DelayKind = Literal["exponential", "fixed", "uniform"]
MALFORMED_KINDS = ("bad_json", "empty", "missing_field", "wrong_type", "key_mismatch")
DEFAULT_EVENT_RATE = 1000.0
_PRED, _OUT = 0, 1
_TOPICS: tuple[TopicKind, TopicKind] = ("predictions", "outcomes")


@dataclass(frozen=True)
class TrafficSpec:
    """The knobs of one run. Shares are probabilities in [0, 1]."""

    models: int = 10
    rate: float | None = 1000.0  # events/s to send (pacing); 0/None = as fast as possible
    duration_s: float | None = 60.0  # of event time; ignored when `events` is set
    events: int | None = None  # total valid events (predictions + outcomes)
    event_rate: float | None = None  # events per event-time second; None = rate (or 1000)
    batch_size: int = 100
    max_batch_bytes: int = 900_000
    linger_ms: int | None = 1000  # send a partial batch once its oldest event is this old
    start_ms: int = 1_700_000_000_000
    label_delay: DelayKind = "exponential"
    label_delay_ms: float = 5_000.0  # mean (exponential), value (fixed), max (uniform)
    unlabeled_share: float = 0.1
    early_share: float = 0.05
    duplicate_share: float = 0.01
    duplicate_delay_ms: float = 1_000.0
    malformed_share: float = 0.001
    drain: bool = True
    features: int = 0  # numeric features x0..x{n-1} per prediction
    run_id: str | None = None  # prefix of prediction ids; None = f"r{start_ms}"
    p_true: float = 0.3  # mean positive rate of binary models
    separation: float = 1.19  # binary score signal; AUC = Phi(separation / sqrt 2) ~ 0.80
    noise: float = 0.5  # regression noise (label and score), in units of the model's scale
    model_version: str = "v1"  # every model's version
    drift_models: int = 0  # the first N models drift (module docstring, "Drift")
    drift_after_ms: int = 0  # ...from this much event time after start_ms
    drift_shift: float = 1.5  # binary: logit shift; regression: in units of the model's scale

    def __post_init__(self) -> None:
        if self.models < 1 or self.batch_size < 1:
            raise ValueError("models and batch_size must be >= 1")
        if self.events is None and self.duration_s is None:
            raise ValueError("give duration_s or events")
        for name in ("unlabeled_share", "early_share", "duplicate_share", "malformed_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.label_delay_ms < 0:
            raise ValueError("label_delay_ms must be >= 0")
        if not 0 <= self.drift_models <= self.models or self.drift_after_ms < 0:
            raise ValueError("drift_models must be in [0, models] and drift_after_ms >= 0")

    @property
    def effective_event_rate(self) -> float:
        return self.event_rate or self.rate or DEFAULT_EVENT_RATE

    @property
    def total_events(self) -> int:
        """Valid events to generate (predictions + outcomes)."""
        if self.events is not None:
            return self.events
        assert self.duration_s is not None
        return round(self.duration_s * self.effective_event_rate)

    @property
    def expected_sent_events(self) -> int:
        """About how many events the stream carries, duplicates and malformed included."""
        extra = self.duplicate_share + self.malformed_share
        return round(self.total_events * (1.0 + extra))

    @property
    def effective_run_id(self) -> str:
        return self.run_id if self.run_id is not None else f"r{self.start_ms}"


@dataclass(frozen=True)
class ModelPlan:
    """One synthetic model and the parameters of its score/label distribution."""

    model_id: str
    model_version: str
    task: Literal["binary", "regression"]
    p_true: float  # binary: P(label = 1)
    mean: float  # regression: mean of the true value f
    scale: float  # regression: standard deviation of f


class Record(NamedTuple):
    topic: TopicKind
    key: bytes
    value: bytes
    events: int  # events carried (1 for a bad_json/empty record)


class TruePrediction(NamedTuple):
    prediction_id: str
    model_id: str
    model_version: str
    timestamp: int
    task: str
    score: float


class TrueOutcome(NamedTuple):
    prediction_id: str
    model_id: str
    timestamp: int
    label: float


@dataclass
class Truth:
    """What was generated, collected only when asked (it grows with the run)."""

    models: list[ModelPlan] = field(default_factory=list)
    predictions: list[TruePrediction] = field(default_factory=list)
    outcomes: list[TrueOutcome] = field(default_factory=list)
    early: set[str] = field(default_factory=set)  # prediction ids whose outcome was sent first
    duplicates: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_KINDS, 0))


def plan_models(spec: TrafficSpec, rng: random.Random) -> list[ModelPlan]:
    """`spec.models` models, alternating binary and regression, ids `model-000`, ..."""
    width = max(3, len(str(spec.models - 1)))
    plans = []
    for i in range(spec.models):
        p_true = min(0.95, max(0.05, spec.p_true + rng.uniform(-0.1, 0.1)))
        plans.append(
            ModelPlan(
                model_id=f"model-{i:0{width}d}",
                model_version=spec.model_version,
                task="binary" if i % 2 == 0 else "regression",
                p_true=p_true,
                mean=rng.uniform(-10.0, 10.0),
                scale=rng.uniform(1.0, 5.0),
            )
        )
    return plans


class _Batcher:
    """Per-model, per-topic buffers that keep the two ordering promises.

    An early outcome's record must precede its prediction's record, and every other outcome's
    record must follow its prediction's. `early[m]` says the outcome buffer holds an outcome whose
    prediction sits in the prediction buffer (flush outcomes first); `late[m]` the reverse. The
    two are never set together: adding an event that would set one flushes the other first.
    """

    def __init__(self, spec: TrafficSpec, keys: list[bytes], out: list[Record]) -> None:
        n = len(keys)
        self.keys = keys
        self.out = out
        self.size = spec.batch_size
        self.max_bytes = spec.max_batch_bytes
        self.single = spec.batch_size == 1
        self.bufs: list[list[list[bytes]]] = [[[] for _ in range(n)], [[] for _ in range(n)]]
        self.nbytes = [[0] * n, [0] * n]
        self.first_ts = [[0] * n, [0] * n]
        self.pred_gen = [0] * n  # bumped at each prediction flush of the model
        self.early = [False] * n
        self.late = [False] * n

    def add(self, kind: int, m: int, event: bytes, ts: int) -> None:
        if self.single:
            self.out.append(Record(_TOPICS[kind], self.keys[m], event, 1))
            if kind == _PRED:
                self.pred_gen[m] += 1
            return
        buf = self.bufs[kind][m]
        if not buf:
            self.first_ts[kind][m] = ts
        buf.append(event)
        self.nbytes[kind][m] += len(event) + 1
        if len(buf) >= self.size or self.nbytes[kind][m] >= self.max_bytes:
            self.flush(kind, m)

    def add_early_outcome(self, m: int, event: bytes, ts: int) -> None:
        if self.late[m]:
            self.flush(_PRED, m)
        self.early[m] = not self.single  # before add: a flush it triggers must see it
        self.add(_OUT, m, event, ts)

    def add_outcome(self, m: int, event: bytes, ts: int, pred_gen: int) -> None:
        if pred_gen == self.pred_gen[m] and not self.single:  # its prediction is buffered
            if self.early[m]:
                self.flush(_OUT, m)
            self.late[m] = True
            self.add(_OUT, m, event, ts)
        else:
            self.add(_OUT, m, event, ts)

    def flush(self, kind: int, m: int) -> None:
        buf = self.bufs[kind][m]
        if not buf:
            return
        if kind == _PRED and self.early[m]:
            self.flush(_OUT, m)
        elif kind == _OUT and self.late[m]:
            self.flush(_PRED, m)
        self.out.append(Record(_TOPICS[kind], self.keys[m], b"[" + b",".join(buf) + b"]", len(buf)))
        self.bufs[kind][m] = []
        self.nbytes[kind][m] = 0
        if kind == _PRED:
            self.pred_gen[m] += 1
            self.late[m] = False
        else:
            self.early[m] = False

    def flush_older_than(self, cutoff_ts: int) -> None:
        for kind in (_PRED, _OUT):
            firsts = self.first_ts[kind]
            for m, buf in enumerate(self.bufs[kind]):
                if buf and firsts[m] <= cutoff_ts:
                    self.flush(kind, m)

    def flush_all(self) -> None:
        self.flush_older_than(2**63)


def _delay_sampler(spec: TrafficSpec, rng: random.Random) -> Callable[[], int]:
    mean = spec.label_delay_ms
    if spec.label_delay == "fixed" or mean == 0:
        fixed = int(mean)
        return lambda: fixed
    if spec.label_delay == "uniform":
        return lambda: int(rng.random() * mean)
    rate = 1.0 / mean
    return lambda: int(rng.expovariate(rate))


class _Malformer:
    """Makes the bad items documented in the module docstring."""

    def __init__(self, spec: TrafficSpec, rng: random.Random, plans: list[ModelPlan]) -> None:
        self.rng = rng
        self.plans = plans
        self.prefix = f"{spec.effective_run_id}-bad-"
        self.count = 0

    def make(self, m: int, ts: int) -> tuple[str, int, bytes]:
        """(kind, topic kind, bytes): bytes are a whole record value for bad_json/empty."""
        rng = self.rng
        kind = MALFORMED_KINDS[int(rng.random() * len(MALFORMED_KINDS))]
        topic = _PRED if rng.random() < 0.5 else _OUT
        plan = self.plans[m]
        self.count += 1
        pid = f"{self.prefix}{self.count}"
        if kind == "empty":
            return kind, topic, b""
        if topic == _PRED:
            body: dict[str, Any] = {
                "schema_version": 1,
                "prediction_id": pid,
                "model_id": plan.model_id,
                "model_version": plan.model_version,
                "timestamp": ts,
                "task": plan.task,
                "score": 0.5,
            }
            wrong: dict[str, Any] = {
                "prediction_id": None,
                "timestamp": "yesterday",
                "score": "high",
                "task": 3,
            }
        else:
            body = {
                "schema_version": 1,
                "prediction_id": pid,
                "model_id": plan.model_id,
                "timestamp": ts,
                "label": 1,
            }
            wrong = {"prediction_id": ["x"], "timestamp": "soon", "label": "yes"}
        if kind == "bad_json":
            raw = orjson.dumps(body)
            return kind, topic, raw[: len(raw) // 2]
        if kind == "missing_field":
            required = [k for k in body if k != "schema_version"]
            del body[required[int(rng.random() * len(required))]]
        elif kind == "wrong_type":
            name = list(wrong)[int(rng.random() * len(wrong))]
            body[name] = wrong[name]
        else:  # key_mismatch
            other = (m + 1) % len(self.plans)
            body["model_id"] = self.plans[other].model_id if other != m else plan.model_id + "-x"
        return kind, topic, orjson.dumps(body)


def generate(spec: TrafficSpec, rng: random.Random, truth: Truth | None = None) -> Iterator[Record]:
    """Yield the records of one run in send order; fill `truth` if given.

    Streaming: memory is constant apart from outcomes (and duplicates) not yet due.
    """
    plans = plan_models(spec, rng)
    if truth is not None:
        truth.models = plans
    n_models = len(plans)
    keys = [p.model_id.encode() for p in plans]
    out: list[Record] = []
    batcher = _Batcher(spec, keys, out)
    malformer = _Malformer(spec, rng, plans)
    delay = _delay_sampler(spec, rng)
    pending: list[tuple[int, int, int, int, bytes, int, bool]] = []  # (due, seq, kind, m, ...)
    push, pop = heapq.heappush, heapq.heappop
    rand, gauss, exp = rng.random, rng.gauss, math.exp
    dumps = orjson.dumps

    total = spec.total_events
    step_ms = 1000.0 * (2.0 - spec.unlabeled_share) / spec.effective_event_rate
    labeled_p = 1.0 - spec.unlabeled_share
    early_p, dup_p, bad_p = spec.early_share, spec.duplicate_share, spec.malformed_share
    dup_delay = spec.duplicate_delay_ms
    linger = spec.linger_ms
    next_sweep = spec.start_ms + (linger if linger else 0)
    sep = spec.separation
    binary_bias = [math.log(p.p_true / (1 - p.p_true)) - sep / 2 for p in plans]
    noise = spec.noise
    n_features = spec.features
    n_drift, shift = spec.drift_models, spec.drift_shift
    drift_from = spec.start_ms + spec.drift_after_ms
    pid_prefix = f"{spec.effective_run_id}-"
    record = truth is not None
    seq = 0
    emitted = 0  # valid events generated so far

    def bad(m: int, ts: int) -> None:
        kind, topic, raw = malformer.make(m, ts)
        if truth is not None:
            truth.malformed[kind] += 1
        if kind in ("bad_json", "empty"):
            out.append(Record(_TOPICS[topic], keys[m], raw, 1))
        else:
            batcher.add(topic, m, raw, ts)

    def send_outcome(m: int, body: bytes, ts: int, gen: int, is_dup: bool, now: int) -> None:
        nonlocal seq
        batcher.add_outcome(m, body, now, gen)
        if not is_dup:
            if dup_p and rand() < dup_p:
                seq += 1
                push(pending, (ts + int(rand() * dup_delay), seq, _OUT, m, body, gen, True))
            if bad_p and rand() < bad_p:
                bad(m, now)
        elif truth is not None:
            truth.duplicates += 1

    i = 0
    while emitted < total:
        ts = spec.start_ms + int(i * step_ms)
        while pending and pending[0][0] <= ts:
            due, _, kind, m, body, gen, is_dup = pop(pending)
            if kind == _OUT:
                send_outcome(m, body, due, gen, is_dup, ts)
            else:
                batcher.add(_PRED, m, body, ts)
                if truth is not None:
                    truth.duplicates += 1
        if linger and ts >= next_sweep:
            batcher.flush_older_than(ts - linger)
            next_sweep = ts + linger // 2 + 1

        m = int(rand() * n_models)
        plan = plans[m]
        pid = f"{pid_prefix}{i}"
        drifted = m < n_drift and ts >= drift_from
        if plan.task == "binary":
            label: float = 1 if rand() < plan.p_true else 0
            logit = gauss(0.0, 1.0) + sep * label + binary_bias[m]
            f = 1.0 / (1.0 + exp(-logit))  # the undrifted score: features do not drift
            score = 1.0 / (1.0 + exp(-(logit + shift))) if drifted else f
        else:
            f = gauss(plan.mean, plan.scale)
            label = f + gauss(0.0, noise * plan.scale)
            score = f + gauss(0.0, noise * plan.scale)
            if drifted:
                score += shift * plan.scale
        pred: dict[str, Any] = {
            "schema_version": 1,
            "prediction_id": pid,
            "model_id": plan.model_id,
            "model_version": plan.model_version,
            "timestamp": ts,
            "task": plan.task,
            "score": score,
        }
        if n_features:
            pred["features"] = {f"x{k}": f + gauss(0.0, 1.0) for k in range(n_features)}
        pred_bytes = dumps(pred)
        emitted += 1
        if record:
            truth.predictions.append(  # type: ignore[union-attr]
                TruePrediction(pid, plan.model_id, plan.model_version, ts, plan.task, score)
            )

        if emitted < total and rand() < labeled_p:
            emitted += 1
            out_ts = ts + delay()
            out_bytes = dumps(
                {
                    "schema_version": 1,
                    "prediction_id": pid,
                    "model_id": plan.model_id,
                    "timestamp": out_ts,
                    "label": label,
                }
            )
            early = bool(early_p) and rand() < early_p
            if record:
                truth.outcomes.append(TrueOutcome(pid, plan.model_id, out_ts, label))  # type: ignore[union-attr]
                if early:
                    truth.early.add(pid)  # type: ignore[union-attr]
            if early:
                batcher.add_early_outcome(m, out_bytes, ts)
                if dup_p and rand() < dup_p:
                    seq += 1
                    push(pending, (ts + int(rand() * dup_delay), seq, _OUT, m, out_bytes, -1, True))
                if bad_p and rand() < bad_p:
                    bad(m, ts)
            else:
                seq += 1
                push(pending, (out_ts, seq, _OUT, m, out_bytes, batcher.pred_gen[m], False))

        batcher.add(_PRED, m, pred_bytes, ts)
        if dup_p and rand() < dup_p:
            seq += 1
            push(pending, (ts + int(rand() * dup_delay), seq, _PRED, m, pred_bytes, -1, True))
        if bad_p and rand() < bad_p:
            bad(m, ts)
        i += 1
        if out:
            yield from out
            out.clear()

    dropped: set[bytes] = set()
    last_ts = spec.start_ms + int(max(i - 1, 0) * step_ms)
    while pending:
        due, _, kind, m, body, gen, is_dup = pop(pending)
        now = max(due, last_ts)
        if kind == _PRED:
            batcher.add(_PRED, m, body, now)
            if truth is not None:
                truth.duplicates += 1
        elif spec.drain:
            send_outcome(m, body, due, gen, is_dup, now)
        elif not is_dup:
            dropped.add(body)
        if out:
            yield from out
            out.clear()
    batcher.flush_all()
    yield from out
    out.clear()
    if truth is not None and dropped:  # drain=False: outcomes never sent are not truth
        gone = {orjson.loads(body)["prediction_id"] for body in dropped}
        truth.outcomes = [o for o in truth.outcomes if o.prediction_id not in gone]
